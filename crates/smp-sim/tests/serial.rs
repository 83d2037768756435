//! The simulated device's serial port, byte by byte, over TCP on 127.0.0.1: exact lines
//! in, exact lines out, and what Zephyr's serial transport drops.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use smp_proto::header::{Header, Op, group};
use smp_sim::serial::console::{self, LineLength};
use smp_sim::serial::{Deframer, Framing};
use smp_sim::{Faults, SerialConfig, Sim, SimConfig, SimCounters};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout};

/// How long a test waits for something that must happen: far longer than it takes.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long a test waits for something that must not happen.
const QUIET: Duration = Duration::from_millis(200);

/// UART line buffers that no burst overruns (native_sim's `bigrx`).
fn bigrx() -> SerialConfig {
    SerialConfig {
        rx_line_buffers: None,
        ..SerialConfig::default()
    }
}

/// A device with 4 buffers of `buf_size` serving `serial` on TCP, and a connection to it.
async fn start(buf_size: usize, serial: SerialConfig) -> (Sim, TcpStream) {
    let config = SimConfig {
        buf_count: 4,
        buf_size,
        slot_size: 64 * 1024,
        ..SimConfig::default()
    };
    let serial = SerialConfig {
        listen: smp_sim::SerialListen::Tcp(([127, 0, 0, 1], 0).into()),
        ..serial
    };
    let sim = Sim::start_serial(config, serial).await.unwrap();
    let target = sim.serial_target().unwrap();
    let (host, port) = target.tcp_address().unwrap();
    assert_eq!(
        target.to_string(),
        format!("socket://127.0.0.1:{port}"),
        "what a client parses"
    );
    let stream = TcpStream::connect((host, port)).await.unwrap();
    (sim, stream)
}

/// An echo request frame for `text`.
fn echo(sequence: u8, text: &str) -> Vec<u8> {
    let mut payload = vec![0xa1, 0x61, b'd'];
    // CBOR text head: the length in the head, then in 1 or 2 more bytes.
    match text.len() {
        len @ 0..24 => payload.push(0x60 | len as u8),
        len @ 24..256 => payload.extend([0x78, len as u8]),
        len => {
            payload.push(0x79);
            payload.extend(u16::try_from(len).unwrap().to_be_bytes());
        }
    }
    payload.extend(text.as_bytes());
    let mut frame = Header::new(Op::Write, group::OS, 0, payload.len() as u16)
        .with_sequence(sequence)
        .encode()
        .to_vec();
    frame.extend(payload);
    frame
}

/// Reads until `deframer` gives a frame (or an error).
async fn next_frame(stream: &mut TcpStream, deframer: &mut Deframer) -> Vec<u8> {
    let mut buf = [0; 4096];
    loop {
        if let Some(frame) = deframer.next_frame() {
            return frame.unwrap();
        }
        let len = timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("the device answers")
            .unwrap();
        assert!(len > 0, "the device closed the line");
        deframer.push(&buf[..len]);
    }
}

/// Nothing arrives for a while.
async fn assert_silent(stream: &mut TcpStream) {
    let mut buf = [0; 4096];
    if let Ok(read) = timeout(QUIET, stream.read(&mut buf)).await {
        panic!("unexpected bytes from the device: {read:?}");
    }
}

/// The text an echo reply carries.
fn echoed(reply: &[u8]) -> String {
    let header = Header::decode(reply).unwrap();
    assert_eq!((header.op, header.group), (Op::WriteRsp, group::OS));
    let value: smp_proto::messages::os::EchoResponse = minicbor::decode(&reply[8..]).unwrap();
    value.r
}

async fn counters_after_a_moment(sim: &Sim) -> SimCounters {
    sleep(Duration::from_millis(20)).await;
    sim.counters()
}

#[tokio::test]
async fn replies_are_framed_in_lines_of_the_configured_length() {
    let serial = SerialConfig {
        line_length: 64,
        ..bigrx()
    };
    let (_sim, mut line) = start(384, serial).await;
    let text = "z".repeat(150);
    let request = echo(7, &text);
    line.write_all(&console::encode(&request, LineLength::new(64).unwrap()).unwrap())
        .await
        .unwrap();
    // Read the raw reply: lines of at most 63 bytes, each decoding alone.
    let mut wire = Vec::new();
    let mut deframer = Deframer::new(Framing::Console, 4096);
    let reply = loop {
        if let Some(frame) = deframer.next_frame() {
            break frame.unwrap();
        }
        let mut buf = [0; 4096];
        let len = timeout(PATIENCE, line.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        wire.extend_from_slice(&buf[..len]);
        deframer.push(&buf[..len]);
    };
    assert_eq!(echoed(&reply), text);
    assert_eq!(Header::decode(&reply).unwrap().sequence, 7);
    assert_eq!(
        wire,
        console::encode(&reply, LineLength::new(64).unwrap()).unwrap()
    );
    assert!(console::lines(&wire).all(|l| l.len() <= 63));
    assert!(console::lines(&wire).count() > 3);
}

#[tokio::test]
async fn log_text_and_non_frame_lines_are_skipped() {
    let (sim, mut line) = start(384, SerialConfig::default()).await;
    let mut bytes = b"uart:~$ help\r\n".to_vec();
    bytes.extend(console::encode(&echo(1, "hi"), LineLength::default()).unwrap());
    line.write_all(&bytes).await.unwrap();
    let mut deframer = Deframer::new(Framing::Console, 4096);
    assert_eq!(echoed(&next_frame(&mut line, &mut deframer).await), "hi");
    let c = sim.counters();
    assert_eq!((c.received, c.frames_damaged), (1, 0), "{c:?}");
}

#[tokio::test]
async fn a_frame_larger_than_a_buffer_is_dropped_without_a_word() {
    // 96-byte buffers (native_sim's serial_buf96): the packet's length and CRC share
    // them, so 92 bytes is the largest frame, and 93 are dropped.
    let (sim, mut line) = start(96, bigrx()).await;
    let text = |len: usize| "q".repeat(len - 8 - 5);
    let too_large = echo(1, &text(93));
    assert_eq!(too_large.len(), 93);
    line.write_all(&console::encode(&too_large, LineLength::default()).unwrap())
        .await
        .unwrap();
    assert_silent(&mut line).await;
    assert_eq!(sim.counters().frames_too_large, 1);
    let fits = echo(2, &text(92));
    line.write_all(&console::encode(&fits, LineLength::default()).unwrap())
        .await
        .unwrap();
    let mut deframer = Deframer::new(Framing::Console, 4096);
    assert_eq!(
        echoed(&next_frame(&mut line, &mut deframer).await),
        text(92)
    );
}

#[tokio::test]
async fn a_line_longer_than_the_uart_buffer_is_lost() {
    // A device with 64-byte line buffers gets the 127-byte lines of a 128-byte client:
    // the first line is lost, and the short last one, left without its start, is
    // dropped too.
    let serial = SerialConfig {
        line_length: 64,
        ..SerialConfig::default()
    };
    let (sim, mut line) = start(384, serial).await;
    let request = console::encode(&echo(1, &"l".repeat(100)), LineLength::default()).unwrap();
    let lines: Vec<&[u8]> = console::lines(&request).collect();
    assert_eq!((lines.len(), lines[0].len()), (2, 127));
    assert!(lines[1].len() <= 64);
    line.write_all(&request).await.unwrap();
    assert_silent(&mut line).await;
    let c = sim.counters();
    assert_eq!(
        (c.lines_too_long, c.frames_damaged, c.received),
        (1, 1, 0),
        "{c:?}"
    );
}

#[tokio::test]
async fn a_burst_of_more_lines_than_buffers_loses_the_rest() {
    let (sim, mut line) = start(384, SerialConfig::default()).await;
    // Five lines at once: two taken in, three lost, the frame incomplete.
    let request = echo(1, &"b".repeat(360));
    let lines = console::encode(&request, LineLength::default()).unwrap();
    assert_eq!(console::lines(&lines).count(), 5);
    line.write_all(&lines).await.unwrap();
    assert_silent(&mut line).await;
    let c = sim.counters();
    assert_eq!((c.lines_overrun, c.received), (3, 0), "{c:?}");
    // The same lines two at a time, 20 ms apart, get through; the stale start of the
    // lost frame is dropped when the new one starts.
    for pair in console::lines(&lines).collect::<Vec<_>>().chunks(2) {
        line.write_all(&pair.concat()).await.unwrap();
        sleep(Duration::from_millis(20)).await;
    }
    let mut deframer = Deframer::new(Framing::Console, 4096);
    assert_eq!(
        echoed(&next_frame(&mut line, &mut deframer).await),
        "b".repeat(360)
    );
    let c = counters_after_a_moment(&sim).await;
    assert_eq!((c.lines_overrun, c.frames_damaged), (3, 1), "{c:?}");
}

#[tokio::test]
async fn line_faults_lose_and_damage_frames_and_are_counted() {
    let (sim, mut line) = start(384, bigrx()).await;
    sim.set_faults(Faults {
        drop_lines: 1.0,
        ..Faults::none()
    });
    let request = console::encode(&echo(1, "lost"), LineLength::default()).unwrap();
    line.write_all(&request).await.unwrap();
    assert_silent(&mut line).await;
    let c = sim.counters();
    assert_eq!((c.lines_dropped_by_fault, c.received), (1, 0), "{c:?}");
    sim.set_faults(Faults {
        corrupt_lines: 1.0,
        ..Faults::none()
    });
    for sequence in 2..12 {
        let request = console::encode(&echo(sequence, "damaged"), LineLength::default()).unwrap();
        line.write_all(&request).await.unwrap();
        sleep(Duration::from_millis(1)).await;
    }
    assert_silent(&mut line).await;
    let c = sim.counters();
    // Every frame was damaged on its way in; none reached the work queue. (A corrupted
    // newline merges two lines, so fewer frames than lines may be counted.)
    assert_eq!((c.lines_corrupted, c.received), (10, 0), "{c:?}");
    assert!(c.frames_damaged >= 5, "{c:?}");
    sim.set_faults(Faults::none());
    line.write_all(&console::encode(&echo(20, "clean"), LineLength::default()).unwrap())
        .await
        .unwrap();
    let mut deframer = Deframer::new(Framing::Console, 4096);
    assert_eq!(echoed(&next_frame(&mut line, &mut deframer).await), "clean");
}

#[tokio::test]
async fn a_reboot_forgets_the_frame_being_received() {
    let (sim, mut line) = start(384, SerialConfig::default()).await;
    let lines = console::encode(&echo(1, &"r".repeat(200)), LineLength::default()).unwrap();
    let lines: Vec<&[u8]> = console::lines(&lines).collect();
    assert_eq!(lines.len(), 3);
    line.write_all(lines[0]).await.unwrap();
    sleep(Duration::from_millis(20)).await;
    sim.reboot();
    line.write_all(&lines[1..].concat()).await.unwrap();
    assert_silent(&mut line).await;
    let c = sim.counters();
    assert_eq!(c.received, 0, "{c:?}");
    assert_eq!(
        c.frames_damaged, 1,
        "continuation lines without a start: {c:?}"
    );
}

#[tokio::test]
async fn raw_and_cobs_framings_answer_in_kind() {
    for framing in [Framing::Raw, Framing::RawCobs] {
        let serial = SerialConfig {
            framing,
            ..SerialConfig::default()
        };
        let (sim, mut line) = start(384, serial).await;
        let request = echo(3, &"w".repeat(200));
        let encoded = smp_sim::serial::encode(framing, &request, LineLength::default()).unwrap();
        line.write_all(&encoded).await.unwrap();
        let mut deframer = Deframer::new(framing, 4096);
        let reply = next_frame(&mut line, &mut deframer).await;
        assert_eq!(echoed(&reply), "w".repeat(200), "{framing:?}");
        // Larger than a 384-byte buffer: dropped.
        let too_large = echo(4, &"w".repeat(400));
        assert!(too_large.len() > 384);
        let encoded = smp_sim::serial::encode(framing, &too_large, LineLength::default()).unwrap();
        line.write_all(&encoded).await.unwrap();
        assert_silent(&mut line).await;
        let c = sim.counters();
        assert_eq!(
            c.frames_too_large + c.frames_damaged,
            1,
            "{framing:?}: {c:?}"
        );
    }
}
