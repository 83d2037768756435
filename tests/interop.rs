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

// ---------------------------------------------------------------------------------
// The client against the real IPv4 server (groups os, stat, settings, fs, shell, enum,
// zephyr; buf_size 2048, buf_count 2; littlefs of 16 KiB at /lfs1).

use std::collections::BTreeSet;

use smp_client::messages::{enumeration, fs, image, os, settings};
use smp_client::{Client, ClientError, ClientOptions};
use smp_integration_tests::zephyr_sample::{self, expect_device_error};

async fn client(var: &str) -> Client<UdpTransport> {
    init_tracing();
    let target: UdpTarget = interop_server(var).parse().unwrap();
    Client::connect_udp(target, ClientOptions::default())
        .await
        .unwrap()
}

#[tokio::test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
async fn zephyr_udp4_params_size_frames() {
    let client = client(INTEROP_UDP4).await;
    let params = client
        .read_params()
        .await
        .unwrap()
        .expect("the server reports parameters");
    assert_eq!((params.buf_size, params.buf_count), (2048, 2));
    assert_eq!(client.frame_limit(), 1472, "min(1500 - 28, 2048)");
    assert_eq!(client.buf_count(), Some(2));
}

#[tokio::test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
async fn zephyr_udp4_echo_short_and_at_the_frame_limit() {
    let client = client(INTEROP_UDP4).await;
    let reply = client
        .request(&os::EchoRequest { d: "hi".into() })
        .await
        .unwrap();
    assert_eq!(reply.r, "hi");
    // 8 B header + a1 + 61 64 + 79 xx xx + text = 1472 B.
    let longest = "z".repeat(1472 - 14);
    let reply = client
        .request(&os::EchoRequest { d: longest.clone() })
        .await
        .unwrap();
    assert_eq!(reply.r, longest);
    let too_long = os::EchoRequest {
        d: "z".repeat(1472 - 13),
    };
    match client.request(&too_long).await {
        Err(ClientError::FrameTooLarge {
            len: 1473,
            max: 1472,
        }) => {}
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
async fn zephyr_udp4_os_task_and_memory_statistics() {
    let client = client(INTEROP_UDP4).await;
    let tasks = client.request(&os::TaskStatRequest).await.unwrap().tasks;
    assert!(tasks.contains_key("smp_udp4"), "tasks: {:?}", tasks.keys());
    assert!(tasks.values().all(|t| t.stksiz.is_some()));
    // This build has no memory pools: a typed "not supported".
    assert!(expect_device_error(client.request(&os::MpStatRequest).await).is_not_supported());
    let info = client
        .request(&os::InfoRequest { format: None })
        .await
        .unwrap();
    assert_eq!(info.output, "Zephyr");
}

#[tokio::test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
async fn zephyr_udp4_stats_list_and_group() {
    zephyr_sample::stats_list_and_group(&client(INTEROP_UDP4).await).await;
}

#[tokio::test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
async fn zephyr_udp4_settings_write_read_delete() {
    let client = client(INTEROP_UDP4).await;
    // The sample registers no settings handler: every key's root is unknown, and the
    // device says so in its settings error table.
    zephyr_sample::settings_have_no_handler(&client).await;
    let delete = settings::DeleteRequest {
        name: "smp/interop".into(),
    };
    let err = expect_device_error(client.request(&delete).await);
    assert_eq!(err.name(), Some("KEY_NOT_FOUND"));
}

#[tokio::test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
async fn zephyr_udp4_file_upload_download_status_hash() {
    let client = client(INTEROP_UDP4).await;
    let data: Vec<u8> = (0..6000u32).map(|i| (i * 13 % 256) as u8).collect();
    let trip = zephyr_sample::fs_round_trip(&client, "/lfs1/interop.bin", &data).await;
    assert_eq!((trip.upload.len, trip.progress), (6000, 6000));
    for summary in [&trip.upload, &trip.download] {
        assert_eq!(
            summary.verified_with,
            Some(smp_client::HashAlgorithm::Sha256)
        );
    }
    let types = client
        .request(&fs::SupportedHashTypesRequest)
        .await
        .unwrap();
    assert!(types.types.contains_key("sha256") && types.types.contains_key("crc32"));
}

/// How the device keeps an upload's file between chunks, which the client's file upload
/// relies on (the simulator is held to the same checks).
#[tokio::test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
async fn zephyr_udp4_file_upload_state_between_chunks() {
    let client = client(INTEROP_UDP4).await;
    zephyr_sample::fs_upload_state(&client, "/lfs1/interop-state.bin").await;
}

#[tokio::test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
async fn zephyr_udp4_shell_exec() {
    zephyr_sample::shell_exec(&client(INTEROP_UDP4).await).await;
}

#[tokio::test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
async fn zephyr_udp4_enumeration() {
    let client = client(INTEROP_UDP4).await;
    let groups: BTreeSet<u16> = client
        .request(&enumeration::ListRequest)
        .await
        .unwrap()
        .groups
        .into_iter()
        .collect();
    assert_eq!(groups, BTreeSet::from([0, 2, 3, 8, 9, 10, 63]));
    let count = client.request(&enumeration::CountRequest).await.unwrap();
    assert_eq!(count.count as usize, groups.len());
    let first = client
        .request(&enumeration::SingleRequest { index: Some(0) })
        .await
        .unwrap();
    assert!(groups.contains(&first.group));
    let details = client
        .request(&enumeration::DetailsRequest { groups: None })
        .await
        .unwrap();
    let os = details
        .groups
        .iter()
        .find(|g| g.group == 0)
        .expect("OS group details");
    assert_eq!(os.name.as_deref(), Some("os mgmt"));
}

#[tokio::test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
async fn zephyr_udp4_unsupported_command_is_a_typed_error() {
    let client = client(INTEROP_UDP4).await;
    let err = expect_device_error(client.request(&image::StateRequest).await);
    assert!(err.is_not_supported(), "{err}");
    assert_eq!(err.to_string(), "MGMT 8 ENOTSUP");
}

#[tokio::test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
async fn zephyr_udp4_two_clients_at_once_get_their_own_replies() {
    let (a, b) = tokio::join!(client(INTEROP_UDP4), client(INTEROP_UDP4));
    let run = |client: Client<UdpTransport>, tag: &'static str| async move {
        for i in 0..20 {
            let text = format!("{tag}-{i}");
            let reply = client
                .request(&os::EchoRequest { d: text.clone() })
                .await
                .unwrap();
            assert_eq!(reply.r, text);
        }
    };
    tokio::join!(run(a, "a"), run(b, "b"));
}

// The IPv6 server (groups os, stat, enum).

#[tokio::test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
async fn zephyr_udp6_echo_and_stats() {
    let client = client(INTEROP_UDP6).await;
    assert!(client.transport().is_ipv6());
    assert_eq!(client.frame_limit(), 1452, "min(1500 - 48, 2048)");
    assert_eq!(client.echo("over v6").await.unwrap(), "over v6");
    zephyr_sample::stats_list_and_group(&client).await;
}

#[tokio::test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
async fn zephyr_udp4_settings_commit_load_save() {
    let client = client(INTEROP_UDP4).await;
    client.request(&settings::CommitRequest).await.unwrap();
    client.request(&settings::LoadRequest).await.unwrap();
    // Save answers a group code its table does not define (the Python reference fails to
    // parse this reply); it still arrives as a typed error with its number.
    let err = expect_device_error(client.request(&settings::SaveRequest).await);
    assert_eq!(
        (err.group, err.rc, err.scope),
        (group::SETTINGS, 8, smp_client::ErrorScope::Group)
    );
    assert_eq!(err.name(), None);
    assert_eq!(err.to_string(), "SETTINGS 8");
}

#[tokio::test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
async fn zephyr_udp4_commands_this_build_leaves_out() {
    let client = client(INTEROP_UDP4).await;
    assert!(expect_device_error(client.request(&os::DateTimeRequest).await).is_not_supported());
    let bootloader = os::BootloaderInfoRequest { query: None };
    assert!(expect_device_error(client.request(&bootloader).await).is_not_supported());
}

#[tokio::test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
async fn zephyr_udp4_enumeration_by_index() {
    let client = client(INTEROP_UDP4).await;
    let last = client
        .request(&enumeration::SingleRequest { index: Some(6) })
        .await
        .unwrap();
    assert_eq!((last.group, last.end), (group::ZEPHYR, Some(true)));
    let err = expect_device_error(
        client
            .request(&enumeration::SingleRequest { index: Some(7) })
            .await,
    );
    assert_eq!(
        (err.group, err.name()),
        (group::ENUM, Some("INDEX_TOO_LARGE"))
    );
    let some = client
        .request(&enumeration::DetailsRequest {
            groups: Some(vec![0, 63]),
        })
        .await
        .unwrap();
    let names: Vec<_> = some
        .groups
        .iter()
        .map(|g| (g.group, g.name.as_deref()))
        .collect();
    assert_eq!(
        names,
        [(0, Some("os mgmt")), (63, Some("zephyr basic mgmt"))]
    );
}

#[tokio::test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
async fn zephyr_udp4_concurrent_requests_on_one_client() {
    // buf_count 2 allows one request in flight; twenty tasks share the client and each
    // gets its own reply.
    let client = std::sync::Arc::new(client(INTEROP_UDP4).await);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let text = format!("task-{i}");
                let reply = client
                    .request(&os::EchoRequest { d: text.clone() })
                    .await
                    .unwrap();
                assert_eq!(reply.r, text);
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

// ---------------------------------------------------------------------------------
// smp-sim against the real server, and the Python reference client against smp-sim.

mod sim_compare;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
async fn zephyr_udp4_replies_match_smp_sim() {
    init_tracing();
    sim_compare::compare_with_real_server(&interop_server(INTEROP_UDP4)).await;
}

/// A program of the interop venv, from the variable `cargo xtask interop` sets.
fn venv_program(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the interop suite with `cargo xtask interop`, which sets up the Python reference venv")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the interop venv: cargo xtask interop"]
async fn sim_reference_client_uploads_imgtool_image() {
    use smp_mcuboot::{Image, sample_body};
    use smp_sim::{Sim, SimConfig};

    init_tracing();
    let python = venv_program("SMP_INTEROP_PYTHON");
    let imgtool = venv_program("SMP_INTEROP_IMGTOOL");
    let dir = std::env::temp_dir().join(format!("smp-interop-imgtool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (body, app) = (dir.join("body.bin"), dir.join("app.bin"));
    std::fs::write(&body, sample_body(300_000, 42)).unwrap();
    let made = std::process::Command::new(&imgtool)
        .args(["create", "--version", "1.4.2+7", "--header-size", "0x200"])
        .args(["--slot-size", "0x110000", "--pad-header"])
        .arg(&body)
        .arg(&app)
        .status()
        .unwrap();
    assert!(made.success(), "imgtool create failed");
    let image = std::fs::read(&app).unwrap();
    let parsed = Image::parse(&image).expect("our parser reads imgtool's image");
    parsed.verify().expect("and its hash checks");
    assert_eq!(parsed.header.version.to_string(), "1.4.2.7");

    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/smpclient_upload.py"
    );
    let port = sim.addr().port().to_string();
    let output = tokio::process::Command::new(&python)
        .args([script, "127.0.0.1", &port])
        .arg(&app)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "the reference client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let offsets = report["offsets"].as_array().unwrap();
    assert_eq!(
        offsets.last().and_then(|o| o.as_u64()),
        Some(image.len() as u64)
    );
    println!(
        "reference client: {} B in {} chunks, {:.2} s",
        image.len(),
        offsets.len(),
        report["seconds"].as_f64().unwrap_or_default()
    );

    let slot = sim.slot(1).unwrap();
    assert!(
        slot[..image.len()] == image[..],
        "slot 1 holds the image byte for byte"
    );
    let hash: String = parsed
        .hash()
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let images = report["images"].as_array().unwrap();
    let secondary = images
        .iter()
        .find(|i| i["slot"] == 1)
        .expect("slot 1 reported");
    assert_eq!(secondary["version"], "1.4.2.7");
    assert_eq!(secondary["hash"], hash.as_str());
    assert_eq!(secondary["bootable"], true);
    assert_eq!(secondary["pending"], false);
    let primary = images
        .iter()
        .find(|i| i["slot"] == 0)
        .expect("slot 0 reported");
    assert_eq!(
        (&primary["active"], &primary["confirmed"]),
        (&true.into(), &true.into())
    );
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
