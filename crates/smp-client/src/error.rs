//! Errors of the client: the device's own (data) and everything that went wrong on the way.

use std::time::Duration;

use smp_proto::DeviceError;
use smp_transport::TransportError;

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
    use smp_proto::ErrorScope;
    use smp_transport::header::group;

    #[test]
    fn a_device_error_names_the_code() {
        let e = DeviceError {
            group: group::IMAGE,
            rc: 30,
            scope: ErrorScope::Group,
            reason: None,
        };
        assert_eq!(
            ClientError::from(e).to_string(),
            "device refused: IMG 30 INVALID_IMAGE_TOO_LARGE"
        );
    }
}
