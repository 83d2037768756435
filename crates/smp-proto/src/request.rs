//! The contract between a typed request, its response and the wire.

use smp_header::Op;

/// A typed SMP request: where it goes (group, command, op) and what answers it.
///
/// Every request of the well-known groups implements this in [`crate::messages`].
/// Applications add their own groups (ids 64 and up) by implementing it for their own
/// types: the payload is encoded with minicbor's [`Encode`](minicbor::Encode) and the
/// response decoded with [`Decode`](minicbor::Decode). The easy way to write both is
/// [`smp_map!`](crate::smp_map), as the built-in messages do (its docs show a whole user
/// group); a type with a shape of its own can implement them by hand:
///
/// ```
/// use smp_proto::minicbor::{self, Decode, Decoder, Encode, Encoder};
/// use smp_proto::header::Op;
/// use smp_proto::Request;
///
/// /// `{"n": u32}` to user group 64, command 0.
/// struct Blink { n: u32 }
/// impl<C> Encode<C> for Blink {
///     fn encode<W: minicbor::encode::Write>(&self, e: &mut Encoder<W>, _: &mut C)
///         -> Result<(), minicbor::encode::Error<W::Error>> {
///         e.map(1)?.str("n")?.u32(self.n)?;
///         Ok(())
///     }
/// }
/// /// Any map answers it.
/// struct Done;
/// impl<'b, C> Decode<'b, C> for Done {
///     fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Self, minicbor::decode::Error> {
///         d.skip()?;
///         Ok(Done)
///     }
/// }
/// impl Request for Blink {
///     const GROUP: u16 = 64;
///     const COMMAND: u8 = 0;
///     const OP: Op = Op::Write;
///     type Response = Done;
/// }
/// ```
pub trait Request: minicbor::Encode<()> {
    /// Management group id.
    const GROUP: u16;
    /// Command id within the group.
    const COMMAND: u8;
    /// [`Op::Read`] or [`Op::Write`].
    const OP: Op;
    /// The successful reply's payload.
    type Response: for<'b> minicbor::Decode<'b, ()>;

    /// True when an older server may put the command's own result in `rc` beside the
    /// reply's fields (shell exec's `{"o": ..., "rc": 1}`): such an `rc` is then part of
    /// the response, not a device error. A reply with no other fields is still an error.
    const RC_MAY_BE_RESULT: bool = false;
}
