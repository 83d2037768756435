//! The request engine over an in-memory transport with a scripted device, on tokio's
//! paused clock.

use std::sync::Arc;
use std::time::Duration;

use smp_transport::header::{Header, Op, command, group};
use smp_transport::{MemoryTransport, Transport, TransportError};
use tokio::sync::Mutex;

use crate::{Client, ClientError, ClientOptions, ErrorScope, RetryPolicy};

const ECHO: (Op, u16, u8) = (Op::Write, group::OS, 0);

/// `{"r": text}` as Zephyr writes it: an indefinite-length map.
fn echo_reply(text: &str) -> Vec<u8> {
    let mut out = vec![0xbf, 0x61, b'r', 0x60 | text.len() as u8];
    out.extend_from_slice(text.as_bytes());
    out.push(0xff);
    out
}

/// `{"d": text}`, canonical.
fn echo_request(text: &str) -> Vec<u8> {
    let mut out = vec![0xa1, 0x61, b'd', 0x60 | text.len() as u8];
    out.extend_from_slice(text.as_bytes());
    out
}

fn reply_to(request: &Header, payload: &[u8]) -> Vec<u8> {
    let mut header = *request;
    header.op = request.op.response();
    header.length = payload.len() as u16;
    let mut frame = header.encode().to_vec();
    frame.extend_from_slice(payload);
    frame
}

fn options(timeout_ms: u64, retries: u32) -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy {
            timeout: Duration::from_millis(timeout_ms),
            retries,
            ..RetryPolicy::default()
        },
        read_params: false,
        ..ClientOptions::default()
    }
}

/// A client and the device end of its link.
async fn setup(options: ClientOptions) -> (Client<MemoryTransport>, Arc<MemoryTransport>) {
    let (client, device) = MemoryTransport::pair(1472).unwrap();
    let device = Arc::new(device);
    (Client::new(client, options).await.unwrap(), device)
}

/// Sends the device's reply to `request`.
async fn answer(device: &MemoryTransport, request: &Header, payload: &[u8]) {
    device.send(&reply_to(request, payload)).await.unwrap();
}

async fn next_request(device: &MemoryTransport) -> (Header, Vec<u8>) {
    let frame = device.receive().await.unwrap();
    (Header::decode(&frame).unwrap(), frame)
}

async fn echo<T: Transport>(client: &Client<T>, text: &str) -> Result<Vec<u8>, ClientError> {
    let (op, group, command) = ECHO;
    client
        .request_raw(
            op,
            group,
            command,
            &echo_request(text),
            client.options().retry.timeout,
        )
        .await
}

#[tokio::test(start_paused = true)]
async fn concurrent_requests_complete_out_of_order() {
    let (client, device) = setup(ClientOptions {
        max_in_flight: Some(2),
        ..options(1000, 0)
    })
    .await;
    let answering = tokio::spawn({
        let device = device.clone();
        async move {
            // Collect both requests, then answer the second first, each with its own text
            // (the echo request's payload is a1 61 64 6x, then the text).
            let (first, first_frame) = next_request(&device).await;
            let (second, second_frame) = next_request(&device).await;
            let text = |frame: &[u8]| String::from_utf8(frame[12..].to_vec()).unwrap();
            answer(&device, &second, &echo_reply(&text(&second_frame))).await;
            answer(&device, &first, &echo_reply(&text(&first_frame))).await;
        }
    });
    let (a, b) = tokio::join!(echo(&client, "a"), echo(&client, "b"));
    answering.await.unwrap();
    // Matching by arrival order would swap them.
    assert_eq!(a.unwrap(), echo_reply("a"));
    assert_eq!(b.unwrap(), echo_reply("b"));
}

#[tokio::test(start_paused = true)]
async fn a_late_reply_never_shifts_later_replies() {
    // The reference client's bug: after one timeout it stays one reply behind forever.
    let (client, device) = setup(options(100, 0)).await;
    let late = tokio::spawn({
        let device = device.clone();
        async move {
            let (first, _) = next_request(&device).await;
            // The second request comes only after the client gave up on the first;
            // the late answer to the first arrives just before the second's.
            let (second, _) = next_request(&device).await;
            answer(&device, &first, &echo_reply("one")).await;
            answer(&device, &second, &echo_reply("two")).await;
            let (third, _) = next_request(&device).await;
            answer(&device, &third, &echo_reply("three")).await;
        }
    });
    assert!(matches!(
        echo(&client, "one").await,
        Err(ClientError::Timeout { attempts: 1, .. })
    ));
    assert_eq!(echo(&client, "two").await.unwrap(), echo_reply("two"));
    assert_eq!(echo(&client, "three").await.unwrap(), echo_reply("three"));
    late.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_timeout_resends_the_same_frame_under_a_new_sequence() {
    let (client, device) = setup(options(200, 3)).await;
    let device_task = tokio::spawn({
        let device = device.clone();
        async move {
            let mut seen = Vec::new();
            for _ in 0..3 {
                seen.push(next_request(&device).await);
            }
            answer(&device, &seen[2].0, &echo_reply("hi")).await;
            seen
        }
    });
    let started = tokio::time::Instant::now();
    assert_eq!(echo(&client, "hi").await.unwrap(), echo_reply("hi"));
    let seen = device_task.await.unwrap();
    // The same bytes but the sequence number (offset 6), a new one each time.
    let without_sequence = |frame: &[u8]| [&frame[..6], &frame[7..]].concat();
    assert_eq!(without_sequence(&seen[0].1), without_sequence(&seen[1].1));
    assert_eq!(without_sequence(&seen[1].1), without_sequence(&seen[2].1));
    let sequences: Vec<u8> = seen.iter().map(|(header, _)| header.sequence).collect();
    assert!(
        sequences[0] != sequences[1]
            && sequences[1] != sequences[2]
            && sequences[0] != sequences[2],
        "{sequences:?}"
    );
    // Nothing learned yet: two timeouts of 200 ms with backoffs of 50 and 100 ms.
    assert_eq!(started.elapsed(), Duration::from_millis(550));
}

#[tokio::test(start_paused = true)]
async fn a_late_reply_to_an_earlier_attempt_completes_the_request() {
    let (client, device) = setup(options(200, 3)).await;
    tokio::spawn({
        let device = device.clone();
        async move {
            let (first, _) = next_request(&device).await;
            let _retry = next_request(&device).await;
            answer(&device, &first, &echo_reply("late")).await;
            // A duplicate of the same reply afterwards is dropped.
            answer(&device, &first, &echo_reply("late")).await;
        }
    });
    assert_eq!(echo(&client, "x").await.unwrap(), echo_reply("late"));
}

#[tokio::test(start_paused = true)]
async fn no_reply_at_all_is_a_timeout_within_the_budget() {
    let (client, device) = setup(options(100, 2)).await;
    let started = tokio::time::Instant::now();
    match echo(&client, "x").await {
        Err(ClientError::Timeout {
            attempts: 3,
            waited,
            group: 0,
            command: 0,
            ..
        }) => {
            assert_eq!(
                waited,
                client.options().retry.budget(Duration::from_millis(100))
            );
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(100 + 50 + 100 + 100 + 100)
    );
    drop(device);
}

#[tokio::test(start_paused = true)]
async fn busy_replies_are_back_pressure() {
    let (client, device) = setup(options(100, 0)).await;
    tokio::spawn({
        let device = device.clone();
        async move {
            // ENOMEM {rc: 2}, then EBUSY {rc: 10}, then the answer.
            for rc in [2u8, 10] {
                let (request, _) = next_request(&device).await;
                answer(&device, &request, &[0xbf, 0x62, b'r', b'c', rc, 0xff]).await;
            }
            let (request, _) = next_request(&device).await;
            answer(&device, &request, &echo_reply("ok")).await;
        }
    });
    let started = tokio::time::Instant::now();
    assert_eq!(echo(&client, "x").await.unwrap(), echo_reply("ok"));
    // It backed off 50 ms, then 100 ms, before asking again.
    assert_eq!(started.elapsed(), Duration::from_millis(150));

    let mut impatient = options(100, 0);
    impatient.retry.busy_retries = 1;
    let (client, device) = setup(impatient).await;
    tokio::spawn(async move {
        loop {
            let (request, _) = next_request(&device).await;
            answer(&device, &request, &[0xa1, 0x62, b'r', b'c', 0x02]).await;
        }
    });
    match echo(&client, "x").await {
        Err(ClientError::Busy { last, attempts: 2 }) => assert_eq!(last.name(), Some("ENOMEM")),
        other => panic!("expected busy, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn garbage_and_mismatched_replies_are_dropped() {
    let (client, device) = setup(options(1000, 0)).await;
    tokio::spawn({
        let device = device.clone();
        async move {
            let (request, _) = next_request(&device).await;
            device.send_datagram(&[0xde, 0xad]).unwrap();
            device.send_datagram(&[0x0f, 0, 0, 0, 0, 0, 0, 0]).unwrap();
            let wrong_op = Header {
                op: Op::ReadRsp,
                ..request
            };
            answer(&device, &wrong_op, &echo_reply("op")).await;
            let wrong_group = Header {
                group: 9,
                ..request
            };
            answer(&device, &wrong_group, &echo_reply("grp")).await;
            let wrong_seq = request.with_sequence(request.sequence.wrapping_add(1));
            answer(&device, &wrong_seq, &echo_reply("seq")).await;
            answer(&device, &request, &echo_reply("mine")).await;
        }
    });
    assert_eq!(echo(&client, "x").await.unwrap(), echo_reply("mine"));
}

#[tokio::test(start_paused = true)]
async fn device_errors_are_typed() {
    let (client, device) = setup(options(1000, 0)).await;
    tokio::spawn({
        let device = device.clone();
        async move {
            // v2: {"err": {"group": 1, "rc": 30}}
            let (request, _) = next_request(&device).await;
            let v2 = b"\xa1\x63err\xa2\x62rc\x18\x1e\x65group\x01";
            answer(&device, &request, v2).await;
            // v1: {"rc": 8, "rsn": "no"}
            let (request, _) = next_request(&device).await;
            let v1 = b"\xa2\x62rc\x08\x63rsn\x62no";
            answer(&device, &request, v1).await;
            // "rc": 0 is success.
            let (request, _) = next_request(&device).await;
            answer(&device, &request, b"\xa2\x61r\x61x\x62rc\x00").await;
        }
    });
    match echo(&client, "x").await {
        Err(ClientError::Device(err)) => {
            assert_eq!((err.group, err.rc, err.scope), (1, 30, ErrorScope::Group));
            assert_eq!(err.to_string(), "IMG 30 INVALID_IMAGE_TOO_LARGE");
        }
        other => panic!("expected a device error, got {other:?}"),
    }
    match echo(&client, "x").await {
        Err(ClientError::Device(err)) => assert_eq!(err.to_string(), "MGMT 8 ENOTSUP (no)"),
        other => panic!("expected a device error, got {other:?}"),
    }
    assert!(echo(&client, "x").await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn params_narrow_the_frame_limit() {
    let (client_end, device) = MemoryTransport::pair(1472).unwrap();
    let device = Arc::new(device);
    let seen = Arc::new(Mutex::new(0usize));
    tokio::spawn({
        let (device, seen) = (device.clone(), seen.clone());
        async move {
            let (request, _) = next_request(&device).await;
            assert_eq!(
                (request.op, request.group, request.command),
                (Op::Read, 0, 6)
            );
            // {"buf_size": 512, "buf_count": 4}, indefinite as Zephyr sends it.
            let params = b"\xbf\x68buf_size\x19\x02\x00\x69buf_count\x04\xff";
            answer(&device, &request, params).await;
            loop {
                let (request, _) = next_request(&device).await;
                *seen.lock().await += 1;
                answer(&device, &request, &echo_reply("ok")).await;
            }
        }
    });
    let client = Client::new(
        client_end,
        ClientOptions {
            read_params: true,
            ..options(1000, 0)
        },
    )
    .await
    .unwrap();
    assert_eq!(client.frame_limit(), 512);
    assert_eq!(client.buf_count(), Some(4));
    // 512 B frame: 8 B header, 4 B of map and key, 3 B text head, 497 B of text... fits.
    let (op, group, command) = ECHO;
    let fits = vec![0u8; 512 - 8];
    client
        .request_raw(op, group, command, &fits, Duration::from_secs(1))
        .await
        .unwrap();
    let too_big = vec![0u8; 512 - 7];
    match client
        .request_raw(op, group, command, &too_big, Duration::from_secs(1))
        .await
    {
        Err(ClientError::FrameTooLarge { len: 513, max: 512 }) => {}
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert_eq!(
        *seen.lock().await,
        1,
        "an oversized frame must never be sent"
    );
}

#[tokio::test(start_paused = true)]
async fn a_device_without_params_keeps_the_defaults() {
    let (client_end, device) = MemoryTransport::pair(1472).unwrap();
    let (asked_tx, asked_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (request, _) = next_request(&device).await;
        let _ = asked_tx.send((request.op, request.group, request.command));
        answer(&device, &request, b"\xbf\x62rc\x08\xff").await;
        std::future::pending::<()>().await;
    });
    let client = Client::new(
        client_end,
        ClientOptions {
            read_params: true,
            ..options(1000, 0)
        },
    )
    .await
    .unwrap();
    assert_eq!(asked_rx.await.unwrap(), (Op::Read, group::OS, 6));
    assert_eq!(client.frame_limit(), 1472);
    assert_eq!(client.buf_count(), None);
}

#[tokio::test(start_paused = true)]
async fn a_silent_device_fails_the_start() {
    let (client_end, _device) = MemoryTransport::pair(1472).unwrap();
    let started = Client::new(
        client_end,
        ClientOptions {
            read_params: true,
            ..options(100, 1)
        },
    )
    .await;
    assert!(matches!(
        started,
        Err(ClientError::Timeout {
            group: 0,
            command: 6,
            attempts: 2,
            ..
        })
    ));
}

#[tokio::test(start_paused = true)]
async fn requests_in_flight_stay_below_the_device_buffers() {
    let (client_end, device) = MemoryTransport::pair(1472).unwrap();
    let device = Arc::new(device);
    let outstanding = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn({
        let (device, outstanding, most) = (device.clone(), outstanding.clone(), most.clone());
        async move {
            let (request, _) = next_request(&device).await;
            // buf_count 3: two requests may be in flight.
            answer(
                &device,
                &request,
                b"\xbf\x68buf_size\x19\x08\x00\x69buf_count\x03\xff",
            )
            .await;
            loop {
                let (request, frame) = next_request(&device).await;
                let now = outstanding.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                let (device, outstanding) = (device.clone(), outstanding.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    outstanding.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    let text = String::from_utf8(frame[12..].to_vec()).unwrap();
                    answer(&device, &request, &echo_reply(&text)).await;
                });
            }
        }
    });
    let client = Client::new(
        client_end,
        ClientOptions {
            read_params: true,
            ..options(1000, 0)
        },
    )
    .await
    .unwrap();
    let client = Arc::new(client);
    let requests: Vec<_> = ["a", "b", "c", "d", "e", "f"]
        .into_iter()
        .map(|text| {
            let client = client.clone();
            tokio::spawn(async move { (text, echo(&client, text).await) })
        })
        .collect();
    for request in requests {
        let (text, reply) = request.await.unwrap();
        assert_eq!(reply.unwrap(), echo_reply(text));
    }
    assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn requests_in_flight_fail_when_the_link_closes() {
    let (client, device) = setup(options(10_000, 0)).await;
    let pending = tokio::spawn(async move { echo(&client, "x").await });
    let _ = next_request(&device).await;
    drop(device);
    assert!(matches!(pending.await.unwrap(), Err(ClientError::Closed)));
}

#[tokio::test(start_paused = true)]
async fn finished_timed_out_and_dropped_requests_leave_no_waiter() {
    let (client, device) = setup(options(100, 0)).await;
    let client = Arc::new(client);
    tokio::spawn({
        let device = device.clone();
        async move {
            let (request, _) = next_request(&device).await;
            answer(&device, &request, &echo_reply("ok")).await;
            // Then never answer again.
            while device.receive().await.is_ok() {}
        }
    });
    echo(&client, "answered").await.unwrap();
    assert_eq!(client.in_flight(), 0);
    assert!(matches!(
        echo(&client, "times out").await,
        Err(ClientError::Timeout { .. })
    ));
    assert_eq!(client.in_flight(), 0);
    let dropped = tokio::spawn({
        let client = client.clone();
        async move { echo(&client, "dropped").await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(client.in_flight(), 1);
    dropped.abort();
    let _ = dropped.await;
    assert_eq!(client.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn requests_after_the_link_closed_fail_at_once() {
    let (client, device) = setup(options(10_000, 3)).await;
    drop(device);
    // Let the reader see the closed link.
    tokio::time::sleep(Duration::from_millis(1)).await;
    let started = tokio::time::Instant::now();
    assert!(matches!(echo(&client, "x").await, Err(ClientError::Closed)));
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn sequence_numbers_wrap() {
    let (client, device) = setup(options(1000, 0)).await;
    let sequences = tokio::spawn({
        let device = device.clone();
        async move {
            let mut sequences = Vec::new();
            for _ in 0..300 {
                let (request, _) = next_request(&device).await;
                sequences.push(request.sequence);
                answer(&device, &request, &echo_reply("ok")).await;
            }
            sequences
        }
    });
    for _ in 0..300 {
        echo(&client, "x").await.unwrap();
    }
    let sequences = sequences.await.unwrap();
    for pair in sequences.windows(2) {
        assert_eq!(pair[1], pair[0].wrapping_add(1));
    }
}

#[tokio::test(start_paused = true)]
async fn the_257th_request_in_flight_is_refused() {
    let (client, _device) = setup(ClientOptions {
        max_in_flight: Some(300),
        ..options(10_000, 0)
    })
    .await;
    let client = Arc::new(client);
    let waiting: Vec<_> = (0..256)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { echo(&client, "x").await })
        })
        .collect();
    // Let every spawned request register its sequence number.
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(matches!(
        echo(&client, "y").await,
        Err(ClientError::TooManyInFlight)
    ));
    for request in waiting {
        request.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn a_legacy_shell_exit_code_is_the_commands_result() {
    use crate::messages::shell::ExecRequest;
    let (client, device) = setup(options(1000, 0)).await;
    tokio::spawn({
        let device = device.clone();
        async move {
            // Zephyr before 3.5: {"o": "x", "rc": 1}; then a real error, {"rc": 8}.
            let (request, _) = next_request(&device).await;
            answer(&device, &request, b"\xa2\x61o\x61x\x62rc\x01").await;
            let (request, _) = next_request(&device).await;
            answer(&device, &request, b"\xa1\x62rc\x08").await;
        }
    });
    let exec = ExecRequest {
        argv: vec!["false".into()],
    };
    let reply = client.request(&exec).await.unwrap();
    assert_eq!((reply.o.as_str(), reply.ret), ("x", 1));
    match client.request(&exec).await {
        Err(ClientError::Device(err)) => assert!(err.is_not_supported()),
        other => panic!("expected ENOTSUP, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_damaged_echo_is_sent_again_and_never_returned() {
    let (client, device) = setup(options(100, 2)).await;
    let device_task = tokio::spawn({
        let device = device.clone();
        async move {
            // A bit flipped inside the text, then an undecodable reply, then the truth.
            for reply in [
                echo_reply("hellp"),
                vec![0xbf, 0x61, b's', 0xff],
                echo_reply("hello"),
            ] {
                let (request, _) = next_request(&device).await;
                answer(&device, &request, &reply).await;
            }
        }
    });
    assert_eq!(client.echo("hello").await.unwrap(), "hello");
    device_task.await.unwrap();

    // A device that always answers something else: a typed error after every attempt.
    let device_task = tokio::spawn(async move {
        for _ in 0..3 {
            let (request, _) = next_request(&device).await;
            answer(&device, &request, &echo_reply("other")).await;
        }
    });
    match client.echo("hello").await {
        Err(ClientError::Decode { group, source, .. }) => {
            assert_eq!(group, group::OS);
            assert!(
                matches!(
                    source,
                    crate::ReplyError::EchoMismatch {
                        sent: 5,
                        received: 5
                    }
                ),
                "{source:?}"
            );
        }
        other => panic!("expected a Decode error, got {other:?}"),
    }
    device_task.await.unwrap();
}

/// A link whose far end the test scripts: what the client sends comes out of `sent`,
/// and what the test pushes into `incoming` (frames, or the network's refusals) is what
/// the client receives.
struct Scripted {
    sent: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    incoming: Mutex<tokio::sync::mpsc::UnboundedReceiver<Result<Vec<u8>, TransportError>>>,
}

/// The test's end of a [`Scripted`] link.
struct Far {
    sent: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    incoming: tokio::sync::mpsc::UnboundedSender<Result<Vec<u8>, TransportError>>,
}

impl Far {
    async fn next_request(&mut self) -> Header {
        let frame = self.sent.recv().await.expect("a request");
        Header::decode(&frame).unwrap()
    }

    fn refuse(&self) {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let _ = self
            .incoming
            .send(Err(TransportError::Unreachable(refused)));
    }

    fn answer(&self, request: &Header, payload: &[u8]) {
        let _ = self.incoming.send(Ok(reply_to(request, payload)));
    }
}

fn scripted() -> (Scripted, Far) {
    let (sent_tx, sent_rx) = tokio::sync::mpsc::unbounded_channel();
    let (in_tx, in_rx) = tokio::sync::mpsc::unbounded_channel();
    (
        Scripted {
            sent: sent_tx,
            incoming: Mutex::new(in_rx),
        },
        Far {
            sent: sent_rx,
            incoming: in_tx,
        },
    )
}

impl Transport for Scripted {
    async fn send(&self, frame: &[u8]) -> Result<(), TransportError> {
        self.sent
            .send(frame.to_vec())
            .map_err(|_| TransportError::Closed)
    }

    async fn receive(&self) -> Result<Vec<u8>, TransportError> {
        self.incoming
            .lock()
            .await
            .recv()
            .await
            .unwrap_or(Err(TransportError::Closed))
    }

    async fn disconnect(&self) -> Result<(), TransportError> {
        Ok(())
    }

    fn mtu(&self) -> usize {
        1500
    }

    fn max_unencoded_size(&self) -> usize {
        1472
    }
}

async fn scripted_echo(client: &Client<Scripted>) -> Result<Vec<u8>, ClientError> {
    let (op, group, command) = ECHO;
    client
        .request_raw(
            op,
            group,
            command,
            &echo_request("hi"),
            client.options().retry.timeout,
        )
        .await
}

#[tokio::test(start_paused = true)]
async fn a_port_nobody_listens_on_fails_at_once() {
    let (link, mut far) = scripted();
    let client = Client::new(link, options(2500, 3)).await.unwrap();
    let refusing = tokio::spawn(async move {
        for _ in 0..4 {
            far.next_request().await;
            far.refuse();
        }
        far
    });
    let started = tokio::time::Instant::now();
    match scripted_echo(&client).await {
        Err(ClientError::Transport(TransportError::Unreachable(io))) => {
            assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Four attempts, paced by the backoff (50, 100, 200 ms), not four timeouts of 2.5 s.
    assert_eq!(started.elapsed(), Duration::from_millis(350));
    let mut far = refusing.await.unwrap();
    assert!(far.sent.try_recv().is_err(), "no fifth attempt");
}

#[tokio::test(start_paused = true)]
async fn a_server_that_comes_up_between_refusals_is_reached() {
    // Refused once (the device's server is not up yet), answered the next time.
    let (link, mut far) = scripted();
    let client = Client::new(link, options(2500, 3)).await.unwrap();
    let device = tokio::spawn(async move {
        far.next_request().await;
        far.refuse();
        let request = far.next_request().await;
        far.answer(&request, &echo_reply("hi"));
    });
    let started = tokio::time::Instant::now();
    assert_eq!(scripted_echo(&client).await.unwrap(), echo_reply("hi"));
    assert_eq!(started.elapsed(), Duration::from_millis(50));
    device.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_device_that_answered_before_is_waited_for_through_refusals() {
    // After a reset, a device refuses for a while: it exists, so refusals count as lost
    // datagrams (retried on the usual schedule, never ending the request early), and the
    // request gets through once the device is back.
    let (link, mut far) = scripted();
    let client = Client::new(link, options(1000, 3)).await.unwrap();
    let device = tokio::spawn(async move {
        let request = far.next_request().await;
        far.answer(&request, &echo_reply("hi"));
        for _ in 0..3 {
            far.next_request().await;
            far.refuse();
        }
        // Back: it answers whatever comes (the request, and any probe).
        loop {
            let request = far.next_request().await;
            far.answer(&request, &echo_reply("hi"));
        }
    });
    scripted_echo(&client).await.unwrap();
    let started = tokio::time::Instant::now();
    assert_eq!(scripted_echo(&client).await.unwrap(), echo_reply("hi"));
    // Refusals before the device answered again end nothing: the whole budget is there.
    assert!(started.elapsed() < client.options().retry.budget(Duration::from_secs(1)));
    device.abort();
}

/// A device 10 ms away each way that takes `delay` over every echo, one request after
/// the other in the order they arrive (as Zephyr does), but no time over an empty one (a
/// probe); it drops requests or replies when told to, and records when each frame
/// arrived.
#[derive(Debug, Default)]
struct Script {
    /// Requests still to drop, from the next one on.
    drop_next: usize,
    /// Replies still to drop.
    drop_replies: usize,
    delay: Duration,
    /// The `buf_count` a parameters read is answered with; `None`: the read is refused
    /// as unsupported.
    buf_count: Option<u8>,
    /// When each frame arrived, its header and its text.
    arrivals: Vec<(tokio::time::Instant, Header, String)>,
}

/// One way across the scripted device's network.
const ONE_WAY: Duration = Duration::from_millis(10);

/// Serves `script` on `device`: a receiver that records and drops, and a work queue that
/// answers in order.
fn serve_script(device: Arc<MemoryTransport>, script: Arc<std::sync::Mutex<Script>>) {
    let (queue, mut work) = tokio::sync::mpsc::unbounded_channel::<(Header, String, bool)>();
    tokio::spawn({
        let (device, script) = (device.clone(), script.clone());
        async move {
            while let Some((request, text, reply_dropped)) = work.recv().await {
                if !text.is_empty() {
                    let delay = script.lock().unwrap().delay;
                    tokio::time::sleep(delay).await;
                }
                if !reply_dropped {
                    let device = device.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(ONE_WAY).await;
                        answer(&device, &request, &echo_reply(&text)).await;
                    });
                }
            }
        }
    });
    tokio::spawn(async move {
        loop {
            let (request, frame) = next_request(&device).await;
            if (request.group, request.command) == (group::OS, command::os::MCUMGR_PARAMS) {
                let payload = match script.lock().unwrap().buf_count {
                    Some(n) => [
                        &b"\xbf\x68buf_size\x19\x04\x00\x69buf_count"[..],
                        &[n, 0xff],
                    ]
                    .concat(),
                    None => b"\xbf\x62rc\x08\xff".to_vec(),
                };
                answer(&device, &request, &payload).await;
                continue;
            }
            let text = String::from_utf8(frame[12..].to_vec()).unwrap();
            let reply_dropped = {
                let mut s = script.lock().unwrap();
                s.arrivals
                    .push((tokio::time::Instant::now(), request, text.clone()));
                if s.drop_next > 0 {
                    s.drop_next -= 1;
                    continue;
                }
                let reply_dropped = s.drop_replies > 0;
                s.drop_replies = s.drop_replies.saturating_sub(1);
                reply_dropped
            };
            let queue = queue.clone();
            tokio::spawn(async move {
                tokio::time::sleep(ONE_WAY).await;
                let _ = queue.send((request, text, reply_dropped));
            });
        }
    });
}

/// A client whose timeout is 1 s, and a scripted device 20 ms away that it has
/// already exchanged `learn` echoes with.
async fn learned_client(
    retries: u32,
    learn: usize,
) -> (Client<MemoryTransport>, Arc<std::sync::Mutex<Script>>) {
    let (client, device) = setup(options(1000, retries)).await;
    let script = Arc::new(std::sync::Mutex::new(Script::default()));
    serve_script(device, script.clone());
    for _ in 0..learn {
        assert_eq!(echo(&client, "hi").await.unwrap(), echo_reply("hi"));
    }
    script.lock().unwrap().arrivals.clear();
    (client, script)
}

/// An image state read, which the scripted device answers as an echo of "st" (a kind
/// of request apart from echoes), with a 1 s timeout.
async fn image_state_read<T: Transport>(client: &Client<T>) -> Result<Vec<u8>, ClientError> {
    client
        .request_raw(
            Op::Read,
            group::IMAGE,
            0,
            &echo_request("st"),
            Duration::from_secs(1),
        )
        .await
}

/// When the device received the requests, probes (empty echoes) left out.
fn sends(script: &std::sync::Mutex<Script>) -> Vec<tokio::time::Instant> {
    let s = script.lock().unwrap();
    s.arrivals
        .iter()
        .filter(|(_, _, text)| !text.is_empty())
        .map(|(at, _, _)| *at)
        .collect()
}

/// The probes the device received.
fn probes(script: &std::sync::Mutex<Script>) -> usize {
    let s = script.lock().unwrap();
    s.arrivals
        .iter()
        .filter(|(_, _, text)| text.is_empty())
        .count()
}

/// What the scripted device loses next.
#[derive(Debug, Clone, Copy)]
enum Lose {
    Request,
    Reply,
}

/// Forgets what the device received, and has it lose its next request or the reply to
/// it.
fn lose_next(script: &std::sync::Mutex<Script>, lose: Lose) {
    let mut s = script.lock().unwrap();
    s.arrivals.clear();
    match lose {
        Lose::Request => s.drop_next = 1,
        Lose::Reply => s.drop_replies = 1,
    }
}

/// The gaps between the requests the device received, probes left out.
fn gaps(script: &std::sync::Mutex<Script>) -> Vec<Duration> {
    sends(script).windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn a_lost_request_or_reply_costs_round_trips_not_the_timeout() {
    let (client, script) = learned_client(3, 20).await;
    for lose in [Lose::Request, Lose::Reply] {
        lose_next(&script, lose);
        let started = tokio::time::Instant::now();
        assert_eq!(echo(&client, "hi").await.unwrap(), echo_reply("hi"));
        let took = started.elapsed();
        // The same frame went again once the learned timer (a little above the 20 ms
        // round trip) expired, not after the 1 s timeout.
        let gaps = gaps(&script);
        assert_eq!(gaps.len(), 1, "one re-send after a lost {lose:?}");
        assert!(
            gaps[0] > Duration::from_millis(20) && gaps[0] <= Duration::from_millis(30),
            "re-sent {:?} after a lost {lose:?}",
            gaps[0]
        );
        assert!(
            took <= Duration::from_millis(50),
            "{took:?} with a lost {lose:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_kind_never_answered_before_waits_the_full_timeout() {
    // Echoes are learned; an image state read is not, and the device takes 600 ms over
    // it (less than the 1 s timeout): it must not be sent again meanwhile.
    let (client, script) = learned_client(3, 20).await;
    script.lock().unwrap().delay = Duration::from_millis(600);
    let frame = image_state_read(&client).await.unwrap();
    assert_eq!(frame, echo_reply("st"));
    assert_eq!(sends(&script).len(), 1, "sent once");
    // Meanwhile the device was asked whether it still works on it: probes after the
    // echoes' learned timer (about 25 ms), then twice as late each time, queued
    // behind the slow request and so answered only after it.
    assert_eq!(probes(&script), 4, "probes after 25, 75, 175 and 375 ms");
    // Now it is known (600 ms, so its timer is 1.8 s, beyond the timeout): the next one
    // is not sent again early either, and the echoes' timer did not move.
    let frame = image_state_read(&client).await.unwrap();
    assert_eq!(frame, echo_reply("st"));
    assert_eq!(sends(&script).len(), 2, "each sent once");
}

#[tokio::test(start_paused = true)]
async fn a_device_slower_than_it_was_gets_spaced_and_bounded_resends() {
    // The device was answering in 20 ms and now takes 400 ms more: the reply to the
    // first attempt completes the request; meanwhile each re-send comes twice as late as
    // the one before, and the last attempt is kept, since the device has not been heard
    // from (its probes wait behind the slow echoes).
    let (client, script) = learned_client(3, 20).await;
    script.lock().unwrap().delay = Duration::from_millis(400);
    let started = tokio::time::Instant::now();
    assert_eq!(echo(&client, "hi").await.unwrap(), echo_reply("hi"));
    assert_eq!(started.elapsed(), Duration::from_millis(420));
    let first = gaps(&script);
    assert_eq!(
        first,
        [Duration::from_millis(25), Duration::from_millis(50)]
    );
    for pair in first.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] * 2,
            "each re-send spaced twice as far: {first:?}"
        );
    }
    // The reply said it answered the first attempt: a 420 ms round trip, learned, and
    // the backoff is over.
    let echo_header = Header::new(Op::Write, group::OS, 0, 0);
    let rto = client
        .learned_rto(&echo_header, crate::rto::Phase::Other)
        .unwrap();
    assert!(rto > Duration::from_millis(420), "{rto:?}");
    // Still backed off, it would be several times the estimate.
    assert!(rto < Duration::from_millis(600), "{rto:?}");
}

#[tokio::test(start_paused = true)]
async fn a_learned_timer_never_outlasts_the_users_bound() {
    // A device that stops answering: the request ends after `retries + 1` attempts,
    // within the budget of the timeout. The learned timer re-sent early, but the last
    // attempt was kept (the device was not heard from again, probes included) until the
    // fixed schedule would have sent it, and then waited the whole timeout: a device
    // that is unreachable for a while gets as long to come back as without learning.
    let (client, script) = learned_client(3, 20).await;
    script.lock().unwrap().drop_next = usize::MAX;
    let started = tokio::time::Instant::now();
    let policy = client.options().retry.clone();
    let budget = policy.budget(Duration::from_secs(1));
    match echo(&client, "hi").await {
        Err(ClientError::Timeout {
            attempts, waited, ..
        }) => {
            assert_eq!(attempts, 4);
            assert_eq!(waited, budget);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    let elapsed = started.elapsed();
    let arrivals = sends(&script);
    assert_eq!(arrivals.len(), 4);
    let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        gaps[..2],
        [Duration::from_millis(25), Duration::from_millis(50)]
    );
    assert_eq!(arrivals[3] - started, budget - Duration::from_secs(1));
    assert_eq!(
        elapsed - (arrivals[3] - started),
        Duration::from_secs(1),
        "the last attempt waited the full timeout"
    );
    assert!(probes(&script) > 0, "the device was probed meanwhile");
}

#[tokio::test(start_paused = true)]
async fn busy_replies_teach_the_timer_nothing() {
    // A device that answers ENOMEM at once and then takes 300 ms for the real answer: the
    // instant busy replies must not make 300 ms look like a lost request.
    let (client, device) = setup(options(1000, 3)).await;
    tokio::spawn({
        let device = device.clone();
        async move {
            loop {
                for _ in 0..3 {
                    let (request, _) = next_request(&device).await;
                    answer(&device, &request, &[0xbf, 0x62, b'r', b'c', 2, 0xff]).await;
                }
                let (request, _) = next_request(&device).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                answer(&device, &request, &echo_reply("ok")).await;
            }
        }
    });
    for _ in 0..3 {
        assert_eq!(echo(&client, "x").await.unwrap(), echo_reply("ok"));
    }
    // Only the slow answers were samples: the timer is above 300 ms.
    let echo_header = Header::new(Op::Write, group::OS, 0, 0);
    let rto = client.learned_rto(&echo_header, crate::rto::Phase::Other);
    assert!(
        rto.is_some_and(|rto| rto > Duration::from_millis(300)),
        "{rto:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_probe_finds_a_lost_request_of_a_kind_not_learned_yet() {
    // Echoes are learned (a 20 ms round trip); an image state read is not, and the
    // device takes 300 ms over it. Its first attempt is lost: rather than wait the 1 s
    // timeout, the client probes after the echoes' timer; the device answers the probe
    // at once, which it would not before finishing the read, so the read went missing
    // and goes again.
    let (client, script) = learned_client(3, 20).await;
    {
        let mut s = script.lock().unwrap();
        s.delay = Duration::from_millis(300);
        s.drop_next = 1;
    }
    let started = tokio::time::Instant::now();
    let frame = image_state_read(&client).await.unwrap();
    assert_eq!(frame, echo_reply("st"));
    let sends = sends(&script);
    assert_eq!(sends.len(), 2);
    let resent = sends[1] - sends[0];
    assert!(
        resent < Duration::from_millis(60),
        "re-sent after {resent:?}"
    );
    // One probe found the loss; three more went while the device worked on the read
    // the second time (after 25, 75 and 175 ms), answered only after it.
    assert_eq!(probes(&script), 4);
    assert_eq!(started.elapsed(), resent + Duration::from_millis(320));
}

#[tokio::test(start_paused = true)]
async fn the_last_attempt_goes_once_the_device_is_heard_from_again() {
    // A device silent for 600 ms (everything lost), then back: the early attempts go
    // into the silence, the last one is kept until a probe is answered, and the request
    // completes soon after the device is back, not at the end of the fixed schedule.
    let (client, script) = learned_client(3, 20).await;
    script.lock().unwrap().drop_next = usize::MAX;
    let back = tokio::spawn({
        let script = script.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            script.lock().unwrap().drop_next = 0;
        }
    });
    let started = tokio::time::Instant::now();
    assert_eq!(echo(&client, "hi").await.unwrap(), echo_reply("hi"));
    back.await.unwrap();
    let took = started.elapsed();
    assert!(
        took > Duration::from_millis(600) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    assert_eq!(
        sends(&script).len(),
        4,
        "every attempt, the last after the silence"
    );
    let policy = client.options().retry.clone();
    assert!(took < policy.budget(Duration::from_secs(1)) - Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_device_with_one_buffer_gets_no_learned_resends() {
    // The device 20 ms away, learned from 20 echoes, reports one buffer, as MCUboot's
    // serial recovery does: the request holds it, and the same frame again while the
    // device still works on it can cost both.
    let (client, script) = learned_client(3, 20).await;
    let slow_echo = |buf_count| {
        let (client, script) = (&client, &script);
        async move {
            {
                let mut s = script.lock().unwrap();
                s.buf_count = Some(buf_count);
                s.delay = Duration::from_millis(600);
            }
            client.read_params().await.unwrap();
            assert_eq!(client.buf_count(), Some(usize::from(buf_count)));
            script.lock().unwrap().arrivals.clear();
            assert_eq!(echo(client, "hi").await.unwrap(), echo_reply("hi"));
            script.lock().unwrap().delay = Duration::ZERO;
            sends(script).len()
        }
    };
    // 600 ms over an echo, against the 20 ms learned and the 1 s timeout: sent once, and
    // the probes meanwhile were answered after it.
    assert_eq!(slow_echo(1).await, 1);
    assert!(probes(&script) > 0);
    // A lost request or reply is still found by a probe: round trips, not the timeout.
    for lose in [Lose::Request, Lose::Reply] {
        lose_next(&script, lose);
        assert_eq!(echo(&client, "hi").await.unwrap(), echo_reply("hi"));
        let gaps = gaps(&script);
        assert_eq!(gaps.len(), 1, "one re-send after a lost {lose:?}");
        assert!(
            gaps[0] < Duration::from_millis(200),
            "re-sent {:?} after a lost {lose:?}",
            gaps[0]
        );
    }
    // With two buffers the learned timer sends the slow echo again.
    assert!(slow_echo(2).await > 1);
}

/// A memory link that, as serial raw framing, cannot resynchronise after a damaged frame.
struct Unsynced(MemoryTransport);

impl Transport for Unsynced {
    async fn send(&self, frame: &[u8]) -> Result<(), TransportError> {
        self.0.send(frame).await
    }

    async fn receive(&self) -> Result<Vec<u8>, TransportError> {
        self.0.receive().await
    }

    async fn disconnect(&self) -> Result<(), TransportError> {
        self.0.disconnect().await
    }

    fn mtu(&self) -> usize {
        self.0.mtu()
    }

    fn max_unencoded_size(&self) -> usize {
        self.0.max_unencoded_size()
    }

    fn resynchronises(&self) -> bool {
        false
    }
}

#[tokio::test(start_paused = true)]
async fn a_link_that_cannot_resynchronise_gets_no_early_resends_or_probes() {
    // The same device as above, 20 ms away, whose round trip the client has learned
    // from 20 echoes; over a link like serial raw framing, where a re-send or a probe
    // before the device gives up a damaged request would be read as its tail.
    let (near, far) = MemoryTransport::pair(1472).unwrap();
    let client = Client::new(Unsynced(near), options(1000, 3)).await.unwrap();
    let script = Arc::new(std::sync::Mutex::new(Script::default()));
    serve_script(Arc::new(far), script.clone());
    for _ in 0..20 {
        assert_eq!(echo(&client, "hi").await.unwrap(), echo_reply("hi"));
    }
    for lose in [Lose::Request, Lose::Reply] {
        lose_next(&script, lose);
        assert_eq!(echo(&client, "hi").await.unwrap(), echo_reply("hi"));
        // Sent again after the whole 1 s timeout, not the learned ~25 ms, and the device
        // saw no probe meanwhile.
        let gaps = gaps(&script);
        let backoff = client.options().retry.backoff;
        assert_eq!(gaps.len(), 1, "a lost {lose:?}");
        assert!(
            gaps[0] >= Duration::from_secs(1) && gaps[0] <= Duration::from_secs(1) + backoff,
            "re-sent {:?} after a lost {lose:?}",
            gaps[0]
        );
        assert_eq!(probes(&script), 0, "a lost {lose:?}");
    }
    // A request never answered still ends after every attempt, on the fixed schedule.
    script.lock().unwrap().drop_next = 4;
    let started = tokio::time::Instant::now();
    let err = echo(&client, "hi").await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    assert_eq!(
        started.elapsed(),
        client.options().retry.budget(Duration::from_secs(1))
    );
    assert_eq!(probes(&script), 0);
}
