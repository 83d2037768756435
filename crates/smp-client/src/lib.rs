//! The high-level async SMP (MCUmgr) client: typed requests for every management group,
//! sequence matching, timeouts, retries, image and file transfer.
//!
//! It is the top layer of the `smp` workspace and re-exports the layers below, so users
//! depend on this crate alone.
#![forbid(unsafe_code)]

mod cbor;
mod client;
#[cfg(test)]
mod client_tests;
pub mod codes;
mod download;
mod engine;
mod error;
mod message;
pub mod messages;
mod transfer;

pub use client::{Client, ClientOptions};
pub use engine::RetryPolicy;
pub use error::{ClientError, DeviceError, ErrorScope};
pub use message::Request;
pub use smp_transport::{self as transport, Transport, TransportError, header};
#[cfg(feature = "udp")]
pub use smp_udp as udp;
pub use transfer::{
    FileTransferOptions, FileTransferSummary, ImageUploadOptions, Progress, UploadSummary,
    cbor_len_extra, crc32, fit_data,
};
