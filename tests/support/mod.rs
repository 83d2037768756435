//! Shared support for the workspace's integration tests: frames, fake peers on real
//! loopback sockets, and the addresses of real servers for the interop suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod serial;
pub mod zephyr_sample;

use std::net::SocketAddr;

use smp_client::header::{Header, Op};
use tokio::net::UdpSocket;

/// Environment variable naming the real Zephyr IPv4 UDP server (`127.0.0.1:1337`).
pub const INTEROP_UDP4: &str = "SMP_INTEROP_UDP4";
/// Environment variable naming the real Zephyr IPv6 UDP server (`[::1]:1337`).
pub const INTEROP_UDP6: &str = "SMP_INTEROP_UDP6";

/// Sends tracing output to the test harness, once; `RUST_LOG` selects what.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A frame of `payload` with a header announcing exactly its length.
pub fn frame(op: Op, group: u16, command: u8, sequence: u8, payload: &[u8]) -> Vec<u8> {
    let length = u16::try_from(payload.len()).expect("payload fits a frame");
    let mut out = Header::new(op, group, command, length)
        .with_sequence(sequence)
        .encode()
        .to_vec();
    out.extend_from_slice(payload);
    out
}

/// A UDP socket on a loopback address that plays the device in a test.
pub async fn fake_device(ip: &str) -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind((ip, 0)).await.unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// The address of a real server started by `cargo xtask interop`.
///
/// Panics with instructions when the variable is missing: an interop test never passes
/// without having talked to the real server.
pub fn interop_server(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the interop suite with `cargo xtask interop`, which starts the real Zephyr servers")
    })
}

/// A retry policy for loopback under heavy loss: short timeouts (a reply takes well under
/// a millisecond), many retries, short back-off.
pub fn lossy_policy() -> smp_client::RetryPolicy {
    smp_client::RetryPolicy::default()
        .with_timeout(std::time::Duration::from_millis(100))
        .with_retries(12)
        .with_backoff(std::time::Duration::from_millis(2))
        .with_max_backoff(std::time::Duration::from_millis(10))
}

/// A client of the simulated device `sim`, with `retry`.
pub async fn sim_client(
    sim: &smp_sim::Sim,
    retry: smp_client::RetryPolicy,
) -> smp_client::Client<smp_client::udp::UdpTransport> {
    let options = smp_client::ClientOptions::default().with_retry(retry);
    smp_client::Client::connect_udp(smp_client::udp::UdpTarget::from(sim.addr()), options)
        .await
        .expect("connects to the simulated device")
}

/// Image upload options whose first and last chunks wait only `timeout` for a reply:
/// a simulated device erases and checks at once, so a lost reply is a short wait.
pub fn quick_upload_options(timeout: std::time::Duration) -> smp_client::ImageUploadOptions {
    smp_client::ImageUploadOptions::default()
        .with_first_timeout(timeout)
        .with_last_timeout(timeout)
}

/// An unsigned MCUboot image of version `version` with a `len`-byte sample body.
pub fn test_image(len: usize, seed: u64, version: &str) -> Vec<u8> {
    let version: smp_mcuboot::ImageVersion = version.parse().unwrap();
    smp_mcuboot::ImageBuilder::new(version).build(&smp_mcuboot::sample_body(len, seed))
}

/// An error and its causes, one after another, as a report that walks the chain prints
/// them: `malformed reply to os echo: unexpected type array at position 0: expected map`.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    smp_client::ErrorChain(err).to_string()
}

/// A simulated device shaped like native_sim's `serial` fixture (4 SMP buffers of
/// 384 B), with `slot_size` slots, serving serial as `serial` says.
pub async fn serial_sim(serial: smp_sim::SerialConfig, slot_size: usize) -> smp_sim::Sim {
    smp_sim::Sim::start_serial(
        smp_sim::SimConfig {
            buf_count: 4,
            buf_size: 384,
            slot_size,
            ..smp_sim::SimConfig::default()
        },
        serial,
    )
    .await
    .expect("the simulated device serves serial")
}

/// A client of the serial port of `sim`, with the port's settings and `pacing`.
pub async fn serial_client(
    sim: &smp_sim::Sim,
    pacing: smp_client::serial::Pacing,
    options: smp_client::ClientOptions,
) -> Result<smp_client::Client<smp_client::serial::SerialTransport>, smp_client::ClientError> {
    let target = sim.serial_target().expect("the device serves serial");
    let serial_options = target.options().clone().pacing(pacing);
    smp_client::Client::connect_serial(target.with_options(serial_options), options).await
}

/// Standard base64 with padding, for hand-made console lines.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A console packet as a device would send it, with any length field and CRC, even
/// wrong ones: `length (u16 BE) | frame | crc (u16 BE)`.
pub fn console_packet(frame: &[u8], length: u16, crc: u16) -> Vec<u8> {
    let mut packet = length.to_be_bytes().to_vec();
    packet.extend_from_slice(frame);
    packet.extend_from_slice(&crc.to_be_bytes());
    packet
}

/// `packet` in base64 as console lines of `chars` characters (a multiple of 4): the
/// first starting `06 09`, the others `04 14`, each ending with a newline.
pub fn console_lines(packet: &[u8], chars: usize) -> Vec<u8> {
    let text = base64(packet);
    let mut out = Vec::new();
    for (i, line) in text.as_bytes().chunks(chars).enumerate() {
        out.extend_from_slice(if i == 0 { b"\x06\x09" } else { b"\x04\x14" });
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}
