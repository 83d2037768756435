//! Golden frames from the Python reference (`smp` 4.2.0), made by
//! `scripts/gen_vectors.py` into `vectors.txt`: every request (and a set of responses)
//! built here from the same values must encode to the same bytes, header included.

use std::borrow::ToOwned;

use std::string::String;
use std::vec::Vec;
use std::{format, vec};

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use minicbor::{Decode, Encode};
use smp_header::{Header, Version};

use super::test_util::{hex, pattern};
use super::*;
use crate::Request;

const VECTORS: &str = include_str!("vectors.txt");

fn vectors() -> BTreeMap<&'static str, Vec<u8>> {
    VECTORS
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, frame) = l.split_once(' ').expect("`name hex` line");
            (name, hex(frame))
        })
        .collect()
}

/// Compares frames and remembers which vectors were checked.
struct Golden {
    vectors: BTreeMap<&'static str, Vec<u8>>,
    checked: BTreeSet<&'static str>,
}

impl Golden {
    fn new() -> Self {
        Self {
            vectors: vectors(),
            checked: BTreeSet::new(),
        }
    }

    fn expect(&mut self, name: &'static str, frame: &[u8]) -> &[u8] {
        let want = self
            .vectors
            .get(name)
            .unwrap_or_else(|| panic!("no vector {name}"));
        assert_eq!(
            hex_string(frame),
            hex_string(want),
            "{name}: ours (left) differs from the reference (right)"
        );
        assert!(self.checked.insert(name), "{name} checked twice");
        &want[smp_header::SIZE..]
    }

    /// A request: header from its `Request` constants, sequence 0, version 2.
    fn request<R: Request + Debug + PartialEq + for<'b> Decode<'b, ()>>(
        &mut self,
        name: &'static str,
        request: &R,
    ) {
        let payload = minicbor::to_vec(request).expect("encodes");
        let frame = with_header(R::OP, R::GROUP, R::COMMAND, payload);
        let reference = self.expect(name, &frame);
        let decoded: R = minicbor::decode(reference).expect("decodes the reference");
        assert_eq!(&decoded, request, "{name}");
    }

    /// A response to `R`: the response op, decoded back from the reference too.
    fn response<R: Request>(&mut self, name: &'static str, response: &R::Response)
    where
        R::Response: Encode<()> + Debug + PartialEq,
    {
        let payload = minicbor::to_vec(response).expect("encodes");
        let frame = with_header(R::OP.response(), R::GROUP, R::COMMAND, payload);
        let reference = self.expect(name, &frame);
        let decoded: R::Response = minicbor::decode(reference).expect("decodes the reference");
        assert_eq!(&decoded, response, "{name}");
    }
}

fn with_header(op: smp_header::Op, group: u16, command: u8, payload: Vec<u8>) -> Vec<u8> {
    let len = u16::try_from(payload.len()).expect("fits a frame");
    let header = Header::new(op, group, command, len)
        .with_version(Version::V2)
        .with_sequence(0);
    let mut frame = header.encode().to_vec();
    frame.extend(payload);
    frame
}

fn hex_string(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha() -> Vec<u8> {
    pattern(32, 0x55)
}

fn first_chunk() -> Vec<u8> {
    let mut v = vec![0x3d, 0xb8, 0xf3, 0x96];
    v.extend(pattern(60, 1));
    v
}

#[test]
fn protocol_md_vectors() {
    // docs/protocol.md section 1.
    let echo = os::EchoRequest { d: "hello".into() };
    assert_eq!(
        minicbor::to_vec(&echo).expect("encodes"),
        hex("a161646568656c6c6f")
    );
    assert_eq!(
        minicbor::to_vec(os::McumgrParamsRequest).expect("encodes"),
        hex("a0")
    );
    assert_eq!(
        minicbor::to_vec(image::StateRequest).expect("encodes"),
        hex("a0")
    );
    let mut g = Golden::new();
    g.request("os_echo", &echo);
    assert_eq!(
        g.vectors["os_echo"],
        hex("0a00000900000000 a161646568656c6c6f")
    );
    let r: os::EchoResponse = minicbor::decode(&hex("bf6172626869ff")).expect("decodes");
    assert_eq!(r.r, "hi");
}

#[test]
#[allow(clippy::too_many_lines, reason = "one line per vector")]
fn every_reference_vector_matches() {
    let mut g = Golden::new();
    let name = "/lfs1/a.txt";

    // OS
    g.request("os_echo", &os::EchoRequest { d: "hello".into() });
    g.request("os_echo_empty", &os::EchoRequest { d: String::new() });
    g.request("os_echo_long", &os::EchoRequest { d: "x".repeat(300) });
    g.request("os_taskstat", &os::TaskStatRequest);
    g.request("os_mpstat", &os::MpStatRequest);
    g.request("os_datetime_read", &os::DateTimeRequest);
    g.request(
        "os_datetime_write",
        &os::SetDateTimeRequest {
            datetime: "2025-01-02T03:04:05".into(),
        },
    );
    g.request("os_reset", &os::ResetRequest::default());
    g.request(
        "os_reset_force",
        &os::ResetRequest {
            force: Some(1),
            boot_mode: None,
        },
    );
    g.request(
        "os_reset_force_boot_mode",
        &os::ResetRequest {
            force: Some(1),
            boot_mode: Some(1),
        },
    );
    g.request(
        "os_reset_boot_mode",
        &os::ResetRequest {
            force: None,
            boot_mode: Some(200),
        },
    );
    g.request("os_mcumgr_params", &os::McumgrParamsRequest);
    g.request("os_info", &os::InfoRequest::default());
    g.request(
        "os_info_format",
        &os::InfoRequest {
            format: Some("snrv".into()),
        },
    );
    g.request("os_bootloader_info", &os::BootloaderInfoRequest::default());
    g.request(
        "os_bootloader_info_mode",
        &os::BootloaderInfoRequest {
            query: Some("mode".into()),
        },
    );

    // Image
    g.request("image_state_read", &image::StateRequest);
    g.request(
        "image_state_confirm",
        &image::SetStateRequest {
            hash: None,
            confirm: true,
        },
    );
    g.request(
        "image_state_test",
        &image::SetStateRequest {
            hash: Some(sha().into()),
            confirm: false,
        },
    );
    let first = first_chunk();
    g.request(
        "image_upload_first",
        &image::UploadRequest {
            image: Some(0),
            upgrade: Some(false),
            ..image::UploadRequest::first(&first, 429_552, Some(sha()))
        },
    );
    g.request(
        "image_upload_first_upgrade",
        &image::UploadRequest {
            image: Some(1),
            upgrade: Some(true),
            ..image::UploadRequest::first(&first, 70_000, None)
        },
    );
    let next = pattern(100, 2);
    g.request(
        "image_upload_next",
        &image::UploadRequest::chunk(1387, &next),
    );
    let far = pattern(300, 3);
    g.request(
        "image_upload_far",
        &image::UploadRequest::chunk(200_000, &far),
    );
    g.request("image_erase", &image::EraseRequest::default());
    g.request("image_erase_slot", &image::EraseRequest { slot: Some(1) });

    // Statistics
    g.request(
        "stat_group_data",
        &stat::GroupDataRequest {
            name: "smp_svr_stats".into(),
        },
    );
    g.request("stat_list", &stat::ListRequest);

    // Settings
    g.request(
        "settings_read",
        &settings::ReadRequest {
            name: "app/name".into(),
            max_size: None,
        },
    );
    g.request(
        "settings_read_max",
        &settings::ReadRequest {
            name: "app/name".into(),
            max_size: Some(64),
        },
    );
    g.request(
        "settings_write",
        &settings::WriteRequest {
            val: vec![1, 2, 0xff],
            name: "app/name".into(),
        },
    );
    g.request(
        "settings_delete",
        &settings::DeleteRequest {
            name: "app/name".into(),
        },
    );
    g.request("settings_commit", &settings::CommitRequest);
    g.request("settings_load", &settings::LoadRequest);
    g.request("settings_save", &settings::SaveRequest);

    // File system
    g.request(
        "fs_download",
        &fs::DownloadRequest {
            off: 0,
            name: name.into(),
        },
    );
    g.request(
        "fs_download_later",
        &fs::DownloadRequest {
            off: 4096,
            name: name.into(),
        },
    );
    let data = pattern(40, 4);
    g.request(
        "fs_upload_first",
        &fs::UploadRequest {
            len: Some(1000),
            off: 0,
            data: Cow::Borrowed(&data),
            name: name.into(),
        },
    );
    let data = pattern(30, 5);
    g.request(
        "fs_upload_next",
        &fs::UploadRequest {
            len: None,
            off: 40,
            data: Cow::Borrowed(&data),
            name: name.into(),
        },
    );
    g.request("fs_status", &fs::StatusRequest { name: name.into() });
    g.request(
        "fs_hash",
        &fs::HashRequest {
            name: name.into(),
            ..fs::HashRequest::default()
        },
    );
    g.request(
        "fs_hash_all",
        &fs::HashRequest {
            len: Some(100),
            off: Some(10),
            name: name.into(),
            r#type: Some("sha256".into()),
        },
    );
    g.request("fs_supported_hashes", &fs::SupportedHashTypesRequest);
    g.request("fs_close", &fs::CloseRequest);

    // Shell
    g.request(
        "shell_exec",
        &shell::ExecRequest {
            argv: vec!["kernel".into(), "uptime".into()],
        },
    );
    g.request("shell_exec_empty", &shell::ExecRequest { argv: vec![] });

    // Enumeration
    g.request("enum_count", &enumeration::CountRequest);
    g.request("enum_list", &enumeration::ListRequest);
    g.request("enum_single", &enumeration::SingleRequest::default());
    g.request(
        "enum_single_index",
        &enumeration::SingleRequest { index: Some(3) },
    );
    g.request("enum_details", &enumeration::DetailsRequest::default());
    g.request(
        "enum_details_groups",
        &enumeration::DetailsRequest {
            groups: Some(vec![0, 1, 63, 64]),
        },
    );

    // Zephyr
    g.request("zephyr_erase_storage", &zephyr::EraseStorageRequest);

    // Responses
    g.response::<os::EchoRequest>("rsp_os_echo", &os::EchoResponse { r: "hi".into() });
    let tasks = [
        (
            "idle",
            os::TaskInfo {
                tid: 1,
                prio: 15,
                state: 0,
                stksiz: Some(64),
                stkuse: Some(40),
                ..Default::default()
            },
        ),
        (
            "main",
            os::TaskInfo {
                tid: 2,
                prio: -1,
                state: 8,
                cswcnt: Some(7),
                stksiz: Some(256),
                stkuse: Some(100),
                runtime: Some(1234),
                ..Default::default()
            },
        ),
        (
            "logging",
            os::TaskInfo {
                tid: 3,
                prio: 14,
                state: 2,
                ..Default::default()
            },
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    g.response::<os::TaskStatRequest>("rsp_os_taskstat", &os::TaskStatResponse { tasks });
    let pools = [
        (
            "pool0",
            os::PoolInfo {
                min: 1,
                nblks: 8,
                nfree: 3,
                blksize: 32,
            },
        ),
        (
            "big",
            os::PoolInfo {
                min: 0,
                nblks: 2,
                nfree: 2,
                blksize: 4096,
            },
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    g.response::<os::MpStatRequest>("rsp_os_mpstat", &os::MpStatResponse { pools });
    g.response::<os::DateTimeRequest>(
        "rsp_os_datetime",
        &os::DateTimeResponse {
            datetime: "2025-01-02T03:04:05".into(),
        },
    );
    g.response::<os::ResetRequest>("rsp_empty", &Empty);
    g.response::<os::McumgrParamsRequest>(
        "rsp_os_mcumgr_params",
        &os::McumgrParamsResponse {
            buf_size: 2048,
            buf_count: 2,
        },
    );
    g.response::<os::InfoRequest>(
        "rsp_os_info",
        &os::InfoResponse {
            output: "Zephyr".into(),
        },
    );
    g.response::<os::BootloaderInfoRequest>(
        "rsp_os_bootloader_info",
        &os::BootloaderInfoResponse {
            bootloader: Some("MCUboot".into()),
            ..Default::default()
        },
    );
    g.response::<image::StateRequest>(
        "rsp_image_state",
        &image::StateResponse {
            images: vec![
                image::ImageState {
                    hash: Some(sha().into()),
                    slot: 0,
                    image: Some(0),
                    active: Some(true),
                    version: "1.2.3".into(),
                    bootable: Some(true),
                    confirmed: Some(true),
                    ..Default::default()
                },
                image::ImageState {
                    slot: 1,
                    pending: Some(true),
                    version: "1.3.0".into(),
                    permanent: Some(false),
                    ..Default::default()
                },
            ],
            split_status: Some(0),
        },
    );
    g.response::<image::UploadRequest<'_>>(
        "rsp_image_upload",
        &image::UploadResponse {
            off: 1387,
            r#match: None,
        },
    );
    g.response::<image::UploadRequest<'_>>(
        "rsp_image_upload_match",
        &image::UploadResponse {
            off: 429_552,
            r#match: Some(true),
        },
    );
    let fields = [("stat1", 3), ("s0", 70_000), ("stat0", 0)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    g.response::<stat::GroupDataRequest>(
        "rsp_stat_group_data",
        &stat::GroupDataResponse {
            name: "smp_svr_stats".into(),
            fields,
        },
    );
    g.response::<stat::ListRequest>(
        "rsp_stat_list",
        &stat::ListResponse {
            stat_list: vec!["smp_svr_stats".into(), "net".into()],
        },
    );
    g.response::<settings::ReadRequest>(
        "rsp_settings_read",
        &settings::ReadResponse {
            val: b"abc".to_vec(),
            max_size: None,
        },
    );
    g.response::<fs::DownloadRequest>(
        "rsp_fs_download",
        &fs::DownloadResponse {
            len: Some(1000),
            off: 0,
            data: pattern(20, 6),
        },
    );
    g.response::<fs::UploadRequest<'_>>("rsp_fs_upload", &fs::UploadResponse { off: 40 });
    g.response::<fs::StatusRequest>("rsp_fs_status", &fs::StatusResponse { len: 1000 });
    g.response::<fs::HashRequest>(
        "rsp_fs_hash_sha256",
        &fs::HashResponse {
            len: 1000,
            off: None,
            r#type: "sha256".into(),
            output: fs::HashOutput::Bytes(sha()),
        },
    );
    g.response::<fs::HashRequest>(
        "rsp_fs_hash_crc32",
        &fs::HashResponse {
            len: 100,
            off: Some(10),
            r#type: "crc32".into(),
            output: fs::HashOutput::Int(0xdead_beef),
        },
    );
    let types = [
        (
            "sha256",
            fs::HashTypeInfo {
                size: 32,
                format: 1,
            },
        ),
        ("crc32", fs::HashTypeInfo { size: 4, format: 0 }),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    g.response::<fs::SupportedHashTypesRequest>(
        "rsp_fs_supported_hashes",
        &fs::SupportedHashTypesResponse { types },
    );
    g.response::<shell::ExecRequest>(
        "rsp_shell_exec",
        &shell::ExecResponse {
            o: "uptime: 42".into(),
            ret: 0,
        },
    );
    g.response::<enumeration::CountRequest>(
        "rsp_enum_count",
        &enumeration::CountResponse { count: 4 },
    );
    g.response::<enumeration::ListRequest>(
        "rsp_enum_list",
        &enumeration::ListResponse {
            groups: vec![0, 2, 9, 63],
        },
    );
    g.response::<enumeration::SingleRequest>(
        "rsp_enum_single",
        &enumeration::SingleResponse {
            end: Some(true),
            group: 63,
        },
    );
    g.response::<enumeration::DetailsRequest>(
        "rsp_enum_details",
        &enumeration::DetailsResponse {
            groups: vec![
                enumeration::GroupDetails {
                    name: Some("os mgmt".into()),
                    group: 0,
                    handlers: Some(9),
                },
                enumeration::GroupDetails {
                    group: 64,
                    ..Default::default()
                },
            ],
        },
    );

    let unchecked: Vec<_> = g
        .vectors
        .keys()
        .filter(|k| !g.checked.contains(*k))
        .collect();
    assert!(
        unchecked.is_empty(),
        "vectors without a test: {unchecked:?}"
    );
}

#[test]
fn upload_chunk_sizes_match_protocol_md() {
    // docs/protocol.md 5.8: with 1472-byte frames and a 429,552-byte image the reference
    // sends 1387 data bytes first, 1448 at offset 1387 and 1446 at offset 200,000.
    fn data_room(request: &image::UploadRequest<'_>) -> usize {
        let avail = 1472 - smp_header::SIZE - minicbor::len(request);
        let extra = match avail {
            0..=23 => 0,
            24..=0xff => 1,
            0x100..=0xffff => 2,
            _ => 4,
        };
        avail - extra
    }
    let first = image::UploadRequest {
        image: Some(0),
        upgrade: Some(false),
        ..image::UploadRequest::first(&[], 429_552, Some(sha()))
    };
    // The reference measures the request with empty data and its header (8 bytes).
    assert_eq!(data_room(&first), 1387);
    assert_eq!(data_room(&image::UploadRequest::chunk(1387, &[])), 1448);
    assert_eq!(data_room(&image::UploadRequest::chunk(200_000, &[])), 1446);
}
