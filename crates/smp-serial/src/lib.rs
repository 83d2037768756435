//! SMP over serial lines on tokio: UARTs, USB CDC ACM, pseudo-terminals and TCP serial
//! bridges.
//!
//! This is the serial transport layer of the `smp` workspace, a sibling of `smp-udp`: it
//! implements [`Transport`] and [`Connect`] of `smp-transport`, and moves whole SMP frames
//! (header and CBOR payload) over a byte stream in one of three framings ([`Framing`]):
//! - **console** ([`console`]): Zephyr's "SMP over console/UART", base64 lines with a
//!   length and a CRC16, which share the line with logs and a shell (what the reference
//!   client's `SMPSerialTransport` speaks, and MCUboot serial recovery by default);
//! - **raw** ([`raw`]): the bare frame (Zephyr's raw UART transport);
//! - **raw COBS** ([`cobs`]): the frame and a CRC16, COBS-encoded (MCUboot's raw COBS
//!   serial recovery).
//!
//! The framings are IO-free: [`encode`] and the deframers ([`Deframer`], or one per
//! framing) are plain functions and state machines over bytes. [`SerialOptions`] size
//! messages as the reference `smpclient` 7.3.0 does and pace lines for devices that drop
//! bursts ([`Pacing`]).
//!
//! This crate moves frames only: it does not match replies to requests, time out, retry,
//! or know CBOR. Those belong to the client (`smp-client`).
#![forbid(unsafe_code)]

mod base64;
pub mod cobs;
pub mod console;
mod crc;
mod error;
mod framing;
mod options;
#[allow(dead_code)] // The IO layer that paces writes comes next.
mod pace;
pub mod raw;

pub use crc::crc16;
pub use error::{FrameError, OptionsError};
pub use framing::{Deframer, encode};
pub use options::{Framing, Pacing, SerialOptions};
pub use smp_transport::{self as transport, Connect, Transport, TransportError, header};

#[cfg(test)]
mod vectors;
