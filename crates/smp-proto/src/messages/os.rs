//! OS management (group 0): echo, task and memory statistics, date and time, reset,
//! MCUmgr parameters, OS/application and bootloader information.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use alloc::collections::BTreeMap;

use minicbor::data::Type;
use minicbor::decode::{self, Decoder};
use minicbor::encode::{self, Encoder, Write};
use smp_header::{command::os as cmd, group};

use super::{Empty, Value, request};
use crate::map::{self, FieldEncode};
use crate::smp_map;

smp_map! {
    /// Echo (command 0, write): the device answers with the same text.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    pub struct EchoRequest {
        /// The text to echo.
        "d" => pub d: String,
    }
}

smp_map! {
    /// Answer to [`EchoRequest`].
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct EchoResponse {
        /// The echoed text.
        "r" => pub r: String,
    }
}

smp_map! {
    /// Task (thread) statistics (command 2, read).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    pub struct TaskStatRequest;
}

smp_map! {
    /// Statistics of one task. Zephyr may leave out the fields its kernel does not track.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct TaskInfo {
        /// Numeric task id.
        "tid" => pub tid: u64,
        /// Priority (negative for Zephyr's cooperative threads).
        "prio" => pub prio: i64,
        /// Numeric task state.
        "state" => pub state: u64,
        /// Number of context switches.
        "cswcnt" => pub cswcnt: Option<u64>,
        /// Stack size (on Zephyr in 4-byte words).
        "stksiz" => pub stksiz: Option<u64>,
        /// Stack usage (on Zephyr in 4-byte words).
        "stkuse" => pub stkuse: Option<u64>,
        /// Run time in ticks.
        "runtime" => pub runtime: Option<u64>,
        /// Last check-in (0 on Zephyr).
        "last_checkin" => pub last_checkin: Option<u64>,
        /// Next check-in (0 on Zephyr).
        "next_checkin" => pub next_checkin: Option<u64>,
    }
}

smp_map! {
    /// Answer to [`TaskStatRequest`].
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    #[non_exhaustive]
    pub struct TaskStatResponse {
        /// Statistics by task name.
        "tasks" => pub tasks: BTreeMap<String, TaskInfo>,
    }
}

smp_map! {
    /// Memory pool statistics (command 3, read).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    pub struct MpStatRequest;
}

smp_map! {
    /// Statistics of one memory pool.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct PoolInfo {
        /// Lowest number of free blocks the pool reached.
        "min" => pub min: u64,
        /// Number of blocks.
        "nblks" => pub nblks: u64,
        /// Number of free blocks.
        "nfree" => pub nfree: u64,
        /// Size of a block.
        "blksize" => pub blksize: u64,
    }
}

/// Answer to [`MpStatRequest`]: the reply's top-level map is keyed by pool name.
///
/// Entries whose value is not a map (such as `"rc": 0`) are ignored on decode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MpStatResponse {
    /// Statistics by pool name.
    pub pools: BTreeMap<String, PoolInfo>,
}

impl<C> minicbor::Encode<C> for MpStatResponse {
    fn encode<W: Write>(
        &self,
        e: &mut Encoder<W>,
        _: &mut C,
    ) -> Result<(), encode::Error<W::Error>> {
        self.pools.encode_field(e)
    }
}

impl<'b, C> minicbor::Decode<'b, C> for MpStatResponse {
    fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Self, decode::Error> {
        let mut pools = BTreeMap::new();
        map::decode_map(d, |key, d| {
            if !matches!(d.datatype()?, Type::Map | Type::MapIndef) {
                return Ok(false);
            }
            pools.insert(key.to_owned(), d.decode()?);
            Ok(true)
        })?;
        Ok(Self { pools })
    }
}

impl<C> minicbor::CborLen<C> for MpStatResponse {
    fn cbor_len(&self, _: &mut C) -> usize {
        self.pools.field_len()
    }
}

smp_map! {
    /// Read the device's date and time (command 4, read).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    pub struct DateTimeRequest;
}

smp_map! {
    /// Answer to [`DateTimeRequest`].
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct DateTimeResponse {
        /// ISO 8601 date and time, `yyyy-MM-ddTHH:mm:ss[.SSSSSS][+HH:MM]`.
        "datetime" => pub datetime: String,
    }
}

smp_map! {
    /// Set the device's date and time (command 4, write); answered by [`Empty`].
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    pub struct SetDateTimeRequest {
        /// ISO 8601 date and time, `yyyy-MM-ddTHH:mm:ss[.SSSSSS][+HH:MM]`.
        "datetime" => pub datetime: String,
    }
}

smp_map! {
    /// Reset the device (command 5, write); answered by [`Empty`] before it resets.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    pub struct ResetRequest {
        /// 1 to reset even when the application would refuse (after an `EBUSY`).
        "force" => pub force: Option<u8>,
        /// Boot mode for the next boot (1: bootloader, e.g. MCUboot serial recovery).
        "boot_mode" => pub boot_mode: Option<u8>,
    }
}

smp_map! {
    /// MCUmgr buffer parameters (command 6, read).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    pub struct McumgrParamsRequest;
}

smp_map! {
    /// Answer to [`McumgrParamsRequest`].
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct McumgrParamsResponse {
        /// Size of one SMP buffer: the largest frame (header and payload) it accepts.
        "buf_size" => pub buf_size: u32,
        /// Number of SMP buffers.
        "buf_count" => pub buf_count: u32,
    }
}

smp_map! {
    /// OS and application information (command 7, read).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    pub struct InfoRequest {
        /// Format letters (`s` kernel name, `n` node, `r` release, `v` version, `b` build
        /// time, `m` machine, `p` processor, `i` platform, `o` OS, `a` all); default `s`.
        "format" => pub format: Option<String>,
    }
}

smp_map! {
    /// Answer to [`InfoRequest`].
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct InfoResponse {
        /// The requested fields, space separated.
        "output" => pub output: String,
    }
}

smp_map! {
    /// Bootloader information (command 8, read).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    pub struct BootloaderInfoRequest {
        /// What to ask; none for the bootloader's name, `"mode"` for MCUboot's mode.
        "query" => pub query: Option<String>,
    }
}

/// Answer to [`BootloaderInfoRequest`].
///
/// Without a query the device names its bootloader (`{"bootloader": "MCUboot"}`); for
/// MCUboot's `"mode"` query it answers `{"mode": 1, "no-downgrade"?: bool}`. Other
/// queries are up to the bootloader: every other entry is kept in [`other`](Self::other)
/// (except `rc`).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct BootloaderInfoResponse {
    /// Name of the bootloader (`"MCUboot"`).
    pub bootloader: Option<String>,
    /// MCUboot mode: -1 unknown, 0 application, 1 swap using scratch, 2 overwrite only,
    /// 3 swap without scratch, 4 direct XIP without revert, 5 direct XIP with revert,
    /// 6 RAM loader.
    pub mode: Option<i64>,
    /// `no-downgrade`: MCUboot refuses images older than the running one.
    pub no_downgrade: Option<bool>,
    /// Every other entry, by key.
    pub other: BTreeMap<String, Value>,
}

/// One entry of a [`BootloaderInfoResponse`] on its way out.
enum Entry<'a> {
    Text(&'a String),
    Int(&'a i64),
    Bool(&'a bool),
    Any(&'a Value),
}

impl Entry<'_> {
    fn encode<W: Write>(&self, e: &mut Encoder<W>) -> map::EncResult<W> {
        match self {
            Self::Text(v) => v.encode_field(e),
            Self::Int(v) => v.encode_field(e),
            Self::Bool(v) => v.encode_field(e),
            Self::Any(v) => v.encode_field(e),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Text(v) => v.field_len(),
            Self::Int(v) => v.field_len(),
            Self::Bool(v) => v.field_len(),
            Self::Any(v) => v.field_len(),
        }
    }
}

impl BootloaderInfoResponse {
    /// The entries to encode, in canonical key order.
    fn entries(&self) -> Vec<(&str, Entry<'_>)> {
        let mut entries = Vec::new();
        if let Some(v) = &self.bootloader {
            entries.push(("bootloader", Entry::Text(v)));
        }
        if let Some(v) = &self.mode {
            entries.push(("mode", Entry::Int(v)));
        }
        if let Some(v) = &self.no_downgrade {
            entries.push(("no-downgrade", Entry::Bool(v)));
        }
        for (k, v) in &self.other {
            if !matches!(k.as_str(), "bootloader" | "mode" | "no-downgrade") {
                entries.push((k.as_str(), Entry::Any(v)));
            }
        }
        entries.sort_by(|a, b| map::canonical_cmp(a.0, b.0));
        entries
    }
}

impl<C> minicbor::Encode<C> for BootloaderInfoResponse {
    fn encode<W: Write>(
        &self,
        e: &mut Encoder<W>,
        _: &mut C,
    ) -> Result<(), encode::Error<W::Error>> {
        let entries = self.entries();
        e.map(entries.len() as u64)?;
        for (k, v) in &entries {
            e.str(k)?;
            v.encode(e)?;
        }
        Ok(())
    }
}

impl<C> minicbor::CborLen<C> for BootloaderInfoResponse {
    fn cbor_len(&self, _: &mut C) -> usize {
        let entries = self.entries();
        map::head_len(entries.len() as u64)
            + entries
                .iter()
                .map(|(k, v)| map::str_len(k) + v.len())
                .sum::<usize>()
    }
}

impl<'b, C> minicbor::Decode<'b, C> for BootloaderInfoResponse {
    fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Self, decode::Error> {
        let mut out = Self::default();
        map::decode_map(d, |key, d| {
            match key {
                "bootloader" => out.bootloader = Some(map::text(d)?.into_owned()),
                "mode" => out.mode = Some(map::int(d)?),
                "no-downgrade" => out.no_downgrade = Some(d.bool()?),
                "rc" => return Ok(false),
                other => {
                    out.other.insert(other.to_owned(), d.decode()?);
                }
            }
            Ok(true)
        })?;
        Ok(out)
    }
}

request!(EchoRequest => EchoResponse, group::OS, cmd::ECHO, Write);
request!(TaskStatRequest => TaskStatResponse, group::OS, cmd::TASKSTAT, Read);
request!(MpStatRequest => MpStatResponse, group::OS, cmd::MPSTAT, Read);
request!(DateTimeRequest => DateTimeResponse, group::OS, cmd::DATETIME, Read);
request!(SetDateTimeRequest => Empty, group::OS, cmd::DATETIME, Write);
request!(ResetRequest => Empty, group::OS, cmd::RESET, Write);
request!(McumgrParamsRequest => McumgrParamsResponse, group::OS, cmd::MCUMGR_PARAMS, Read);
request!(InfoRequest => InfoResponse, group::OS, cmd::INFO, Read);
request!(BootloaderInfoRequest => BootloaderInfoResponse, group::OS, cmd::BOOTLOADER_INFO, Read);

#[cfg(test)]
mod tests {
    use std::borrow::ToOwned;

    use std::string::String;

    use super::*;
    use crate::messages::test_util::{check, check_rejects, check_with, hex};
    use std::vec;

    #[test]
    fn requests_round_trip() {
        check(&EchoRequest { d: "hello".into() });
        check(&EchoRequest { d: String::new() });
        check(&TaskStatRequest);
        check(&MpStatRequest);
        check(&DateTimeRequest);
        check(&SetDateTimeRequest {
            datetime: "2025-01-02T03:04:05".into(),
        });
        check(&ResetRequest::default());
        check(&ResetRequest {
            force: Some(1),
            boot_mode: Some(1),
        });
        check(&McumgrParamsRequest);
        check(&InfoRequest::default());
        check(&InfoRequest {
            format: Some("a".into()),
        });
        check(&BootloaderInfoRequest::default());
        check(&BootloaderInfoRequest {
            query: Some("mode".into()),
        });
    }

    #[test]
    fn responses_round_trip() {
        check(&EchoResponse { r: "hi".into() });
        let mut tasks = BTreeMap::new();
        tasks.insert(
            "main".to_owned(),
            TaskInfo {
                tid: 2,
                prio: -1,
                state: 8,
                cswcnt: Some(7),
                stksiz: Some(256),
                stkuse: Some(100),
                runtime: Some(1234),
                last_checkin: Some(0),
                next_checkin: Some(0),
            },
        );
        tasks.insert(
            "logging".to_owned(),
            TaskInfo {
                tid: 3,
                prio: 14,
                state: 2,
                ..TaskInfo::default()
            },
        );
        check(&TaskStatResponse { tasks });
        check(&TaskStatResponse::default());
        let mut pools = BTreeMap::new();
        pools.insert(
            "pool0".to_owned(),
            PoolInfo {
                min: 1,
                nblks: 8,
                nfree: 3,
                blksize: 32,
            },
        );
        pools.insert(
            "big".to_owned(),
            PoolInfo {
                min: 0,
                nblks: 2,
                nfree: 2,
                blksize: 4096,
            },
        );
        // The pools are the top-level map: an unknown map-valued key would be a pool.
        check_with(&MpStatResponse { pools }, false);
        check(&DateTimeResponse {
            datetime: "2025-01-02T03:04:05.123456+01:00".into(),
        });
        check(&McumgrParamsResponse {
            buf_size: 2048,
            buf_count: 2,
        });
        check(&InfoResponse {
            output: "Zephyr".into(),
        });
        // Unknown keys land in `other`, so no extra keys here (`rc` is tested below).
        check_with(
            &BootloaderInfoResponse {
                bootloader: Some("MCUboot".into()),
                ..Default::default()
            },
            false,
        );
        check_with(
            &BootloaderInfoResponse {
                mode: Some(-1),
                no_downgrade: Some(true),
                ..Default::default()
            },
            false,
        );
        let mut other = BTreeMap::new();
        other.insert(
            "slots".to_owned(),
            Value::Array(vec![Value::Int(0), Value::Int(1)]),
        );
        other.insert(
            "x".to_owned(),
            Value::Map(vec![(Value::Text("y".into()), Value::Null)]),
        );
        check_with(
            &BootloaderInfoResponse {
                mode: Some(3),
                other,
                ..Default::default()
            },
            false,
        );
    }

    #[test]
    fn mpstat_ignores_rc_and_non_map_entries() {
        // {_ "rc": 0, "p": {"min": 1, "nblks": 2, "nfree": 3, "blksize": 4}, "n": 5}
        let r: MpStatResponse = minicbor::decode(&hex(
            "bf 627263 00 6170 a4 636d696e 01 656e626c6b73 02 656e66726565 03 67626c6b73697a65 04
             616e 05 ff",
        ))
        .expect("decodes");
        assert_eq!(r.pools.len(), 1);
        assert_eq!(r.pools["p"].blksize, 4);
    }

    #[test]
    fn bootloader_info_skips_rc_and_keeps_the_rest() {
        // {_ "rc": 0, "mode": 2, "extra": "yes"}
        let r: BootloaderInfoResponse =
            minicbor::decode(&hex("bf 627263 00 646d6f6465 02 656578747261 63796573 ff"))
                .expect("decodes");
        assert_eq!(r.mode, Some(2));
        assert_eq!(r.bootloader, None);
        assert_eq!(r.other.len(), 1);
        assert_eq!(r.other["extra"].as_str(), Some("yes"));
    }

    #[test]
    fn missing_required_fields_are_errors() {
        check_rejects::<EchoResponse>("a0");
        check_rejects::<EchoResponse>("bf 627263 00 ff");
        check_rejects::<McumgrParamsResponse>("a1 686275665f73697a65 190800");
        // A task without `prio`.
        check_rejects::<TaskStatResponse>("a1 657461736b73 a1 6161 a2 63746964 01 657374617465 00");
        // Wrong types.
        check_rejects::<EchoResponse>("a1 6172 01");
        check_rejects::<EchoResponse>("81 00");
        check_rejects::<ResetRequest>("a1 65666f726365 190100");
    }

    #[test]
    fn integers_of_any_width() {
        // {"buf_size": 2048 as u64, "buf_count": 2 as u16}
        let r: McumgrParamsResponse = minicbor::decode(&hex(
            "a2 686275665f73697a65 1b0000000000000800 696275665f636f756e74 190002",
        ))
        .expect("decodes");
        assert_eq!((r.buf_size, r.buf_count), (2048, 2));
    }
}
