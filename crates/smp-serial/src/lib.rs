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
//! - **raw COBS** ([`cobs`]): the frame and a CRC16, COBS-encoded between two `00`
//!   delimiters (MCUboot's raw COBS serial recovery).
//!
//! The framings are IO-free: [`encode`] and the deframers ([`Deframer`], or one per
//! framing) are plain functions and state machines over bytes. [`SerialTransport`] is
//! the thin tokio layer over any `AsyncRead + AsyncWrite`: a [`Port`] (a device path or
//! `socket://HOST:PORT`, see [`SerialTarget`]), or for tests an in-memory pipe. Its
//! [`SerialOptions`] size messages as the reference `smpclient` 7.3.0 does and pace lines
//! for devices that drop bursts ([`Pacing`]).
//!
//! This crate moves frames only: it does not match replies to requests, time out, retry,
//! or know CBOR. Those belong to the client (`smp-client`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), smp_serial::TransportError> {
//! use std::time::Duration;
//! use smp_serial::{SerialOptions, SerialTarget, SerialTransport, Transport};
//!
//! let target: SerialTarget = "/dev/ttyACM0".parse()?;
//! let target = target.with_options(SerialOptions::default().buf_size(384));
//! let serial = SerialTransport::connect(target, Duration::from_secs(2)).await?;
//! assert_eq!(serial.max_unencoded_size(), 380);
//! // MCUmgr parameters: READ, group 0 (OS), command 6, empty map.
//! let reply = serial.send_and_receive(&[0x08, 0, 0, 1, 0, 0, 0, 6, 0xa0]).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod base64;
pub mod cobs;
pub mod console;
mod crc;
mod error;
mod framing;
mod options;
mod pace;
mod port;
pub mod raw;
mod serial_transport;
mod target;

pub use crc::crc16;
pub use error::{FrameError, OptionsError, ParsePacingError};
pub use framing::{Deframer, encode};
pub use options::{Framing, Pacing, SerialOptions};
pub use port::Port;
pub use serial_transport::{SerialStats, SerialTransport};
pub use smp_transport::{self as transport, Connect, Transport, TransportError, header};
pub use target::SerialTarget;

#[cfg(test)]
mod vectors;
