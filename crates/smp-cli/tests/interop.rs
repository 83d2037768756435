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

use serde_json::json;

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
