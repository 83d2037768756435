//! The real `smp` binary against a simulated device (`smp-sim`): every command, in text
//! and `--json` output, the exit statuses, transfers and completions.
//!
//! Each test starts its own simulated device on the test's multi-thread runtime and runs
//! the binary on a blocking thread, so the device keeps answering meanwhile.

mod support;

use std::net::{SocketAddr, UdpSocket};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use smp_mcuboot::{ImageVersion, sample_body};
use smp_sim::{Sim, SimConfig};
use support::sim::{hex, on, on_json, path_str, smp, smp_env, start, start_with, write_image};

fn scratch(test: &str) -> std::path::PathBuf {
    support::scratch("smp-cli", test)
}

#[tokio::test(flavor = "multi_thread")]
async fn os_commands() {
    let sim = start().await;

    let run = on(&sim, &["os", "echo", "hello there"]).await;
    assert_eq!(run.ok(), "hello there\n");
    assert_eq!(run.stderr, "");
    let doc = on_json(&sim, &["os", "echo", "--", "-dash"])
        .await
        .ok_json();
    assert_eq!(doc, json!({"text": "-dash"}));

    let run = on(&sim, &["os", "params"]).await;
    assert_eq!(run.ok(), "buf_size: 2048\nbuf_count: 2\n");
    let doc = on_json(&sim, &["os", "params"]).await.ok_json();
    assert_eq!(doc, json!({"buf_size": 2048, "buf_count": 2}));

    let run = on(&sim, &["os", "info"]).await;
    assert_eq!(run.ok(), "Zephyr\n");
    let doc = on_json(&sim, &["os", "info", "a"]).await.ok_json();
    assert_eq!(doc["format"], "a");
    assert!(
        doc["output"].as_str().is_some_and(|s| s.contains("4.4.0")),
        "{doc}"
    );
    let doc = on_json(&sim, &["os", "info"]).await.ok_json();
    assert_eq!(doc, json!({"format": null, "output": "Zephyr"}));

    let run = on(&sim, &["os", "datetime", "2030-01-02T03:04:05"]).await;
    assert_eq!(run.ok(), "date and time set to 2030-01-02T03:04:05\n");
    let doc = on_json(&sim, &["os", "datetime"]).await.ok_json();
    assert_eq!(doc["set"], false);
    assert!(
        doc["datetime"]
            .as_str()
            .is_some_and(|s| s.starts_with("2030-01-02T03:0")),
        "{doc}"
    );
    let doc = on_json(&sim, &["os", "datetime", "2031-01-01T00:00:00"])
        .await
        .ok_json();
    assert_eq!(doc, json!({"datetime": "2031-01-01T00:00:00", "set": true}));
    let run = on(&sim, &["os", "datetime"]).await;
    assert!(run.ok().starts_with("2031-01-01T00:0"), "{run:#?}");

    let run = on(&sim, &["os", "tasks"]).await;
    let text = run.ok();
    assert!(text.starts_with("NAME "), "{text}");
    assert!(text.contains("\nmain "), "{text}");
    let doc = on_json(&sim, &["os", "tasks"]).await.ok_json();
    let tasks = doc["tasks"].as_array().expect("tasks array");
    let main = tasks
        .iter()
        .find(|t| t["name"] == "main")
        .expect("a main task");
    for key in [
        "prio", "tid", "state", "stkuse", "stksiz", "cswcnt", "runtime",
    ] {
        assert!(main.get(key).is_some(), "{key} missing in {main}");
    }

    let run = on(&sim, &["os", "mempools"]).await;
    assert!(run.ok().starts_with("NAME  BLKSIZE"), "{run:#?}");
    let doc = on_json(&sim, &["os", "mempools"]).await.ok_json();
    let pools = doc["pools"].as_array().expect("pools array");
    assert!(!pools.is_empty());
    assert!(pools[0]["blksize"].is_u64(), "{doc}");

    let run = on(&sim, &["os", "bootloader"]).await;
    assert_eq!(run.ok(), "bootloader: MCUboot\n");
    let doc = on_json(&sim, &["os", "bootloader", "mode"]).await.ok_json();
    assert_eq!(
        doc,
        json!({"query": "mode", "bootloader": null, "mode": 3,
               "mode_name": "swap without scratch", "no_downgrade": null, "other": {}})
    );
    // A query the device cannot answer is a named device error.
    let run = on(&sim, &["os", "bootloader", "nonsense"]).await;
    assert_eq!(run.status, 1, "{run:#?}");
    assert_eq!(
        run.stderr,
        "os bootloader: device refused: OS 3 QUERY_YIELDS_NO_ANSWER\n"
    );

    let run = on(&sim, &["os", "reset"]).await;
    assert_eq!(run.ok(), "reset requested\n");
    let doc = on_json(&sim, &["os", "reset", "--force", "--boot-mode", "0"])
        .await
        .ok_json();
    assert_eq!(doc, json!({"ok": true, "force": true, "boot_mode": 0}));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn image_upload_list_test_confirm() {
    let sim = start().await;
    let dir = scratch("image_upload");
    let (path, hash) = write_image(&dir, ImageVersion::new(1, 2, 3, 0), 20_000);
    let file = path_str(&path);

    // Before: the factory image runs in slot 0.
    let doc = on_json(&sim, &["image", "list"]).await.ok_json();
    let images = doc["images"].as_array().expect("images");
    assert_eq!(images.len(), 1, "{doc}");
    assert_eq!(images[0]["slot"], 0);
    assert_eq!(images[0]["active"], true);
    assert_eq!(images[0]["version"], "1.0.0");

    // Text upload: the version first, then the summary and the new slot.
    let run = on(&sim, &["image", "upload", &file]).await;
    let text = run.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(&format!("{file}: MCUboot image version 1.2.3, ")),
        "{text}"
    );
    assert!(lines[1].starts_with("uploaded "), "{text}");
    assert!(
        lines[1].contains(" in ") && lines[1].ends_with("/s"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("now in image 0 slot 1: version 1.2.3"),
        "{text}"
    );
    assert_eq!(lines[3], format!("  hash {hash}"));
    assert_eq!(run.stderr, "", "no progress bar without a terminal");

    // JSON upload of the same image (the device starts over or resumes: either way it
    // ends in slot 1).
    let doc = on_json(
        &sim,
        &["image", "upload", &file, "--image", "0", "--window", "1"],
    )
    .await
    .ok_json();
    let bytes = std::fs::read(&path).expect("read image");
    assert_eq!(doc["file"], file);
    assert_eq!(doc["size"], bytes.len());
    assert_eq!(doc["version"], "1.2.3");
    assert_eq!(doc["image_hash"], hash);
    assert_eq!(doc["sha256"], hex(&Sha256::digest(&bytes)));
    assert_eq!(doc["image"], 0);
    assert_eq!(doc["upgrade"], false);
    assert!(doc["chunks"].as_u64().is_some_and(|n| n > 0), "{doc}");
    assert!(doc["elapsed_s"].is_f64(), "{doc}");
    assert!(doc["bytes_per_second"].is_u64(), "{doc}");
    assert!(doc["resumed_at"].is_u64(), "{doc}");
    assert_eq!(doc["slot"]["slot"], 1);
    assert_eq!(doc["slot"]["version"], "1.2.3");
    assert_eq!(doc["slot"]["hash"], hash);

    // `image list` shows it in slot 1 with the right version and hash.
    let doc = on_json(&sim, &["image", "list"]).await.ok_json();
    let slot1 = doc["images"]
        .as_array()
        .expect("images")
        .iter()
        .find(|i| i["slot"] == 1)
        .cloned()
        .expect("an image in slot 1");
    assert_eq!(slot1["version"], "1.2.3");
    assert_eq!(slot1["hash"], hash);
    assert_eq!(slot1["pending"], false);
    assert!(doc.get("split_status").is_some(), "{doc}");
    let run = on(&sim, &["image", "list"]).await;
    let text = run.ok();
    assert!(
        text.contains("image 0 slot 0: version 1.0.0 [active, confirmed"),
        "{text}"
    );
    assert!(text.contains("image 0 slot 1: version 1.2.3"), "{text}");

    // Test it: pending afterwards.
    let doc = on_json(&sim, &["image", "test", &hash]).await.ok_json();
    let slot1 = doc["images"]
        .as_array()
        .expect("images")
        .iter()
        .find(|i| i["slot"] == 1)
        .cloned()
        .expect("slot 1 after test");
    assert_eq!(slot1["pending"], true, "{doc}");
    let upper = hash.to_uppercase();
    let run = on(&sim, &["image", "test", &upper]).await;
    assert!(
        run.ok()
            .starts_with(&format!("image {hash} will be tested on the next boot\n")),
        "{run:#?}"
    );

    // Confirm the running image.
    let run = on(&sim, &["image", "confirm"]).await;
    assert!(
        run.ok().starts_with("running image confirmed\n"),
        "{run:#?}"
    );
    let doc = on_json(&sim, &["image", "confirm"]).await.ok_json();
    assert!(doc["images"].is_array(), "{doc}");

    // A hash the device does not have is a named image-group error.
    let run = on_json(&sim, &["image", "test", &"00".repeat(32)]).await;
    assert_eq!(run.status, 1, "{run:#?}");
    let error = &run.json()["error"];
    assert_eq!(error["kind"], "device");
    assert_eq!(error["group"], "IMG");
    assert!(error["name"].is_string(), "{error}");

    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn image_slots_and_erase() {
    let sim = start().await;
    let doc = on_json(&sim, &["image", "slots"]).await.ok_json();
    let image = &doc["images"][0];
    assert_eq!(image["image"], 0);
    let slots = image["slots"].as_array().expect("slots");
    assert_eq!(slots.len(), 2, "{doc}");
    assert_eq!(slots[0]["size"], smp_sim::DEFAULT_SLOT_SIZE);
    assert!(image.get("max_image_size").is_some(), "{doc}");
    let run = on(&sim, &["image", "slots"]).await;
    let text = run.ok();
    assert!(text.starts_with("image 0"), "{text}");
    assert!(
        text.contains("\n  slot 0: 1.06 MiB (1114112 B)\n"),
        "{text}"
    );
    assert!(text.contains("\n  slot 1: "), "{text}");

    let run = on(&sim, &["image", "erase"]).await;
    assert_eq!(run.ok(), "the device's default slot erased\n");
    let doc = on_json(&sim, &["image", "erase", "1"]).await.ok_json();
    assert_eq!(doc, json!({"ok": true, "slot": 1}));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn image_info_offline() {
    let dir = scratch("image_info");
    let (path, hash) = write_image(&dir, ImageVersion::new(2, 0, 1, 7), 3000);
    let file = path_str(&path);

    let run = smp(["image", "info", file.as_str()]).await;
    let text = run.ok();
    assert!(text.contains("version:           2.0.1.7\n"), "{text}");
    assert!(
        text.contains("image size:        2.93 KiB (3000 B)\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("hash:              {hash} (valid)\n")),
        "{text}"
    );
    assert!(text.contains("SHA256"), "{text}");

    let doc = smp(["--json", "image", "info", file.as_str()])
        .await
        .ok_json();
    assert_eq!(doc["file"], file);
    assert_eq!(doc["version"], "2.0.1.7");
    assert_eq!(doc["image_size"], 3000);
    assert_eq!(doc["header_size"], 0x200);
    assert_eq!(doc["hash"], hash);
    assert_eq!(doc["computed_hash"], hash);
    assert_eq!(doc["hash_valid"], true);
    assert_eq!(doc["flag_names"], json!([]));
    assert_eq!(
        doc["file_size"],
        std::fs::metadata(&path).expect("metadata").len()
    );
    let tlvs = doc["tlvs"].as_array().expect("tlvs");
    let sha = tlvs
        .iter()
        .find(|t| t["name"] == "SHA256")
        .expect("a SHA256 TLV");
    assert_eq!(sha["kind"], 0x10);
    assert_eq!(sha["len"], 32);
    assert_eq!(sha["data"], hash);

    // Not an image: exit 4, named as such, in text and JSON.
    let junk = dir.join("junk.bin");
    std::fs::write(&junk, [0u8; 100]).expect("write");
    let run = smp(["image", "info", path_str(&junk).as_str()]).await;
    assert_eq!(run.status, 4, "{run:#?}");
    assert!(run.stderr.starts_with("image info: "), "{run:#?}");
    assert!(run.stderr.contains("not an MCUboot image"), "{run:#?}");
    let run = smp(["--json", "image", "info", path_str(&junk).as_str()]).await;
    assert_eq!(run.status, 4);
    assert_eq!(run.json()["error"]["kind"], "image");
    // A missing file: exit 4 too.
    let run = smp(["--json", "image", "info", "/nonexistent/x.bin"]).await;
    assert_eq!(run.status, 4);
    assert_eq!(run.json()["error"]["kind"], "file");
    // And `image upload` refuses a file that is not an image before any network traffic.
    let run = smp([
        "--udp",
        "127.0.0.1:9",
        "image",
        "upload",
        path_str(&junk).as_str(),
    ])
    .await;
    assert_eq!(run.status, 4, "{run:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn device_errors_exit_1_with_the_named_code() {
    let sim = start_with(SimConfig {
        slot_size: 8192,
        ..SimConfig::default()
    })
    .await;
    let dir = scratch("too_large");
    let (path, _) = write_image(&dir, ImageVersion::new(1, 1, 0, 0), 20_000);
    let file = path_str(&path);

    let run = on(&sim, &["image", "upload", &file]).await;
    assert_eq!(run.status, 1, "{run:#?}");
    assert_eq!(
        run.stderr,
        "image upload: device refused: IMG 30 INVALID_IMAGE_TOO_LARGE\n"
    );
    assert!(!run.stderr.contains("Error {"), "no debug formatting");
    let run = on_json(&sim, &["image", "upload", &file]).await;
    assert_eq!(run.status, 1);
    assert_eq!(run.stderr, "");
    assert_eq!(
        run.json(),
        json!({"error": {
            "kind": "device", "command": "image upload", "exit_code": 1,
            "message": "device refused: IMG 30 INVALID_IMAGE_TOO_LARGE",
            "group": "IMG", "group_id": 1, "rc": 30, "name": "INVALID_IMAGE_TOO_LARGE",
            "scope": "group", "reason": null, "hint": null
        }})
    );

    let run = on(&sim, &["settings", "get", "nope/x"]).await;
    assert_eq!(run.status, 1);
    assert_eq!(
        run.stderr,
        "settings get: device refused: SETTINGS 5 ROOT_KEY_NOT_FOUND\n"
    );
    let run = on_json(&sim, &["stat", "show", "no_such_group"]).await;
    assert_eq!(run.status, 1);
    let error = &run.json()["error"];
    assert_eq!(
        (&error["group"], &error["rc"], &error["name"]),
        (&json!("STAT"), &json!(3), &json!("INVALID_STAT_NAME"))
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_errors_exit_2() {
    let run = smp(["frobnicate"]).await;
    assert_eq!(run.status, 2, "{run:#?}");
    assert!(run.stderr.contains("frobnicate"), "{run:#?}");
    assert_eq!(run.stdout, "");

    // Without a device address.
    let run = smp(["os", "echo", "hi"]).await;
    assert_eq!(run.status, 2);
    assert_eq!(
        run.stderr,
        "os echo: no device given: use --udp HOST[:PORT] or --serial DEVICE, or set SMP_UDP or SMP_SERIAL\n"
    );

    // A bad hash, a bad address, a bad option value; in JSON too.
    let run = smp(["--udp", "127.0.0.1", "image", "test", "xyz"]).await;
    assert_eq!(run.status, 2);
    let run = smp(["--json", "--udp", "[::1", "os", "params"]).await;
    assert_eq!(run.status, 2);
    let error = &run.json()["error"];
    assert_eq!(error["kind"], "usage");
    assert_eq!(error["exit_code"], 2);
    assert_eq!(error["command"], Value::Null);
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("--udp")),
        "{error}"
    );
    let run = smp(["os", "echo", "--json"]).await;
    assert_eq!(run.status, 2);
    assert_eq!(run.json()["error"]["kind"], "usage");
    let run = smp(["--json", "settings", "set", "sim/x", "zz", "--hex"]).await;
    assert_eq!(run.status, 2);
    assert_eq!(run.json()["error"]["command"], "settings set");
    let run = smp(["--timeout", "0", "os", "params"]).await;
    assert_eq!(run.status, 2);

    // Help and version are not errors.
    let run = smp(["--help"]).await;
    assert!(run.ok().contains("Exit status:"), "{run:#?}");
    let run = smp(["image", "upload", "--help"]).await;
    assert!(run.ok().contains("JSON output (--json):"), "{run:#?}");
    let run = smp(["--version"]).await;
    assert!(run.ok().starts_with("smp "), "{run:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_device_exits_3() {
    // A socket that receives and never answers: nothing comes back, not even an ICMP
    // "port unreachable".
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr").to_string();
    let args = [
        "--udp",
        addr.as_str(),
        "--timeout",
        "0.3",
        "--retries",
        "0",
        "os",
        "echo",
        "hi",
    ];
    let run = smp(args).await;
    assert_eq!(run.status, 3, "{run:#?}");
    // The wait is measured: about 300 ms, printed for people.
    let expected =
        format!("os echo: device unreachable: no reply from {addr} after 1 attempt over ");
    let first = run.stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&expected) && first.ends_with(" ms"),
        "{}",
        run.stderr
    );
    let mut with_json = vec!["--json"];
    with_json.extend_from_slice(&args);
    let run = smp(with_json).await;
    assert_eq!(run.status, 3);
    let error = &run.json()["error"];
    assert_eq!(error["kind"], "unreachable");
    assert_eq!(error["target"], addr);

    // A port nobody listens on (the network says so): also 3.
    let closed = {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.local_addr().expect("addr")
    };
    let run = smp([
        "--udp",
        &closed.to_string(),
        "--timeout",
        "0.2",
        "--retries",
        "1",
        "os",
        "params",
    ])
    .await;
    assert_eq!(run.status, 3, "{run:#?}");
    assert!(
        run.stderr.starts_with("os params: device unreachable: "),
        "{run:#?}"
    );
    drop(silent);
}

#[tokio::test(flavor = "multi_thread")]
async fn fs_transfers_keep_the_window_in_flight() {
    // Four buffers: three requests in flight, unless --window says fewer.
    let sim = start_with(SimConfig {
        buf_count: 4,
        ..SimConfig::default()
    })
    .await;
    let dir = scratch("fs-window");
    let data = sample_body(30_000, 9);
    let local = dir.join("data.bin");
    std::fs::write(&local, &data).expect("write");

    let doc = on_json(&sim, &["fs", "upload", &path_str(&local), "/lfs1/w.bin"])
        .await
        .ok_json();
    assert_eq!(doc["max_in_flight"], 3, "{doc}");
    for (window, expected) in [(None, 3), (Some("1"), 1)] {
        let back = path_str(&dir.join(format!("back-{expected}.bin")));
        let mut args = vec!["fs", "download", "/lfs1/w.bin", &back];
        if let Some(window) = window {
            args.extend(["--window", window]);
        }
        let doc = on_json(&sim, &args).await.ok_json();
        assert_eq!(doc["max_in_flight"], expected, "{doc}");
        assert_eq!(doc["verified_with"], "sha256", "{doc}");
        assert!(doc["chunks"].as_u64().is_some_and(|n| n >= 15), "{doc}");
        assert_eq!(std::fs::read(&back).expect("read back"), data);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fs_round_trip() {
    let sim = start().await;
    let dir = scratch("fs");
    let data = sample_body(5000, 42);
    let local = dir.join("data.bin");
    std::fs::write(&local, &data).expect("write");
    let back = dir.join("back.bin");
    let back_json = dir.join("back-json.bin");

    let run = on(&sim, &["fs", "upload", &path_str(&local), "/lfs1/data.bin"]).await;
    let text = run.ok();
    assert!(text.starts_with("uploaded 4.88 KiB (5000 B) in "), "{text}");
    assert!(
        text.ends_with("verified: the device's sha256 matches\n"),
        "{text}"
    );
    assert_eq!(sim.file("/lfs1/data.bin").as_deref(), Some(&data[..]));

    let doc = on_json(&sim, &["fs", "upload", &path_str(&local), "/lfs1/j.bin"])
        .await
        .ok_json();
    assert_eq!(doc["local"], path_str(&local));
    assert_eq!(doc["remote"], "/lfs1/j.bin");
    assert_eq!(doc["size"], 5000);
    assert_eq!(doc["verified_with"], "sha256");
    assert!(doc["chunks"].as_u64().is_some_and(|n| n >= 3), "{doc}");
    assert!(doc["bytes_per_second"].is_u64());

    let run = on(
        &sim,
        &["fs", "download", "/lfs1/data.bin", &path_str(&back)],
    )
    .await;
    assert!(
        run.ok().starts_with("downloaded 4.88 KiB (5000 B) in "),
        "{run:#?}"
    );
    assert_eq!(std::fs::read(&back).expect("read back"), data);
    let doc = on_json(
        &sim,
        &["fs", "download", "/lfs1/j.bin", &path_str(&back_json)],
    )
    .await
    .ok_json();
    assert_eq!(doc["size"], 5000);
    assert_eq!(doc["local"], path_str(&back_json));
    assert_eq!(std::fs::read(&back_json).expect("read back"), data);

    let run = on(&sim, &["fs", "stat", "/lfs1/data.bin"]).await;
    assert_eq!(run.ok(), "/lfs1/data.bin: 4.88 KiB (5000 B)\n");
    let doc = on_json(&sim, &["fs", "stat", "/lfs1/data.bin"])
        .await
        .ok_json();
    assert_eq!(doc, json!({"name": "/lfs1/data.bin", "size": 5000}));

    let sha = hex(&Sha256::digest(&data));
    // Without --type the device chooses: Zephyr's default is CRC32.
    let run = on(&sim, &["fs", "hash", "/lfs1/data.bin"]).await;
    assert_eq!(
        run.ok(),
        format!(
            "{:08x}  /lfs1/data.bin (crc32, 4.88 KiB (5000 B))\n",
            crc32fast::hash(&data)
        )
    );
    let doc = on_json(&sim, &["fs", "hash", "/lfs1/data.bin", "--type", "sha256"])
        .await
        .ok_json();
    assert_eq!(
        doc,
        json!({"name": "/lfs1/data.bin", "type": "sha256", "offset": 0, "size": 5000,
               "output": sha})
    );
    let doc = on_json(&sim, &["fs", "hash", "/lfs1/data.bin", "--type", "crc32"])
        .await
        .ok_json();
    assert_eq!(doc["type"], "crc32");
    assert_eq!(doc["output"], format!("{:08x}", crc32fast::hash(&data)));

    // A file that is not there: the group's named error.
    let run = on(&sim, &["fs", "download", "/lfs1/none", &path_str(&back)]).await;
    assert_eq!(run.status, 1);
    assert_eq!(
        run.stderr,
        "fs download: device refused: FS 3 FILE_NOT_FOUND\n"
    );
    // A local file that cannot be read: exit 4.
    let run = on(&sim, &["fs", "upload", "/nonexistent/file", "/lfs1/x"]).await;
    assert_eq!(run.status, 4);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stat_commands() {
    let sim = start().await;
    let run = on(&sim, &["stat", "list"]).await;
    assert!(run.ok().lines().any(|l| l == "smp_svr_stats"), "{run:#?}");
    let doc = on_json(&sim, &["stat", "list"]).await.ok_json();
    let groups = doc["groups"].as_array().expect("groups");
    assert!(groups.contains(&json!("smp_svr_stats")), "{doc}");

    let run = on(&sim, &["stat", "show", "flash_sim_thresholds"]).await;
    assert_eq!(
        run.ok(),
        "flash_sim_thresholds\nFIELD            VALUE\nmax_erase_calls  0\nmax_len          0\nmax_write_calls  0\n"
    );
    let doc = on_json(&sim, &["stat", "show", "smp_svr_stats"])
        .await
        .ok_json();
    assert_eq!(doc["group"], "smp_svr_stats");
    assert!(doc["fields"]["ticks"].is_u64(), "{doc}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_commands() {
    let sim = start().await;
    let run = on(&sim, &["settings", "set", "sim/name", "hello"]).await;
    assert_eq!(run.ok(), "sim/name set\n");
    let run = on(&sim, &["settings", "get", "sim/name"]).await;
    assert_eq!(run.ok(), "hello\n");
    let doc = on_json(&sim, &["settings", "get", "sim/name"])
        .await
        .ok_json();
    assert_eq!(
        doc,
        json!({"name": "sim/name", "value_hex": "68656c6c6f", "value_text": "hello",
               "max_size": null})
    );

    let doc = on_json(&sim, &["settings", "set", "sim/raw", "00ff", "--hex"])
        .await
        .ok_json();
    assert_eq!(
        doc,
        json!({"ok": true, "name": "sim/raw", "value_hex": "00ff"})
    );
    let run = on(&sim, &["settings", "get", "sim/raw"]).await;
    assert_eq!(run.ok(), "0x00ff\n");
    let doc = on_json(&sim, &["settings", "get", "sim/raw"])
        .await
        .ok_json();
    assert_eq!(doc["value_hex"], "00ff");
    assert_eq!(doc["value_text"], Value::Null);

    let run = on(&sim, &["settings", "delete", "sim/raw"]).await;
    assert_eq!(run.ok(), "sim/raw deleted\n");
    let doc = on_json(&sim, &["settings", "delete", "sim/name"])
        .await
        .ok_json();
    assert_eq!(doc, json!({"ok": true, "name": "sim/name"}));
    let run = on_json(&sim, &["settings", "get", "sim/name"]).await;
    assert_eq!(run.status, 1);
    assert_eq!(run.json()["error"]["name"], "KEY_NOT_FOUND");

    assert_eq!(
        on(&sim, &["settings", "commit"]).await.ok(),
        "settings committed\n"
    );
    assert_eq!(
        on_json(&sim, &["settings", "commit"]).await.ok_json(),
        json!({"ok": true})
    );
    assert_eq!(
        on(&sim, &["settings", "load"]).await.ok(),
        "settings loaded\n"
    );
    assert_eq!(
        on_json(&sim, &["settings", "load"]).await.ok_json(),
        json!({"ok": true})
    );
    // The simulated device has no storage to save to: a code `smp` does not know by
    // name still reaches the user, as its number.
    let run = on(&sim, &["settings", "save"]).await;
    assert_eq!(run.status, 1, "{run:#?}");
    assert_eq!(run.stderr, "settings save: device refused: SETTINGS 8\n");
    let run = on_json(&sim, &["settings", "save"]).await;
    assert_eq!(run.status, 1);
    let error = &run.json()["error"];
    assert_eq!((&error["rc"], &error["name"]), (&json!(8), &Value::Null));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shell_enum_zephyr_commands() {
    let sim = start().await;
    let run = on(&sim, &["shell", "exec", "--", "kernel", "version"]).await;
    assert_eq!(run.ok(), "\r\nZephyr version 4.4.0\r\n");
    let doc = on_json(&sim, &["shell", "exec", "--", "echo", "--json", "x"])
        .await
        .ok_json();
    assert_eq!(
        doc,
        json!({"argv": ["echo", "--json", "x"], "output": "\r\n--json x\r\n", "ret": 0})
    );
    // The shell command's failure is its answer, not smp's.
    let run = on(&sim, &["shell", "exec", "nope"]).await;
    // Zephyr's shell prints the error in red.
    assert_eq!(
        run.ok(),
        "\r\n\u{1b}[1;31mnope: command not found\r\n\u{1b}[m\n(exit status -8)\n"
    );
    let doc = on_json(&sim, &["shell", "exec", "nope"]).await.ok_json();
    assert_eq!(doc["ret"], -8);

    let run = on(&sim, &["enum", "groups"]).await;
    let text = run.ok();
    assert!(text.starts_with("ID  NAME\n"), "{text}");
    for line in ["0   OS", "1   IMG", "63  ZEPHYR"] {
        assert!(text.lines().any(|l| l == line), "{line:?} in {text}");
    }
    let doc = on_json(&sim, &["enum", "groups"]).await.ok_json();
    let groups = doc["groups"].as_array().expect("groups");
    assert!(groups.contains(&json!({"id": 0, "name": "OS"})), "{doc}");
    assert!(
        groups.contains(&json!({"id": 63, "name": "ZEPHYR"})),
        "{doc}"
    );

    let run = on(&sim, &["enum", "details"]).await;
    assert!(run.ok().starts_with("ID  NAME"), "{run:#?}");
    let doc = on_json(&sim, &["enum", "details"]).await.ok_json();
    let groups = doc["groups"].as_array().expect("groups");
    assert!(!groups.is_empty());
    for group in groups {
        assert!(group["id"].is_u64(), "{group}");
        assert!(group.get("name").is_some() && group.get("handlers").is_some());
    }

    let run = on(&sim, &["zephyr", "erase-storage"]).await;
    assert_eq!(run.ok(), "storage partition erased\n");
    let doc = on_json(&sim, &["zephyr", "erase-storage"]).await.ok_json();
    assert_eq!(doc, json!({"ok": true}));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn address_from_the_environment_and_ipv6() {
    let sim = start().await;
    let run = smp_env(["os", "echo", "env"], Some(sim.addr().to_string())).await;
    assert_eq!(run.ok(), "env\n");
    // --udp wins over SMP_UDP.
    let run = smp_env(
        ["--udp", &sim.addr().to_string(), "os", "echo", "flag"],
        Some("127.0.0.1:9".to_owned()),
    )
    .await;
    assert_eq!(run.ok(), "flag\n");
    // A bad SMP_UDP is a usage error.
    let run = smp_env(["os", "echo", "x"], Some("[::1".to_owned())).await;
    assert_eq!(run.status, 2);
    sim.shutdown().await;

    let v6 = Sim::start(SimConfig {
        addr: SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)),
        ..SimConfig::default()
    })
    .await;
    match v6 {
        Ok(sim) => {
            let addr = format!("[::1]:{}", sim.addr().port());
            let run = smp(["--udp", addr.as_str(), "os", "echo", "six"]).await;
            assert_eq!(run.ok(), "six\n");
            sim.shutdown().await;
        }
        Err(e) => eprintln!("no IPv6 loopback here ({e}); skipping the IPv6 part"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn completions() {
    let run = smp(["completions", "bash"]).await;
    let script = run.ok();
    assert!(script.contains("_smp()"), "{script}");
    assert!(script.contains("erase-storage"));
    let run = smp(["completions", "zsh"]).await;
    assert!(run.ok().contains("#compdef smp"));
    let run = smp(["completions", "tcsh"]).await;
    assert_eq!(run.status, 2);
}
