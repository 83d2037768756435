//! The high-level async SMP (MCUmgr) client for Zephyr and MCUboot devices: typed
//! requests for every management group, several requests in flight, timeouts and
//! retries, pipelined image and file transfer.
//!
//! ```
//! use smp_client::{Client, ClientOptions, ImageUploadOptions};
//! # use smp_sim::{Sim, SimConfig};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let sim = Sim::start(SimConfig::default()).await?;
//! # let device = sim.addr().to_string();
//! # let image = smp_mcuboot::ImageBuilder::new("1.2.3".parse()?)
//! #     .build(&smp_mcuboot::sample_body(20_000, 1));
//!
//! // A device on the network (here a simulated one on 127.0.0.1).
//! let client = Client::connect_udp(device.parse()?, ClientOptions::default()).await?;
//! assert_eq!(client.echo("hello").await?, "hello");
//!
//! // Upload a firmware image, mark it for test, and see it pending.
//! let summary = client
//!     .upload_image(&image, &ImageUploadOptions::default(), |p| {
//!         println!("{} of {} bytes", p.done, p.total)
//!     })
//!     .await?;
//! let slot1 = client.image_state().await?.into_iter().find(|i| i.slot == 1).unwrap();
//! let hash = slot1.hash.expect("the device reports the image's hash");
//! let state = client.test_image(&hash).await?;
//! assert_eq!(state[1].pending, Some(true));
//! println!("uploaded {} bytes in {} chunks; {hash} runs from the next boot", summary.len, summary.chunks);
//! # Ok(()) }
//! ```
//!
//! - [`Client`]: one device over any [`Transport`] ([`Client::connect_udp`] for UDP).
//!   [`Client::request`] sends any typed request ([`messages`] has every command of the
//!   well-known groups; [`smp_map!`] writes the messages of an application's own group)
//!   and shortcuts cover what people do most ([`Client::image_state`],
//!   [`Client::test_image`], [`Client::confirm_image`], [`Client::reset`],
//!   [`Client::os_info`], [`Client::params`]).
//! - Transfers: [`Client::upload_image`], [`Client::upload_file`],
//!   [`Client::download_file`], pipelined up to the device's buffers, resumable, checked.
//! - Errors: [`ClientError`], with the device's own codes as data ([`DeviceError`]) and
//!   transfer failures as [`TransferError`]; [`ErrorChain`] prints one with its causes.
//!
//! It is the top layer of the `smp` workspace and re-exports the layers below
//! ([`header`], [`transport`], [`udp`](mod@udp), [`proto`], [`minicbor`]), so users depend
//! on this crate alone. More examples: `crates/smp-client/examples/` (echo, image upload
//! with progress, image state, a custom group), which CI runs against the simulated
//! device.
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

#[cfg(any(feature = "udp", feature = "serial"))]
mod any;
mod client;
#[cfg(test)]
mod client_tests;
mod commands;
mod engine;
mod error;
mod rto;
mod transfer;
pub mod upgrade;
mod wire;

#[cfg(any(feature = "udp", feature = "serial"))]
pub use any::AnyTransport;
pub use client::{Client, ClientOptions, Reopen};
pub use engine::RetryPolicy;
pub use error::{ClientError, ErrorChain, HashAlgorithm, ReplyError, TransferError};
pub use smp_proto::{
    self as proto, DeviceError, ErrorScope, Request, codes, messages, minicbor, smp_map,
};
#[cfg(feature = "serial")]
pub use smp_serial as serial;
pub use smp_transport::{self as transport, Transport, TransportError, header};
#[cfg(feature = "udp")]
pub use smp_udp as udp;
pub use transfer::{
    FileTransferOptions, FileTransferSummary, ImageUploadOptions, Progress, UploadSummary,
};
pub use upgrade::{UpgradeError, UpgradeOptions, UpgradeOutcome, UpgradeReport};
