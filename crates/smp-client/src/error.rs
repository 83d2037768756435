//! Errors of the client: the device's own (data) and everything that went wrong on the way.

use std::fmt;
use std::time::Duration;

use smp_transport::TransportError;
use smp_transport::header::group;

use crate::codes;

/// An error code a device reported instead of a successful reply.
///
/// SMP version 1 replies carry a management code (`{"rc": 8}`, optionally with a reason
/// string `rsn`); version 2 replies carry a group code (`{"err": {"group": 1, "rc": 30}}`).
/// Unknown codes are kept as numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceError {
    /// Group of the request (for a management code) or the group named by `err`.
    pub group: u16,
    /// The code.
    pub rc: i64,
    /// Which table `rc` belongs to.
    pub scope: ErrorScope,
    /// Optional human-readable reason (`rsn`) some devices add.
    pub reason: Option<String>,
}

/// Which table a [`DeviceError`] code comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorScope {
    /// `MGMT_ERR_*`: a v1 `rc`, or a protocol-level error on v2.
    Management,
    /// The group's own table: a v2 `err: {group, rc}`.
    Group,
}

impl DeviceError {
    /// The code's name (`ENOTSUP`, `INVALID_IMAGE_TOO_LARGE`), if the table knows it.
    pub fn name(&self) -> Option<&'static str> {
        match self.scope {
            ErrorScope::Management => codes::mgmt_name(self.rc),
            ErrorScope::Group => codes::group_name(self.group, self.rc),
        }
    }

    /// True for codes that mean "slow down and retry": management ENOMEM and EBUSY.
    pub fn is_back_pressure(&self) -> bool {
        self.scope == ErrorScope::Management
            && matches!(self.rc, codes::MGMT_ENOMEM | codes::MGMT_EBUSY)
    }

    /// True when the device cannot compute a file hash of the type asked for: the file
    /// system group says so, or the command is not supported at all.
    pub fn is_unsupported_hash(&self) -> bool {
        self.is_not_supported()
            || (self.scope == ErrorScope::Group
                && self.group == group::FS
                && self.rc == codes::FS_CHECKSUM_HASH_NOT_FOUND)
    }

    /// True when the device does not support the command (management ENOTSUP).
    pub fn is_not_supported(&self) -> bool {
        self.scope == ErrorScope::Management && self.rc == codes::MGMT_ENOTSUP
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = match self.scope {
            ErrorScope::Management => "MGMT",
            ErrorScope::Group => group::name(self.group).unwrap_or("GROUP"),
        };
        if self.scope == ErrorScope::Group && group::name(self.group).is_none() {
            write!(f, "group {} error {}", self.group, self.rc)?;
        } else {
            write!(f, "{table} {}", self.rc)?;
        }
        if let Some(name) = self.name() {
            write!(f, " {name}")?;
        }
        if let Some(reason) = &self.reason {
            write!(f, " ({reason})")?;
        }
        Ok(())
    }
}

impl std::error::Error for DeviceError {}

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The transport failed (socket error, closed).
    #[error(transparent)]
    Transport(#[from] TransportError),

    /// The device answered with an error code.
    #[error("device refused: {0}")]
    Device(#[from] DeviceError),

    /// No reply arrived in time, after every retry.
    #[error(
        "no reply from the device to group {group} command {command} (sequence {sequence}) after {attempts} attempts over {waited:?}"
    )]
    Timeout {
        /// Group of the request.
        group: u16,
        /// Command of the request.
        command: u8,
        /// Sequence number of the last attempt.
        sequence: u8,
        /// Attempts made.
        attempts: u32,
        /// Time spent waiting in all.
        waited: Duration,
    },

    /// The device kept answering "busy" or "out of memory" for longer than the retries allow.
    #[error("device stayed busy ({last}) through {attempts} attempts")]
    Busy {
        /// The last back-pressure error.
        last: DeviceError,
        /// Attempts made.
        attempts: u32,
    },

    /// Every one of the 256 sequence numbers already waits for a reply.
    #[error("256 requests are already waiting for replies on this client")]
    TooManyInFlight,

    /// The encoded request does not fit one frame the device accepts.
    #[error(
        "request of {len} B does not fit the {max} B frame limit (transport MTU and device buffer)"
    )]
    FrameTooLarge {
        /// Encoded frame size.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// The reply's payload did not decode as the expected response.
    #[error("malformed reply to group {group} command {command}: {message}")]
    Decode {
        /// Group of the request.
        group: u16,
        /// Command of the request.
        command: u8,
        /// What the decoder reported.
        message: String,
    },

    /// A request could not be encoded.
    #[error("cannot encode request: {0}")]
    Encode(String),

    /// A transfer did not end as the device and the client agreed.
    #[error("transfer failed: {0}")]
    Transfer(String),

    /// The client's connection is closed.
    #[error("client is closed")]
    Closed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_code() {
        let e = DeviceError {
            group: group::IMAGE,
            rc: 30,
            scope: ErrorScope::Group,
            reason: None,
        };
        assert_eq!(e.to_string(), "IMG 30 INVALID_IMAGE_TOO_LARGE");
        assert_eq!(
            ClientError::from(e).to_string(),
            "device refused: IMG 30 INVALID_IMAGE_TOO_LARGE"
        );
        let e = DeviceError {
            group: group::OS,
            rc: 8,
            scope: ErrorScope::Management,
            reason: Some("nope".into()),
        };
        assert_eq!(e.to_string(), "MGMT 8 ENOTSUP (nope)");
        assert!(e.is_not_supported());
        let e = DeviceError {
            group: 70,
            rc: 5,
            scope: ErrorScope::Group,
            reason: None,
        };
        assert_eq!(e.to_string(), "group 70 error 5");
        let e = DeviceError {
            group: group::FS,
            rc: 99,
            scope: ErrorScope::Group,
            reason: None,
        };
        assert_eq!(e.to_string(), "FS 99");
        let e = DeviceError {
            group: 0,
            rc: 10,
            scope: ErrorScope::Management,
            reason: None,
        };
        assert!(e.is_back_pressure());
    }
}
