//! The high-level async SMP (MCUmgr) client: typed requests for every management group,
//! sequence matching, timeouts, retries, image and file transfer.
//!
//! It is the top layer of the `smp` workspace and re-exports the layers below, so users
//! depend on this crate alone.
#![forbid(unsafe_code)]

mod client;
#[cfg(test)]
mod client_tests;
mod engine;
mod error;
mod transfer;

pub use client::{Client, ClientOptions};
pub use engine::RetryPolicy;
pub use error::{ClientError, HashAlgorithm, ReplyError, TransferError};
pub use smp_proto::{
    self as proto, DeviceError, ErrorScope, Request, codes, messages, minicbor, smp_map,
};
pub use smp_transport::{self as transport, Transport, TransportError, header};
#[cfg(feature = "udp")]
pub use smp_udp as udp;
pub use transfer::{
    FileTransferOptions, FileTransferSummary, ImageUploadOptions, Progress, UploadSummary,
};
