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
