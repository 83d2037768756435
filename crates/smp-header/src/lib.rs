//! The 8-byte SMP (Simple Management Protocol, "MCUmgr") header.
//!
//! This is the bottom layer of the `smp` workspace: a codec for the header that
//! starts every SMP frame, and the well-known group and command ids. It contains
//! no networking code, no CBOR and no allocation; it is `#![no_std]` with zero
//! dependencies so that firmware and host tools can share it.
//!
//! ```text
//!  byte 0           byte 1   bytes 2-3        bytes 4-5       byte 6     byte 7
//! +-----+---+-----+--------+----------------+----------------+----------+---------+
//! | res | v | op  | flags  | length (BE)    | group (BE)     | sequence | command |
//! | 7-5 |4-3| 2-0 |        |                |                |          |         |
//! +-----+---+-----+--------+----------------+----------------+----------+---------+
//! ```
//!
//! `length` counts the CBOR payload that follows the header, not the header.
//! Reserved bits of byte 0 are ignored on decode and written as zero.
//!
//! ```
//! use smp_header::{group, Header, Op, Version};
//!
//! let header = Header::new(Op::Write, group::OS, 0, 9).with_version(Version::V2);
//! let bytes = header.encode();
//! assert_eq!(bytes, [0x0a, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00]);
//! assert_eq!(Header::decode(&bytes), Ok(header));
//! ```
#![no_std]
#![forbid(unsafe_code)]

use core::fmt;

/// Size of an encoded header in bytes.
pub const SIZE: usize = 8;

/// Largest whole SMP frame: a header and the largest payload its `length` can announce.
pub const MAX_FRAME_SIZE: usize = SIZE + u16::MAX as usize;

/// Byte offsets of the header fields.
pub mod field {
    use core::ops::Range;

    /// Byte holding `op` (bits 0-2) and `version` (bits 3-4).
    pub const OP_VERSION: usize = 0;
    /// Flags byte.
    pub const FLAGS: usize = 1;
    /// Payload length, big-endian.
    pub const LENGTH: Range<usize> = 2..4;
    /// Group id, big-endian.
    pub const GROUP: Range<usize> = 4..6;
    /// Sequence number.
    pub const SEQUENCE: usize = 6;
    /// Command id.
    pub const COMMAND: usize = 7;
}

const OP_MASK: u8 = 0b0000_0111;
const VERSION_SHIFT: u8 = 3;
const VERSION_MASK: u8 = 0b0000_0011;

/// The operation of a frame: a request (read, write) or its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Read request.
    Read = 0,
    /// Response to a read request.
    ReadRsp = 1,
    /// Write request.
    Write = 2,
    /// Response to a write request.
    WriteRsp = 3,
}

impl Op {
    /// Decodes the 3-bit op field; values 4-7 are reserved.
    pub const fn from_bits(bits: u8) -> Result<Self, HeaderError> {
        match bits {
            0 => Ok(Self::Read),
            1 => Ok(Self::ReadRsp),
            2 => Ok(Self::Write),
            3 => Ok(Self::WriteRsp),
            value => Err(HeaderError::ReservedOp { value }),
        }
    }

    /// True for the two response ops.
    pub const fn is_response(self) -> bool {
        matches!(self, Self::ReadRsp | Self::WriteRsp)
    }

    /// The op a response to this request carries (`Read` → `ReadRsp`); a response maps to itself.
    pub const fn response(self) -> Self {
        match self {
            Self::Read | Self::ReadRsp => Self::ReadRsp,
            Self::Write | Self::WriteRsp => Self::WriteRsp,
        }
    }
}

/// The protocol version of a frame.
///
/// Version 2 servers report group errors as `{err: {group, rc}}` instead of `{rc}`.
/// A server answers with the lower of the request's version and its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// SMP version 1 (the original MCUmgr protocol).
    V1 = 0,
    /// SMP version 2.
    V2 = 1,
}

impl Version {
    /// Decodes the 2-bit version field; values 2 and 3 are reserved.
    pub const fn from_bits(bits: u8) -> Result<Self, HeaderError> {
        match bits {
            0 => Ok(Self::V1),
            1 => Ok(Self::V2),
            value => Err(HeaderError::ReservedVersion { value }),
        }
    }
}

/// A decoded SMP header. Every value of this type encodes to a valid header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Operation.
    pub op: Op,
    /// Protocol version.
    pub version: Version,
    /// Flags (no flag is defined; any value decodes).
    pub flags: u8,
    /// Length of the CBOR payload after the header.
    pub length: u16,
    /// Management group id, see [`group`].
    pub group: u16,
    /// Sequence number; 8 bits, wraps.
    pub sequence: u8,
    /// Command id within the group, see [`command`].
    pub command: u8,
}

impl Header {
    /// A version 2 header with no flags and sequence 0.
    pub const fn new(op: Op, group: u16, command: u8, length: u16) -> Self {
        Self {
            op,
            version: Version::V2,
            flags: 0,
            length,
            group,
            sequence: 0,
            command,
        }
    }

    /// The same header with another version.
    #[must_use]
    pub const fn with_version(mut self, version: Version) -> Self {
        self.version = version;
        self
    }

    /// The same header with another sequence number.
    #[must_use]
    pub const fn with_sequence(mut self, sequence: u8) -> Self {
        self.sequence = sequence;
        self
    }

    /// The same header with another payload length.
    #[must_use]
    pub const fn with_length(mut self, length: u16) -> Self {
        self.length = length;
        self
    }

    /// Decodes the header at the start of `bytes`; bytes after the first [`SIZE`] are ignored.
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderError> {
        let Some(raw) = bytes.first_chunk::<SIZE>() else {
            return Err(HeaderError::TooShort { len: bytes.len() });
        };
        let first = raw[field::OP_VERSION];
        Ok(Self {
            op: Op::from_bits(first & OP_MASK)?,
            version: Version::from_bits((first >> VERSION_SHIFT) & VERSION_MASK)?,
            flags: raw[field::FLAGS],
            length: u16::from_be_bytes([raw[2], raw[3]]),
            group: u16::from_be_bytes([raw[4], raw[5]]),
            sequence: raw[field::SEQUENCE],
            command: raw[field::COMMAND],
        })
    }

    /// Encodes the header; reserved bits are zero.
    pub const fn encode(&self) -> [u8; SIZE] {
        let length = self.length.to_be_bytes();
        let group = self.group.to_be_bytes();
        [
            (self.op as u8) | ((self.version as u8) << VERSION_SHIFT),
            self.flags,
            length[0],
            length[1],
            group[0],
            group[1],
            self.sequence,
            self.command,
        ]
    }

    /// Encodes the header into the first [`SIZE`] bytes of `out`.
    pub fn encode_into(&self, out: &mut [u8]) -> Result<(), HeaderError> {
        let len = out.len();
        let Some(dst) = out.first_chunk_mut::<SIZE>() else {
            return Err(HeaderError::TooShort { len });
        };
        *dst = self.encode();
        Ok(())
    }

    /// Size of the whole frame this header announces: header plus payload.
    pub const fn frame_len(&self) -> usize {
        SIZE + self.length as usize
    }

    /// True when `reply` answers this request: same group, command and sequence,
    /// and the response op of this request's op.
    pub const fn is_answered_by(&self, reply: &Header) -> bool {
        reply.op as u8 == self.op.response() as u8
            && reply.group == self.group
            && reply.command == self.command
            && reply.sequence == self.sequence
    }
}

/// Why bytes are not a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderError {
    /// Fewer than [`SIZE`] bytes.
    TooShort {
        /// Number of bytes available.
        len: usize,
    },
    /// The op field holds a reserved value (4-7).
    ReservedOp {
        /// The 3-bit value found.
        value: u8,
    },
    /// The version field holds a reserved value (2 or 3).
    ReservedVersion {
        /// The 2-bit value found.
        value: u8,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => {
                write!(f, "SMP header needs {SIZE} bytes, only {len} available")
            }
            Self::ReservedOp { value } => {
                write!(f, "SMP header has reserved op {value} (valid: 0-3)")
            }
            Self::ReservedVersion { value } => {
                write!(
                    f,
                    "SMP header has reserved version {value} (valid: 0 for v1, 1 for v2)"
                )
            }
        }
    }
}

impl core::error::Error for HeaderError {}

/// Well-known management group ids. Groups 64 and above belong to applications.
pub mod group {
    /// OS management: echo, reset, task and memory statistics, date-time, parameters, info.
    pub const OS: u16 = 0;
    /// Image management: state, upload, erase, slot info.
    pub const IMAGE: u16 = 1;
    /// Statistics.
    pub const STAT: u16 = 2;
    /// Settings (persistent configuration).
    pub const SETTINGS: u16 = 3;
    /// Log (legacy).
    pub const LOG: u16 = 4;
    /// Crash (legacy).
    pub const CRASH: u16 = 5;
    /// Split image (legacy).
    pub const SPLIT: u16 = 6;
    /// Run test (legacy).
    pub const RUN: u16 = 7;
    /// File system.
    pub const FS: u16 = 8;
    /// Shell.
    pub const SHELL: u16 = 9;
    /// Group enumeration.
    pub const ENUM: u16 = 10;
    /// Zephyr-specific commands.
    pub const ZEPHYR: u16 = 63;
    /// First id of the application-defined ("per user") groups.
    pub const USER_BASE: u16 = 64;

    /// The name of a well-known group, or `None` for application groups and unknown ids.
    pub const fn name(group: u16) -> Option<&'static str> {
        Some(match group {
            OS => "OS",
            IMAGE => "IMG",
            STAT => "STAT",
            SETTINGS => "SETTINGS",
            LOG => "LOG",
            CRASH => "CRASH",
            SPLIT => "SPLIT",
            RUN => "RUN",
            FS => "FS",
            SHELL => "SHELL",
            ENUM => "ENUM",
            ZEPHYR => "ZEPHYR",
            _ => return None,
        })
    }
}

/// Well-known command ids, one module per group.
pub mod command {
    /// A name people know a well-known command by, as `"GROUP COMMAND"` in lower case
    /// (`"os params"`, `"image upload"`, `"fs file"`), for messages and logs; `None` for
    /// application groups and unknown ids. Read and write share one name.
    pub const fn name(group: u16, command: u8) -> Option<&'static str> {
        Some(match (group, command) {
            (crate::group::OS, os::ECHO) => "os echo",
            (crate::group::OS, os::TASKSTAT) => "os tasks",
            (crate::group::OS, os::MPSTAT) => "os mempools",
            (crate::group::OS, os::DATETIME) => "os datetime",
            (crate::group::OS, os::RESET) => "os reset",
            (crate::group::OS, os::MCUMGR_PARAMS) => "os params",
            (crate::group::OS, os::INFO) => "os info",
            (crate::group::OS, os::BOOTLOADER_INFO) => "os bootloader",
            (crate::group::IMAGE, image::STATE) => "image state",
            (crate::group::IMAGE, image::UPLOAD) => "image upload",
            (crate::group::IMAGE, image::ERASE) => "image erase",
            (crate::group::IMAGE, image::SLOT_INFO) => "image slots",
            (crate::group::STAT, stat::GROUP_DATA) => "stat show",
            (crate::group::STAT, stat::LIST) => "stat list",
            (crate::group::SETTINGS, settings::READ_WRITE) => "settings value",
            (crate::group::SETTINGS, settings::DELETE) => "settings delete",
            (crate::group::SETTINGS, settings::COMMIT) => "settings commit",
            (crate::group::SETTINGS, settings::LOAD_SAVE) => "settings load/save",
            (crate::group::FS, fs::FILE) => "fs file",
            (crate::group::FS, fs::STATUS) => "fs status",
            (crate::group::FS, fs::HASH_CHECKSUM) => "fs hash",
            (crate::group::FS, fs::SUPPORTED_HASH_CHECKSUM) => "fs supported-checksums",
            (crate::group::FS, fs::CLOSE) => "fs close",
            (crate::group::SHELL, shell::EXEC) => "shell exec",
            (crate::group::ENUM, enumeration::COUNT) => "enum count",
            (crate::group::ENUM, enumeration::LIST) => "enum list",
            (crate::group::ENUM, enumeration::SINGLE) => "enum single",
            (crate::group::ENUM, enumeration::DETAILS) => "enum details",
            (crate::group::ZEPHYR, zephyr::ERASE_STORAGE) => "zephyr erase-storage",
            _ => return None,
        })
    }

    /// Commands of [`group::OS`](crate::group::OS).
    pub mod os {
        /// Echo a string back.
        pub const ECHO: u8 = 0;
        /// Task statistics.
        pub const TASKSTAT: u8 = 2;
        /// Memory pool statistics.
        pub const MPSTAT: u8 = 3;
        /// Read or write the date and time.
        pub const DATETIME: u8 = 4;
        /// Reset the device.
        pub const RESET: u8 = 5;
        /// MCUmgr buffer parameters.
        pub const MCUMGR_PARAMS: u8 = 6;
        /// OS and application information.
        pub const INFO: u8 = 7;
        /// Bootloader information.
        pub const BOOTLOADER_INFO: u8 = 8;
    }
    /// Commands of [`group::IMAGE`](crate::group::IMAGE).
    pub mod image {
        /// Read or change the image state.
        pub const STATE: u8 = 0;
        /// Upload an image chunk.
        pub const UPLOAD: u8 = 1;
        /// Erase a slot.
        pub const ERASE: u8 = 5;
        /// Slot information.
        pub const SLOT_INFO: u8 = 6;
    }
    /// Commands of [`group::STAT`](crate::group::STAT).
    pub mod stat {
        /// Read one statistics group.
        pub const GROUP_DATA: u8 = 0;
        /// List statistics groups.
        pub const LIST: u8 = 1;
    }
    /// Commands of [`group::SETTINGS`](crate::group::SETTINGS).
    pub mod settings {
        /// Read (R) or write (W) one setting.
        pub const READ_WRITE: u8 = 0;
        /// Delete a setting.
        pub const DELETE: u8 = 1;
        /// Commit settings.
        pub const COMMIT: u8 = 2;
        /// Load (R) or save (W) settings.
        pub const LOAD_SAVE: u8 = 3;
    }
    /// Commands of [`group::FS`](crate::group::FS).
    pub mod fs {
        /// Download (R) or upload (W) a file chunk.
        pub const FILE: u8 = 0;
        /// File status (size).
        pub const STATUS: u8 = 1;
        /// File hash or checksum.
        pub const HASH_CHECKSUM: u8 = 2;
        /// Supported hash and checksum types.
        pub const SUPPORTED_HASH_CHECKSUM: u8 = 3;
        /// Close open files.
        pub const CLOSE: u8 = 4;
    }
    /// Commands of [`group::SHELL`](crate::group::SHELL).
    pub mod shell {
        /// Execute a shell command.
        pub const EXEC: u8 = 0;
    }
    /// Commands of [`group::ENUM`](crate::group::ENUM).
    pub mod enumeration {
        /// Number of groups.
        pub const COUNT: u8 = 0;
        /// List of group ids.
        pub const LIST: u8 = 1;
        /// One group by index.
        pub const SINGLE: u8 = 2;
        /// Group details.
        pub const DETAILS: u8 = 3;
    }
    /// Commands of [`group::ZEPHYR`](crate::group::ZEPHYR).
    pub mod zephyr {
        /// Erase the storage partition.
        pub const ERASE_STORAGE: u8 = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> [u8; SIZE] {
        let mut out = [0; SIZE];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    #[test]
    fn echo_write_vector() {
        // EchoWrite(d="hello"), seq 0: 0a00000900000000 + 9 bytes of CBOR.
        let bytes = [
            0x0a, // 0b000_01_010: v2, WRITE
            0x00, // flags
            0x00, 0x09, // length 9
            0x00, 0x00, // group OS
            0x00, // sequence 0
            0x00, // command echo
        ];
        let header = Header::new(Op::Write, group::OS, command::os::ECHO, 9);
        assert_eq!(header.encode(), bytes);
        assert_eq!(Header::decode(&bytes), Ok(header));
    }

    #[test]
    fn read_vectors() {
        // MCUMgrParametersRead: v2 READ, len 1 (empty map a0), group OS, cmd 6.
        let params = Header::new(Op::Read, group::OS, command::os::MCUMGR_PARAMS, 1);
        assert_eq!(params.encode(), hex("0800000100000006"));
        // ImageStatesRead: v2 READ, len 1, group IMAGE, cmd 0.
        let states = Header::new(Op::Read, group::IMAGE, command::image::STATE, 1);
        assert_eq!(states.encode(), hex("0800000100010000"));
    }

    #[test]
    fn user_group_vector() {
        // WRITE v2 len 0x1234 group 64 seq 255 cmd 1.
        let header = Header::new(Op::Write, group::USER_BASE, 1, 0x1234).with_sequence(255);
        assert_eq!(header.encode(), hex("0a0012340040ff01"));
        assert_eq!(Header::decode(&hex("0a0012340040ff01")), Ok(header));
    }

    #[test]
    fn all_ones_vector() {
        // READ v2, flags 0xff, len 0xffff, group 0xffff, seq 0xab, cmd 0xcd.
        let bytes = hex("08ffffffffffabcd");
        let header = Header::decode(&bytes).unwrap();
        assert_eq!(
            header,
            Header {
                op: Op::Read,
                version: Version::V2,
                flags: 0xff,
                length: 0xffff,
                group: 0xffff,
                sequence: 0xab,
                command: 0xcd,
            }
        );
        assert_eq!(header.encode(), bytes);
        assert_eq!(header.frame_len(), MAX_FRAME_SIZE);
    }

    #[test]
    fn zephyr_reply_vector() {
        // 0b: 0b000_01_011, v2 WRITE_RSP; length 7; group 0; seq 1; cmd 0.
        let reply = Header::decode(&hex("0b00000700000100")).unwrap();
        assert_eq!(reply.op, Op::WriteRsp);
        assert_eq!(reply.length, 7);
        assert_eq!(reply.sequence, 1);
        let request = Header::new(Op::Write, group::OS, command::os::ECHO, 9).with_sequence(1);
        assert!(request.is_answered_by(&reply));
        assert!(!request.with_sequence(2).is_answered_by(&reply));
        assert!(!request.is_answered_by(&request));
    }

    #[test]
    fn reserved_bits_ignored_on_decode_zeroed_on_encode() {
        // 0b111_01_000: reserved bits set, v2, READ.
        let header = Header::decode(&[0xe8, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(header.op, Op::Read);
        assert_eq!(header.version, Version::V2);
        assert_eq!(header.encode()[0], 0x08);
    }

    #[test]
    fn rejects_what_cannot_be_represented() {
        assert_eq!(
            Header::decode(&[0; 7]),
            Err(HeaderError::TooShort { len: 7 })
        );
        assert_eq!(Header::decode(&[]), Err(HeaderError::TooShort { len: 0 }));
        // 0b000_00_100: op 4 is reserved.
        assert_eq!(
            Header::decode(&[0x04, 0, 0, 0, 0, 0, 0, 0]),
            Err(HeaderError::ReservedOp { value: 4 })
        );
        // 0b000_10_000: version 2 is reserved.
        assert_eq!(
            Header::decode(&[0x10, 0, 0, 0, 0, 0, 0, 0]),
            Err(HeaderError::ReservedVersion { value: 2 })
        );
        let mut short = [0u8; 4];
        assert_eq!(
            Header::new(Op::Read, 0, 0, 0).encode_into(&mut short),
            Err(HeaderError::TooShort { len: 4 })
        );
    }

    #[test]
    fn v1_and_response_ops() {
        let header = Header::decode(&[0x03, 0, 0, 0, 0, 1, 0, 0]).unwrap();
        assert_eq!(header.version, Version::V1);
        assert_eq!(header.op, Op::WriteRsp);
        assert!(header.op.is_response());
        assert_eq!(Op::Read.response(), Op::ReadRsp);
        assert_eq!(group::name(header.group), Some("IMG"));
        assert_eq!(group::name(64), None);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn any_header() -> impl Strategy<Value = Header> {
            (
                0u8..4,
                0u8..2,
                any::<u8>(),
                any::<u16>(),
                any::<u16>(),
                any::<u8>(),
                any::<u8>(),
            )
                .prop_map(|(op, version, flags, length, group, sequence, command)| {
                    Header {
                        op: Op::from_bits(op).unwrap(),
                        version: Version::from_bits(version).unwrap(),
                        flags,
                        length,
                        group,
                        sequence,
                        command,
                    }
                })
        }

        proptest! {
            #[test]
            fn decode_inverts_encode(header in any_header()) {
                prop_assert_eq!(Header::decode(&header.encode()), Ok(header));
                let mut buf = [0u8; 12];
                header.encode_into(&mut buf).unwrap();
                prop_assert_eq!(Header::decode(&buf), Ok(header));
            }

            #[test]
            fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
                match Header::decode(&bytes) {
                    Ok(header) => {
                        // What decodes re-encodes to the same bytes, reserved bits aside.
                        let mut expected = [0u8; SIZE];
                        expected.copy_from_slice(&bytes[..SIZE]);
                        expected[0] &= 0b0001_1111;
                        prop_assert_eq!(header.encode(), expected);
                    }
                    Err(HeaderError::TooShort { len }) => prop_assert!(len < SIZE && len == bytes.len()),
                    Err(_) => prop_assert!(bytes.len() >= SIZE),
                }
            }
        }
    }

    #[test]
    fn command_names() {
        assert_eq!(
            command::name(group::OS, command::os::MCUMGR_PARAMS),
            Some("os params")
        );
        assert_eq!(
            command::name(group::IMAGE, command::image::UPLOAD),
            Some("image upload")
        );
        assert_eq!(command::name(group::OS, 1), None);
        assert_eq!(command::name(64, 0), None);
    }
}
