//! The real `smp` binary against the real Zephyr SMP UDP server (the `native_sim` build
//! shipped in the `smpclient` sdist), whose address is in `SMP_INTEROP_UDP4`.
//!
//! Ignored by a plain `cargo test`. Run with a server listening, e.g.
//! `SMP_INTEROP_UDP4=127.0.0.1:1337 cargo test -p smp-cli --test interop -- --ignored`;
//! without the variable every test fails with a pointer to `cargo xtask interop`.

mod support;

use support::Run;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

/// The variable that holds the IPv4 server's address.
const UDP4: &str = "SMP_INTEROP_UDP4";

/// The server's address, or a panic that says how to get one.
fn server() -> String {
    std::env::var(UDP4).unwrap_or_else(|_| {
        panic!(
            "{UDP4} is not set: these tests need the real Zephyr SMP server; \
             run them with `cargo xtask interop`, or start the server yourself and set \
             {UDP4}=127.0.0.1:1337"
        )
    })
}

/// `smp --udp SERVER args...`.
fn smp(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_smp"))
        .arg("--udp")
        .arg(server())
        .args(args)
        .env_remove("SMP_UDP")
        .env_remove("RUST_LOG")
        .output()
        .expect("the smp binary runs");
    Run::from_output(output)
}

fn scratch(test: &str) -> PathBuf {
    support::scratch("smp-cli-interop", test)
}

#[test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
fn zephyr_udp4_cli_os_echo() {
    assert_eq!(smp(&["os", "echo", "hello zephyr"]).ok(), "hello zephyr\n");
    assert_eq!(
        smp(&["--json", "os", "echo", "hi"]).ok_json(),
        json!({"text": "hi"})
    );
}

#[test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
fn zephyr_udp4_cli_os_params() {
    assert_eq!(
        smp(&["--json", "os", "params"]).ok_json(),
        json!({"buf_size": 2048, "buf_count": 2})
    );
    assert_eq!(
        smp(&["os", "params"]).ok(),
        "buf_size: 2048\nbuf_count: 2\n"
    );
}

#[test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
fn zephyr_udp4_cli_stat_list() {
    let doc = smp(&["--json", "stat", "list"]).ok_json();
    let groups = doc["groups"].as_array().expect("a list of groups");
    assert!(!groups.is_empty(), "{doc}");
    assert!(groups.contains(&json!("smp_svr_stats")), "{doc}");
    // (The server's `flash_sim_stats` answer does not fit its buffer: EMSGSIZE.)
    let doc = smp(&["--json", "stat", "show", "smp_svr_stats"]).ok_json();
    assert_eq!(doc["group"], "smp_svr_stats");
    assert!(doc["fields"]["ticks"].is_u64(), "{doc}");
    let run = smp(&["stat", "list"]);
    assert!(run.ok().lines().any(|l| l == "smp_svr_stats"), "{run:#?}");
}

#[test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
fn zephyr_udp4_cli_fs_upload_download() {
    let dir = scratch("fs");
    // Several chunks, not a multiple of any chunk size, every byte value.
    let data: Vec<u8> = (0..7000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let local = dir.join("up.bin");
    let back = dir.join("down.bin");
    std::fs::write(&local, &data).expect("write");
    let local = local.to_str().expect("UTF-8 path");
    let back_str = back.to_str().expect("UTF-8 path");
    let remote = "/lfs1/smp-cli-interop.bin";

    let doc = smp(&["--json", "fs", "upload", local, remote]).ok_json();
    assert_eq!(doc["size"], 7000);
    assert!(doc["chunks"].as_u64().is_some_and(|n| n > 1), "{doc}");
    let doc = smp(&["--json", "fs", "stat", remote]).ok_json();
    assert_eq!(doc["size"], 7000);
    let run = smp(&["fs", "download", remote, back_str]);
    assert!(run.ok().starts_with("downloaded "), "{run:#?}");
    assert_eq!(std::fs::read(&back).expect("read back"), data);
}

#[test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
fn zephyr_udp4_cli_shell_exec() {
    let run = smp(&["shell", "exec", "--", "kernel", "version"]);
    assert!(run.ok().contains("Zephyr version"), "{run:#?}");
    let doc = smp(&["--json", "shell", "exec", "--", "kernel", "version"]).ok_json();
    assert_eq!(doc["argv"], json!(["kernel", "version"]));
    assert_eq!(doc["ret"], 0);
    assert!(
        doc["output"]
            .as_str()
            .is_some_and(|o| o.contains("Zephyr version")),
        "{doc}"
    );
}

#[test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
fn zephyr_udp4_cli_enum_groups() {
    let doc = smp(&["--json", "enum", "groups"]).ok_json();
    let groups = doc["groups"].as_array().expect("a list of groups");
    for expected in [
        json!({"id": 0, "name": "OS"}),
        json!({"id": 8, "name": "FS"}),
    ] {
        assert!(groups.contains(&expected), "{expected} missing from {doc}");
    }
    let run = smp(&["enum", "groups"]);
    assert!(run.ok().starts_with("ID  NAME\n"), "{run:#?}");
}

#[test]
#[ignore = "needs the real Zephyr servers: cargo xtask interop"]
fn zephyr_udp4_cli_settings_error() {
    let run = smp(&["settings", "get", "nope/x"]);
    assert_eq!(run.status, 1, "{run:#?}");
    assert_eq!(
        run.stderr,
        "settings get: device refused: SETTINGS 5 ROOT_KEY_NOT_FOUND\n"
    );
    let run = smp(&["--json", "settings", "get", "nope/x"]);
    assert_eq!(run.status, 1, "{run:#?}");
    let error = &run.json()["error"];
    assert_eq!(error["kind"], "device");
    assert_eq!(error["group"], "SETTINGS");
    assert_eq!(error["rc"], 5);
    assert_eq!(error["name"], "ROOT_KEY_NOT_FOUND");
}

// ---------------------------------------------------------------------------------
// Serial fixtures.

/// The serial fixture `cargo xtask interop` started: its port, its framing (the
/// application's), its name and its own signed image.
struct SerialFixture {
    name: String,
    port: String,
    framing: String,
    image: PathBuf,
}

/// The fixture from the runner's variables, or a panic that says how to get one.
fn serial_fixture() -> SerialFixture {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: the serial tests need a fixture; run `cargo xtask interop`")
        })
    };
    let port = var("SMP_INTEROP_SERIAL");
    let fixture: Value =
        serde_json::from_str(&var("SMP_INTEROP_SERIAL_FIXTURE")).expect("the fixture is JSON");
    let text = |key: &str| {
        fixture[key]
            .as_str()
            .unwrap_or_else(|| panic!("the fixture has no {key}: {fixture}"))
            .to_owned()
    };
    SerialFixture {
        name: text("name"),
        port,
        framing: text("framing"),
        image: PathBuf::from(text("image")),
    }
}

/// `smp --serial PORT --framing F args...`, its command line and output printed as a
/// transcript (its stderr, then its stdout; the runner shows test output).
fn smp_serial(fixture: &SerialFixture, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_smp"))
        .args(["--serial", &fixture.port, "--framing", &fixture.framing])
        .args(args)
        .env_remove("SMP_UDP")
        .env_remove("SMP_SERIAL")
        .env_remove("RUST_LOG")
        .output()
        .expect("the smp binary runs");
    let run = Run::from_output(output);
    let shown: Vec<String> = args
        .iter()
        .map(|arg| match arg.rsplit_once('/') {
            // A scratch file by its name: the transcript reads as one would type it.
            Some((_, name)) if arg.ends_with(".bin") => name.to_owned(),
            _ => (*arg).to_owned(),
        })
        .collect();
    println!(
        "$ smp --serial {} {}\n{}{}",
        fixture.port,
        shown.join(" "),
        run.stderr,
        run.stdout
    );
    run
}

/// The fixture's application with another version: the shipped image with its version
/// and hash TLV rewritten (`smp_mcuboot::with_version`; these MCUboot builds check the
/// hash only), written to a scratch file; its path, version and hash.
fn new_version(fixture: &SerialFixture, test: &str, version: &str) -> (String, String, String) {
    let shipped = std::fs::read(&fixture.image)
        .unwrap_or_else(|e| panic!("{}: {e}", fixture.image.display()));
    let bytes = smp_mcuboot::with_version(&shipped, version.parse().expect("a version"))
        .expect("the shipped image takes another version");
    let image = smp_mcuboot::Image::parse(&bytes).expect("an image");
    let hash: String = image
        .hash()
        .expect("a hash")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = scratch(test).join(format!("smp_server-{version}.signed.bin"));
    std::fs::write(&path, &bytes).expect("write the image");
    (
        path.to_str().expect("UTF-8 path").to_owned(),
        image.header.version.to_string(),
        hash,
    )
}

/// The last of the JSON documents `--json upgrade` prints (its events, then the summary).
fn last_json(stdout: &str) -> Value {
    serde_json::Deserializer::from_str(stdout)
        .into_iter::<Value>()
        .last()
        .expect("JSON on stdout")
        .expect("JSON documents")
}

/// `smp upgrade` on `qemu_cortex_m0.serial` with flash that keeps what the guest writes
/// (the runner wrote the firmware once through QEMU's GDB stub, no loader): the image
/// list before, the upgrade (upload, mark for test, reset, wait, confirm), the new version
/// running confirmed, and still after `smp os reset`; upgrading again does nothing.
#[test]
#[ignore = "needs a real serial server: cargo xtask interop"]
fn serial_img_upgrade_cli_boots_and_keeps_the_new_version() {
    let fixture = serial_fixture();
    let (file, version, hash) = new_version(&fixture, "img-upgrade", "1.2.3+4");
    println!("{}: the new image is {version}, hash {hash}", fixture.name);
    let before = smp_serial(&fixture, &["image", "list"]);
    assert!(
        before
            .ok()
            .starts_with("image 0 slot 0: version 0.0.0 [active, confirmed, bootable]\n"),
        "{before:#?}"
    );
    let upgrade = smp_serial(&fixture, &["upgrade", &file]);
    let table = upgrade.ok();
    assert!(table.contains(" upgraded "), "{upgrade:#?}");
    assert!(table.contains("1 device: 1 upgraded"), "{upgrade:#?}");
    let running =
        format!("image 0 slot 0: version {version} [active, confirmed, bootable]\n  hash {hash}\n");
    let after = smp_serial(&fixture, &["image", "list"]);
    assert!(after.ok().starts_with(&running), "{after:#?}");
    let reset = smp_serial(&fixture, &["os", "reset"]);
    assert_eq!(reset.ok(), "reset requested\n");
    // Left alone while it restarts: on this board bytes that reach the UART while
    // MCUboot runs leave the application's UART deaf (docs/interop.md).
    std::thread::sleep(Duration::from_secs(2));
    let after_reset = smp_serial(&fixture, &["image", "list"]);
    assert!(after_reset.ok().starts_with(&running), "{after_reset:#?}");
    let again = smp_serial(&fixture, &["--json", "upgrade", &file]);
    let summary = last_json(again.ok());
    assert_eq!(
        summary["devices"][0]["outcome"], "already running",
        "{again:#?}"
    );
}

/// `smp upgrade` given MCUboot's serial recovery (MCUboot alone on `mps2_an385`, slot 0
/// empty): the bootloader lists no image; the upgrade uploads to slot 0 and resets, and
/// the application answers running the new version; upgrading again does nothing.
#[test]
#[ignore = "needs a real serial server: cargo xtask interop"]
fn serial_bare_cli_upgrade_through_serial_recovery() {
    let fixture = serial_fixture();
    let (file, version, hash) = new_version(&fixture, "bare-upgrade", "1.2.3+4");
    println!("{}: the new image is {version}, hash {hash}", fixture.name);
    // The bootloader may still be starting: the first command waits for it.
    let before = smp_serial(&fixture, &["--retries", "10", "image", "list"]);
    assert_eq!(before.ok(), "no images\n", "{before:#?}");
    let upgrade = smp_serial(&fixture, &["upgrade", &file]);
    let table = upgrade.ok();
    assert!(table.contains(" upgraded "), "{upgrade:#?}");
    assert!(table.contains("via serial recovery"), "{upgrade:#?}");
    let after = smp_serial(&fixture, &["image", "list"]);
    assert_eq!(
        after.ok(),
        format!("image 0 slot 0: version {version} [active, confirmed, bootable]\n  hash {hash}\n"),
        "{after:#?}"
    );
    let again = smp_serial(&fixture, &["--json", "upgrade", &file]);
    let summary = last_json(again.ok());
    assert_eq!(
        summary["devices"][0]["outcome"], "already running",
        "{again:#?}"
    );
    assert_eq!(summary["devices"][0]["mode"], "application", "{again:#?}");
}
