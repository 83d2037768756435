//! Conformance of the simulated device over real UDP sockets on 127.0.0.1: raw frames
//! in, exact replies out, checked against docs/protocol.md (section 5 above all).
//!
//! Every test starts its own device on port 0 and talks to it from a connected socket,
//! building frames with [`Header`] and typed request structs, and reading replies as raw
//! bytes, [`Value`]s or typed responses. Nothing asserts on elapsed time: where a test
//! needs the work queue busy, a 2 s erase holds it and the test acts on the device's
//! counters well within that time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use minicbor::Encode;
use sha2::{Digest, Sha256};
use smp_proto::header::{self, Header, Op, Version, command, group};
use smp_proto::messages::build;
use smp_proto::messages::enumeration::{
    CountRequest, CountResponse, DetailsRequest, DetailsResponse, ListRequest, ListResponse,
    SingleRequest, SingleResponse,
};
use smp_proto::messages::fs::{
    CloseRequest, DownloadRequest, DownloadResponse, HashOutput, HashRequest, HashResponse,
    StatusRequest, StatusResponse, UploadRequest as FileUpload,
    UploadResponse as FileUploadResponse,
};
use smp_proto::messages::image::{
    EraseRequest, ImageState, SetStateRequest, SlotInfoRequest, SlotInfoResponse, StateRequest,
    StateResponse, UploadRequest, UploadResponse,
};
use smp_proto::messages::os::{
    EchoRequest, EchoResponse, McumgrParamsRequest, McumgrParamsResponse, ResetRequest,
};
use smp_proto::messages::settings::{DeleteRequest, ReadRequest, ReadResponse, WriteRequest};
use smp_proto::messages::shell::{ExecRequest, ExecResponse};
use smp_proto::messages::{Empty, Value};
use smp_proto::{ImageHash, Request};
use smp_sim::mcuboot::{Image, ImageBuilder, ImageVersion, sample_body};
use smp_sim::{Delays, Faults, Sim, SimConfig, SimCounters};
use tokio::net::UdpSocket;
use tokio::time::{Instant, sleep, timeout};

/// How long a test waits for something that must happen: far longer than it takes.
const PATIENCE: Duration = Duration::from_secs(10);
/// Slot size of the test devices: room for the test images, cheap to copy.
const SLOT_SIZE: usize = 64 * 1024;
/// Image data bytes per upload chunk (a frame of about 1.1 KB).
const CHUNK: usize = 1024;
/// The erase delay that holds the work queue while a test acts.
const LONG_ERASE: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------
// Support: a peer on a real socket, replies, images, counters.
// ---------------------------------------------------------------------------------

fn config() -> SimConfig {
    SimConfig {
        slot_size: SLOT_SIZE,
        ..SimConfig::default()
    }
}

async fn start(config: SimConfig) -> (Sim, Peer) {
    let sim = Sim::start(config)
        .await
        .expect("the simulated device starts");
    let peer = Peer::connect(&sim).await;
    (sim, peer)
}

/// A client socket connected to one device, numbering its requests.
struct Peer {
    socket: UdpSocket,
    seq: u8,
}

impl Peer {
    async fn connect(sim: &Sim) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        socket.connect(sim.addr()).await.expect("connect");
        Self { socket, seq: 0 }
    }

    /// A whole frame (v2, flags 0, next sequence number) carrying `body`.
    fn frame<T: Encode<()>>(
        &mut self,
        op: Op,
        group: u16,
        command: u8,
        body: &T,
    ) -> (Header, Vec<u8>) {
        let payload = minicbor::to_vec(body).expect("encodes");
        let header = Header::new(op, group, command, len16(payload.len())).with_sequence(self.seq);
        self.seq = self.seq.wrapping_add(1);
        (header, raw_frame(&header, &payload))
    }

    /// The frame of a typed request.
    fn request<T: Request>(&mut self, request: &T) -> (Header, Vec<u8>) {
        self.frame(T::OP, T::GROUP, T::COMMAND, request)
    }

    async fn send(&self, datagram: &[u8]) {
        let sent = self.socket.send(datagram).await.expect("send");
        assert_eq!(sent, datagram.len());
    }

    async fn recv_within(&self, wait: Duration) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65_536];
        match timeout(wait, self.socket.recv(&mut buf)).await {
            Ok(received) => {
                let len = received.expect("receive");
                buf.truncate(len);
                Some(buf)
            }
            Err(_) => None,
        }
    }

    /// The next datagram; fails the test if none comes.
    async fn recv(&self) -> Vec<u8> {
        self.recv_within(PATIENCE)
            .await
            .expect("the device answers within PATIENCE")
    }

    /// Sends `datagram` and returns the next datagram, which must answer `header`.
    async fn exchange(&self, header: &Header, datagram: &[u8]) -> Reply {
        self.send(datagram).await;
        let reply = Reply::parse(&self.recv().await);
        reply.assert_answers(header);
        reply
    }

    /// Sends a typed request and returns its reply.
    async fn call<T: Request>(&mut self, request: &T) -> Reply {
        let (header, datagram) = self.request(request);
        self.exchange(&header, &datagram).await
    }

    /// Sends a typed request with a version 1 header and returns its reply.
    async fn call_v1<T: Request>(&mut self, request: &T) -> Reply {
        let (header, mut datagram) = self.request(request);
        let header = header.with_version(Version::V1);
        datagram[..header::SIZE].copy_from_slice(&header.encode());
        self.exchange(&header, &datagram).await
    }

    /// Sends a typed request and decodes its successful reply.
    async fn ok<T: Request>(&mut self, request: &T) -> T::Response {
        self.call(request).await.decode::<T::Response>()
    }

    /// Sends `datagram` until a reply comes, which must answer `header` (for moments
    /// when the device may still be giving buffers back).
    async fn exchange_retrying(&self, header: &Header, datagram: &[u8]) -> Reply {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            self.send(datagram).await;
            if let Some(bytes) = self.recv_within(Duration::from_secs(1)).await {
                let reply = Reply::parse(&bytes);
                reply.assert_answers(header);
                return reply;
            }
        }
        panic!("no reply to {header:?} within PATIENCE");
    }
}

fn len16(len: usize) -> u16 {
    u16::try_from(len).expect("payload fits a frame")
}

fn raw_frame(header: &Header, payload: &[u8]) -> Vec<u8> {
    [&header.encode()[..], payload].concat()
}

/// One reply frame, its length checked against the datagram.
#[derive(Debug, Clone)]
struct Reply {
    header: Header,
    body: Vec<u8>,
}

impl Reply {
    fn parse(datagram: &[u8]) -> Self {
        let header = Header::decode(datagram).expect("a reply header");
        assert_eq!(
            datagram.len(),
            header.frame_len(),
            "one reply frame per datagram, its length as announced: {datagram:02x?}"
        );
        Self {
            header,
            body: datagram[header::SIZE..].to_vec(),
        }
    }

    /// docs/protocol.md 5.6: op + 1, the request's version, seq, group and command, flags 0.
    fn assert_answers(&self, request: &Header) {
        let expected = Header {
            op: request.op.response(),
            flags: 0,
            length: len16(self.body.len()),
            ..*request
        };
        assert_eq!(self.header, expected, "reply header");
    }

    fn value(&self) -> Value {
        minicbor::decode(&self.body).expect("the reply body is CBOR")
    }

    /// The typed response of a successful reply.
    fn decode<T: for<'b> minicbor::Decode<'b, ()>>(&self) -> T {
        let value = self.value();
        assert!(
            get(&value, "err").is_none()
                && get(&value, "rc").is_none_or(|rc| rc.as_i64() == Some(0)),
            "an error reply where success was expected: {value:?}"
        );
        minicbor::decode(&self.body).expect("the reply decodes as the response")
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn int(n: i128) -> Value {
    Value::Int(n)
}

/// `{"rc": rc}`, a protocol-level error.
fn rc(rc: i128) -> Value {
    Value::Map(vec![(text("rc"), int(rc))])
}

/// `{"err": {"group": group, "rc": rc}}`, a version 2 group error.
fn group_err(group: u16, rc: i128) -> Value {
    Value::Map(vec![(
        text("err"),
        Value::Map(vec![
            (text("group"), int(i128::from(group))),
            (text("rc"), int(rc)),
        ]),
    )])
}

/// `{"off": off}`, an upload reply without `match`.
fn off_only(off: usize) -> Value {
    Value::Map(vec![(text("off"), int(off as i128))])
}

fn get<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    let Value::Map(entries) = map else {
        panic!("a map expected: {map:?}");
    };
    entries
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// Polls the device's counters until `done` holds; fails the test after PATIENCE.
async fn wait_for(sim: &Sim, what: &str, done: impl Fn(&SimCounters) -> bool) -> SimCounters {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let counters = sim.counters();
        if done(&counters) {
            return counters;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {counters:?}"
        );
        sleep(Duration::from_millis(1)).await;
    }
}

fn echo(d: &str) -> EchoRequest {
    EchoRequest { d: d.to_owned() }
}

fn version(major: u8, minor: u8, revision: u16) -> ImageVersion {
    ImageVersion::new(major, minor, revision, 0)
}

/// An unsigned MCUboot image of `version` with a body of `body_len` bytes.
fn image(version: ImageVersion, body_len: usize, seed: u64) -> Vec<u8> {
    ImageBuilder::new(version).build(&sample_body(body_len, seed))
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

/// The hash MCUboot and `img_mgmt` report for an image (its SHA256 TLV).
fn image_hash(bytes: &[u8]) -> ImageHash {
    Image::parse(bytes)
        .expect("a valid image")
        .hash()
        .expect("an image hash")
        .into()
}

/// The first upload chunk of `image`: `len` and `sha` of the whole image.
fn first_chunk(image: &[u8]) -> UploadRequest<'_> {
    UploadRequest::first(&image[..CHUNK], image.len() as u64, Some(sha256(image)))
}

/// Uploads `image` from offset `from` (the first chunk when 0) and returns the replies.
async fn upload_from(peer: &mut Peer, image: &[u8], from: usize) -> Vec<UploadResponse> {
    let mut replies = Vec::new();
    let mut off = from;
    while off < image.len() {
        let end = (off + CHUNK).min(image.len());
        let request = if off == 0 {
            first_chunk(image)
        } else {
            UploadRequest::chunk(off as u64, &image[off..end])
        };
        let reply: UploadResponse = peer.ok(&request).await;
        assert_eq!(reply.off, end as u64, "the device expects the next chunk");
        replies.push(reply);
        off = end;
    }
    replies
}

/// Uploads the whole image and checks that the last reply says it matches.
async fn upload(peer: &mut Peer, image: &[u8]) {
    let replies = upload_from(peer, image, 0).await;
    let (last, others) = replies.split_last().expect("at least one chunk");
    assert_eq!(last.r#match, Some(true));
    assert!(others.iter().all(|r| r.r#match.is_none()));
}

fn slot_entry(state: &StateResponse, slot: u32) -> ImageState {
    state
        .images
        .iter()
        .find(|i| i.slot == slot)
        .cloned()
        .unwrap_or_else(|| panic!("no image in slot {slot}: {state:?}"))
}

fn is_erased(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == 0xff)
}

/// A fresh folder under the system's temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "smp-sim-device-{name}-{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&path).expect("create the temporary folder");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// SplitMix64, for reproducible garbage.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// CRC-32 (IEEE 802.3, reflected), computed here independently of the device.
fn crc32_ieee(data: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

// ---------------------------------------------------------------------------------
// 1. Echo and reply headers
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn echo_v2_reply_has_exact_header_and_indefinite_body() {
    let (_sim, peer) = start(config()).await;
    // WRITE v2, flags 0, length 9, group 0, seq 0x42, command 0: {"d": "hello"}.
    let request = b"\x0a\x00\x00\x09\x00\x00\x42\x00\xa1\x61d\x65hello";
    peer.send(request).await;
    let reply = peer.recv().await;
    assert_eq!(
        reply,
        [
            0x0b, // 0b000_01_011: v2, WRITE_RSP
            0x00, // flags
            0x00, 0x0a, // length 10
            0x00, 0x00, // group OS
            0x42, // seq echoed
            0x00, // command echo
            0xbf, 0x61, b'r', 0x65, b'h', b'e', b'l', b'l', b'o', 0xff,
        ]
    );
    // Request flags are not echoed.
    let mut flagged = request.to_vec();
    flagged[1] = 0xa5;
    flagged[6] = 0x43;
    peer.send(&flagged).await;
    let reply = peer.recv().await;
    assert_eq!(reply[..8], *b"\x0b\x00\x00\x0a\x00\x00\x43\x00");
}

#[tokio::test]
async fn echo_v1_request_gets_v1_reply() {
    let (_sim, mut peer) = start(config()).await;
    // WRITE v1 (version bits 0), seq 7.
    peer.send(b"\x02\x00\x00\x06\x00\x00\x07\x00\xa1\x61d\x62hi")
        .await;
    assert_eq!(
        peer.recv().await,
        b"\x03\x00\x00\x07\x00\x00\x07\x00\xbf\x61r\x62hi\xff"
    );
    let reply = peer.call_v1(&echo("v1")).await;
    assert_eq!(reply.header.version, Version::V1);
    assert_eq!(reply.decode::<EchoResponse>().r, "v1");
}

// ---------------------------------------------------------------------------------
// 2. Unknown groups and commands, response ops
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_group_and_unknown_command_are_not_supported() {
    let (_sim, mut peer) = start(config()).await;
    let (header, frame) = peer.frame(Op::Read, 99, 0, &Empty);
    let reply = peer.exchange(&header, &frame).await;
    assert_eq!(reply.body, b"\xbf\x62rc\x08\xff");
    let (header, frame) = peer.frame(Op::Write, group::OS, 99, &Empty);
    let reply = peer.exchange(&header, &frame).await;
    assert_eq!(reply.value(), rc(8));
    // A user group (64+) the device does not serve: the same.
    let (header, frame) = peer.frame(Op::Write, group::USER_BASE, 0, &echo("x"));
    assert_eq!(peer.exchange(&header, &frame).await.value(), rc(8));
}

#[tokio::test]
async fn request_with_a_response_op_gets_an_rc_error() {
    let (sim, mut peer) = start(config()).await;
    for op in [Op::ReadRsp, Op::WriteRsp] {
        let (header, frame) = peer.frame(op, group::OS, command::os::ECHO, &echo("hi"));
        peer.send(&frame).await;
        let reply = Reply::parse(&peer.recv().await);
        // Zephyr refuses any op but read and write with ENOTSUP, in a write reply.
        let expected = Header {
            op: Op::WriteRsp,
            length: len16(reply.body.len()),
            ..header
        };
        assert_eq!(reply.header, expected);
        assert_eq!(reply.value(), rc(8), "a response op is not run");
    }
    // The device is still fine.
    assert_eq!(peer.ok(&echo("still")).await.r, "still");
    assert_eq!(sim.counters().processed, 3);
}

// ---------------------------------------------------------------------------------
// 3. Group errors by version
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn group_error_is_err_map_on_v2_and_translated_rc_on_v1() {
    let (_sim, mut peer) = start(config()).await;
    let read = ReadRequest {
        name: "nope/x".to_owned(),
        max_size: None,
    };
    let v2 = peer.call(&read).await;
    // SETTINGS_MGMT_ERR_ROOT_KEY_NOT_FOUND.
    assert_eq!(v2.value(), group_err(group::SETTINGS, 5));
    assert_eq!(
        v2.body, b"\xbf\x63err\xbf\x65group\x03\x62rc\x05\xff\xff",
        "Zephyr's indefinite maps"
    );
    let v1 = peer.call_v1(&read).await;
    // dispatch.rs translate (Zephyr 4.4.0's table): settings 5 → MGMT_ERR_EUNKNOWN.
    assert_eq!(v1.value(), rc(1));
    assert_eq!(v1.header.version, Version::V1);
}

// ---------------------------------------------------------------------------------
// 4. Datagrams and frames
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn two_frames_in_one_datagram_get_two_replies_in_order() {
    let (sim, mut peer) = start(config()).await;
    let (first, a) = peer.request(&echo("one"));
    let (second, b) = peer.request(&echo("two"));
    peer.send(&[a, b].concat()).await;
    let reply = Reply::parse(&peer.recv().await);
    reply.assert_answers(&first);
    assert_eq!(reply.decode::<EchoResponse>().r, "one");
    let reply = Reply::parse(&peer.recv().await);
    reply.assert_answers(&second);
    assert_eq!(reply.decode::<EchoResponse>().r, "two");
    let counters = sim.counters();
    assert_eq!((counters.received, counters.processed), (1, 1));
    assert_eq!(counters.replies_sent, 2);
}

#[tokio::test]
async fn frame_longer_than_its_datagram_is_ecorrupt() {
    let (_sim, mut peer) = start(config()).await;
    let (header, mut frame) = peer.frame(Op::Write, group::OS, 0, &echo("hello"));
    let longer = header.with_length(header.length + 10);
    frame[..header::SIZE].copy_from_slice(&longer.encode());
    let reply = peer.exchange(&longer, &frame).await;
    assert_eq!(reply.body, b"\xbf\x62rc\x09\xff");
    // The seq/group/command of a non-OS request are echoed too.
    let (header, mut frame) = peer.frame(Op::Read, group::IMAGE, 0, &Empty);
    let longer = header.with_length(100);
    frame[..header::SIZE].copy_from_slice(&longer.encode());
    let reply = peer.exchange(&longer, &frame).await;
    assert_eq!(
        (reply.header.group, reply.header.op),
        (group::IMAGE, Op::ReadRsp)
    );
    assert_eq!(reply.value(), rc(9));
}

#[tokio::test]
async fn datagram_longer_than_the_mtu_is_cut() {
    let (sim, mut peer) = start(SimConfig {
        mtu: 512,
        ..config()
    })
    .await;
    // A frame that fits: answered.
    let fits = "f".repeat(480);
    let (header, frame) = peer.request(&echo(&fits));
    assert!(frame.len() <= 512);
    let reply = peer.exchange(&header, &frame).await;
    assert_eq!(reply.decode::<EchoResponse>().r, fits);
    // A 600-byte frame: the device sees 512 bytes of it, so the frame is corrupt.
    let long = "x".repeat(586);
    let (header, frame) = peer.request(&echo(&long));
    assert_eq!(frame.len(), 600);
    let reply = peer.exchange(&header, &frame).await;
    assert_eq!(reply.value(), rc(9));
    assert_eq!(sim.counters().received, 2);
}

// ---------------------------------------------------------------------------------
// 5. The buffer pool and the single work queue
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn one_buffer_answers_every_request_with_enomem() {
    let (sim, mut peer) = start(SimConfig {
        buf_count: 1,
        ..config()
    })
    .await;
    let (header, frame) = peer.request(&echo("hello"));
    let reply = peer.exchange_retrying(&header, &frame).await;
    assert_eq!(reply.body, b"\xbf\x62rc\x02\xff");
    let (header, frame) = peer.request(&McumgrParamsRequest);
    let reply = peer.exchange_retrying(&header, &frame).await;
    assert_eq!(reply.value(), rc(2));
    let img = image(version(2, 0, 0), 4000, 1);
    let (header, frame) = peer.request(&first_chunk(&img));
    assert_eq!(peer.exchange_retrying(&header, &frame).await.value(), rc(2));
    assert_eq!(sim.upload_progress(), None, "a refused request is not run");
}

/// Sends a first upload chunk (2 s erase) and, once the work queue runs it, an echo.
async fn upload_then_echo_while_erasing(sim: &Sim, peer: &mut Peer) -> (Header, Header) {
    let img = image(version(2, 0, 0), 4000, 1);
    let (upload, frame) = peer.request(&first_chunk(&img));
    peer.send(&frame).await;
    // The work queue has taken the request and its reply buffer: the erase runs.
    wait_for(sim, "the upload to be processed", |c| c.processed == 1).await;
    let (echo_header, frame) = peer.request(&echo("meanwhile"));
    peer.send(&frame).await;
    wait_for(sim, "the echo to be received", |c| c.received == 2).await;
    (upload, echo_header)
}

#[tokio::test]
async fn two_buffers_drop_a_request_while_an_erase_holds_both() {
    let (sim, mut peer) = start(SimConfig {
        buf_count: 2,
        delays: Delays {
            erase: LONG_ERASE,
            ..Delays::default()
        },
        ..config()
    })
    .await;
    let (upload, _) = upload_then_echo_while_erasing(&sim, &mut peer).await;
    let counters = wait_for(&sim, "the drop", |c| c.dropped_no_buffer == 1).await;
    assert_eq!(counters.dropped_no_buffer, 1, "{counters:?}");
    assert_eq!(counters.processed, 1, "the echo never reaches the queue");
    // The upload is answered; the echo never is: the next reply answers a new echo.
    let reply = Reply::parse(&peer.recv().await);
    reply.assert_answers(&upload);
    assert_eq!(reply.value(), off_only(CHUNK));
    let (after, frame) = peer.request(&echo("after"));
    let reply = peer.exchange_retrying(&after, &frame).await;
    assert_eq!(reply.decode::<EchoResponse>().r, "after");
}

#[tokio::test]
async fn three_buffers_queue_a_request_behind_an_erase() {
    let (sim, mut peer) = start(SimConfig {
        buf_count: 3,
        delays: Delays {
            erase: LONG_ERASE,
            ..Delays::default()
        },
        ..config()
    })
    .await;
    let (upload, echo_header) = upload_then_echo_while_erasing(&sim, &mut peer).await;
    assert_eq!(sim.counters().dropped_no_buffer, 0);
    let reply = Reply::parse(&peer.recv().await);
    reply.assert_answers(&upload);
    assert_eq!(reply.value(), off_only(CHUNK));
    let reply = Reply::parse(&peer.recv().await);
    reply.assert_answers(&echo_header);
    assert_eq!(reply.decode::<EchoResponse>().r, "meanwhile");
    assert_eq!(sim.counters().processed, 2);
}

// ---------------------------------------------------------------------------------
// 6. Image upload rules (docs/protocol.md 5.7)
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn upload_without_mcuboot_magic_is_rejected() {
    let (sim, mut peer) = start(config()).await;
    let mut img = image(version(2, 0, 0), 4000, 1);
    img[0] ^= 0xff;
    let reply = peer.call(&first_chunk(&img)).await;
    assert_eq!(reply.value(), group_err(group::IMAGE, 23));
    assert_eq!(sim.upload_progress(), None);
    // Version 1: Zephyr's img_mgmt table translates IMG 23 to MGMT_ERR_EUNKNOWN.
    assert_eq!(peer.call_v1(&first_chunk(&img)).await.value(), rc(1));
}

#[tokio::test]
async fn upload_larger_than_the_slot_is_rejected() {
    let (sim, mut peer) = start(config()).await;
    let img = image(version(2, 0, 0), 4000, 1);
    let mut request = first_chunk(&img);
    request.len = Some(SLOT_SIZE as u64 + 1);
    assert_eq!(
        peer.call(&request).await.value(),
        group_err(group::IMAGE, 30)
    );
    // Exactly the slot size is fine.
    request.len = Some(SLOT_SIZE as u64);
    assert_eq!(peer.call(&request).await.value(), off_only(CHUNK));
    assert_eq!(
        sim.upload_progress(),
        Some((CHUNK as u64, SLOT_SIZE as u64))
    );
}

#[tokio::test]
async fn upgrade_to_a_version_not_newer_is_rejected() {
    let (sim, mut peer) = start(SimConfig {
        running_version: version(1, 2, 3),
        ..config()
    })
    .await;
    for older in [version(1, 2, 3), version(1, 2, 2), version(0, 9, 9)] {
        let img = image(older, 4000, 1);
        let mut request = first_chunk(&img);
        request.upgrade = Some(true);
        assert_eq!(
            peer.call(&request).await.value(),
            group_err(group::IMAGE, 27),
            "{older}"
        );
    }
    // Version 1: IMG 27 translates to MGMT_ERR_EBADSTATE.
    let img = image(version(1, 2, 3), 4000, 1);
    let mut request = first_chunk(&img);
    request.upgrade = Some(true);
    assert_eq!(peer.call_v1(&request).await.value(), rc(6));
    assert_eq!(sim.upload_progress(), None);
    // Without `upgrade` an older version is accepted, and a newer one with it.
    let img = image(version(1, 0, 0), 4000, 1);
    assert_eq!(peer.call(&first_chunk(&img)).await.value(), off_only(CHUNK));
    let img = image(version(1, 2, 4), 4000, 2);
    let mut request = first_chunk(&img);
    request.upgrade = Some(true);
    assert_eq!(peer.call(&request).await.value(), off_only(CHUNK));
}

#[tokio::test]
async fn chunk_at_the_wrong_offset_gets_the_expected_offset_and_is_not_written() {
    let (sim, mut peer) = start(config()).await;
    let img = image(version(2, 0, 0), 8000, 1);
    assert_eq!(peer.call(&first_chunk(&img)).await.value(), off_only(CHUNK));
    for wrong in [3 * CHUNK, CHUNK - 1, CHUNK + 1] {
        let request = UploadRequest::chunk(wrong as u64, &img[wrong..wrong + 100]);
        assert_eq!(peer.call(&request).await.value(), off_only(CHUNK));
    }
    let slot = sim.slot(1).expect("slot 1");
    assert_eq!(slot[..CHUNK], img[..CHUNK]);
    assert!(
        is_erased(&slot[CHUNK..]),
        "nothing written after the first chunk"
    );
    assert_eq!(
        sim.upload_progress(),
        Some((CHUNK as u64, img.len() as u64))
    );
}

#[tokio::test]
async fn data_past_len_is_an_overrun() {
    let (sim, mut peer) = start(config()).await;
    // 2552 bytes: the last chunk (504 bytes, one too many) fits a datagram.
    let img = image(version(2, 0, 0), 2000, 1);
    assert_eq!(img.len(), 2552);
    assert_eq!(peer.call(&first_chunk(&img)).await.value(), off_only(CHUNK));
    let chunk = UploadRequest::chunk(CHUNK as u64, &img[CHUNK..2 * CHUNK]);
    assert_eq!(peer.call(&chunk).await.value(), off_only(2 * CHUNK));
    // One byte more than the image has left.
    let too_much = [&img[2 * CHUNK..], &[0u8][..]].concat();
    let chunk = UploadRequest::chunk(2 * CHUNK as u64, &too_much);
    assert_eq!(peer.call(&chunk).await.value(), group_err(group::IMAGE, 31));
    assert!(is_erased(&sim.slot(1).expect("slot 1")[2 * CHUNK..]));
    // A first chunk longer than `len` is an overrun too.
    let mut first = first_chunk(&img);
    first.len = Some(CHUNK as u64 - 1);
    assert_eq!(peer.call(&first).await.value(), group_err(group::IMAGE, 31));
}

#[tokio::test]
async fn complete_upload_matches_and_fills_slot_1() {
    let (sim, mut peer) = start(config()).await;
    let img = image(version(1, 2, 0), 10_000, 7);
    let replies = upload_from(&mut peer, &img, 0).await;
    assert_eq!(replies.len(), img.len().div_ceil(CHUNK));
    let (last, others) = replies.split_last().expect("chunks");
    assert_eq!(
        *last,
        build(|v: &mut UploadResponse| {
            v.off = img.len() as u64;
            v.r#match = Some(true);
        })
    );
    assert!(others.iter().all(|r| r.r#match.is_none()));

    let slot = sim.slot(1).expect("slot 1");
    assert_eq!(slot.len(), SLOT_SIZE);
    assert_eq!(slot[..img.len()], img[..]);
    assert!(is_erased(&slot[img.len()..]));

    let state = sim.image_state();
    let secondary = slot_entry(&state, 1);
    assert_eq!(secondary.version, "1.2.0");
    assert_eq!(secondary.hash, Some(image_hash(&img)));
    assert_eq!(
        (
            secondary.active,
            secondary.pending,
            secondary.confirmed,
            secondary.permanent
        ),
        (Some(false), Some(false), Some(false), Some(false))
    );
    let primary = slot_entry(&state, 0);
    assert_eq!(primary.version, "1.0.0");
    assert_eq!(
        (primary.active, primary.confirmed),
        (Some(true), Some(true))
    );
    // The device reports the same over the wire.
    assert_eq!(peer.ok(&StateRequest).await, state);
}

#[tokio::test]
async fn a_finished_or_failed_upload_is_forgotten_as_on_zephyr() {
    let (sim, mut peer) = start(config()).await;
    let img = image(version(1, 2, 0), 3000, 7);
    upload(&mut peer, &img).await;
    assert_eq!(sim.upload_progress(), None, "complete: the state is reset");
    // A re-sent last chunk (its reply was lost) learns the device expects offset 0.
    let last = (img.len() - 1) / CHUNK * CHUNK;
    let again = UploadRequest::chunk(last as u64, &img[last..]);
    assert_eq!(peer.call(&again).await.value(), off_only(0));

    // An error ends the upload too.
    let mut first = first_chunk(&img);
    first.len = Some(CHUNK as u64 + 10);
    assert_eq!(peer.call(&first).await.value(), off_only(CHUNK));
    assert!(sim.upload_progress().is_some());
    let overrun = UploadRequest::chunk(CHUNK as u64, &img[CHUNK..CHUNK + 11]);
    assert_eq!(
        peer.call(&overrun).await.value(),
        group_err(group::IMAGE, 31)
    );
    assert_eq!(sim.upload_progress(), None);
}

#[tokio::test]
async fn upload_with_a_wrong_sha_does_not_match() {
    let (sim, mut peer) = start(config()).await;
    let img = image(version(1, 2, 0), 3000, 7);
    let mut first = first_chunk(&img);
    first.sha = Some(sha256(b"another image"));
    let reply: UploadResponse = peer.ok(&first).await;
    assert_eq!(reply.off, CHUNK as u64);
    let mut last = None;
    for off in (CHUNK..img.len()).step_by(CHUNK) {
        let end = (off + CHUNK).min(img.len());
        last = Some(
            peer.ok(&UploadRequest::chunk(off as u64, &img[off..end]))
                .await,
        );
    }
    assert_eq!(
        last,
        Some(build(|v: &mut UploadResponse| {
            v.off = img.len() as u64;
            v.r#match = Some(false);
        }))
    );
    assert_eq!(sim.slot(1).expect("slot 1")[..img.len()], img[..]);
}

#[tokio::test]
async fn first_chunk_with_the_same_sha_resumes_the_upload() {
    let (sim, mut peer) = start(config()).await;
    let img = image(version(1, 2, 0), 8000, 7);
    assert_eq!(peer.call(&first_chunk(&img)).await.value(), off_only(CHUNK));
    for off in [CHUNK, 2 * CHUNK] {
        let chunk = UploadRequest::chunk(off as u64, &img[off..off + CHUNK]);
        assert_eq!(peer.call(&chunk).await.value(), off_only(off + CHUNK));
    }
    let before = sim.slot(1).expect("slot 1");
    // The same first chunk again: the device answers with where it is.
    assert_eq!(
        peer.call(&first_chunk(&img)).await.value(),
        off_only(3 * CHUNK)
    );
    assert_eq!(sim.slot(1).expect("slot 1"), before, "nothing erased");
    assert_eq!(
        sim.upload_progress(),
        Some((3 * CHUNK as u64, img.len() as u64))
    );
    let rest = upload_from(&mut peer, &img, 3 * CHUNK).await;
    assert_eq!(rest.last().and_then(|r| r.r#match), Some(true));
    assert_eq!(sim.slot(1).expect("slot 1")[..img.len()], img[..]);
}

#[tokio::test]
async fn first_chunk_with_another_sha_restarts_the_upload() {
    let (sim, mut peer) = start(config()).await;
    let a = image(version(1, 2, 0), 8000, 7);
    let b = image(version(1, 3, 0), 8000, 8);
    assert_eq!(peer.call(&first_chunk(&a)).await.value(), off_only(CHUNK));
    let chunk = UploadRequest::chunk(CHUNK as u64, &a[CHUNK..2 * CHUNK]);
    assert_eq!(peer.call(&chunk).await.value(), off_only(2 * CHUNK));
    // Another image: the slot is erased and the upload starts over.
    assert_eq!(peer.call(&first_chunk(&b)).await.value(), off_only(CHUNK));
    let slot = sim.slot(1).expect("slot 1");
    assert_eq!(slot[..CHUNK], b[..CHUNK]);
    assert!(
        is_erased(&slot[CHUNK..]),
        "the first image's data is erased"
    );
    assert_eq!(sim.upload_progress(), Some((CHUNK as u64, b.len() as u64)));
    upload_from(&mut peer, &b, CHUNK).await;
    assert_eq!(slot_entry(&sim.image_state(), 1).version, "1.3.0");
}

#[tokio::test]
async fn reboot_forgets_the_upload_in_progress() {
    let (sim, mut peer) = start(config()).await;
    let img = image(version(1, 2, 0), 8000, 7);
    assert_eq!(peer.call(&first_chunk(&img)).await.value(), off_only(CHUNK));
    assert_eq!(
        sim.upload_progress(),
        Some((CHUNK as u64, img.len() as u64))
    );
    sim.reboot();
    assert_eq!(sim.upload_progress(), None);
    // The next chunk: the device wants a first chunk.
    let chunk = UploadRequest::chunk(CHUNK as u64, &img[CHUNK..2 * CHUNK]);
    assert_eq!(peer.call(&chunk).await.value(), off_only(0));
    // The same first chunk starts anew rather than resuming.
    assert_eq!(peer.call(&first_chunk(&img)).await.value(), off_only(CHUNK));
}

// ---------------------------------------------------------------------------------
// 7. Image state, reset and MCUboot's swap
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn test_boot_then_confirm_makes_the_new_image_permanent() {
    let (sim, mut peer) = start(config()).await;
    let old = sim.slot(0).expect("slot 0");
    let old_hash = slot_entry(&sim.image_state(), 0).hash.expect("a hash");
    let img = image(version(1, 2, 0), 10_000, 7);
    upload(&mut peer, &img).await;
    let hash = image_hash(&img);

    let state: StateResponse = peer
        .ok(&SetStateRequest {
            hash: Some(hash.clone()),
            confirm: false,
        })
        .await;
    let secondary = slot_entry(&state, 1);
    assert_eq!(secondary.hash.as_deref(), Some(&hash[..]));
    assert_eq!(
        (secondary.pending, secondary.permanent, secondary.active),
        (Some(true), Some(false), Some(false))
    );
    assert_eq!(state, sim.image_state());

    sim.reboot();
    let state = sim.image_state();
    let primary = slot_entry(&state, 0);
    assert_eq!(primary.version, "1.2.0");
    assert_eq!(primary.hash.as_deref(), Some(&hash[..]));
    assert_eq!(
        (primary.active, primary.confirmed),
        (Some(true), Some(false))
    );
    assert_eq!(sim.slot(0).expect("slot 0")[..img.len()], img[..]);
    assert_eq!(slot_entry(&state, 1).hash, Some(old_hash));
    assert_eq!(sim.slot(1).expect("slot 1"), old, "the old image is kept");

    let state: StateResponse = peer
        .ok(&SetStateRequest {
            hash: None,
            confirm: true,
        })
        .await;
    let primary = slot_entry(&state, 0);
    assert_eq!(
        (primary.version.as_str(), primary.confirmed),
        ("1.2.0", Some(true))
    );
    // Confirmed: the next boot keeps it.
    sim.reboot();
    let primary = slot_entry(&sim.image_state(), 0);
    assert_eq!(
        (primary.version.as_str(), primary.confirmed),
        ("1.2.0", Some(true))
    );
}

#[tokio::test]
async fn unconfirmed_test_image_reverts_on_the_next_boot() {
    let (sim, mut peer) = start(config()).await;
    let img = image(version(1, 2, 0), 10_000, 7);
    upload(&mut peer, &img).await;
    peer.ok(&SetStateRequest {
        hash: Some(image_hash(&img)),
        confirm: false,
    })
    .await;
    sim.reboot();
    assert_eq!(slot_entry(&sim.image_state(), 0).version, "1.2.0");
    sim.reboot();
    let state = sim.image_state();
    assert_eq!(slot_entry(&state, 0).version, "1.0.0");
    assert_eq!(slot_entry(&state, 0).confirmed, Some(true));
    assert_eq!(slot_entry(&state, 1).version, "1.2.0");
}

#[tokio::test]
async fn testing_the_active_image_and_unknown_hashes_are_refused() {
    let (sim, mut peer) = start(config()).await;
    let active = slot_entry(&sim.image_state(), 0).hash.expect("a hash");
    let reply = peer
        .call(&SetStateRequest {
            hash: Some(active.clone()),
            confirm: false,
        })
        .await;
    assert_eq!(reply.value(), group_err(group::IMAGE, 33));
    let reply = peer
        .call(&SetStateRequest {
            hash: Some(vec![0x42; 32].into()),
            confirm: true,
        })
        .await;
    assert_eq!(reply.value(), group_err(group::IMAGE, 8));
    // Version 1: both translate to MGMT_ERR_EUNKNOWN, as in Zephyr's img_mgmt table.
    let unknown = SetStateRequest {
        hash: Some(vec![0x42; 32].into()),
        confirm: true,
    };
    assert_eq!(peer.call_v1(&unknown).await.value(), rc(1));
    let test_active = SetStateRequest {
        hash: Some(active.clone()),
        confirm: false,
    };
    assert_eq!(peer.call_v1(&test_active).await.value(), rc(1));
    // Confirming the active image by its hash is fine.
    let state: StateResponse = peer
        .ok(&SetStateRequest {
            hash: Some(active),
            confirm: true,
        })
        .await;
    assert_eq!(slot_entry(&state, 0).confirmed, Some(true));
}

#[tokio::test]
async fn reset_is_answered_then_the_device_boots_the_pending_image() {
    let (sim, mut peer) = start(config()).await;
    let img = image(version(1, 2, 0), 10_000, 7);
    upload(&mut peer, &img).await;
    peer.ok(&SetStateRequest {
        hash: Some(image_hash(&img)),
        confirm: false,
    })
    .await;
    let reply = peer.call(&ResetRequest::default()).await;
    assert_eq!(reply.body, b"\xbf\xff");
    // The work queue reboots before it takes the next request.
    let state: StateResponse = peer.ok(&StateRequest).await;
    let primary = slot_entry(&state, 0);
    assert_eq!(primary.version, "1.2.0");
    assert_eq!(
        (primary.active, primary.confirmed),
        (Some(true), Some(false))
    );
    assert_eq!(slot_entry(&state, 1).version, "1.0.0");
    assert_eq!(state, sim.image_state());
}

// ---------------------------------------------------------------------------------
// 8. Erase and slot info
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn erase_empties_slot_1_and_slot_info_reports_both_slots() {
    let (sim, mut peer) = start(config()).await;
    let img = image(version(1, 2, 0), 10_000, 7);
    upload(&mut peer, &img).await;
    assert_eq!(sim.slot(1).expect("slot 1")[..img.len()], img[..]);
    let reply = peer.call(&EraseRequest { slot: Some(1) }).await;
    assert_eq!(reply.body, b"\xbf\xff");
    assert!(is_erased(&sim.slot(1).expect("slot 1")));
    let state = sim.image_state();
    assert_eq!(state.images.len(), 1);
    assert_eq!(state.images[0].slot, 0);
    // The running image's slot cannot be erased.
    let reply = peer.call(&EraseRequest { slot: Some(0) }).await;
    assert_eq!(reply.value(), group_err(group::IMAGE, 9));
    assert_eq!(slot_entry(&sim.image_state(), 0).version, "1.0.0");

    let info: SlotInfoResponse = peer.ok(&SlotInfoRequest).await;
    assert_eq!(info.images.len(), 1);
    let image0 = &info.images[0];
    assert_eq!(image0.image, 0);
    assert_eq!(
        image0
            .slots
            .iter()
            .map(|s| (s.slot, s.size))
            .collect::<Vec<_>>(),
        [(0, SLOT_SIZE as u64), (1, SLOT_SIZE as u64)]
    );
}

// ---------------------------------------------------------------------------------
// 9. File system
// ---------------------------------------------------------------------------------

fn file_upload<'a>(name: &str, off: usize, data: &'a [u8], len: Option<usize>) -> FileUpload<'a> {
    FileUpload {
        len: len.map(|l| l as u64),
        off: off as u64,
        data: Cow::Borrowed(data),
        name: name.to_owned(),
    }
}

/// Uploads `content` to `name` in two chunks and checks status, download and hashes.
async fn file_round_trip(peer: &mut Peer, name: &str, content: &[u8]) {
    let half = content.len() / 2;
    let reply: FileUploadResponse = peer
        .ok(&file_upload(name, 0, &content[..half], Some(content.len())))
        .await;
    assert_eq!(reply.off, half as u64);
    let reply: FileUploadResponse = peer
        .ok(&file_upload(name, half, &content[half..], None))
        .await;
    assert_eq!(reply.off, content.len() as u64);

    let status: StatusResponse = peer
        .ok(&StatusRequest {
            name: name.to_owned(),
        })
        .await;
    assert_eq!(status.len, content.len() as u64);

    let mut downloaded = Vec::new();
    let mut first = true;
    while downloaded.len() < content.len() {
        let reply: DownloadResponse = peer
            .ok(&DownloadRequest {
                off: downloaded.len() as u64,
                name: name.to_owned(),
            })
            .await;
        assert_eq!(reply.off, downloaded.len() as u64);
        let expected_len = first.then_some(content.len() as u64);
        assert_eq!(reply.len, expected_len, "only the first reply has len");
        assert!(!reply.data.is_empty());
        downloaded.extend_from_slice(&reply.data);
        first = false;
    }
    assert_eq!(downloaded, content);

    let sha: HashResponse = peer
        .ok(&HashRequest {
            name: name.to_owned(),
            r#type: Some("sha256".to_owned()),
            ..HashRequest::default()
        })
        .await;
    assert_eq!(
        sha,
        build(|v: &mut HashResponse| {
            v.len = content.len() as u64;
            // Zephyr gives `off` only when it is not 0.
            v.off = None;
            v.r#type = "sha256".to_owned();
            v.output = HashOutput::Bytes(sha256(content));
        })
    );
    let crc: HashResponse = peer
        .ok(&HashRequest {
            name: name.to_owned(),
            r#type: Some("crc32".to_owned()),
            ..HashRequest::default()
        })
        .await;
    assert_eq!(crc.output, HashOutput::Int(u64::from(crc32_ieee(content))));
    assert_eq!(
        (crc.r#type.as_str(), crc.len),
        ("crc32", content.len() as u64)
    );
    // Part of the file, and the default type (crc32, as Zephyr).
    let part: HashResponse = peer
        .ok(&HashRequest {
            name: name.to_owned(),
            off: Some(100),
            len: Some(500),
            ..HashRequest::default()
        })
        .await;
    assert_eq!(
        part,
        build(|v: &mut HashResponse| {
            v.len = 500;
            v.off = Some(100);
            v.r#type = "crc32".to_owned();
            v.output = HashOutput::Int(u64::from(crc32_ieee(&content[100..600])));
        })
    );
}

/// A chunk at another offset than the file's is refused with the offset the device
/// expects as `len` beside the error (version 2), and the file is closed: the chunk at
/// that offset is then taken (docs/protocol.md 2.1).
#[tokio::test]
async fn a_file_chunk_at_the_wrong_offset_is_refused_with_the_expected_offset() {
    let (sim, mut peer) = start(config()).await;
    let name = "/lfs1/refused.bin";
    let content = sample_body(400, 13);
    let reply: FileUploadResponse = peer
        .ok(&file_upload(name, 0, &content[..200], Some(400)))
        .await;
    assert_eq!(reply.off, 200);
    let reply = peer
        .call(&file_upload(name, 300, &content[300..], None))
        .await;
    let Value::Map(mut expected) = group_err(group::FS, 11) else {
        unreachable!("group_err is a map")
    };
    expected.push((text("len"), int(200)));
    assert_eq!(reply.value(), Value::Map(expected));
    let reply: FileUploadResponse = peer
        .ok(&file_upload(name, 200, &content[200..], None))
        .await;
    assert_eq!(reply.off, 400);
    // The refusal made the device forget the length: the file stays open until closed.
    assert_eq!(sim.file(name).map(|f| f.len()), Some(200));
    let _: Empty = peer.ok(&CloseRequest).await;
    assert_eq!(sim.file(name), Some(content));
}

#[tokio::test]
async fn file_upload_status_download_and_hashes() {
    let (sim, mut peer) = start(config()).await;
    assert_eq!(
        crc32_ieee(b"123456789"),
        0xcbf4_3926,
        "the CRC-32 check value"
    );
    // Two download replies: the device sends at most buf_size - 44 bytes per reply.
    let content = sample_body(2500, 11);
    file_round_trip(&mut peer, "/lfs1/data.bin", &content).await;
    assert_eq!(sim.file("/lfs1/data.bin"), Some(content.clone()));

    // Offsets and names the device refuses. A hash from the end of the file or past
    // it is FS 12.
    for off in [content.len(), content.len() + 1] {
        let reply = peer
            .call(&HashRequest {
                name: "/lfs1/data.bin".to_owned(),
                off: Some(off as u64),
                ..HashRequest::default()
            })
            .await;
        assert_eq!(reply.value(), group_err(group::FS, 12), "hash at {off}");
    }
    // A download there is an empty chunk, as Zephyr 4.4.0 answers (measured).
    for off in [content.len(), content.len() + 1] {
        let reply: DownloadResponse = peer
            .ok(&DownloadRequest {
                off: off as u64,
                name: "/lfs1/data.bin".to_owned(),
            })
            .await;
        assert_eq!(
            reply,
            build(|v: &mut DownloadResponse| {
                v.len = None;
                v.off = off as u64;
                v.data = Vec::new();
            })
        );
    }
    let reply = peer
        .call(&StatusRequest {
            name: "/lfs1/missing".to_owned(),
        })
        .await;
    assert_eq!(reply.value(), group_err(group::FS, 3));
    let reply = peer
        .call(&DownloadRequest {
            off: 0,
            name: "/lfs1/missing".to_owned(),
        })
        .await;
    assert_eq!(reply.value(), group_err(group::FS, 3));
    let reply = peer
        .call(&file_upload("/tmp/outside", 0, b"x", Some(1)))
        .await;
    assert_eq!(reply.value(), group_err(group::FS, 14));
    let reply = peer
        .call(&StatusRequest {
            name: "/etc/passwd".to_owned(),
        })
        .await;
    assert_eq!(reply.value(), group_err(group::FS, 14));
    assert_eq!(sim.file("/tmp/outside"), None);
}

#[tokio::test]
async fn file_system_in_a_folder_writes_the_file_to_disk() {
    let dir = TempDir::new("fs-root");
    let (sim, mut peer) = start(SimConfig {
        fs_root: Some(dir.path().to_owned()),
        ..config()
    })
    .await;
    let content = sample_body(2500, 12);
    file_round_trip(&mut peer, "/lfs1/sub/data.bin", &content).await;
    assert_eq!(
        std::fs::read(dir.path().join("sub").join("data.bin")).expect("the file on disk"),
        content
    );
    assert_eq!(sim.file("/lfs1/sub/data.bin"), Some(content));
    // A file put there by the host is served.
    std::fs::write(dir.path().join("host.txt"), b"from the host").expect("write");
    let status: StatusResponse = peer
        .ok(&StatusRequest {
            name: "/lfs1/host.txt".to_owned(),
        })
        .await;
    assert_eq!(status.len, 13);
    // `..` cannot leave the folder.
    let reply = peer
        .call(&file_upload("/lfs1/../escape", 0, b"x", Some(1)))
        .await;
    assert_eq!(reply.value(), group_err(group::FS, 2));
    assert!(!dir.path().join("..").join("escape").exists());
}

// ---------------------------------------------------------------------------------
// 10. Settings, OS parameters, enumeration, shell
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn settings_write_read_and_delete() {
    let (_sim, mut peer) = start(config()).await;
    let write = WriteRequest {
        val: vec![1, 2, 3],
        name: "sim/answer".to_owned(),
    };
    assert_eq!(peer.call(&write).await.body, b"\xbf\xff");
    let read = |max_size| ReadRequest {
        name: "sim/answer".to_owned(),
        max_size,
    };
    let value: ReadResponse = peer.ok(&read(None)).await;
    assert_eq!(value.val, [1, 2, 3]);
    let value: ReadResponse = peer.ok(&read(Some(2))).await;
    assert_eq!(value.val, [1, 2]);
    let delete = DeleteRequest {
        name: "sim/answer".to_owned(),
    };
    assert_eq!(peer.call(&delete).await.body, b"\xbf\xff");
    // SETTINGS_MGMT_ERR_KEY_NOT_FOUND, for reading and for deleting again.
    assert_eq!(
        peer.call(&read(None)).await.value(),
        group_err(group::SETTINGS, 3)
    );
    assert_eq!(
        peer.call(&delete).await.value(),
        group_err(group::SETTINGS, 3)
    );
    // No handler outside `sim/`.
    let other = WriteRequest {
        val: vec![1],
        name: "other/key".to_owned(),
    };
    assert_eq!(
        peer.call(&other).await.value(),
        group_err(group::SETTINGS, 5)
    );
}

#[tokio::test]
async fn os_params_report_the_configured_buffers() {
    let (_sim, mut peer) = start(SimConfig {
        buf_size: 1234,
        buf_count: 5,
        ..config()
    })
    .await;
    let params: McumgrParamsResponse = peer.ok(&McumgrParamsRequest).await;
    assert_eq!(
        params,
        build(|v: &mut McumgrParamsResponse| {
            v.buf_size = 1234;
            v.buf_count = 5;
        })
    );
}

#[tokio::test]
async fn enumeration_count_list_single_and_details_agree() {
    let (_sim, mut peer) = start(config()).await;
    let count: CountResponse = peer.ok(&CountRequest).await;
    let list: ListResponse = peer.ok(&ListRequest).await;
    assert_eq!(count.count as usize, list.groups.len());
    for served in [
        group::OS,
        group::IMAGE,
        group::STAT,
        group::SETTINGS,
        group::FS,
        group::SHELL,
        group::ENUM,
        group::ZEPHYR,
    ] {
        assert!(list.groups.contains(&served), "group {served} is listed");
    }
    for (index, group) in list.groups.iter().enumerate() {
        let single: SingleResponse = peer
            .ok(&SingleRequest {
                index: Some(index as u32),
            })
            .await;
        let last = index + 1 == list.groups.len();
        assert_eq!(
            single,
            build(|v: &mut SingleResponse| {
                v.group = *group;
                v.end = last.then_some(true);
            }),
            "index {index}"
        );
    }
    let reply = peer
        .call(&SingleRequest {
            index: Some(count.count),
        })
        .await;
    assert_eq!(reply.value(), group_err(group::ENUM, 4));
    let details: DetailsResponse = peer.ok(&DetailsRequest { groups: None }).await;
    assert_eq!(
        details.groups.iter().map(|g| g.group).collect::<Vec<_>>(),
        list.groups
    );
    assert!(details.groups.iter().all(|g| g.name.is_some()));
    let some: DetailsResponse = peer
        .ok(&DetailsRequest {
            groups: Some(vec![group::IMAGE]),
        })
        .await;
    assert_eq!(some.groups.len(), 1);
    assert_eq!(some.groups[0].group, group::IMAGE);
}

#[tokio::test]
async fn shell_runs_echo_and_reports_unknown_commands() {
    let (_sim, mut peer) = start(config()).await;
    let argv = |words: &[&str]| ExecRequest {
        argv: words.iter().map(|w| (*w).to_owned()).collect(),
    };
    let out: ExecResponse = peer.ok(&argv(&["echo", "hi"])).await;
    // Zephyr's shell starts its output with a new line.
    assert_eq!(
        out,
        build(|v: &mut ExecResponse| {
            v.o = "\r\nhi\r\n".to_owned();
            v.ret = 0;
        })
    );
    let out: ExecResponse = peer.ok(&argv(&["frobnicate", "now"])).await;
    assert_eq!(out.ret, -8);
    assert!(out.o.contains("frobnicate"), "{:?}", out.o);
}

// ---------------------------------------------------------------------------------
// 11. Faults
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn dropped_requests_are_never_answered() {
    let (sim, mut peer) = start(SimConfig {
        faults: Faults {
            drop_requests: 1.0,
            ..Faults::none()
        },
        ..config()
    })
    .await;
    for i in 0..5 {
        let (_, frame) = peer.request(&echo(&format!("lost {i}")));
        peer.send(&frame).await;
    }
    let counters = wait_for(&sim, "5 drops", |c| c.dropped_by_fault == 5).await;
    assert_eq!((counters.received, counters.processed), (5, 0));
    assert_eq!(counters.replies_sent, 0);
    sim.set_faults(Faults::none());
    // The first datagram to come back answers this echo, not one of the lost ones.
    let reply = peer.call(&echo("heard")).await;
    assert_eq!(reply.decode::<EchoResponse>().r, "heard");
}

#[tokio::test]
async fn duplicated_replies_arrive_twice() {
    let (sim, mut peer) = start(SimConfig {
        faults: Faults {
            duplicate_replies: 1.0,
            ..Faults::none()
        },
        ..config()
    })
    .await;
    for i in 0..3 {
        let (header, frame) = peer.request(&echo(&format!("twice {i}")));
        let first = peer.exchange(&header, &frame).await;
        let second = Reply::parse(&peer.recv().await);
        second.assert_answers(&header);
        assert_eq!(first.body, second.body);
    }
    assert_eq!(sim.counters().replies_sent, 6);
    assert_eq!(sim.counters().processed, 3, "the request ran once");
    sim.set_faults(Faults::none());
    let reply = peer.call(&echo("once")).await;
    assert_eq!(reply.decode::<EchoResponse>().r, "once");
}

#[tokio::test]
async fn corrupted_reply_differs_in_exactly_one_bit() {
    let (sim, peer) = start(config()).await;
    let payload = minicbor::to_vec(echo("a reply long enough to flip")).expect("encodes");
    let header = Header::new(Op::Write, group::OS, 0, len16(payload.len())).with_sequence(9);
    let request = raw_frame(&header, &payload);
    peer.send(&request).await;
    let clean = peer.recv().await;
    sim.set_faults(Faults {
        seed: 3,
        corrupt_replies: 1.0,
        ..Faults::none()
    });
    for _ in 0..5 {
        peer.send(&request).await;
        let corrupt = peer.recv().await;
        assert_eq!(corrupt.len(), clean.len());
        let flipped: u32 = clean
            .iter()
            .zip(&corrupt)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        assert_eq!(flipped, 1, "{clean:02x?} vs {corrupt:02x?}");
    }
}

/// Sends 200 echoes one at a time and returns the sequence numbers answered.
async fn answered_echoes(faults: Faults) -> Vec<u8> {
    let (sim, mut peer) = start(SimConfig { faults, ..config() }).await;
    let mut answered = Vec::new();
    for i in 0..200u64 {
        let (header, frame) = peer.request(&echo("seeded"));
        peer.send(&frame).await;
        // The device has decided: dropped, or run (and so answered).
        let counters = wait_for(&sim, "the echo to be dropped or run", |c| {
            c.dropped_by_fault + c.processed == i + 1
        })
        .await;
        if counters.processed > answered.len() as u64 {
            let reply = Reply::parse(&peer.recv().await);
            reply.assert_answers(&header);
            answered.push(header.sequence);
        }
    }
    let counters = sim.counters();
    assert_eq!(counters.received, 200);
    assert_eq!(counters.dropped_by_fault, 200 - answered.len() as u64);
    answered
}

#[tokio::test]
async fn same_seed_drops_the_same_requests() {
    let faults = |seed| Faults {
        seed,
        drop_requests: 0.3,
        ..Faults::none()
    };
    let a = answered_echoes(faults(42)).await;
    let b = answered_echoes(faults(42)).await;
    assert_eq!(a, b);
    assert!(
        (100..190).contains(&a.len()),
        "about 70% answered: {}",
        a.len()
    );
    let c = answered_echoes(faults(43)).await;
    assert_ne!(a, c, "another seed drops other requests");
}

#[tokio::test]
async fn silent_device_answers_nothing_until_the_window_ends() {
    let (sim, mut peer) = start(config()).await;
    let window = Duration::from_secs(2);
    let silent_from = Instant::now();
    sim.go_silent(window);
    let (_, frame) = peer.request(&echo("unheard"));
    peer.send(&frame).await;
    let counters = wait_for(&sim, "the drop", |c| c.dropped_by_fault == 1).await;
    assert_eq!(counters.processed, 0);
    sleep_until_after(silent_from + window).await;
    let reply = peer.call(&echo("heard")).await;
    assert_eq!(reply.decode::<EchoResponse>().r, "heard");
    assert_eq!(sim.counters().dropped_by_fault, 1);
}

async fn sleep_until_after(deadline: Instant) {
    tokio::time::sleep_until(deadline + Duration::from_millis(200)).await;
}

#[tokio::test]
async fn legacy_rc_adds_rc_0_to_successful_replies() {
    let (_sim, mut peer) = start(SimConfig {
        legacy_rc: true,
        ..config()
    })
    .await;
    let reply = peer.call(&echo("hello")).await;
    assert_eq!(reply.body, b"\xbf\x61r\x65hello\x62rc\x00\xff");
    assert_eq!(reply.decode::<EchoResponse>().r, "hello");
    let write = WriteRequest {
        val: vec![1],
        name: "sim/x".to_owned(),
    };
    assert_eq!(peer.call(&write).await.body, b"\xbf\x62rc\x00\xff");
    // Errors keep their own code, once.
    let (header, frame) = peer.frame(Op::Read, 99, 0, &Empty);
    assert_eq!(
        peer.exchange(&header, &frame).await.body,
        b"\xbf\x62rc\x08\xff"
    );
}

// ---------------------------------------------------------------------------------
// 12. Garbage
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn garbage_never_kills_the_device() {
    let (sim, peer) = start(config()).await;
    let mut rng = Rng(0x5eed_0bad);
    let groups = [0u16, 1, 2, 3, 8, 9, 10, 63, 64, 99];
    for i in 0..400 {
        let datagram = if i % 2 == 0 {
            // Anything at all, empty included.
            let len = rng.below(3001) as usize;
            rng.bytes(len)
        } else {
            // A plausible header (sometimes lying about the length) before random CBOR.
            let len = rng.below(1400) as usize;
            let mut payload = rng.bytes(len);
            if let Some(first) = payload.first_mut() {
                *first = 0xa0 | (*first & 0x1f);
            }
            let announced = if rng.below(4) == 0 {
                rng.below(65_536) as u16
            } else {
                len16(len)
            };
            let mut header = Header::new(
                if rng.below(2) == 0 {
                    Op::Read
                } else {
                    Op::Write
                },
                groups[rng.below(groups.len() as u64) as usize],
                rng.below(10) as u8,
                announced,
            )
            .with_sequence(rng.next() as u8)
            .encode();
            header[0] |= (rng.next() as u8) & 0xf8;
            [&header[..], &payload].concat()
        };
        peer.send(&datagram).await;
        if i % 8 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Whatever the garbage did, a valid echo is answered (the device may still be
    // busy with garbage, or the pool full: ask again until it answers).
    let payload = minicbor::to_vec(echo("still alive")).expect("encodes");
    let header = Header::new(Op::Write, group::OS, 0, len16(payload.len())).with_sequence(0xee);
    let frame = raw_frame(&header, &payload);
    let deadline = Instant::now() + PATIENCE;
    let mut alive = false;
    'ask: while Instant::now() < deadline {
        peer.send(&frame).await;
        while let Some(bytes) = peer.recv_within(Duration::from_millis(500)).await {
            let Ok(reply_header) = Header::decode(&bytes) else {
                continue;
            };
            if header.is_answered_by(&reply_header)
                && bytes[header::SIZE..] == *b"\xbf\x61r\x6bstill alive\xff"
            {
                alive = true;
                break 'ask;
            }
        }
    }
    assert!(
        alive,
        "the device answers after garbage: {:?}",
        sim.counters()
    );
    let counters = sim.counters();
    assert!(
        counters.received > 0 && counters.processed > 0,
        "{counters:?}"
    );
}
