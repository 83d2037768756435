//! The high-level async SMP (MCUmgr) client: typed requests for every management group,
//! sequence matching, timeouts, retries, image and file transfer.
//!
//! It is the top layer of the `smp` workspace and re-exports the layers below, so users
//! depend on this crate alone.
#![forbid(unsafe_code)]

/// Chainable setters for an options struct whose fields are public: `with_x(self, x)`.
macro_rules! with_setters {
    ($ty:ident { $($(#[$doc:meta])* $name:ident => $field:ident: $fty:ty),* $(,)? }) => {
        impl $ty {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $name(mut self, $field: $fty) -> Self {
                    self.$field = $field;
                    self
                }
            )*
        }
    };
}
pub(crate) use with_setters;

mod client;
#[cfg(test)]
mod client_tests;
mod commands;
mod engine;
mod error;
mod transfer;

pub use client::{Client, ClientOptions};
pub use engine::RetryPolicy;
pub use error::{ClientError, ErrorChain, HashAlgorithm, ReplyError, TransferError};
pub use smp_proto::{
    self as proto, DeviceError, ErrorScope, Request, codes, messages, minicbor, smp_map,
};
pub use smp_transport::{self as transport, Transport, TransportError, header};
#[cfg(feature = "udp")]
pub use smp_udp as udp;
pub use transfer::{
    FileTransferOptions, FileTransferSummary, ImageUploadOptions, Progress, UploadSummary,
};
