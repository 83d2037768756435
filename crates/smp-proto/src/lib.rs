//! The SMP (MCUmgr) protocol without IO: the typed messages of every well-known
//! management group, the text-keyed CBOR map layer they are written in, the error-code
//! tables and the device errors a reply may carry.
//!
//! This crate is shared by both ends: the `smp-client` crate sends these requests and
//! decodes these responses, and the simulated device `smp-sim` decodes the requests and
//! encodes the responses. Firmware-side tools can use it too: it is `#![no_std]` (with
//! `alloc`) and depends on the header codec ([`header`]) and [`minicbor`] only.
//!
//! It contains no networking, no transport, no sequence matching and no retries.
//!
//! - [`messages`]: one module per group; each request implements [`Request`], which
//!   ties it to its group, command, op and response type.
//! - [`smp_map!`]: defines a message as a struct whose fields are a text-keyed map, as
//!   SMP messages are; the built-in messages use it, and so can an application's own.
//! - [`DeviceError`], [`reply_error`]: a device's own error codes, found in a reply's
//!   payload (v1 `rc`, v2 `err: {group, rc}`), known codes named ([`codes`]), unknown
//!   codes kept as numbers.
//!
//! ```
//! use smp_proto::messages::os::{EchoRequest, EchoResponse};
//! use smp_proto::{Request, reply_error};
//!
//! let payload = smp_proto::minicbor::to_vec(EchoRequest { d: "hi".into() }).unwrap();
//! assert_eq!(payload, b"\xa1\x61d\x62hi");
//! assert_eq!((EchoRequest::GROUP, EchoRequest::COMMAND), (0, 0));
//!
//! // A reply is checked for a device error before it is decoded as the response.
//! let reply = b"\xbf\x61r\x62hi\xff";
//! assert_eq!(reply_error(reply, EchoRequest::GROUP, false).unwrap(), None);
//! let echoed: EchoResponse = smp_proto::minicbor::decode(reply).unwrap();
//! assert_eq!(echoed.r, "hi");
//!
//! let refused = reply_error(b"\xa1\x62rc\x08", 0, false).unwrap().unwrap();
//! assert_eq!(refused.to_string(), "MGMT 8 ENOTSUP");
//! ```
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod codes;
mod error;
mod hash;
pub mod map;
pub mod messages;
mod request;

pub use error::{DeviceError, ErrorScope, reply_error};
pub use hash::{ImageHash, ParseHashError};
/// The CBOR codec every message is written with, re-exported: it is part of this crate's
/// public API (messages implement its `Encode`, `Decode` and `CborLen`).
pub use minicbor;
pub use request::Request;
/// The SMP header codec.
pub use smp_header as header;
