//! The serial transport over real byte streams: in-memory pipes (`tokio::io::duplex`), a
//! pseudo-terminal pair and TCP on loopback, each with a device task on the other end.
#![allow(clippy::unwrap_used)]

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use smp_serial::console::{self, ConsoleDeframer, LineLength};
use smp_serial::{
    Deframer, FrameError, Framing, OptionsError, Pacing, SerialOptions, SerialTarget,
    SerialTransport, Transport, TransportError, encode,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::time::Instant;

/// Far longer than anything here may take: a hang fails the test instead of stalling it.
const BOUND: Duration = Duration::from_secs(600);

/// A request: v2 header (`op`, OS group, `sequence`, echo) and `payload` bytes.
fn request(op: u8, sequence: u8, payload: usize) -> Vec<u8> {
    let mut f = vec![
        0x08 | op,
        0,
        (payload >> 8) as u8,
        payload as u8,
        0,
        0,
        sequence,
        0,
    ];
    f.extend((0..payload).map(|i| (i as u8).wrapping_mul(31) ^ sequence));
    f
}

/// The reply a device gives to `frame`: the same frame, answered (op + 1).
fn answer(frame: &[u8]) -> Vec<u8> {
    let mut reply = frame.to_vec();
    reply[0] |= 1;
    reply
}

/// A device on the other end of `io`: deframes what arrives in `framing`, answers every
/// whole frame, and returns the frames it received and the errors it saw when `io` ends.
async fn device<S>(mut io: S, framing: Framing) -> (Vec<Vec<u8>>, usize)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut deframer = Deframer::new(framing, 4096);
    let mut frames = Vec::new();
    let mut errors = 0;
    let mut buf = [0u8; 512];
    loop {
        let len = match io.read(&mut buf).await {
            Ok(0) | Err(_) => return (frames, errors),
            Ok(len) => len,
        };
        deframer.push(&buf[..len]);
        while let Some(result) = deframer.next_frame() {
            let Ok(frame) = result else {
                errors += 1;
                continue;
            };
            let reply = encode(framing, &answer(&frame), LineLength::default()).unwrap();
            if io.write_all(&reply).await.is_err() {
                return (frames, errors);
            }
            frames.push(frame);
        }
    }
}

fn unpaced() -> SerialOptions {
    SerialOptions::default().pacing(Pacing::none())
}

fn pair(options: SerialOptions) -> (SerialTransport<DuplexStream>, DuplexStream) {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    (SerialTransport::new(ours, options).unwrap(), theirs)
}

async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, future)
        .await
        .expect("finished within the bound")
}

#[tokio::test]
async fn console_frames_cross_a_pipe_both_ways() {
    let (serial, theirs) = pair(SerialOptions::default().buf_size(2048));
    let device = tokio::spawn(device(theirs, Framing::Console));
    for (sequence, payload) in [(1, 9), (2, 0), (3, 600), (4, 2000)] {
        let frame = request(2, sequence, payload);
        let reply = bounded(serial.send_and_receive(&frame)).await.unwrap();
        assert_eq!(reply, answer(&frame));
        serial.recycle(reply);
    }
    assert_eq!(serial.max_unencoded_size(), 2044);
    assert_eq!(serial.mtu(), 2048);
    serial.disconnect().await.unwrap();
    let (frames, errors) = device.await.unwrap();
    assert_eq!((frames.len(), errors), (4, 0));
}

#[tokio::test]
async fn raw_and_cobs_frames_cross_a_pipe() {
    for framing in [Framing::Raw, Framing::RawCobs] {
        let (serial, theirs) = pair(unpaced().framing(framing).buf_size(1024));
        let device = tokio::spawn(device(theirs, framing));
        for sequence in 0..5 {
            let frame = request(0, sequence, 100 * usize::from(sequence));
            let reply = bounded(serial.send_and_receive(&frame)).await.unwrap();
            assert_eq!(reply, answer(&frame), "{framing:?}");
        }
        assert_eq!(serial.max_unencoded_size(), 1024);
        drop(serial);
        assert_eq!(device.await.unwrap().0.len(), 5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_never_interleave_their_lines() {
    let (serial, theirs) = pair(SerialOptions::default().buf_size(2048));
    let serial = Arc::new(serial);
    let device = tokio::spawn(device(theirs, Framing::Console));
    let senders: Vec<_> = (0..8u8)
        .map(|task| {
            let serial = serial.clone();
            tokio::spawn(async move {
                for i in 0..4u8 {
                    // 6 to 9 lines each.
                    let frame = request(2, task * 4 + i, 700 + 40 * usize::from(i));
                    serial.send(&frame).await.unwrap();
                }
            })
        })
        .collect();
    let mut replies = Vec::new();
    while replies.len() < 32 {
        replies.push(bounded(serial.receive()).await.unwrap());
    }
    for sender in senders {
        sender.await.unwrap();
    }
    serial.disconnect().await.unwrap();
    let (frames, errors) = device.await.unwrap();
    assert_eq!(errors, 0, "interleaved lines would break frames");
    assert_eq!(frames.len(), 32);
    let mut sequences: Vec<u8> = replies.iter().map(|r| r[6]).collect();
    sequences.sort_unstable();
    assert_eq!(sequences, (0..32).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn a_dropped_receive_loses_nothing() {
    let (serial, mut theirs) = pair(unpaced());
    let reply = answer(&request(0, 7, 300));
    let wire = console::encode(&reply, LineLength::default()).unwrap();
    // Half the frame arrives; the receive waiting for the rest is dropped.
    theirs.write_all(&wire[..200]).await.unwrap();
    let first = tokio::time::timeout(Duration::from_millis(10), serial.receive()).await;
    assert!(first.is_err(), "no whole frame yet");
    // The rest arrives; the next receive completes the frame from both halves.
    theirs.write_all(&wire[200..]).await.unwrap();
    assert_eq!(bounded(serial.receive()).await.unwrap(), reply);
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_goes_away_ends_a_waiting_receive_at_once() {
    for framing in [Framing::Console, Framing::Raw, Framing::RawCobs] {
        let (serial, mut theirs) = pair(unpaced().framing(framing));
        let serial = Arc::new(serial);
        let waiting = tokio::spawn({
            let serial = serial.clone();
            async move { serial.receive().await }
        });
        let wire = encode(framing, &request(1, 1, 50), LineLength::default()).unwrap();
        theirs.write_all(&wire[..wire.len() / 2]).await.unwrap();
        tokio::task::yield_now().await;
        let started = Instant::now();
        drop(theirs);
        let result = bounded(waiting).await.unwrap();
        assert!(matches!(result, Err(TransportError::Closed)), "{result:?}");
        assert_eq!(started.elapsed(), Duration::ZERO, "ended at once");
        assert!(matches!(
            serial.receive().await,
            Err(TransportError::Closed)
        ));
        assert!(matches!(
            serial.send(&request(0, 2, 0)).await,
            Err(TransportError::Closed)
        ));
    }
}

/// A port whose reads fail after `data` (a USB serial adapter unplugged).
struct Unplugged {
    data: Vec<u8>,
}

impl AsyncRead for Unplugged {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.data.is_empty() {
            return Poll::Ready(Err(io::Error::other("device unplugged")));
        }
        let len = this.data.len().min(buf.remaining());
        buf.put_slice(&this.data[..len]);
        this.data.drain(..len);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Unplugged {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_read_error_ends_the_receive_then_the_transport_is_closed() {
    let reply = answer(&request(0, 3, 20));
    let mut data = b"log line\n".to_vec();
    data.extend(console::encode(&reply, LineLength::default()).unwrap());
    data.extend(b"\x06\x09AAAA"); // half a line, then the port fails
    let serial = SerialTransport::new(Unplugged { data }, unpaced()).unwrap();
    assert_eq!(serial.receive().await.unwrap(), reply);
    match serial.receive().await {
        Err(TransportError::Io(err)) => assert_eq!(err.to_string(), "device unplugged"),
        other => panic!("expected the read error, got {other:?}"),
    }
    assert!(matches!(
        serial.receive().await,
        Err(TransportError::Closed)
    ));
    assert!(matches!(
        serial.send(&request(0, 4, 0)).await,
        Err(TransportError::Closed)
    ));
}

#[tokio::test]
async fn disconnect_wakes_a_waiting_receive_and_closes_the_port() {
    let (serial, mut theirs) = pair(unpaced());
    let serial = Arc::new(serial);
    let waiting = tokio::spawn({
        let serial = serial.clone();
        async move { serial.receive().await }
    });
    tokio::task::yield_now().await;
    serial.disconnect().await.unwrap();
    assert!(matches!(
        bounded(waiting).await.unwrap(),
        Err(TransportError::Closed)
    ));
    assert!(matches!(
        serial.send(&request(0, 0, 0)).await,
        Err(TransportError::Closed)
    ));
    // The port is closed: the other end reads the end of the stream.
    let mut rest = Vec::new();
    assert_eq!(bounded(theirs.read_to_end(&mut rest)).await.unwrap(), 0);
}

#[tokio::test]
async fn a_damaged_frame_is_a_typed_error_then_frames_flow_again() {
    let (serial, mut theirs) = pair(unpaced());
    let good = answer(&request(0, 9, 40));
    let mut damaged = console::encode(&answer(&request(0, 8, 40)), LineLength::default()).unwrap();
    damaged[20] ^= 0x01; // still base64, so the CRC catches it
    theirs.write_all(b"uart:~$ ").await.unwrap();
    theirs.write_all(&damaged).await.unwrap();
    theirs
        .write_all(&console::encode(&good, LineLength::default()).unwrap())
        .await
        .unwrap();
    let err = serial.receive().await.unwrap_err();
    let TransportError::Framing(source) = &err else {
        panic!("expected a framing error, got {err:?}");
    };
    let frame_error = source.downcast_ref::<FrameError>().unwrap();
    assert!(matches!(frame_error, FrameError::CrcMismatch { .. }));
    // The message names the layer once; the source says what happened.
    assert_eq!(err.to_string(), "framing error");
    assert!(frame_error.to_string().contains("checksum mismatch"));
    assert_eq!(serial.receive().await.unwrap(), good);
}

#[tokio::test]
async fn settings_and_frame_sizes_are_checked() {
    let (ours, _theirs) = tokio::io::duplex(64);
    let err = SerialTransport::new(ours, SerialOptions::default().line_length(4)).unwrap_err();
    let TransportError::Framing(source) = err else {
        panic!("expected a framing error");
    };
    assert_eq!(
        source.downcast_ref::<OptionsError>(),
        Some(&OptionsError::LineTooShort {
            line_length: 4,
            min: 8
        })
    );
    let (serial, _theirs) = pair(unpaced());
    assert!(matches!(
        serial.send(&vec![0; console::MAX_FRAME + 1]).await,
        Err(TransportError::FrameTooLarge {
            len: 65_534,
            max: 65_533
        })
    ));
    let (serial, _theirs) = pair(unpaced().framing(Framing::Raw));
    assert!(matches!(
        serial.send(&vec![0; 65_544]).await,
        Err(TransportError::FrameTooLarge { max: 65_543, .. })
    ));
}

/// What arrives at a device, line by line, with the (virtual) time each line was read.
async fn line_times(mut io: DuplexStream, lines: usize) -> Vec<Duration> {
    let start = Instant::now();
    let mut times = Vec::new();
    let mut buf = [0u8; 1];
    while times.len() < lines {
        io.read_exact(&mut buf).await.unwrap();
        if buf[0] == b'\n' {
            times.push(start.elapsed());
        }
    }
    times
}

#[tokio::test(start_paused = true)]
async fn lines_are_paced_in_bursts() {
    let pause = Duration::from_millis(5);
    let (serial, theirs) = pair(
        SerialOptions::default()
            .buf_size(2048)
            .pacing(Pacing::new(2, pause)),
    );
    let frame = request(2, 1, 400); // 5 lines of at most 127 B
    let wire = console::encode(&frame, LineLength::default()).unwrap();
    assert_eq!(console::lines(&wire).count(), 5);
    let arrivals = tokio::spawn(line_times(theirs, 7));
    bounded(serial.send(&frame)).await.unwrap();
    // A second message right after carries on the count: its first line completes the
    // last burst of the first message, its second line waits for the next pause.
    bounded(serial.send(&request(2, 2, 90))).await.unwrap();
    let ms = Duration::from_millis;
    assert_eq!(
        bounded(arrivals).await.unwrap(),
        [ms(0), ms(0), ms(5), ms(5), ms(10), ms(10), ms(15)]
    );
}

/// The counters say what went over the line and how long pacing held it back.
#[tokio::test(start_paused = true)]
async fn stats_count_bytes_lines_and_the_time_pacing_waited() {
    let pause = Duration::from_millis(5);
    let options = SerialOptions::default()
        .buf_size(2048)
        .pacing(Pacing::new(2, pause));
    let (serial, theirs) = pair(options);
    let device = tokio::spawn(device(theirs, Framing::Console));
    let frame = request(2, 1, 400); // 5 lines: two pauses
    let wire = console::encode(&frame, LineLength::default()).unwrap();
    let reply = bounded(serial.send_and_receive(&frame)).await.unwrap();
    let stats = serial.stats();
    assert_eq!(stats.frames_sent, 1);
    assert_eq!(stats.lines_written, 5);
    assert_eq!(stats.bytes_written, wire.len() as u64);
    assert_eq!(stats.frames_received, 1);
    // The reply is the request answered: as long on the line.
    assert_eq!(stats.bytes_read, wire.len() as u64);
    assert_eq!(stats.pacing_waited, pause * 2);
    serial.recycle(reply);
    serial.disconnect().await.unwrap();
    device.await.unwrap();

    let (serial, mut theirs) = pair(
        SerialOptions::default()
            .framing(Framing::Raw)
            .buf_size(1024),
    );
    bounded(serial.send(&frame)).await.unwrap();
    let mut got = vec![0; frame.len()];
    bounded(theirs.read_exact(&mut got)).await.unwrap();
    let stats = serial.stats();
    assert_eq!(
        (stats.frames_sent, stats.lines_written, stats.bytes_written),
        (1, 0, frame.len() as u64)
    );
    assert_eq!(stats.pacing_waited, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn unpaced_messages_and_raw_frames_go_out_at_once() {
    let (serial, theirs) = pair(unpaced().buf_size(2048));
    let arrivals = tokio::spawn(line_times(theirs, 5));
    bounded(serial.send(&request(2, 1, 400))).await.unwrap();
    assert_eq!(bounded(arrivals).await.unwrap(), [Duration::ZERO; 5]);

    for framing in [Framing::Raw, Framing::RawCobs] {
        let options = SerialOptions::default()
            .framing(framing)
            .buf_size(1024)
            .pacing(Pacing::per_line(Duration::from_millis(2)));
        let (serial, mut theirs) = pair(options);
        let frame = request(2, 1, 992);
        let started = Instant::now();
        bounded(serial.send(&frame)).await.unwrap();
        bounded(serial.send(&frame)).await.unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO, "{framing:?}");
        let wire = encode(framing, &frame, LineLength::default()).unwrap();
        let mut got = vec![0; 2 * wire.len()];
        bounded(theirs.read_exact(&mut got)).await.unwrap();
        assert_eq!(got, [wire.clone(), wire].concat());
    }
}

#[tokio::test]
async fn tcp_byte_stream_on_loopback() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        device(stream, Framing::Console).await
    });
    let target: SerialTarget = format!("socket://127.0.0.1:{port}").parse().unwrap();
    let target = target.with_options(SerialOptions::default().buf_size(1024));
    let serial = SerialTransport::connect(target, Duration::from_secs(5))
        .await
        .unwrap();
    for sequence in 0..3 {
        let frame = request(2, sequence, 400);
        assert_eq!(
            bounded(serial.send_and_receive(&frame)).await.unwrap(),
            answer(&frame)
        );
    }
    serial.disconnect().await.unwrap();
    assert_eq!(accepted.await.unwrap().0.len(), 3);
}

#[tokio::test]
async fn a_tcp_peer_that_closes_ends_the_receive() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let closer = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        // Half a frame, then the emulator is killed.
        stream.write_all(b"\x06\x09ABMKAAAJ").await.unwrap();
    });
    let serial =
        SerialTransport::connect(SerialTarget::tcp("127.0.0.1", port), Duration::from_secs(5))
            .await
            .unwrap();
    closer.await.unwrap();
    assert!(matches!(
        bounded(serial.receive()).await,
        Err(TransportError::Closed) | Err(TransportError::Io(_))
    ));
    assert!(matches!(
        serial.receive().await,
        Err(TransportError::Closed)
    ));
}

#[tokio::test]
async fn connect_errors_name_the_port() {
    let missing = SerialTarget::device("/dev/smp-serial-no-such-port");
    let err = SerialTransport::connect(missing, Duration::from_secs(1))
        .await
        .unwrap_err();
    let report = chain(&err);
    assert!(report.contains("/dev/smp-serial-no-such-port"), "{report}");
    // A character device that is no terminal.
    let err = SerialTransport::connect(SerialTarget::device("/dev/null"), Duration::from_secs(1))
        .await
        .unwrap_err();
    let report = chain(&err);
    assert!(report.contains("not a terminal"), "{report}");
    // Settings are refused before the port is touched.
    let bad = SerialTarget::device("/dev/smp-serial-no-such-port")
        .with_options(SerialOptions::default().line_buffers(0));
    assert!(matches!(
        SerialTransport::connect(bad, Duration::from_secs(1)).await,
        Err(TransportError::Framing(_))
    ));
    // Nothing listens on a port this test just freed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    assert!(matches!(
        SerialTransport::connect(SerialTarget::tcp("127.0.0.1", port), Duration::from_secs(5))
            .await,
        Err(TransportError::Io(_))
    ));
}

#[cfg(unix)]
mod pty {
    //! A pseudo-terminal pair: the transport opens the terminal end by its path, as it
    //! opens native_sim's UART; the test plays the device on the controlling end.

    use std::fs::File;

    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    use tokio::net::unix::pipe;

    use super::*;

    /// The device's end of a new pty pair (non-blocking, for tokio) and the terminal's path.
    fn open_pair() -> (Device, String) {
        let controller = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&controller).unwrap();
        unlockpt(&controller).unwrap();
        let path = ptsname(&controller, Vec::new()).unwrap();
        rustix::io::ioctl_fionbio(&controller, true).unwrap();
        let file = File::from(controller);
        let device = Device {
            tx: pipe::Sender::from_file_unchecked(file.try_clone().unwrap()).unwrap(),
            rx: pipe::Receiver::from_file_unchecked(file).unwrap(),
        };
        (device, path.into_string().unwrap())
    }

    struct Device {
        rx: pipe::Receiver,
        tx: pipe::Sender,
    }

    #[tokio::test]
    async fn frames_cross_a_pseudo_terminal_unaltered() {
        let (mut device, path) = open_pair();
        let target = SerialTarget::device(&path).with_options(
            SerialOptions::default()
                .buf_size(1024)
                .pacing(Pacing::none()),
        );
        let serial = SerialTransport::connect(target, Duration::from_secs(5))
            .await
            .unwrap();
        let frame = request(2, 5, 500);
        serial.send(&frame).await.unwrap();
        // Raw mode: the lines arrive exactly as encoded (no CR added to the newlines).
        let wire = console::encode(&frame, LineLength::default()).unwrap();
        let mut got = vec![0; wire.len()];
        bounded(device.rx.read_exact(&mut got)).await.unwrap();
        assert_eq!(got, wire);
        let mut deframer = ConsoleDeframer::new();
        deframer.push(&got);
        assert_eq!(deframer.next_frame(), Some(Ok(frame.clone())));
        // The device answers with log noise around its reply; nothing echoes back to it.
        let reply = answer(&frame);
        device.tx.write_all(b"<inf> smp: got it\r\n").await.unwrap();
        device
            .tx
            .write_all(&console::encode(&reply, LineLength::default()).unwrap())
            .await
            .unwrap();
        assert_eq!(bounded(serial.receive()).await.unwrap(), reply);
        let mut echoed = [0u8; 64];
        assert!(
            tokio::time::timeout(Duration::from_millis(50), device.rx.read(&mut echoed))
                .await
                .is_err(),
            "the terminal echoed input back to the device"
        );
        serial.disconnect().await.unwrap();
    }

    #[tokio::test]
    async fn a_device_that_exits_ends_the_receive() {
        let (device, path) = open_pair();
        let serial = SerialTransport::connect(SerialTarget::device(&path), Duration::from_secs(5))
            .await
            .unwrap();
        let serial = Arc::new(serial);
        let waiting = tokio::spawn({
            let serial = serial.clone();
            async move { serial.receive().await }
        });
        tokio::task::yield_now().await;
        drop(device); // the emulator's process ends: its end of the pty closes
        let result = bounded(waiting).await.unwrap();
        assert!(
            matches!(
                result,
                Err(TransportError::Closed) | Err(TransportError::Io(_))
            ),
            "{result:?}"
        );
        assert!(matches!(
            serial.receive().await,
            Err(TransportError::Closed)
        ));
    }
}

/// The error and its causes, as a report prints them.
fn chain(err: &dyn std::error::Error) -> String {
    let mut report = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        report = format!("{report}: {err}");
        cause = err.source();
    }
    report
}

/// Once the client knows the device's buffer, the frame limit follows it (less the
/// console length and CRC), and raw frames up to it are received, beyond the 384-byte
/// guess the transport starts with.
#[tokio::test]
async fn the_devices_buffer_size_sets_the_frame_limit() {
    for (framing, limit) in [(Framing::Console, 2044), (Framing::Raw, 2048)] {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let serial = SerialTransport::new(ours, SerialOptions::default().framing(framing)).unwrap();
        let guessed = serial.max_unencoded_size();
        assert!(guessed < limit, "{framing:?}: {guessed}");
        assert_eq!(serial.set_device_buffer(2048), limit, "{framing:?}");
        assert_eq!(serial.max_unencoded_size(), limit, "{framing:?}");
        // A 1,500-byte reply arrives whole.
        let device = tokio::spawn(device(theirs, framing));
        let frame = request(2, 7, 1500 - 8);
        serial.send(&frame).await.unwrap();
        let reply = tokio::time::timeout(BOUND, serial.receive()).await.unwrap();
        assert_eq!(reply.unwrap(), answer(&frame), "{framing:?}");
        serial.disconnect().await.unwrap();
        device.abort();
    }
}

/// Only raw framing, which a length field alone delimits, tells the client that the
/// device cannot find the next frame after a damaged one (no early re-sends then).
#[test]
fn only_raw_framing_cannot_resynchronise() {
    for (framing, resynchronises) in [
        (Framing::Console, true),
        (Framing::RawCobs, true),
        (Framing::Raw, false),
    ] {
        let (serial, _device) = pair(unpaced().framing(framing));
        assert_eq!(serial.resynchronises(), resynchronises, "{framing:?}");
    }
}
