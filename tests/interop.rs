//! Interop with the real Zephyr SMP UDP servers: run by `cargo xtask interop`, which
//! starts them and sets the addresses. Ignored by a plain `cargo test`; run alone with
//! `--ignored` and no server, every test fails loudly instead of passing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use smp_client::Transport;
use smp_client::header::{Header, Op, Version, command, group};
use smp_client::udp::{UdpTarget, UdpTransport};
use smp_integration_tests::{INTEROP_UDP4, INTEROP_UDP6, frame, init_tracing, interop_server};

const TIMEOUT: Duration = Duration::from_secs(5);

/// `{"d": "hello"}` in canonical CBOR, as the reference encodes an echo request.
const ECHO_HELLO: &[u8] = b"\xa1\x61\x64\x65hello";

async fn raw_echo(var: &str) {
    init_tracing();
    let target: UdpTarget = interop_server(var).parse().unwrap();
    let udp = UdpTransport::connect(target, TIMEOUT).await.unwrap();
    for (sequence, version) in [(0x37u8, Version::V2), (0x38, Version::V1)] {
        let mut request = frame(
            Op::Write,
            group::OS,
            command::os::ECHO,
            sequence,
            ECHO_HELLO,
        );
        let header = Header::decode(&request).unwrap().with_version(version);
        request[..8].copy_from_slice(&header.encode());
        let reply = tokio::time::timeout(TIMEOUT, udp.send_and_receive(&request))
            .await
            .expect("the Zephyr server should answer an echo")
            .unwrap();
        let header = Header::decode(&reply).unwrap();
        assert_eq!(header.op, Op::WriteRsp);
        assert_eq!(header.version, version);
        assert_eq!(
            (header.group, header.command, header.sequence),
            (group::OS, 0, sequence)
        );
        assert_eq!(usize::from(header.length), reply.len() - 8);
        // Zephyr answers with an indefinite-length map: bf 61 72 65 "hello" ff.
        assert_eq!(&reply[8..], b"\xbf\x61\x72\x65hello\xff");
    }
}

#[tokio::test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
async fn zephyr_udp4_echo_raw() {
    raw_echo(INTEROP_UDP4).await;
}

#[tokio::test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
async fn zephyr_udp6_echo_raw() {
    raw_echo(INTEROP_UDP6).await;
}
