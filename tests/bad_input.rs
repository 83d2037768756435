//! The bad-input table: one test per row of the table in `docs/reliability.md`.
//!
//! Malformed replies come from a fake device on a raw loopback socket: it receives the
//! client's request, sends the bad datagram(s) with the request's sequence number, then,
//! where the bad input is to be dropped, the genuine reply. Device-side refusals come
//! from the simulated device, whose data is checked to be unchanged.
//!
//! Each row either ends in an exact typed error whose message says what went wrong, or
//! is dropped: the request then completes with the genuine reply sent after it, within
//! a single attempt (no retry hides a stuck client).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use smp_client::header::{self, Header, HeaderError, Op, group};
use smp_client::messages::fs::DownloadRequest;
use smp_client::messages::os::{EchoRequest, EchoResponse};
use smp_client::udp::{UdpTarget, UdpTransport};
use smp_client::{
    Client, ClientError, ClientOptions, DeviceError, ErrorScope, FileTransferOptions,
    ImageUploadOptions, ReplyError, RetryPolicy, Transport, TransportError,
};
use smp_integration_tests::{error_chain, fake_device, frame, init_tracing};
use smp_mcuboot::{Image, ImageBuilder, ImageError, ImageVersion, sample_body};
use smp_sim::{Sim, SimConfig};
use tokio::net::UdpSocket;
use tokio::time::timeout;

/// Far longer than any exchange on loopback takes: a hang check, not a speed limit.
const PATIENCE: Duration = Duration::from_secs(10);
/// What the genuine reply to the echo request says.
const GENUINE: &str = "genuine";

/// One attempt only, so that a request completes with the genuine reply only if the
/// bad input before it was dropped without disturbing anything.
fn single_attempt() -> RetryPolicy {
    RetryPolicy::default()
        .with_timeout(Duration::from_secs(3))
        .with_retries(0)
}

async fn client_for(addr: SocketAddr) -> Client<UdpTransport> {
    let options = ClientOptions::default()
        .with_retry(single_attempt())
        .with_read_params(false);
    Client::connect_udp(UdpTarget::from(addr), options)
        .await
        .unwrap()
}

/// `{"r": text}` as Zephyr writes it (indefinite-length map).
fn echo_payload(text: &str) -> Vec<u8> {
    let mut payload = vec![0xbf, 0x61, b'r', 0x60 | text.len() as u8];
    assert!(text.len() < 24);
    payload.extend(text.as_bytes());
    payload.push(0xff);
    payload
}

/// The reply frame answering `request` with `payload`.
fn reply_to(request: &Header, payload: &[u8]) -> Vec<u8> {
    frame(
        request.op.response(),
        request.group,
        request.command,
        request.sequence,
        payload,
    )
}

/// Receives one request on the fake device.
async fn receive_request(device: &UdpSocket) -> (Header, Vec<u8>, SocketAddr) {
    let mut buf = vec![0; 70_000];
    let (len, from) = timeout(PATIENCE, device.recv_from(&mut buf))
        .await
        .expect("the client sends a request")
        .unwrap();
    buf.truncate(len);
    (Header::decode(&buf).unwrap(), buf, from)
}

/// Sends an echo request from a client; the fake device answers with the datagrams
/// `bad` makes from the request's header, then with the genuine reply if `genuine`.
/// Returns the client's result and how many requests the device received.
async fn echo_against(
    bad: impl FnOnce(&Header) -> Vec<Vec<u8>> + Send + 'static,
    genuine: bool,
) -> Result<EchoResponse, ClientError> {
    init_tracing();
    let (device, addr) = fake_device("127.0.0.1").await;
    let client = client_for(addr).await;
    let device_task = tokio::spawn(async move {
        let (request, _, from) = receive_request(&device).await;
        for datagram in bad(&request) {
            device.send_to(&datagram, from).await.unwrap();
        }
        if genuine {
            device
                .send_to(&reply_to(&request, &echo_payload(GENUINE)), from)
                .await
                .unwrap();
        }
        device
    });
    let result = timeout(PATIENCE, client.request(&EchoRequest { d: GENUINE.into() }))
        .await
        .expect("the request ends");
    let device = device_task.await.unwrap();
    // Nothing was re-sent: the bad input did not cost a timeout.
    let mut buf = [0; 64];
    assert!(
        device.try_recv_from(&mut buf).is_err(),
        "the client re-sent its request"
    );
    result
}

/// The request completed with the genuine reply: the bad datagrams were dropped.
fn assert_dropped(result: Result<EchoResponse, ClientError>) {
    match result {
        Ok(reply) => assert_eq!(reply.r, GENUINE, "a bad datagram was taken as the reply"),
        Err(err) => panic!("the bad datagram was not dropped: the request failed with {err}"),
    }
}

/// A connected transport and the fake device's view of it, for rows whose typed error
/// shows at the transport layer.
async fn transport_pair() -> (UdpTransport, UdpSocket, SocketAddr) {
    let (device, addr) = fake_device("127.0.0.1").await;
    let udp = UdpTransport::connect(UdpTarget::from(addr), PATIENCE)
        .await
        .unwrap();
    udp.send(&frame(Op::Read, group::OS, 6, 1, b"\xa0"))
        .await
        .unwrap();
    let (_, _, from) = receive_request(&device).await;
    (udp, device, from)
}

async fn receive(udp: &UdpTransport) -> Result<Vec<u8>, TransportError> {
    timeout(PATIENCE, udp.receive())
        .await
        .expect("the transport hands over a frame or an error")
}

// ---------------------------------------------------------------------------------------
// Malformed datagrams

#[tokio::test]
async fn truncated_header() {
    let (udp, device, client) = transport_pair().await;
    device.send_to(&[0x0b, 0, 0], client).await.unwrap();
    let err = receive(&udp).await.unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::Header(HeaderError::TooShort { len: 3 })
        ),
        "{err:?}"
    );
    // The message, then its cause (`source()`), each printed once by a report of the chain.
    assert_eq!(err.to_string(), "received an invalid SMP header");
    assert_eq!(
        error_chain(&err),
        "received an invalid SMP header: SMP header needs 8 bytes, only 3 available"
    );
    // The client drops it and takes the genuine reply that follows.
    assert_dropped(echo_against(|_| vec![vec![0x0b, 0, 0], vec![]], true).await);
}

#[tokio::test]
async fn header_length_larger_than_the_datagram() {
    // A header announcing 100 bytes, 20 of which arrive: the transport waits for the
    // rest; a whole frame arriving meanwhile replaces the stale part.
    let (udp, device, client) = transport_pair().await;
    let long = frame(Op::ReadRsp, group::OS, 6, 1, &[0xa0; 100]);
    device.send_to(&long[..20], client).await.unwrap();
    let whole = frame(Op::ReadRsp, group::OS, 6, 1, b"\xa0");
    device.send_to(&whole, client).await.unwrap();
    assert_eq!(receive(&udp).await.unwrap(), whole);
    assert_dropped(
        echo_against(
            |request| {
                let mut partial = reply_to(request, &echo_payload("forged"));
                partial[3] += 50;
                vec![partial]
            },
            true,
        )
        .await,
    );
}

#[tokio::test]
async fn header_length_smaller_than_the_datagram() {
    let (udp, device, client) = transport_pair().await;
    let mut long = frame(Op::ReadRsp, group::OS, 6, 1, b"\xa0");
    long.extend([0; 9]);
    device.send_to(&long, client).await.unwrap();
    let err = receive(&udp).await.unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::ExcessData {
                expected: 9,
                received: 18
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "received more data than expected: 18 B > 9 B announced by the header"
    );
    assert_dropped(
        echo_against(
            |request| {
                let mut long = reply_to(request, &echo_payload("forged"));
                long.extend(b"tail");
                vec![long]
            },
            true,
        )
        .await,
    );
}

#[tokio::test]
async fn extra_bytes_after_the_cbor_payload() {
    // The header counts them, so the frame is whole; the reply's CBOR map is complete
    // before them. The client reads the map and ignores what follows it.
    let result = echo_against(
        |request| {
            let mut payload = echo_payload(GENUINE);
            payload.extend([0x01, 0x02, 0x03]);
            vec![reply_to(request, &payload)]
        },
        false,
    )
    .await;
    assert_eq!(result.unwrap().r, GENUINE);
}

#[tokio::test]
async fn invalid_cbor() {
    for payload in [
        &b"\xbf\x61r"[..], // the map ends in its first key
        &b"\xff"[..],      // a break outside any container
        &b"\x1c"[..],      // reserved additional information
        &b"\xbf\x61r\x7b\xff\xff\xff\xff\xff\xff\xff\xff"[..], // a string longer than the frame
    ] {
        let err = echo_against(|request| vec![reply_to(request, payload)], false)
            .await
            .unwrap_err();
        match &err {
            ClientError::Decode {
                group: 0,
                command: 0,
                source: ReplyError::Cbor(_),
            } => {}
            other => panic!("{payload:02x?}: expected Decode, got {other:?}"),
        }
        let report = error_chain(&err);
        assert!(
            report.starts_with("malformed reply to os echo: "),
            "{report}"
        );
    }
}

#[tokio::test]
async fn cbor_of_the_wrong_shape() {
    for (payload, says) in [
        (&b"\x82\x01\x02"[..], "map"),            // an array, not a map
        (&b"\xa1\x61r\x05"[..], "expected text"), // `r` an integer, not text
        (&b"\xa1\x61q\x62hi"[..], "missing required field `r`"), // no `r`
    ] {
        let err = echo_against(|request| vec![reply_to(request, payload)], false)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::Decode {
                    group: 0,
                    command: 0,
                    ..
                }
            ),
            "{payload:02x?}: {err:?}"
        );
        let report = error_chain(&err);
        assert!(
            report.starts_with("malformed reply to os echo: ") && report.contains(says),
            "{report}"
        );
    }
}

#[tokio::test]
async fn unknown_error_codes() {
    let cases: [(&[u8], DeviceError, &str); 4] = [
        (
            b"\xa1\x62rc\x18\x63",
            DeviceError {
                group: 0,
                rc: 99,
                scope: ErrorScope::Management,
                reason: None,
            },
            "device refused: MGMT 99",
        ),
        (
            b"\xa2\x62rc\x18\x63\x63rsn\x64busy",
            DeviceError {
                group: 0,
                rc: 99,
                scope: ErrorScope::Management,
                reason: Some("busy".into()),
            },
            "device refused: MGMT 99 (busy)",
        ),
        (
            b"\xa1\x63err\xa2\x65group\x01\x62rc\x18\x63",
            DeviceError {
                group: 1,
                rc: 99,
                scope: ErrorScope::Group,
                reason: None,
            },
            "device refused: IMG 99",
        ),
        (
            b"\xa1\x63err\xa2\x65group\x18\x46\x62rc\x05",
            DeviceError {
                group: 70,
                rc: 5,
                scope: ErrorScope::Group,
                reason: None,
            },
            "device refused: group 70 error 5",
        ),
    ];
    for (payload, expected, message) in cases {
        let err = echo_against(|request| vec![reply_to(request, payload)], false)
            .await
            .unwrap_err();
        match &err {
            ClientError::Device(device) => assert_eq!(device, &expected),
            other => panic!("expected a device error, got {other:?}"),
        }
        assert_eq!(err.to_string(), message);
    }
}

#[tokio::test]
async fn reply_with_the_wrong_op_group_or_command_for_its_sequence() {
    assert_dropped(
        echo_against(
            |request| {
                let forged = echo_payload("forged");
                let s = request.sequence;
                vec![
                    frame(Op::ReadRsp, group::OS, 0, s, &forged), // read reply to a write
                    frame(Op::Write, group::OS, 0, s, &forged),   // a request, not a reply
                    frame(Op::WriteRsp, group::IMAGE, 0, s, &forged), // another group
                    frame(Op::WriteRsp, group::OS, 6, s, &forged), // another command
                    frame(Op::WriteRsp, group::OS, 0, s.wrapping_add(1), &forged), // another sequence
                ]
            },
            true,
        )
        .await,
    );
}

#[tokio::test]
async fn a_reply_completes_only_its_own_request() {
    // Two requests in flight; the device answers them in reverse order, each reply
    // carrying its own request's data.
    init_tracing();
    let (device, addr) = fake_device("127.0.0.1").await;
    let options = ClientOptions::default()
        .with_retry(single_attempt())
        .with_read_params(false)
        .with_max_in_flight(Some(2));
    let client = Client::connect_udp(UdpTarget::from(addr), options)
        .await
        .unwrap();
    let device_task = tokio::spawn(async move {
        let first = receive_request(&device).await;
        let second = receive_request(&device).await;
        for (request, datagram, from) in [second, first] {
            let echo: EchoRequest = minicbor::decode(&datagram[header::SIZE..]).unwrap();
            device
                .send_to(&reply_to(&request, &echo_payload(&echo.d)), from)
                .await
                .unwrap();
        }
    });
    let (first, second) = (
        EchoRequest { d: "first".into() },
        EchoRequest { d: "second".into() },
    );
    let (a, b) = tokio::join!(client.request(&first), client.request(&second));
    device_task.await.unwrap();
    assert_eq!(
        (a.unwrap().r, b.unwrap().r),
        ("first".into(), "second".into())
    );
}

#[tokio::test]
async fn datagram_from_another_address() {
    // An intruder knows the request's sequence number and answers first; the socket is
    // connected to the device, so the kernel never delivers the forged reply.
    init_tracing();
    let (device, addr) = fake_device("127.0.0.1").await;
    let (intruder, _) = fake_device("127.0.0.1").await;
    let client = client_for(addr).await;
    let device_task = tokio::spawn(async move {
        let (request, _, from) = receive_request(&device).await;
        intruder
            .send_to(&reply_to(&request, &echo_payload("forged")), from)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        device
            .send_to(&reply_to(&request, &echo_payload(GENUINE)), from)
            .await
            .unwrap();
    });
    let reply = client
        .request(&EchoRequest { d: GENUINE.into() })
        .await
        .unwrap();
    device_task.await.unwrap();
    assert_eq!(reply.r, GENUINE);
}

#[tokio::test]
async fn datagram_of_64_kib() {
    /// The largest UDP payload over IPv4.
    const MAX_UDP: usize = 65_507;
    // A 64 KiB datagram whose header announces the largest frame: held as a partial
    // frame (less than the 65,543 bytes any frame may have), then dropped for the whole
    // genuine reply.
    assert_dropped(
        echo_against(
            |request| {
                let mut big = reply_to(request, &[]);
                big[2..4].copy_from_slice(&u16::MAX.to_be_bytes());
                big.resize(MAX_UDP, 0x5a);
                vec![big]
            },
            true,
        )
        .await,
    );
    // Two of them: the second would take the frame past what its header announced, so
    // the transport refuses it instead of holding 131 KB.
    let (udp, device, client) = transport_pair().await;
    let mut big = frame(Op::ReadRsp, group::OS, 6, 1, &[]);
    big[2..4].copy_from_slice(&u16::MAX.to_be_bytes());
    big.resize(MAX_UDP, 0x5a);
    device.send_to(&big, client).await.unwrap();
    device.send_to(&[0x5a; MAX_UDP], client).await.unwrap();
    let err = receive(&udp).await.unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::ExcessData {
                expected: header::MAX_FRAME_SIZE,
                received: 131_014
            }
        ),
        "{err:?}"
    );
    // And a 64 KiB datagram that is a whole frame (of garbage) is handed over whole.
    let mut whole = frame(Op::ReadRsp, group::OS, 6, 1, &[]);
    whole[2..4].copy_from_slice(&((MAX_UDP - header::SIZE) as u16).to_be_bytes());
    whole.resize(MAX_UDP, 0xa5);
    device.send_to(&whole, client).await.unwrap();
    assert_eq!(receive(&udp).await.unwrap(), whole);
}

#[tokio::test]
async fn mtu_too_small_for_a_header() {
    let (device, addr) = fake_device("127.0.0.1").await;
    let options = ClientOptions::default().with_read_params(false);
    let err = Client::connect_udp(UdpTarget::from(addr).with_mtu(35), options.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Transport(TransportError::MtuTooSmall {
                mtu: 35,
                payload: 7,
                needed: 8
            })
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "MTU 35 B is too small: it leaves 7 B per datagram, an SMP header needs 8 B"
    );
    // Room for a header but not for the request: refused before anything is sent.
    let client = Client::connect_udp(UdpTarget::from(addr).with_mtu(40), options)
        .await
        .unwrap();
    let err = client
        .request(&EchoRequest { d: "hello".into() })
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::FrameTooLarge { len: 17, max: 12 }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "request of 17 B does not fit the 12 B frame limit (transport MTU and device buffer)"
    );
    let mut buf = [0; 64];
    assert!(device.try_recv_from(&mut buf).is_err(), "nothing was sent");
}

// ---------------------------------------------------------------------------------------
// Refusals of the (simulated) device

async fn sim_and_client(config: SimConfig) -> (Sim, Client<UdpTransport>) {
    init_tracing();
    let sim = Sim::start(config).await.unwrap();
    let client = Client::connect_udp(UdpTarget::from(sim.addr()), ClientOptions::default())
        .await
        .unwrap();
    (sim, client)
}

#[tokio::test]
async fn image_file_that_is_not_mcuboot() {
    let not_an_image = b"ELF? no: just some text that someone took for firmware\n".repeat(40);
    let err = Image::parse(&not_an_image).unwrap_err();
    assert!(
        matches!(err, ImageError::BadMagic { found: 0x3f464c45 }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "not an MCUboot image: magic 0x3f464c45 instead of 0x96f3b83d (was the file signed \
         with imgtool, e.g. zephyr.signed.bin rather than zephyr.bin?)"
    );
    // Uploaded anyway, the device refuses it at the first chunk and keeps its slot.
    let (sim, client) = sim_and_client(SimConfig::default()).await;
    let before = sim.slot(1);
    let err = client
        .upload_image(&not_an_image, &ImageUploadOptions::default(), |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::Device(DeviceError {
                group: 1,
                rc: 23,
                scope: ErrorScope::Group,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "device refused: IMG 23 INVALID_IMAGE_HEADER_MAGIC"
    );
    assert_eq!(sim.slot(1), before, "slot 1 is unchanged");
    assert_eq!(sim.upload_progress(), None);
}

#[tokio::test]
async fn image_larger_than_the_slot() {
    let (sim, client) = sim_and_client(SimConfig {
        slot_size: 64 * 1024,
        ..SimConfig::default()
    })
    .await;
    let version: ImageVersion = "2.0.0".parse().unwrap();
    let image = ImageBuilder::new(version).build(&sample_body(100 * 1024, 5));
    let before = sim.slot(1);
    let err = client
        .upload_image(&image, &ImageUploadOptions::default(), |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::Device(DeviceError {
                group: 1,
                rc: 30,
                scope: ErrorScope::Group,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "device refused: IMG 30 INVALID_IMAGE_TOO_LARGE"
    );
    assert_eq!(sim.slot(1), before, "slot 1 is unchanged");
}

#[tokio::test]
async fn file_path_the_device_rejects() {
    let (sim, client) = sim_and_client(SimConfig::default()).await;
    let kept = b"keep me".to_vec();
    client
        .upload_file(
            "/lfs1/kept.txt",
            &kept,
            &FileTransferOptions::default(),
            |_| {},
        )
        .await
        .unwrap();
    let options = FileTransferOptions::default();
    // Outside the mount point: FS 14, for a download and for an upload.
    let err = client
        .download_file("/data/log.txt", &options, |_| {})
        .await
        .unwrap_err();
    let mount_point_not_found = |err: &ClientError| {
        matches!(
            err,
            ClientError::Device(DeviceError {
                group: 8,
                rc: 14,
                scope: ErrorScope::Group,
                ..
            })
        )
    };
    assert!(mount_point_not_found(&err), "{err:?}");
    assert_eq!(
        err.to_string(),
        "device refused: FS 14 MOUNT_POINT_NOT_FOUND"
    );
    let err = client
        .upload_file("/data/kept.txt", b"other", &options, |_| {})
        .await
        .unwrap_err();
    assert!(mount_point_not_found(&err), "{err:?}");
    // A path that climbs out of the mount point: FS 2.
    let err = client
        .upload_file("/lfs1/../lfs1/kept.txt", b"other", &options, |_| {})
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "device refused: FS 2 FILE_INVALID_NAME");
    assert_eq!(
        sim.file("/lfs1/kept.txt"),
        Some(kept),
        "the file is unchanged"
    );
    // The raw request gets the same answer: the refusal is the device's, not the client's.
    let err = client
        .request(&DownloadRequest {
            off: 0,
            name: "/data/log.txt".into(),
        })
        .await
        .unwrap_err();
    assert!(mount_point_not_found(&err), "{err:?}");
}

// ---------------------------------------------------------------------------------------
// Over a serial line
//
// The fake device is a TCP socket on 127.0.0.1, as an emulator's serial chardev, that
// speaks console framing byte by byte; the client connects to `socket://127.0.0.1:PORT`.
// Rows about the device's own limits run against the simulated device over a real
// pseudo-terminal.

mod serial {
    use std::time::Duration;

    use smp_client::header::{Header, Op, group};
    use smp_client::messages::os::{EchoRequest, EchoResponse};
    use smp_client::serial::console::{self, LineLength};
    use smp_client::serial::{
        Deframer, FrameError, Framing, Pacing, SerialOptions, SerialTarget, SerialTransport, crc16,
    };
    use smp_client::{Client, ClientError, ClientOptions, FileTransferOptions, Transport};
    use smp_client::{RetryPolicy, TransportError};
    use smp_integration_tests::{
        console_lines, console_packet, error_chain, frame, init_tracing, serial_client, serial_sim,
    };
    use smp_sim::{SerialConfig, SimConfig};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::time::{Instant, timeout};

    use super::{GENUINE, PATIENCE, echo_payload, reply_to, single_attempt};

    /// Base64 characters per line of 128 bytes.
    const CHARS: usize = 124;

    fn options() -> SerialOptions {
        SerialOptions::default().pacing(Pacing::none())
    }

    /// A fake device's socket and the target that reaches it.
    async fn listen() -> (TcpListener, SerialTarget) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = SerialTarget::tcp("127.0.0.1", port).with_options(options());
        (listener, target)
    }

    /// Reads one request frame off the line.
    async fn read_request(device: &mut TcpStream) -> Header {
        let mut deframer = Deframer::new(Framing::Console, 1024);
        let mut buf = [0; 1024];
        loop {
            if let Some(frame) = deframer.next_frame() {
                return Header::decode(&frame.unwrap()).unwrap();
            }
            let len = timeout(PATIENCE, device.read(&mut buf))
                .await
                .expect("the client sends a request")
                .unwrap();
            assert!(len > 0, "the client closed the line");
            deframer.push(&buf[..len]);
        }
    }

    /// The genuine reply to `request`, on the line.
    fn genuine(request: &Header) -> Vec<u8> {
        console::encode(
            &reply_to(request, &echo_payload(GENUINE)),
            LineLength::default(),
        )
        .unwrap()
    }

    /// Sends an echo request from a client of a fake serial device that answers with
    /// the bytes `bad` makes from the request's header, then with the genuine reply if
    /// `genuine` (one attempt, so that only a dropped bad reply lets it complete).
    async fn echo_against(
        bad: impl FnOnce(&Header) -> Vec<u8> + Send + 'static,
        answer: bool,
    ) -> Result<EchoResponse, ClientError> {
        init_tracing();
        let (listener, target) = listen().await;
        let device = tokio::spawn(async move {
            let (mut device, _) = listener.accept().await.unwrap();
            let request = read_request(&mut device).await;
            device.write_all(&bad(&request)).await.unwrap();
            if answer {
                device.write_all(&genuine(&request)).await.unwrap();
            }
            device
        });
        let client_options = ClientOptions::default()
            .with_retry(single_attempt())
            .with_read_params(false);
        let client = Client::connect_serial(target, client_options)
            .await
            .unwrap();
        let result = timeout(PATIENCE, client.request(&EchoRequest { d: GENUINE.into() }))
            .await
            .expect("the request ends");
        let device = device.await.unwrap();
        let mut buf = [0; 64];
        assert!(
            device.try_read(&mut buf).is_err(),
            "the client re-sent its request"
        );
        result
    }

    /// The request completed with the genuine reply: the bad bytes were dropped.
    fn assert_dropped(result: Result<EchoResponse, ClientError>) {
        match result {
            Ok(reply) => assert_eq!(reply.r, GENUINE, "bad bytes were taken as the reply"),
            Err(err) => panic!("the bad bytes were not dropped: the request failed with {err}"),
        }
    }

    /// What a serial transport makes of `bytes` from the device: the first frame or error.
    async fn receive(bytes: &[u8]) -> Result<Vec<u8>, TransportError> {
        let (listener, target) = listen().await;
        let (serial, accepted) = tokio::join!(
            SerialTransport::connect(target, PATIENCE),
            listener.accept()
        );
        let (serial, (mut device, _)) = (serial.unwrap(), accepted.unwrap());
        device.write_all(bytes).await.unwrap();
        timeout(PATIENCE, serial.receive())
            .await
            .expect("the transport hands over a frame or an error")
    }

    /// The [`FrameError`] inside a transport's framing error.
    fn frame_error(err: &TransportError) -> &FrameError {
        match err {
            TransportError::Framing(inner) => inner
                .downcast_ref::<FrameError>()
                .expect("a serial framing error"),
            other => panic!("expected a framing error, got {other:?}"),
        }
    }

    /// A reply frame of `len` bytes (an echo reply the client did not ask for).
    fn stray_reply(len: usize) -> Vec<u8> {
        frame(Op::ReadRsp, group::OS, 0, 200, &vec![0x61; len - 8])
    }

    #[test]
    fn hand_made_lines_match_the_encoder() {
        let reply = stray_reply(200);
        let packet = console_packet(&reply, 202, crc16(&reply));
        assert_eq!(
            console_lines(&packet, CHARS),
            console::encode(&reply, LineLength::default()).unwrap()
        );
    }

    #[tokio::test]
    async fn bad_base64() {
        // `*` is not in the base64 alphabet.
        let mut line = console::encode(&stray_reply(20), LineLength::default()).unwrap();
        line[10] = b'*';
        let err = receive(&line).await.unwrap_err();
        assert_eq!(frame_error(&err), &FrameError::BadBase64 { line: 1 });
        assert_eq!(
            error_chain(&err),
            "framing error: line 1 of a console frame is not valid base64 (noise on the line, \
             or a wrong baud rate?); the frame was dropped"
        );
        assert_dropped(
            echo_against(
                |request| {
                    let mut bad = console::encode(
                        &reply_to(request, &echo_payload("forged")),
                        LineLength::default(),
                    )
                    .unwrap();
                    bad[6] = b'!';
                    bad
                },
                true,
            )
            .await,
        );
    }

    #[tokio::test]
    async fn crc_mismatch() {
        let reply = stray_reply(20);
        let crc = crc16(&reply);
        let err = receive(&console_lines(
            &console_packet(&reply, 22, crc ^ 0x0101),
            CHARS,
        ))
        .await
        .unwrap_err();
        assert_eq!(
            frame_error(&err),
            &FrameError::CrcMismatch {
                expected: crc ^ 0x0101,
                computed: crc
            }
        );
        assert_eq!(
            error_chain(&err),
            format!(
                "framing error: frame checksum mismatch: the frame carries CRC {:#06x}, its \
                 data give {crc:#06x}; the frame was dropped",
                crc ^ 0x0101
            )
        );
        assert_dropped(
            echo_against(
                |request| {
                    let forged = reply_to(request, &echo_payload("forged"));
                    let len = forged.len() as u16 + 2;
                    console_lines(&console_packet(&forged, len, !crc16(&forged)), CHARS)
                },
                true,
            )
            .await,
        );
    }

    #[tokio::test]
    async fn length_longer_than_the_data() {
        // The length field announces 10 bytes more than come: the frame waits for them,
        // and the next frame's first line ends it.
        let reply = stray_reply(20);
        let mut bytes = console_lines(&console_packet(&reply, 32, crc16(&reply)), CHARS);
        let next = stray_reply(12);
        bytes.extend(console::encode(&next, LineLength::default()).unwrap());
        let err = receive(&bytes).await.unwrap_err();
        assert_eq!(
            frame_error(&err),
            &FrameError::LengthMismatch {
                announced: 32,
                received: 22
            }
        );
        assert_eq!(
            error_chain(&err),
            "framing error: console frame length mismatch: its length field announces 32 B \
             (SMP frame and CRC), 22 B arrived; the frame was dropped"
        );
        // The genuine reply whose first line ended the lying frame completes the request.
        assert_dropped(
            echo_against(
                |request| {
                    let forged = reply_to(request, &echo_payload("forged"));
                    let len = forged.len() as u16 + 2 + 10;
                    console_lines(&console_packet(&forged, len, crc16(&forged)), CHARS)
                },
                true,
            )
            .await,
        );
    }

    #[tokio::test]
    async fn length_shorter_than_the_data() {
        let reply = stray_reply(20);
        let err = receive(&console_lines(
            &console_packet(&reply, 17, crc16(&reply)),
            CHARS,
        ))
        .await
        .unwrap_err();
        assert_eq!(
            frame_error(&err),
            &FrameError::LengthMismatch {
                announced: 17,
                received: 22
            }
        );
        assert_dropped(
            echo_against(
                |request| {
                    let forged = reply_to(request, &echo_payload("forged"));
                    let len = forged.len() as u16 + 2 - 5;
                    console_lines(&console_packet(&forged, len, crc16(&forged)), CHARS)
                },
                true,
            )
            .await,
        );
    }

    #[tokio::test]
    async fn frame_line_cut_in_the_middle() {
        // The device resets while it writes the first of two lines: the line stops in
        // the middle and the next frame's first line follows at once.
        let long = console::encode(&stray_reply(150), LineLength::default()).unwrap();
        assert_eq!(console::lines(&long).count(), 2);
        let mut bytes = long[..60].to_vec();
        let next = stray_reply(12);
        bytes.extend(console::encode(&next, LineLength::default()).unwrap());
        let err = receive(&bytes).await.unwrap_err();
        assert_eq!(frame_error(&err), &FrameError::BadBase64 { line: 1 });
        // Cut after a whole base64 group, with its newline: the frame is short, and the
        // next frame's first line ends it.
        let mut bytes = long[..2 + 60].to_vec();
        bytes.push(b'\n');
        bytes.extend(console::encode(&next, LineLength::default()).unwrap());
        let err = receive(&bytes).await.unwrap_err();
        assert_eq!(
            frame_error(&err),
            &FrameError::LengthMismatch {
                announced: 152,
                received: 43
            }
        );
        // Either way the frame after it arrives whole: the request completes.
        assert_dropped(
            echo_against(
                |request| {
                    let forged = reply_to(request, &echo_payload(&"forged".repeat(3)));
                    let mut lines = console::encode(&forged, LineLength::default()).unwrap();
                    lines.truncate(lines.len() / 2);
                    lines
                },
                true,
            )
            .await,
        );
    }

    #[tokio::test]
    async fn log_text_between_lines() {
        // Log lines and a shell prompt before, between and after the lines of a reply
        // of three lines: skipped, the reply is whole.
        let reply = stray_reply(250);
        let lines = console::encode(&reply, LineLength::default()).unwrap();
        let mut bytes = b"*** Booting Zephyr OS ***\r\n<inf> app: tick\r\n".to_vec();
        for line in console::lines(&lines) {
            bytes.extend_from_slice(line);
            bytes.extend_from_slice(b"[00:00:01.000,000] <wrn> os: log between lines\r\nuart:~$ ");
        }
        assert_eq!(console::lines(&lines).count(), 3);
        assert_eq!(receive(&bytes).await.unwrap(), reply);
        let result = echo_against(
            |request| {
                let mut bytes = b"<dbg> smp: got a request\r\n".to_vec();
                for line in console::lines(&genuine(request)) {
                    bytes.extend_from_slice(b"uart:~$ <inf> log\r\n");
                    bytes.extend_from_slice(line);
                }
                bytes
            },
            false,
        )
        .await;
        assert_dropped(result);
    }

    #[tokio::test]
    async fn frame_larger_than_the_devices_buffer() {
        init_tracing();
        // native_sim's `serial_buf96`: 96-byte buffers take frames of 92 bytes at most
        // (the console packet's length and CRC share the buffer).
        let sim = smp_sim::Sim::start_serial(
            SimConfig {
                buf_size: 96,
                buf_count: 4,
                slot_size: 64 * 1024,
                ..SimConfig::default()
            },
            SerialConfig::pty(),
        )
        .await
        .unwrap();
        // An echo request of exactly `len` bytes: header, `{"d": text}` with a
        // one-byte map head, the key, and a two-byte text head.
        let echo = |len: usize| "e".repeat(len - 8 - 5);
        // With the device's parameters read, the client refuses a request too large,
        // before sending anything, and sizes upload chunks to fit.
        let client = serial_client(&sim, Pacing::default(), ClientOptions::default())
            .await
            .unwrap();
        assert_eq!(client.frame_limit(), 92);
        let err = client.echo(&echo(93)).await.unwrap_err();
        assert!(
            matches!(err, ClientError::FrameTooLarge { len: 93, max: 92 }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "request of 93 B does not fit the 92 B frame limit (transport MTU and device buffer)"
        );
        assert_eq!(client.echo(&echo(92)).await.unwrap(), echo(92));
        let data = smp_mcuboot::sample_body(3000, 9);
        let options = FileTransferOptions::default();
        client
            .upload_file("/lfs1/small.bin", &data, &options, |_| {})
            .await
            .unwrap();
        let (got, _) = client
            .download_file("/lfs1/small.bin", &options, |_| {})
            .await
            .unwrap();
        assert_eq!(got, data);
        client.close().await.unwrap();
        assert_eq!(sim.counters().frames_too_large, 0);
        // Without them (guessing 169 B from two 128-byte lines), the 93-byte request
        // goes out, and the device drops it without a word: a timeout.
        let options = ClientOptions::default()
            .with_retry(
                RetryPolicy::default()
                    .with_timeout(Duration::from_millis(500))
                    .with_retries(0),
            )
            .with_read_params(false);
        let client = serial_client(&sim, Pacing::default(), options)
            .await
            .unwrap();
        assert_eq!(client.frame_limit(), 169);
        let err = client.echo(&echo(93)).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Timeout { attempts: 1, .. }),
            "{err:?}"
        );
        assert_eq!(sim.counters().frames_too_large, 1);
        assert_eq!(client.echo(&echo(92)).await.unwrap(), echo(92));
    }

    #[tokio::test]
    async fn port_that_vanishes() {
        init_tracing();
        // native_sim exits (its pseudo-terminal closes) while a request waits for a
        // reply that will never come: the request ends at once, long before its timeout.
        let sim = serial_sim(SerialConfig::pty(), 64 * 1024).await;
        let patient = ClientOptions::default().with_retry(
            RetryPolicy::default()
                .with_timeout(Duration::from_secs(30))
                .with_retries(0),
        );
        let client = serial_client(&sim, Pacing::default(), patient.clone())
            .await
            .unwrap();
        sim.go_silent(Duration::from_secs(60));
        let waiting = tokio::spawn(async move {
            let result = client.echo("anyone there?").await;
            (result, client)
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let vanished = Instant::now();
        sim.shutdown().await;
        let (result, client) = timeout(PATIENCE, waiting).await.unwrap().unwrap();
        let ended = vanished.elapsed();
        let err = result.unwrap_err();
        assert!(matches!(err, ClientError::Closed), "{err:?}");
        assert!(ended < Duration::from_secs(5), "ended after {ended:?}");
        assert_eq!(err.to_string(), "client is closed");
        // Every later request fails at once too.
        let err = client.echo("still there?").await.unwrap_err();
        assert!(matches!(err, ClientError::Closed), "{err:?}");
        // An emulator's TCP serial port closing does the same.
        let (listener, target) = listen().await;
        let device = tokio::spawn(async move {
            let (mut device, _) = listener.accept().await.unwrap();
            read_request(&mut device).await;
            drop(device); // the emulator is killed
        });
        let client = Client::connect_serial(target, patient.with_read_params(false))
            .await
            .unwrap();
        let asked = Instant::now();
        let err = client.echo("anyone there?").await.unwrap_err();
        assert!(matches!(err, ClientError::Closed), "{err:?}");
        assert!(asked.elapsed() < Duration::from_secs(5));
        device.await.unwrap();
    }
}
