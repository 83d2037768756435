//! The high-level async SMP (MCUmgr) client: typed requests for every management group,
//! sequence matching, timeouts, retries, image and file transfer.
//!
//! It is the top layer of the `smp` workspace and re-exports the layers below, so users
//! depend on this crate alone.
#![forbid(unsafe_code)]

pub mod codes;
mod error;
mod message;

pub use error::{ClientError, DeviceError, ErrorScope};
pub use message::Request;
pub use smp_transport::{self as transport, Transport, TransportError, header};
#[cfg(feature = "udp")]
pub use smp_udp as udp;
