//! Typed requests and responses for every command of the well-known SMP groups.
//!
//! One module per group: [`os`], [`image`], [`stat`], [`settings`], [`fs`], [`shell`],
//! [`enumeration`], [`zephyr`]. Each request implements [`Request`](crate::Request)
//! (group, command, op and its response type) and minicbor's `Encode`; each response
//! implements minicbor's `Decode`. Both implement `CborLen`, so
//! `minicbor::len(&request)` is the payload size without encoding it.
//!
//! Field names are the wire names (`r#type` for `type`; `no_downgrade` and
//! `split_status` for `no-downgrade` and `splitStatus`). Optional fields are `Option`s,
//! left out of the payload when `None`.
//!
//! Requests encode exactly as the Python reference (`smp` 4.2.0) does: a definite-length
//! map with the keys in canonical order (shorter first, then bytewise). Responses
//! decode from definite or indefinite maps, in any key order, ignoring keys they do not
//! know (such as the `"rc": 0` older servers add to successful replies). A reply that
//! is an error (`{"rc": 8}`, `{"err": {...}}`) must be recognized before it is decoded
//! as the response: [`Empty`] accepts any map.
//!
//! ```
//! use smp_proto::messages::os::{EchoRequest, EchoResponse};
//!
//! let request = EchoRequest { d: "hello".into() };
//! let payload = minicbor::to_vec(&request).expect("encodes");
//! assert_eq!(payload, b"\xa1\x61d\x65hello");
//! assert_eq!(minicbor::len(&request), payload.len());
//!
//! // Zephyr answers with an indefinite-length map.
//! let reply: EchoResponse = minicbor::decode(b"\xbf\x61r\x62hi\xff").expect("decodes");
//! assert_eq!(reply.r, "hi");
//! ```

use crate::smp_map;

pub mod enumeration;
pub mod fs;
pub mod image;
pub mod os;
pub mod settings;
pub mod shell;
pub mod stat;
mod value;
pub mod zephyr;

#[cfg(test)]
pub(crate) mod test_util;
#[cfg(test)]
mod vectors;

pub use value::Value;

smp_map! {
    /// The empty map: the request of commands without parameters and the response of
    /// commands that answer nothing but success (reset, erase, settings write, ...).
    ///
    /// Decodes from any map, ignoring its entries.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    pub struct Empty;
}

/// A message made from its `Default`, with `fill` setting the fields it needs.
///
/// Responses (and the structs inside them) are `#[non_exhaustive]`, so that a field a
/// later Zephyr adds does not break code that reads them; outside this crate they are
/// made this way rather than with a struct expression: by a device answering requests,
/// or by a test.
///
/// ```
/// use smp_proto::messages::{build, image::UploadResponse};
///
/// let reply = build(|r: &mut UploadResponse| r.off = 4096);
/// assert_eq!((reply.off, reply.r#match), (4096, None));
/// ```
pub fn build<T: Default>(fill: impl FnOnce(&mut T)) -> T {
    let mut message = T::default();
    fill(&mut message);
    message
}

/// Implements [`Request`](crate::Request) for a message type.
macro_rules! request {
    ($ty:ty => $response:ty, $group:expr, $command:expr, $op:ident) => {
        impl $crate::Request for $ty {
            const GROUP: u16 = $group;
            const COMMAND: u8 = $command;
            const OP: ::smp_header::Op = ::smp_header::Op::$op;
            type Response = $response;
        }
    };
}
use request;
