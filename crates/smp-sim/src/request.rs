//! A request as a group handler sees it, and the work its processing leaves to the
//! work queue.

use std::time::Duration;

use minicbor::Decode;
use smp_proto::header::Op;
use tracing::debug;

use crate::reply::{Outcome, mgmt};

/// A request as a handler sees it.
#[derive(Debug)]
pub(crate) struct Incoming<'a> {
    pub(crate) op: Op,
    pub(crate) command: u8,
    pub(crate) payload: &'a [u8],
}

impl Incoming<'_> {
    /// Decodes the payload as `T`; a payload of the wrong shape is `EINVAL`, as
    /// Zephyr's zcbor decoding answers.
    pub(crate) fn decode<'b, T: Decode<'b, ()>>(&'b self) -> Result<T, Outcome> {
        minicbor::decode(self.payload).map_err(|e| {
            debug!(%e, "request payload of the wrong shape");
            Outcome::Mgmt(mgmt::EINVAL)
        })
    }

    pub(crate) fn is_read(&self) -> bool {
        self.op == Op::Read
    }
}

/// Work done while processing one request, beyond its reply.
#[derive(Debug, Default)]
pub(crate) struct Ctx {
    /// How long the work queue is busy with it (erase, flash writes...).
    pub(crate) busy: Duration,
    /// The device reboots once the reply is sent.
    pub(crate) reset_after_reply: bool,
}

impl Ctx {
    /// Adds the time `bytes` written to flash take.
    pub(crate) fn wrote(&mut self, bytes: usize, per_kib: Duration) {
        self.busy += per_kib.mul_f64(bytes as f64 / 1024.0);
    }
}
