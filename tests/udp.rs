//! The UDP transport over real sockets on 127.0.0.1 and ::1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use smp_client::header::{Op, group};
use smp_client::udp::{UdpTarget, UdpTransport};
use smp_client::{Transport, TransportError};
use smp_integration_tests::{error_chain, fake_device, frame, init_tracing};

const TIMEOUT: Duration = Duration::from_secs(5);

async fn connect(addr: std::net::SocketAddr, mtu: usize) -> UdpTransport {
    UdpTransport::connect(UdpTarget::from(addr).with_mtu(mtu), TIMEOUT)
        .await
        .unwrap()
}

async fn recv(socket: &tokio::net::UdpSocket) -> (Vec<u8>, std::net::SocketAddr) {
    let mut buf = vec![0; 70_000];
    let (len, from) = tokio::time::timeout(TIMEOUT, socket.recv_from(&mut buf))
        .await
        .expect("the device should receive a datagram")
        .unwrap();
    buf.truncate(len);
    (buf, from)
}

#[tokio::test]
async fn ipv4_family_sets_the_payload_limit() {
    init_tracing();
    let (_device, addr) = fake_device("127.0.0.1").await;
    let udp = connect(addr, 1500).await;
    assert!(!udp.is_ipv6());
    assert_eq!((udp.mtu(), udp.max_unencoded_size()), (1500, 1472));
    assert_eq!(udp.peer_addr(), addr);
    let small = connect(addr, 512).await;
    assert_eq!(small.max_unencoded_size(), 484);
}

#[tokio::test]
async fn ipv6_family_sets_the_payload_limit() {
    let (_device, addr) = fake_device("::1").await;
    let udp = connect(addr, 1500).await;
    assert!(udp.is_ipv6());
    assert_eq!(udp.max_unencoded_size(), 1452);
    assert!(udp.local_addr().unwrap().is_ipv6());
}

#[tokio::test]
async fn host_names_resolve() {
    let (_device, addr) = fake_device("127.0.0.1").await;
    let target = UdpTarget::new("localhost").with_port(addr.port());
    let udp = UdpTransport::connect(target, TIMEOUT).await.unwrap();
    assert!(udp.peer_addr().ip().is_loopback());
}

#[tokio::test]
async fn an_mtu_without_room_for_a_header_is_refused() {
    let (_device, addr) = fake_device("127.0.0.1").await;
    let err = UdpTransport::connect(UdpTarget::from(addr).with_mtu(35), TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        TransportError::MtuTooSmall {
            mtu: 35,
            payload: 7,
            needed: 8
        }
    ));
    let (_device, addr) = fake_device("::1").await;
    let err = UdpTransport::connect(UdpTarget::from(addr).with_mtu(55), TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        TransportError::MtuTooSmall { payload: 7, .. }
    ));
}

#[tokio::test]
async fn one_frame_one_datagram_both_ways() {
    for ip in ["127.0.0.1", "::1"] {
        let (device, addr) = fake_device(ip).await;
        let udp = connect(addr, 1500).await;
        let request = frame(Op::Write, group::OS, 0, 42, b"\xa1\x61\x64\x65hello");
        udp.send(&request).await.unwrap();
        let (got, from) = recv(&device).await;
        assert_eq!(got, request);
        let reply = frame(Op::WriteRsp, group::OS, 0, 42, b"\xbf\x61\x72\x62hi\xff");
        device.send_to(&reply, from).await.unwrap();
        assert_eq!(udp.receive().await.unwrap(), reply);
    }
}

#[tokio::test]
async fn a_recycled_frame_buffer_receives_the_next_frame() {
    let (device, addr) = fake_device("127.0.0.1").await;
    let udp = connect(addr, 1500).await;
    udp.send(&frame(Op::Read, group::OS, 6, 1, b"\xa0"))
        .await
        .unwrap();
    let (_, from) = recv(&device).await;
    let first = frame(Op::ReadRsp, group::OS, 6, 1, b"\xa1\x61\x72\x61a");
    let second = frame(Op::ReadRsp, group::OS, 6, 2, b"\xa1\x61\x72\x62bb");
    device.send_to(&first, from).await.unwrap();
    device.send_to(&second, from).await.unwrap();
    let got = udp.receive().await.unwrap();
    assert_eq!(got, first);
    let buffer = got.as_ptr();
    udp.recycle(got);
    // The second frame is received into the first one's buffer, and is whole.
    let got = udp.receive().await.unwrap();
    assert_eq!(got, second);
    assert_eq!(got.as_ptr(), buffer);
}

#[tokio::test]
async fn large_frames_are_split_into_datagrams_of_the_payload_limit() {
    for (ip, limit) in [("127.0.0.1", 1472), ("::1", 1452)] {
        let (device, addr) = fake_device(ip).await;
        let udp = connect(addr, 1500).await;
        let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let request = frame(Op::Write, group::FS, 0, 1, &payload);
        udp.send(&request).await.unwrap();
        let mut sizes = Vec::new();
        let mut joined = Vec::new();
        while joined.len() < request.len() {
            let (datagram, _) = recv(&device).await;
            sizes.push(datagram.len());
            joined.extend(datagram);
        }
        assert_eq!(sizes, [limit, limit, request.len() - 2 * limit]);
        assert_eq!(joined, request);
    }
}

#[tokio::test]
async fn frames_split_by_the_device_are_reassembled() {
    let (device, addr) = fake_device("127.0.0.1").await;
    let udp = connect(addr, 1500).await;
    udp.send(&frame(Op::Read, group::FS, 0, 3, b"\xa0"))
        .await
        .unwrap();
    let (_, client) = recv(&device).await;
    let payload = vec![0x5a; 4000];
    let reply = frame(Op::ReadRsp, group::FS, 0, 3, &payload);
    for part in reply.chunks(1000) {
        device.send_to(part, client).await.unwrap();
    }
    assert_eq!(udp.receive().await.unwrap(), reply);
}

#[tokio::test]
async fn more_data_than_announced_is_a_clear_error_then_receiving_goes_on() {
    let (device, addr) = fake_device("127.0.0.1").await;
    let udp = connect(addr, 1500).await;
    udp.send(&frame(Op::Read, group::OS, 6, 4, b"\xa0"))
        .await
        .unwrap();
    let (_, client) = recv(&device).await;

    // A header announcing 2000 bytes, then 2010 bytes in two datagrams.
    let mut long = frame(Op::ReadRsp, group::OS, 6, 4, &[0; 2000]);
    long.extend([0; 10]);
    device.send_to(&long[..1000], client).await.unwrap();
    device.send_to(&long[1000..], client).await.unwrap();
    let err = udp.receive().await.unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::ExcessData {
                expected: 2008,
                received: 2018
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("more data than expected"), "{err}");

    // Truncated header.
    device.send_to(&[0x09, 0, 0], client).await.unwrap();
    assert!(matches!(
        udp.receive().await,
        Err(TransportError::Header(_))
    ));

    let good = frame(Op::ReadRsp, group::OS, 6, 5, b"\xa0");
    device.send_to(&good, client).await.unwrap();
    assert_eq!(udp.receive().await.unwrap(), good);
}

#[tokio::test]
async fn datagrams_from_other_peers_are_never_delivered() {
    let (device, addr) = fake_device("127.0.0.1").await;
    let udp = connect(addr, 1500).await;
    let client = udp.local_addr().unwrap();
    let client = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, client.port()));

    let (intruder, _) = fake_device("127.0.0.1").await;
    let forged = frame(Op::WriteRsp, group::OS, 0, 1, b"\xa1\x61\x72\x63bad");
    intruder.send_to(&forged, client).await.unwrap();

    let genuine = frame(Op::WriteRsp, group::OS, 0, 1, b"\xa1\x61\x72\x62ok");
    // Give the forged datagram time to arrive first if it were to be delivered.
    tokio::time::sleep(Duration::from_millis(50)).await;
    device.send_to(&genuine, client).await.unwrap();
    assert_eq!(udp.receive().await.unwrap(), genuine);
}

#[tokio::test]
async fn a_timed_out_receive_loses_nothing() {
    let (device, addr) = fake_device("127.0.0.1").await;
    let udp = connect(addr, 1500).await;
    udp.send(&frame(Op::Read, group::OS, 6, 8, b"\xa0"))
        .await
        .unwrap();
    let (_, client) = recv(&device).await;

    // Nothing arrives: the caller's timeout fires.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), udp.receive())
            .await
            .is_err()
    );

    // Half a frame arrives, then the caller gives up; the rest completes it later.
    let reply = frame(Op::ReadRsp, group::OS, 6, 8, &[7; 1800]);
    device.send_to(&reply[..900], client).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(100), udp.receive())
            .await
            .is_err()
    );
    device.send_to(&reply[900..], client).await.unwrap();
    assert_eq!(udp.receive().await.unwrap(), reply);
}

#[tokio::test]
async fn one_task_sends_while_another_receives() {
    let (device, addr) = fake_device("::1").await;
    let udp = Arc::new(connect(addr, 1500).await);
    let reader = tokio::spawn({
        let udp = udp.clone();
        async move {
            let mut frames = Vec::new();
            for _ in 0..3 {
                frames.push(udp.receive().await.unwrap());
            }
            frames
        }
    });
    let mut expected = Vec::new();
    for seq in 0..3u8 {
        udp.send(&frame(Op::Read, group::OS, 6, seq, b"\xa0"))
            .await
            .unwrap();
        let (_, client) = recv(&device).await;
        let reply = frame(Op::ReadRsp, group::OS, 6, seq, b"\xa0");
        device.send_to(&reply, client).await.unwrap();
        expected.push(reply);
    }
    assert_eq!(reader.await.unwrap(), expected);
}

#[tokio::test]
async fn disconnect_ends_a_waiting_receive() {
    let (_device, addr) = fake_device("127.0.0.1").await;
    let udp = Arc::new(connect(addr, 1500).await);
    let waiting = tokio::spawn({
        let udp = udp.clone();
        async move { udp.receive().await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    udp.disconnect().await.unwrap();
    assert!(matches!(
        waiting.await.unwrap(),
        Err(TransportError::Closed)
    ));
    assert!(matches!(
        udp.send(b"\x08\0\0\0\0\0\0\0").await,
        Err(TransportError::Closed)
    ));
}

#[tokio::test]
async fn a_port_nobody_listens_on_is_reported() {
    // Bind then drop a socket to get a port that is (almost certainly) closed.
    let (device, addr) = fake_device("127.0.0.1").await;
    drop(device);
    let udp = connect(addr, 1500).await;
    udp.send(&frame(Op::Read, group::OS, 6, 1, b"\xa0"))
        .await
        .unwrap();
    let err = tokio::time::timeout(TIMEOUT, udp.receive())
        .await
        .expect("an ICMP port unreachable should end the receive")
        .unwrap_err();
    let io = match &err {
        TransportError::Unreachable(io) => io,
        other => panic!("expected an unreachable device, got {other:?}"),
    };
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    // The message, then the system's error as its cause (`source()`): each printed once.
    assert_eq!(err.to_string(), "the device is unreachable");
    assert_eq!(
        error_chain(&err),
        format!("the device is unreachable: {io}")
    );
}

#[tokio::test]
async fn frames_larger_than_smp_allows_are_refused() {
    let (_device, addr) = fake_device("127.0.0.1").await;
    let udp = connect(addr, 1500).await;
    let err = udp.send(&vec![0; 65_544]).await.unwrap_err();
    assert!(matches!(
        err,
        TransportError::FrameTooLarge {
            len: 65_544,
            max: 65_543
        }
    ));
}
