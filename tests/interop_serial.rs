//! Interop with the real serial SMP servers of the `smpclient` 7.3.0 sdist: native_sim
//! programs on a pseudo-terminal, emulated boards (MCUboot and Zephyr under
//! `qemu-system-arm`) on a TCP socket. Run by `cargo xtask interop`, which starts one
//! fixture at a time and runs the tests its manifest entry calls for: a test's name says
//! what it needs (`serial_os_*` every fixture, `serial_fs_*` the `fs` group, ...; the
//! table is `xtask/src/fixtures.rs`). Ignored by a plain `cargo test`; run alone
//! with `--ignored` and no fixture, every test fails loudly instead of passing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use smp_client::header::group;
use smp_client::messages::image::ImageState;
use smp_client::messages::{enumeration, os, settings, zephyr};
use smp_client::serial::{Framing, SerialTransport};
use smp_client::upgrade::{UpgradeMode, UpgradeStep};
use smp_client::{
    Client, ClientError, ClientOptions, ImageUploadOptions, UpgradeOptions, UpgradeOutcome,
    UpgradeReport,
};
use smp_integration_tests::init_tracing;
use smp_integration_tests::serial::{Probe, Recovery, SerialFixture, answering_client, app_client};
use smp_integration_tests::zephyr_sample::{self, expect_device_error};
use smp_mcuboot::Image;

async fn fixture_and_client() -> (SerialFixture, Client<SerialTransport>) {
    init_tracing();
    let fixture = SerialFixture::from_env();
    let client = app_client(&fixture).await;
    (fixture, client)
}

/// Every fixture: the client reads the device's parameters (or falls back to the line
/// budget when it has none) and sizes frames to them.
#[tokio::test]
#[ignore = "needs a real serial server: cargo xtask interop"]
async fn serial_os_params_size_frames() {
    let (fixture, client) = fixture_and_client().await;
    let params = client.read_params().await.unwrap();
    if fixture.params {
        let params = params.expect("the manifest says this server reports its parameters");
        assert_eq!(
            (params.buf_size as usize, params.buf_count as usize),
            (fixture.buf_size, fixture.buf_count),
            "{}: parameters as the manifest lists them",
            fixture.name
        );
        assert_eq!(
            client.frame_limit(),
            fixture.expected_frame_limit(fixture.framing, fixture.buf_size)
        );
        assert_eq!(client.max_in_flight(), fixture.buf_count - 1);
    } else {
        // No parameters command: the client keeps what the line settings allow, one
        // request at a time.
        assert_eq!(params, None);
        let fallback = fixture
            .options(fixture.framing)
            .max_unencoded_size()
            .unwrap();
        assert_eq!(client.frame_limit(), fallback);
        assert!(
            fallback <= fixture.buf_size - 4,
            "{fallback} B fits the device"
        );
        assert_eq!(client.max_in_flight(), 1);
    }
    client.close().await.unwrap();
}

/// The frame of an echo request carrying `text_len` bytes: 8 B header, `a1 61 64`, the
/// text's CBOR head (1 B under 24, 2 under 256, else 3) and the text. The reply
/// (`bf 61 72`, head, text, `ff`) is one byte longer.
fn echo_frame(text_len: usize) -> usize {
    let head = match text_len {
        ..24 => 1,
        24..256 => 2,
        _ => 3,
    };
    8 + 3 + head + text_len
}

/// The longest echo text whose request fits `frame` bytes.
fn longest_echo(frame: usize) -> String {
    let len = (0..frame)
        .take_while(|&len| echo_frame(len) <= frame)
        .last()
        .unwrap();
    "0123456789abcdef".chars().cycle().take(len).collect()
}

/// Every fixture: echoes, short and as long as the frame limit allows (several console
/// lines, paced), one byte more refused before it is sent, and a burst from several tasks
/// sharing the client within the device's buffers.
///
/// The reply to an echo is a byte longer than the request. Console framing leaves the
/// device 4 B more than a request may use, so the longest request's reply fits; raw
/// framings use the whole buffer for the request, and then the device takes the request
/// whole but cannot fit its reply: it answers EMSGSIZE, and one byte less echoes.
#[tokio::test]
#[ignore = "needs a real serial server: cargo xtask interop"]
async fn serial_os_echo_at_the_frame_limit() {
    let (fixture, client) = fixture_and_client().await;
    assert_eq!(client.echo("hi").await.unwrap(), "hi");
    let limit = client.frame_limit();
    let longest = longest_echo(limit);
    let request = echo_frame(longest.len());
    println!(
        "{}: frame limit {limit} B, longest echo {} B in a {request} B frame",
        fixture.name,
        longest.len()
    );
    if request < fixture.buf_size {
        assert_eq!(client.echo(&longest).await.unwrap(), longest);
    } else {
        let err = expect_device_error(client.echo(&longest).await);
        assert_eq!((err.group, err.rc), (group::OS, 7), "EMSGSIZE: {err}");
        let fits = longest_echo(fixture.buf_size - 1);
        assert_eq!(client.echo(&fits).await.unwrap(), fits);
    }
    let too_long = format!("{longest}x");
    match client.echo(&too_long).await {
        Err(ClientError::FrameTooLarge { len, max }) => {
            assert_eq!((len, max), (echo_frame(too_long.len()), limit));
            assert!(len > limit);
        }
        other => panic!("{}: expected FrameTooLarge, got {other:?}", fixture.name),
    }
    let client = Arc::new(client);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let client = client.clone();
            let text = format!("{i}-{}", &longest[..longest.len().min(40)]);
            tokio::spawn(async move {
                assert_eq!(client.echo(&text).await.unwrap(), text);
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// Every fixture: the OS information the application reports.
#[tokio::test]
#[ignore = "needs a real serial server: cargo xtask interop"]
async fn serial_os_info() {
    let (fixture, client) = fixture_and_client().await;
    assert_eq!(client.os_info(None).await.unwrap(), "Zephyr");
    match client.os_info(Some("a")).await {
        Ok(all) => assert!(all.starts_with("Zephyr "), "{all:?}"),
        // All of it does not fit a small buffer, and the device says so.
        Err(ClientError::Device(err)) if fixture.buf_size < 256 => {
            assert_eq!((err.group, err.rc), (group::OS, 7), "EMSGSIZE: {err}");
        }
        Err(e) => panic!("{}: os info a: {e}", fixture.name),
    }
}

/// `stat`: the sample's statistics group, listed and read.
#[tokio::test]
#[ignore = "needs a real serial server: cargo xtask interop"]
async fn serial_stat_list_and_group() {
    let (_, client) = fixture_and_client().await;
    zephyr_sample::stats_list_and_group(&client).await;
}

/// The manifest's group names as SMP group ids.
fn group_id(name: &str) -> u16 {
    match name {
        "os" => group::OS,
        "img" => group::IMAGE,
        "stat" => group::STAT,
        "settings" => group::SETTINGS,
        "fs" => group::FS,
        "shell" => group::SHELL,
        "enum" => group::ENUM,
        "zbasic" => group::ZEPHYR,
        other => panic!("the manifest lists a group this test does not know: {other}"),
    }
}

/// `enum`: the device lists exactly the groups the manifest says it has.
#[tokio::test]
#[ignore = "needs a real serial server: cargo xtask interop"]
async fn serial_enum_lists_the_manifest_groups() {
    let (fixture, client) = fixture_and_client().await;
    let listed: BTreeSet<u16> = client
        .request(&enumeration::ListRequest)
        .await
        .unwrap()
        .groups
        .into_iter()
        .collect();
    let expected: BTreeSet<u16> = fixture.groups.iter().map(|g| group_id(g)).collect();
    assert_eq!(listed, expected, "{}: groups", fixture.name);
    // Groups the manifest lists that this build does not have (the runner's errata):
    // the device says so.
    for absent in &fixture.absent_groups {
        let id = group_id(absent);
        assert!(
            !listed.contains(&id),
            "{}: {absent} is listed",
            fixture.name
        );
    }
    let count = client.request(&enumeration::CountRequest).await.unwrap();
    assert_eq!(count.count as usize, expected.len());
    let last = client
        .request(&enumeration::SingleRequest {
            index: Some(expected.len() as u32 - 1),
        })
        .await
        .unwrap();
    assert_eq!(last.end, Some(true));
    let details = client
        .request(&enumeration::DetailsRequest {
            groups: Some(vec![group::OS]),
        })
        .await
        .unwrap();
    assert_eq!(details.groups.len(), 1);
    assert_eq!(details.groups[0].name.as_deref(), Some("os mgmt"));
}

/// `fs`: a file larger than many frames goes up and comes back byte for byte, and the
/// device's hash of it matches.
#[tokio::test]
#[ignore = "needs a real serial server: cargo xtask interop"]
async fn serial_fs_round_trip() {
    let (_, client) = fixture_and_client().await;
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let trip = zephyr_sample::fs_round_trip(&client, "/lfs1/interop-serial.bin", &data).await;
    assert!(
        trip.download.verified_with.is_some(),
        "the device hashed the file"
    );
}

/// `fs`: how the device keeps an upload's file between chunks, which the client's file
/// upload relies on (the simulator is held to the same checks).
#[tokio::test]
#[ignore = "needs a real serial server: cargo xtask interop"]
async fn serial_fs_upload_state_between_chunks() {
    let (_, client) = fixture_and_client().await;
    zephyr_sample::fs_upload_state(&client, "/lfs1/interop-state.bin").await;
}

/// `settings`: the sample registers no handler, so every key's root is unknown, and the
/// device says so with the settings group's own codes; commit and load succeed.
#[tokio::test]
#[ignore = "needs a real serial server: cargo xtask interop"]
async fn serial_settings_without_a_handler() {
    let (_, client) = fixture_and_client().await;
    zephyr_sample::settings_have_no_handler(&client).await;
    client.request(&settings::CommitRequest).await.unwrap();
    client.request(&settings::LoadRequest).await.unwrap();
}

/// `shell`: a command runs and its output comes back; an unknown one fails.
#[tokio::test]
#[ignore = "needs a real serial server: cargo xtask interop"]
async fn serial_shell_exec() {
    let (_, client) = fixture_and_client().await;
    zephyr_sample::shell_exec(&client).await;
}

/// `zbasic`: erasing the storage partition succeeds (on a fresh device of its own).
#[tokio::test]
#[ignore = "needs a real serial server: cargo xtask interop"]
async fn serial_zbasic_erase_storage() {
    let (_, client) = fixture_and_client().await;
    client.request(&zephyr::EraseStorageRequest).await.unwrap();
    assert_eq!(client.echo("still here").await.unwrap(), "still here");
}

// ---------------------------------------------------------------------------------
// Images.

/// The fixture's own signed image, parsed and checked.
fn shipped_image(fixture: &SerialFixture) -> (Vec<u8>, Image) {
    let path = fixture
        .image
        .as_ref()
        .unwrap_or_else(|| panic!("{}: the manifest pairs no signed image", fixture.name));
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let image = Image::parse(&bytes).expect("our parser reads the fixture's image");
    image.verify().expect("and its hash checks");
    (bytes, image)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new image of the fixture's application, made by `imgtool` from the shipped image's
/// body with another version (and so another hash): the same program, as a real build
/// with a bumped version would be. `imgtool` first remakes the shipped image from its
/// body byte for byte, which shows that the two differ only in version and hash.
fn rebuilt_image(fixture: &SerialFixture, version: &str) -> (Vec<u8>, Image) {
    let (shipped, parsed) = shipped_image(fixture);
    let imgtool = std::env::var("SMP_INTEROP_IMGTOOL").unwrap_or_else(|_| {
        panic!("SMP_INTEROP_IMGTOOL is not set: run the interop suite with `cargo xtask interop`")
    });
    let dir = std::env::temp_dir().join(format!(
        "smp-interop-serial-{}-{}",
        fixture.name,
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let header_size = usize::from(parsed.header.header_size);
    let body = &shipped[header_size..header_size + parsed.header.image_size as usize];
    let body_path = dir.join("body.bin");
    std::fs::write(&body_path, body).unwrap();
    // imgtool pads the header with the flash's erased value; these builds used 0.
    let erased = if shipped[32..header_size].iter().all(|&b| b == 0) {
        "0"
    } else {
        "0xff"
    };
    let make = |version: &str, out: &Path| {
        let mut command = Command::new(&imgtool);
        command
            .args(["create", "--version", version])
            .args([
                "--header-size",
                &format!("{header_size:#x}"),
                "--pad-header",
            ])
            .args(["--erased-val", erased, "--slot-size", "0x100000"]);
        if parsed.header.load_addr != 0 {
            // MCUboot's RAM-load images carry their load address (and imgtool sets the
            // RAM_LOAD flag for it).
            command.args(["--load-addr", &format!("{:#x}", parsed.header.load_addr)]);
        }
        let status = command.arg(&body_path).arg(out).status().unwrap();
        assert!(status.success(), "imgtool create {version} failed");
        std::fs::read(out).unwrap()
    };
    let remade = make(&parsed.header.version.to_string(), &dir.join("remade.bin"));
    assert!(
        remade == shipped,
        "imgtool remakes the shipped image byte for byte from its body"
    );
    let bytes = make(version, &dir.join("new.bin"));
    let _ = std::fs::remove_dir_all(&dir);
    // smp-mcuboot makes the same image from the shipped one: the version and the hash
    // TLV rewritten (these images carry no signature).
    assert!(
        smp_mcuboot::with_version(&shipped, version.parse().unwrap()).unwrap() == bytes,
        "smp_mcuboot::with_version gives the shipped image {version} byte for byte as imgtool does"
    );
    let image = Image::parse(&bytes).expect("our parser reads imgtool's image");
    image.verify().expect("and its hash checks");
    assert_eq!(image.header.version.to_string(), version.replace('+', "."));
    assert_eq!(image.header.flags, parsed.header.flags);
    assert_ne!(image.hash(), parsed.hash());
    (bytes, image)
}

/// `img` (an application under MCUboot): the image state shows the shipped image running.
#[tokio::test]
#[ignore = "needs a real serial server: cargo xtask interop"]
async fn serial_img_state_shows_the_shipped_image() {
    let (fixture, client) = fixture_and_client().await;
    let (_, shipped) = shipped_image(&fixture);
    let states = client.image_state().await.unwrap();
    println!("{}: image state {states:?}", fixture.name);
    let primary = states
        .iter()
        .find(|s| s.slot == 0)
        .expect("slot 0 is reported");
    assert_eq!(
        primary.hash.as_deref().map(hex),
        shipped.hash().map(|h| hex(&h)),
        "slot 0 holds the fixture's signed image"
    );
    assert_eq!(primary.version, shipped.header.version.to_string());
    assert_eq!(primary.active, Some(true));
    assert_eq!(primary.confirmed, Some(true));
}

/// `img` on an application whose MCUboot swaps images (not the RAM-loading serial-recovery
/// builds): a new build of the application goes into slot 1 through the application, is
/// marked for test, and after a reset MCUboot has swapped it into slot 0, where it runs
/// unconfirmed with the shipped image in slot 1; confirming it makes it stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real serial server: cargo xtask interop"]
async fn serial_img_swap_in_a_new_image() {
    let (fixture, client) = fixture_and_client().await;
    let (_, shipped) = shipped_image(&fixture);
    let (image, new) = rebuilt_image(&fixture, "1.2.3+4");
    let shipped_hash = hex(&shipped.hash().unwrap());
    let new_hash = new.hash().unwrap();
    let entry = |states: &[smp_client::messages::image::ImageState], slot: u32| {
        states
            .iter()
            .find(|s| s.slot == slot)
            .cloned()
            .unwrap_or_else(|| panic!("slot {slot} in {states:?}"))
    };
    let started = std::time::Instant::now();
    let summary = client
        .upload_image(&image, &ImageUploadOptions::default(), |_| {})
        .await
        .unwrap();
    println!(
        "{}: uploaded {} B in {} chunks ({} in flight at most) in {:.1?}",
        fixture.name,
        summary.len,
        summary.chunks,
        summary.max_in_flight,
        started.elapsed()
    );
    let states = client.image_state().await.unwrap();
    println!("{}: after the upload: {states:?}", fixture.name);
    let secondary = entry(&states, 1);
    assert_eq!(secondary.hash.as_deref().map(hex), Some(hex(&new_hash)));
    assert_eq!(secondary.version, new.header.version.to_string());
    let states = client
        .test_image(&smp_client::proto::ImageHash::from(new_hash))
        .await
        .unwrap();
    assert_eq!(entry(&states, 1).pending, Some(true));
    match client.reset().await {
        Ok(()) | Err(ClientError::Timeout { .. }) => {}
        Err(e) => panic!("{}: reset: {e}", fixture.name),
    }
    client.close().await.unwrap();
    let_the_reset_happen().await;

    let client = app_client(&fixture).await;
    let states = client.image_state().await.unwrap();
    println!("{}: after the reset: {states:?}", fixture.name);
    let primary = entry(&states, 0);
    assert_eq!(primary.hash.as_deref().map(hex), Some(hex(&new_hash)));
    assert_eq!(primary.version, new.header.version.to_string());
    assert_eq!(
        (primary.active, primary.confirmed),
        (Some(true), Some(false))
    );
    assert_eq!(
        entry(&states, 1).hash.as_deref().map(hex),
        Some(shipped_hash)
    );
    let states = client.confirm_image(None).await.unwrap();
    println!("{}: after confirming: {states:?}", fixture.name);
    assert_eq!(entry(&states, 0).confirmed, Some(true));
}

/// The steps an upgrade took, in order.
fn steps(report: &UpgradeReport) -> Vec<UpgradeStep> {
    report.steps.iter().map(|(step, _)| *step).collect()
}

/// The entry of `slot` in an image state: `(hash, version, active, confirmed, pending)`.
fn slot_state(states: &[ImageState], slot: u32) -> (String, String, bool, bool, bool) {
    let entry = states
        .iter()
        .find(|s| s.slot == slot)
        .unwrap_or_else(|| panic!("slot {slot} in {states:?}"));
    (
        entry.hash.as_deref().map(hex).unwrap_or_default(),
        entry.version.clone(),
        entry.active == Some(true),
        entry.confirmed == Some(true),
        entry.pending == Some(true),
    )
}

/// Resets the application and returns what the board printed on its console in the
/// next seconds (MCUboot's log, then the application's banner: the SMP client skips such
/// text) with a client of the application once it answers again.
///
/// The reset goes over a connection of its own to the emulator's serial socket (the
/// client is closed first: the socket takes one connection at a time), which then only
/// listens. Sending nothing while MCUboot runs matters on this board (QEMU's nRF51): bytes
/// that reach its UART then leave the application's UART deaf for good (docs/interop.md).
async fn reset_and_read_the_boot_log(
    fixture: &SerialFixture,
    client: Client<SerialTransport>,
) -> (String, Client<SerialTransport>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    assert_eq!(fixture.framing, Framing::Console, "{}", fixture.name);
    client.close().await.unwrap();
    let addr = fixture
        .target
        .strip_prefix("socket://")
        .expect("an emulated board on a TCP socket");
    let mut port = tokio::net::TcpStream::connect(addr).await.unwrap();
    // `os reset`: write, 1-byte body, group 0, sequence 0x42, command 5; the body `{}`.
    let reset = [2, 0, 0, 1, 0, 0, 0x42, 5, 0xa0];
    let line = smp_client::serial::encode(
        Framing::Console,
        &reset,
        smp_client::serial::console::LineLength::default(),
    )
    .unwrap();
    port.write_all(&line).await.unwrap();
    let mut output = Vec::new();
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut buf = [0; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout_at(until, port.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        output.extend_from_slice(&buf[..n]);
    }
    drop(port);
    let log: Vec<String> = String::from_utf8_lossy(&output)
        .lines()
        .map(|line| strip_ansi(line.trim_end_matches('\r')))
        // SMP frames (the reset's reply) are not the log.
        .filter(|line| !line.starts_with('\u{6}') && !line.starts_with('\u{4}'))
        .filter(|line| !line.is_empty())
        .collect();
    (log.join("\n"), app_client(fixture).await)
}

/// `text` without its ANSI colour codes (`ESC [ ... letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `img` on a board whose flash keeps what the guest writes across resets (the runner
/// wrote the firmware into it once through QEMU's GDB stub, without the manifest's
/// loader, which would write the shipped image back at every reset): `Client::upgrade`
/// boots a new version of the application under the real MCUboot, and what MCUboot and
/// the application wrote (the swap, the confirm flag in the slot trailer) holds across
/// the next reset.
///
/// 1. Upgrade without confirming: upload, mark for test, reset, wait: the new image runs
///    unconfirmed, the shipped one in slot 1.
/// 2. A reset: MCUboot reverts it (the image was never confirmed; its console log says
///    so): the shipped image runs again, the new one back in slot 1, not pending.
/// 3. Upgrade again: the image is on the device already, so no upload: mark, reset, wait,
///    confirm.
/// 4. A second reset: MCUboot's log shows it booting the new version, its `image_ok`
///    flag set; the application reports it running, confirmed.
/// 5. Upgrade again: nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real serial server: cargo xtask interop"]
async fn serial_img_upgrade_boots_the_new_version_and_the_confirm_sticks() {
    let (fixture, client) = fixture_and_client().await;
    let (_, shipped) = shipped_image(&fixture);
    let (image, new) = rebuilt_image(&fixture, "1.2.3+4");
    let shipped_hash = smp_client::proto::ImageHash::from(shipped.hash().unwrap());
    let shipped = (
        hex(&shipped.hash().unwrap()),
        shipped.header.version.to_string(),
    );
    let new = (hex(&new.hash().unwrap()), new.header.version.to_string());
    let state = |states: &[ImageState], slot| {
        let (hash, version, active, confirmed, pending) = slot_state(states, slot);
        ((hash, version), active, confirmed, pending)
    };
    let states = client.image_state().await.unwrap();
    println!("{}: before: {states:?}", fixture.name);
    assert_eq!(state(&states, 0), (shipped.clone(), true, true, false));

    // 1. Upgrade, not confirmed.
    let options = UpgradeOptions::default();
    let report = client
        .upgrade(&image, &options.clone().with_confirm(false), |_| {})
        .await
        .unwrap();
    println!("{}: upgrade without confirm: {report:?}", fixture.name);
    assert_eq!(
        report.outcome,
        UpgradeOutcome::Running {
            confirmed: false,
            previous: Some(shipped_hash.clone())
        }
    );
    assert_eq!(report.mode, UpgradeMode::Application);
    assert_eq!(
        steps(&report),
        [
            UpgradeStep::Inspect,
            UpgradeStep::Upload,
            UpgradeStep::Mark,
            UpgradeStep::Reset,
            UpgradeStep::Wait
        ]
    );
    assert_eq!(report.resets, 1);
    let states = client.image_state().await.unwrap();
    println!("{}: booted on test: {states:?}", fixture.name);
    assert_eq!(state(&states, 0), (new.clone(), true, false, false));
    assert_eq!(state(&states, 1).0, shipped);

    // 2. A reset reverts it.
    let (log, client) = reset_and_read_the_boot_log(&fixture, client).await;
    println!("{}: console after the reset:\n{log}", fixture.name);
    // MCUboot's own word: it reverts the image it booted for test, and boots the old one
    // (its log prints major.minor.revision).
    for line in [
        "I: Image index: 0, Swap type: revert",
        "I: Image version: v0.0.0",
    ] {
        assert!(log.lines().any(|l| l == line), "{line:?} in:\n{log}");
    }
    let states = client.image_state().await.unwrap();
    println!("{}: after a reset, reverted: {states:?}", fixture.name);
    assert_eq!(state(&states, 0), (shipped.clone(), true, true, false));
    assert_eq!(state(&states, 1), (new.clone(), false, false, false));

    // 3. Upgrade again: already uploaded.
    let report = client.upgrade(&image, &options, |_| {}).await.unwrap();
    println!("{}: upgrade: {report:?}", fixture.name);
    assert_eq!(
        report.outcome,
        UpgradeOutcome::Running {
            confirmed: true,
            previous: Some(shipped_hash)
        }
    );
    assert_eq!(report.upload, None, "the image was in slot 1 already");
    assert_eq!(
        steps(&report),
        [
            UpgradeStep::Inspect,
            UpgradeStep::Mark,
            UpgradeStep::Reset,
            UpgradeStep::Wait,
            UpgradeStep::Confirm
        ]
    );
    let states = client.image_state().await.unwrap();
    println!("{}: upgraded and confirmed: {states:?}", fixture.name);
    assert_eq!(state(&states, 0), (new.clone(), true, true, false));

    // 4. It stays.
    let (log, client) = reset_and_read_the_boot_log(&fixture, client).await;
    println!("{}: console after the second reset:\n{log}", fixture.name);
    // MCUboot boots the new version, nothing to swap, its image_ok flag set (0x1).
    for line in [
        "I: Image index: 0, Swap type: none",
        "I: Primary image: magic=good, swap_type=0x2, copy_done=0x1, image_ok=0x1",
        "I: Image version: v1.2.3",
    ] {
        assert!(log.lines().any(|l| l == line), "{line:?} in:\n{log}");
    }
    let states = client.image_state().await.unwrap();
    println!("{}: after the second reset: {states:?}", fixture.name);
    assert_eq!(state(&states, 0), (new.clone(), true, true, false));
    // Once the image is confirmed, this build lists slot 1 no more (measured: slot 0
    // alone, after the confirm and after the reset); if it does, it is the old image.
    if states.iter().any(|s| s.slot == 1) {
        assert_eq!(state(&states, 1).0, shipped);
    }

    // 5. Nothing left to do.
    let report = client.upgrade(&image, &options, |_| {}).await.unwrap();
    assert!(report.already_running(), "{report:?}");
}

// ---------------------------------------------------------------------------------
// MCUboot serial recovery.

/// Resets the application into MCUboot's serial recovery (`boot_mode` 1) and returns a
/// client of the bootloader, in the recovery framing, once it answers.
async fn enter_recovery(
    fixture: &SerialFixture,
    app: Client<SerialTransport>,
) -> Client<SerialTransport> {
    let recovery = fixture
        .recovery
        .expect("the manifest says this fixture has serial recovery");
    let reset = os::ResetRequest {
        force: None,
        boot_mode: Some(1),
    };
    // The application may restart before its reply is out.
    match app.request(&reset).await {
        Ok(_) | Err(ClientError::Timeout { .. }) => {}
        Err(e) => panic!("{}: reset into the bootloader: {e}", fixture.name),
    }
    app.close().await.unwrap();
    bootloader(fixture, recovery).await
}

/// How long a request to MCUboot's raw serial recovery may wait for its reply before it
/// is sent again: the reference's own figure for recovery uploads
/// (`RECOVERY_UPLOAD_TIMEOUT_S`, 15 s). Under emulation MCUboot's raw modes now and then
/// lose bytes of a request (measured: several requests of every upload) and the
/// bootloader waits for the rest. COBS frames end in a delimiter and carry a CRC, so the
/// bootloader drops the damaged one and the default timeout's retry goes through; raw
/// framing has no way to resynchronise, so a request sent again before the bootloader
/// drops the partial one (after its input timeout) is read as its missing tail, and both
/// are lost (measured with the 2.5 s default: EINVAL to the mangled request, and the
/// upload fails; with 5 s it goes through, 15 s leaves room on a loaded machine). The
/// raw transport tells the client it cannot resynchronise, so no attempt goes sooner
/// than this (no learned re-sends, no probes: docs/reliability.md). The COBS bootloader
/// drops a damaged frame at its delimiter and keeps the default timeout, as a user's
/// `smp --framing cobs` does.
const RAW_RECOVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// A client of MCUboot's serial recovery once it answers; checks its parameters (or the
/// fallback when it has none) and the frame size they give.
async fn bootloader(fixture: &SerialFixture, recovery: Recovery) -> Client<SerialTransport> {
    let boot = answering_client(
        fixture.target_with(fixture.options(recovery.framing)),
        match recovery.framing {
            Framing::Raw => ClientOptions::default()
                .with_retry(smp_client::RetryPolicy::default().with_timeout(RAW_RECOVERY_TIMEOUT)),
            _ => ClientOptions::default(),
        },
        Probe::Bootloader,
    )
    .await;
    let params = boot.params();
    println!("{}: bootloader parameters {params:?}", fixture.name);
    match recovery.params {
        Some((buf_size, buf_count)) => {
            let params = params.expect("the manifest says this bootloader reports parameters");
            assert_eq!(
                (params.buf_size as usize, params.buf_count as usize),
                (buf_size, buf_count)
            );
            assert_eq!(
                boot.frame_limit(),
                fixture.expected_frame_limit(recovery.framing, buf_size)
            );
        }
        None => {
            assert_eq!(params, None, "this bootloader has no parameters command");
            let fallback = fixture
                .options(recovery.framing)
                .max_unencoded_size()
                .unwrap();
            assert_eq!(boot.frame_limit(), fallback);
        }
    }
    boot
}

/// Waits out the moment between a reset's reply and the restart: Zephyr restarts
/// `CONFIG_MCUMGR_GRP_OS_RESET_MS` (250 ms by default) after replying, and until then
/// the device still answers as before. Not a measurement: a wait for the device.
async fn let_the_reset_happen() {
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
}

/// Resets the device out of the bootloader and returns a client of the application once
/// it answers an echo.
async fn leave_recovery(
    fixture: &SerialFixture,
    boot: Client<SerialTransport>,
) -> Client<SerialTransport> {
    match boot.reset().await {
        Ok(()) | Err(ClientError::Timeout { .. }) => {}
        Err(e) => panic!("{}: reset out of the bootloader: {e}", fixture.name),
    }
    boot.close().await.unwrap();
    let_the_reset_happen().await;
    app_client(fixture).await
}

/// The slot-0 entry of an image state, as `(hash, version)`.
fn slot0(states: &[smp_client::messages::image::ImageState]) -> Option<(String, String)> {
    states.iter().find(|s| s.slot == 0).map(|s| {
        (
            s.hash.as_deref().map(hex).unwrap_or_default(),
            s.version.clone(),
        )
    })
}

/// Serial recovery, launched as the manifest says (MCUboot, and the shipped application
/// in slot 0): the application resets into the bootloader (`os reset boot_mode=1`),
/// which reports its parameters and the shipped image in slot 0; a reset out of it starts
/// the application, which answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real serial server: cargo xtask interop"]
async fn serial_recovery_enter_from_the_application_and_leave() {
    let (fixture, app) = fixture_and_client().await;
    let (_, shipped) = shipped_image(&fixture);
    let shipped = (
        hex(&shipped.hash().unwrap()),
        shipped.header.version.to_string(),
    );
    assert_eq!(
        slot0(&app.image_state().await.unwrap()),
        Some(shipped.clone())
    );
    let boot = enter_recovery(&fixture, app).await;
    let states = boot.image_state().await.unwrap();
    println!("{}: bootloader image state: {states:?}", fixture.name);
    assert_eq!(
        slot0(&states),
        Some(shipped.clone()),
        "the bootloader sees the shipped image"
    );
    let app = leave_recovery(&fixture, boot).await;
    assert_eq!(app.echo("back").await.unwrap(), "back");
    let states = app.image_state().await.unwrap();
    assert_eq!(slot0(&states), Some(shipped));
    assert!(states.iter().any(|s| s.slot == 0 && s.active == Some(true)));
}

/// Serial recovery on a board with MCUboot alone (the manifest's launch command without
/// the loader that puts the shipped image into slot 0: that loader writes it back at every
/// system reset, so an image uploaded over it could never be seen booting). With slot 0
/// empty MCUboot stays in serial recovery, and `Client::upgrade`, given the bootloader,
/// finds that out from its image list (no flags; none at all here): it uploads a new
/// build of the application to slot 0 and resets, and the same client then hears the
/// application answer running it from slot 0, nothing to confirm. An upgrade of the
/// application to the same image does nothing. The application goes back into the
/// bootloader, which lists the image; an upgrade given the bootloader then only resets.
///
/// Not on `serial_recovery_raw_cobs`, whose bootloader speaks COBS and application raw:
/// one client cannot follow the device across the reset there (it would wait for an
/// answer it cannot read), so that fixture's image goes up by hand, and the runner's
/// reset and a client of the application's framing check that it boots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real serial server: cargo xtask interop"]
async fn serial_bare_recovery_flashes_a_new_image_that_boots() {
    init_tracing();
    let fixture = SerialFixture::from_env();
    let recovery = fixture
        .recovery
        .expect("the manifest says this fixture has serial recovery");
    let one_framing = recovery.framing == fixture.framing;
    let (image, new) = rebuilt_image(&fixture, "1.2.3+4");
    let new = (hex(&new.hash().unwrap()), new.header.version.to_string());
    println!(
        "{}: new image {} B, version {}, hash {}",
        fixture.name,
        image.len(),
        new.1,
        new.0
    );
    let boot = bootloader(&fixture, recovery).await;
    let before = boot.image_state().await.unwrap();
    println!(
        "{}: bootloader image state before: {before:?}",
        fixture.name
    );
    assert_eq!(slot0(&before), None, "slot 0 is empty");

    let started = std::time::Instant::now();
    let app = if one_framing {
        let report = boot
            .upgrade(&image, &UpgradeOptions::default(), |_| {})
            .await
            .unwrap();
        println!(
            "{}: upgrade through serial recovery in {:.1?}: {report:?}",
            fixture.name,
            started.elapsed()
        );
        assert_eq!(report.mode, UpgradeMode::SerialRecovery);
        assert_eq!(
            report.outcome,
            UpgradeOutcome::Running {
                confirmed: true,
                previous: None
            }
        );
        assert_eq!(
            steps(&report),
            [
                UpgradeStep::Inspect,
                UpgradeStep::Upload,
                UpgradeStep::Reset,
                UpgradeStep::Wait
            ]
        );
        assert_eq!(report.resets, 1);
        // The client that spoke to the bootloader now speaks to the application, which
        // runs the image: upgrading it again does nothing.
        let again = boot
            .upgrade(&image, &UpgradeOptions::default(), |_| {})
            .await
            .unwrap();
        assert!(again.already_running(), "{again:?}");
        assert_eq!(again.mode, UpgradeMode::Application);
        boot.close().await.unwrap();
        app_client(&fixture).await
    } else {
        let summary = boot
            .upload_image(&image, &ImageUploadOptions::default(), |_| {})
            .await
            .unwrap();
        println!(
            "{}: uploaded {} B in {} chunks ({} in flight at most) in {:.1?}",
            fixture.name,
            summary.len,
            summary.chunks,
            summary.max_in_flight,
            started.elapsed()
        );
        // A bootloader that entered recovery because slot 0 held no image lists none
        // until it boots again (measured: `[]` here, on every such fixture); the state
        // is read back below, from the application and from the bootloader after a reset.
        let after = boot.image_state().await.unwrap();
        println!("{}: bootloader image state after: {after:?}", fixture.name);
        leave_recovery(&fixture, boot).await
    };
    assert_eq!(app.echo("new image").await.unwrap(), "new image");
    let states = app.image_state().await.unwrap();
    println!("{}: application image state: {states:?}", fixture.name);
    assert_eq!(
        slot0(&states),
        Some(new.clone()),
        "the new image runs from slot 0"
    );
    assert!(states.iter().any(|s| s.slot == 0 && s.active == Some(true)));

    let boot = enter_recovery(&fixture, app).await;
    let states = boot.image_state().await.unwrap();
    println!(
        "{}: bootloader image state after a reset: {states:?}",
        fixture.name
    );
    assert_eq!(
        slot0(&states),
        Some(new.clone()),
        "the bootloader lists the new image"
    );
    let app = if one_framing {
        // The bootloader holds the image already: the upgrade only resets.
        let report = boot
            .upgrade(&image, &UpgradeOptions::default(), |_| {})
            .await
            .unwrap();
        println!("{}: upgrade again: {report:?}", fixture.name);
        assert_eq!(report.mode, UpgradeMode::SerialRecovery);
        assert_eq!(report.upload, None);
        assert_eq!(
            steps(&report),
            [UpgradeStep::Inspect, UpgradeStep::Reset, UpgradeStep::Wait]
        );
        assert_eq!(
            report.outcome,
            UpgradeOutcome::Running {
                confirmed: true,
                previous: None
            }
        );
        boot.close().await.unwrap();
        app_client(&fixture).await
    } else {
        leave_recovery(&fixture, boot).await
    };
    assert_eq!(slot0(&app.image_state().await.unwrap()), Some(new));
}
