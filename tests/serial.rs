//! SMP over serial lines end to end: the client (`Client::connect_serial`) against the
//! simulated device's serial port, a real pseudo-terminal or a TCP socket on 127.0.0.1,
//! in every framing; and the pacing that gets messages through a UART that loses
//! bursts of lines, as native_sim's does.
//!
//! Nothing here measures time: pacing is shown to matter by what arrives, counted by the
//! device.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use smp_client::serial::{Framing, Pacing, SerialTransport};
use smp_client::{Client, ClientError, ClientOptions, FileTransferOptions, ImageUploadOptions};
use smp_client::{RetryPolicy, Transport};
use smp_integration_tests::{init_tracing, serial_client, serial_sim, test_image};
use smp_mcuboot::sample_body;
use smp_sim::{SerialConfig, SerialListen, Sim};

/// Slots of the test devices.
const SLOT: usize = 128 * 1024;

fn tcp() -> SerialListen {
    SerialListen::Tcp(([127, 0, 0, 1], 0).into())
}

/// Echo, MCUmgr parameters, an image upload and a file round trip, checked against
/// what the device holds.
async fn exercise<T: Transport + 'static>(sim: &Sim, client: &Client<T>, seed: u64) {
    assert_eq!(
        client.echo("hello over serial").await.unwrap(),
        "hello over serial"
    );
    // Frames are sized to the device's 384-byte buffers: the largest request takes it
    // all (console framing: less the packet's length and CRC).
    let limit = client.frame_limit();
    assert!((380..=384).contains(&limit), "frame limit {limit}");
    assert_eq!(client.buf_count(), Some(4));
    let image = test_image(12 * 1024, seed, "2.0.0");
    let summary = client
        .upload_image(&image, &ImageUploadOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(summary.matched, Some(true));
    assert_eq!(&sim.slot(1).unwrap()[..image.len()], &image[..]);
    let data = sample_body(6_000, seed);
    let options = FileTransferOptions::default();
    client
        .upload_file("/lfs1/serial.bin", &data, &options, |_| {})
        .await
        .unwrap();
    assert_eq!(sim.file("/lfs1/serial.bin").as_deref(), Some(&data[..]));
    let (got, _) = client
        .download_file("/lfs1/serial.bin", &options, |_| {})
        .await
        .unwrap();
    assert_eq!(got, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_upload_and_download_in_every_framing_over_a_pty_and_tcp() {
    init_tracing();
    let cases = [
        (SerialListen::Pty, Framing::Console),
        (tcp(), Framing::Console),
        (SerialListen::Pty, Framing::Raw),
        (tcp(), Framing::Raw),
        (SerialListen::Pty, Framing::RawCobs),
        (tcp(), Framing::RawCobs),
    ];
    for (seed, (listen, framing)) in cases.into_iter().enumerate() {
        let serial = SerialConfig {
            listen,
            framing,
            ..SerialConfig::default()
        };
        let sim = serial_sim(serial, SLOT).await;
        let target = sim.serial_target().unwrap();
        match listen {
            SerialListen::Pty => assert!(target.device_path().is_some(), "{target}"),
            _ => assert!(target.to_string().starts_with("socket://127.0.0.1:")),
        }
        assert_eq!(target.options().framing, framing);
        let client = serial_client(&sim, Pacing::default(), ClientOptions::default())
            .await
            .unwrap();
        exercise(&sim, &client, seed as u64).await;
        // Sized to fit, paced (from the first loss on) to pass: nothing too large, and an
        // overrun (of a line the pty delivered late, or before pacing started) rare.
        let c = sim.counters();
        assert_eq!(c.frames_too_large, 0, "{target} ({framing:?}): {c:?}");
        assert!(
            c.lines_overrun * 20 <= c.lines_received,
            "{target} ({framing:?}): {c:?}"
        );
        client.close().await.unwrap();
        sim.shutdown().await;
    }
}

/// The device keeps its end of the pseudo-terminal: a client may close the port and
/// open it again, as with native_sim. A reset answers, and the device serves the line
/// again once booted.
#[tokio::test]
async fn a_client_may_close_the_pty_open_it_again_and_reset_the_device() {
    init_tracing();
    let sim = serial_sim(SerialConfig::pty(), SLOT).await;
    for round in 0..3 {
        let client = serial_client(&sim, Pacing::default(), ClientOptions::default())
            .await
            .unwrap();
        let text = format!("round {round}");
        assert_eq!(client.echo(&text).await.unwrap(), text);
        client.reset().await.unwrap();
        assert_eq!(client.echo(&text).await.unwrap(), text);
        client.close().await.unwrap();
    }
}

/// Each TCP connection is a serial line of its own to the same device: replies go back
/// on the line the request came in on.
#[tokio::test]
async fn tcp_connections_each_get_their_own_replies() {
    init_tracing();
    let sim = serial_sim(SerialConfig::tcp(([127, 0, 0, 1], 0).into()), SLOT).await;
    let a = serial_client(&sim, Pacing::default(), ClientOptions::default())
        .await
        .unwrap();
    let b = serial_client(&sim, Pacing::default(), ClientOptions::default())
        .await
        .unwrap();
    let (ra, rb) = tokio::join!(a.echo("from a"), b.echo("from b"));
    assert_eq!(
        (ra.unwrap(), rb.unwrap()),
        ("from a".into(), "from b".into())
    );
}

// ---------------------------------------------------------------------------------------
// Pacing against the burst overrun

/// An echo text whose request is `lines` console lines of 128 bytes (124 base64
/// characters, 93 bytes of packet each).
fn echo_of_lines(lines: usize) -> String {
    // Packet: length (2), header (8), `{"d": text}` (1 + 2 + 2 or 3), CRC (2).
    let overhead = 2 + 8 + 1 + 2 + 3 + 2;
    "x".repeat(lines * 93 - overhead)
}

/// Attempts of 300 ms each, `retries` more after the first.
fn short_attempts(retries: u32) -> ClientOptions {
    ClientOptions::default().with_retry(
        RetryPolicy::default()
            .with_timeout(Duration::from_millis(300))
            .with_retries(retries),
    )
}

/// Echoes of one and two lines, which a UART that drops bursts of more takes whole
/// however they are written.
async fn short_echoes_arrive_whole(sim: &Sim, client: &Client<SerialTransport>) {
    for lines in [1, 2] {
        let text = echo_of_lines(lines);
        assert_eq!(client.echo(&text).await.unwrap(), text, "{lines} lines");
    }
    assert_eq!(sim.counters().lines_overrun, 0);
}

/// Uploads an 8 KiB image made from `seed`, which the device must find matching.
async fn upload_small_image(client: &Client<SerialTransport>, seed: u64) {
    let image = test_image(8 * 1024, seed, "2.0.0");
    let summary = client
        .upload_image(&image, &ImageUploadOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(summary.matched, Some(true), "image {seed}");
}

/// Fixed pacing of 2 lines, then 20 ms (what `Pacing::auto` turns into after a loss)
/// gets every message through a UART that loses a line arriving while its two line
/// buffers hold lines it has not taken in yet.
///
/// A pseudo-terminal delivers lines late now and then on a loaded machine (by 16 ms,
/// seen on 2 busy cores), so that two bursts written 20 ms apart reach the device a few
/// milliseconds apart and the second is overrun, as it would be on native_sim: a rare
/// lost request, retried like any other. Every request is answered, and few lines are
/// lost (none, most of the time).
#[tokio::test]
async fn fixed_pacing_gets_through_a_uart_that_drops_bursts() {
    init_tracing();
    let sim = serial_sim(SerialConfig::pty(), SLOT).await;
    let fixed = Pacing::new(Pacing::DEFAULT_BURST, Pacing::DEFAULT_PAUSE);
    let client = serial_client(&sim, fixed, short_attempts(3)).await.unwrap();
    for lines in 1..=4 {
        let text = echo_of_lines(lines);
        assert_eq!(client.echo(&text).await.unwrap(), text, "{lines} lines");
    }
    upload_small_image(&client, 1).await;
    let c = sim.counters();
    assert!(c.lines_received > 100, "{c:?}");
    assert!(
        c.lines_overrun * 20 <= c.lines_received,
        "over 5% overrun: {c:?}"
    );
}

/// The default pacing (`auto`) writes each message at once until one is lost: on a UART
/// that drops bursts, the first message of more than two lines loses its tail once,
/// the client's probe finds the loss, and from then on lines are paced and get through.
#[tokio::test]
async fn auto_pacing_starts_at_the_first_loss() {
    init_tracing();
    let sim = serial_sim(SerialConfig::pty(), SLOT).await;
    let client = serial_client(&sim, Pacing::default(), short_attempts(3))
        .await
        .unwrap();
    short_echoes_arrive_whole(&sim, &client).await;
    // Nothing paced unless the client noted a loss (none here but a reply late on a
    // loaded machine, which counts as one).
    let stats = client.transport().stats();
    assert_eq!(
        stats.pacing_waited.is_zero(),
        stats.losses_noted == 0,
        "{stats:?}"
    );
    let text = echo_of_lines(4);
    assert_eq!(client.echo(&text).await.unwrap(), text);
    let overrun = sim.counters().lines_overrun;
    assert!(
        overrun >= 2,
        "the unpaced attempt lost its last two lines: {overrun}"
    );
    let stats = client.transport().stats();
    assert!(stats.losses_noted > 0, "{stats:?}");
    assert!(stats.pacing_waited > Duration::ZERO, "{stats:?}");
    upload_small_image(&client, 3).await;
    let c = sim.counters();
    assert!(
        (c.lines_overrun - overrun) * 20 <= c.lines_received,
        "paced, over 5% overrun: {c:?}"
    );
}

/// Without pacing, a message of one or two lines still arrives, but every message of
/// more than two lines loses its third line on, at every attempt: the request fails,
/// as against native_sim's `serial` fixture.
#[tokio::test]
async fn without_pacing_every_message_of_more_than_two_lines_is_lost() {
    init_tracing();
    let sim = serial_sim(SerialConfig::pty(), SLOT).await;
    let client = serial_client(&sim, Pacing::none(), short_attempts(1))
        .await
        .unwrap();
    short_echoes_arrive_whole(&sim, &client).await;
    let err = client.echo(&echo_of_lines(4)).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Timeout { attempts: 2, .. }),
        "{err:?}"
    );
    let c = sim.counters();
    assert_eq!(c.lines_overrun, 2 * 2, "two lines lost per attempt: {c:?}");
    // The frames that lost their tails never reached the work queue: what did is the
    // params, the two short echoes and any probe the client sent meanwhile (one line).
    assert!(c.processed >= 3, "params and two echoes: {c:?}");
    assert_eq!(
        c.processed, c.received,
        "no damaged frame was processed: {c:?}"
    );
}

/// With enough line buffers (native_sim's `bigrx`), an unpaced client gets through, and
/// so does the default one, which paces only once the client notes a loss.
#[tokio::test]
async fn without_the_overrun_an_unpaced_client_gets_through() {
    init_tracing();
    let bigrx = SerialConfig {
        rx_line_buffers: None,
        ..SerialConfig::pty()
    };
    let sim = serial_sim(bigrx, SLOT).await;
    for (seed, pacing) in [(2, Pacing::none()), (4, Pacing::default())] {
        let client = serial_client(&sim, pacing, short_attempts(1))
            .await
            .unwrap();
        let text = echo_of_lines(4);
        assert_eq!(client.echo(&text).await.unwrap(), text);
        upload_small_image(&client, seed).await;
        assert_eq!(sim.counters().lines_overrun, 0, "{pacing}");
        // The default paces only once the client notes a loss: none is lost here, but
        // a reply late on a loaded machine counts as one.
        let stats = client.transport().stats();
        assert_eq!(
            stats.pacing_waited.is_zero(),
            pacing.is_none() || stats.losses_noted == 0,
            "{pacing}: {stats:?}"
        );
        client.close().await.unwrap();
    }
}
