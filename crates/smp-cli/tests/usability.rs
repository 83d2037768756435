//! What a new user runs into with the real `smp` binary (issue 15): output cut by a
//! closed pipe, Ctrl-C, a closed port, hints on the errors people hit most, short
//! hashes, raw requests, standard input and output as files, the `-v` levels, and
//! option values that are refused with a clear message.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;
use smp_mcuboot::{Image, ImageVersion};
use smp_sim::{Delays, Sim, SimConfig};
use support::Run;
use support::sim::{hex, on, on_json, path_str, smp, smp_command, start, start_with, write_image};

fn scratch(test: &str) -> PathBuf {
    support::scratch("smp-cli-usability", test)
}

#[tokio::test(flavor = "multi_thread")]
async fn timeouts_take_units_and_refuse_bad_values_clearly() {
    // A negative value reaches the parser, which says what is wrong with it.
    let run = smp(["--udp", "127.0.0.1", "--timeout", "-1", "os", "params"]).await;
    assert_eq!(run.status, 2, "{run:#?}");
    assert!(
        !run.stderr.contains("unexpected argument"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("invalid value '-1' for '--timeout <DURATION>': `-1` is negative"),
        "{}",
        run.stderr
    );
    let run = smp(["--timeout", "2h", "os", "params"]).await;
    assert_eq!(run.status, 2, "{run:#?}");
    assert!(run.stderr.contains("unknown unit `h`"), "{}", run.stderr);
    // Units, and plain seconds as before: the wait printed is the one asked for.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr").to_string();
    for value in ["300ms", "0.3s", "0.3"] {
        let run = smp([
            "--udp",
            &addr,
            "--timeout",
            value,
            "--retries",
            "0",
            "os",
            "echo",
            "hi",
        ])
        .await;
        assert_eq!(run.status, 3, "{run:#?}");
        let waited = run
            .stderr
            .lines()
            .next()
            .and_then(|line| line.rsplit("over ").next())
            .and_then(|ms| ms.strip_suffix(" ms"))
            .and_then(|ms| ms.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{value}: {}", run.stderr));
        assert!((300..1000).contains(&waited), "{value}: {}", run.stderr);
    }
}

/// Runs `smp` with `args` and its stdout a pipe whose reader has already gone, as after
/// `smp ... | head -1` once `head` has its line.
async fn with_closed_stdout(args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut child = smp_command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the smp binary starts");
        // Closed before the program has even parsed its arguments.
        drop(child.stdout.take());
        Run::from_output(child.wait_with_output().expect("smp ends"))
    })
    .await
    .expect("the blocking task finishes")
}

#[tokio::test(flavor = "multi_thread")]
async fn output_cut_by_a_closed_pipe_ends_quietly() {
    // `smp completions bash | head -1` panicked: "failed to write completion file".
    for shell in ["bash", "zsh", "fish"] {
        let run = with_closed_stdout(&["completions", shell]).await;
        assert_eq!(
            (run.status, run.stderr.as_str()),
            (0, ""),
            "{shell}: {run:#?}"
        );
    }
    let sim = start().await;
    let addr = sim.addr().to_string();
    for args in [
        &["--udp", &addr, "os", "echo", "hi"][..],
        &["--udp", &addr, "--json", "image", "list"],
        &["--udp", &addr, "fs", "supported-checksums"],
        &["--help"],
    ] {
        let run = with_closed_stdout(args).await;
        assert_eq!(
            (run.status, run.stderr.as_str()),
            (0, ""),
            "{args:?}: {run:#?}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_names_the_image_number_image_and_still_takes_slot() {
    let help = smp(["image", "upload", "--help"]).await;
    let text = help.ok();
    assert!(text.contains("--image <N>"), "{text}");
    assert!(!text.contains("--slot"), "the old name is hidden: {text}");

    let sim = start().await;
    let dir = scratch("image_option");
    let (path, hash) = write_image(&dir, ImageVersion::new(1, 2, 3, 0), 5000);
    let file = path_str(&path);
    for option in ["--image", "--slot"] {
        let doc = on_json(&sim, &["image", "upload", &file, option, "0"])
            .await
            .ok_json();
        assert_eq!(
            (&doc["image"], &doc["slot"]["hash"]),
            (&json!(0), &json!(hash))
        );
        // The number reaches the device: the simulated one has image 0 only.
        let run = on(&sim, &["image", "upload", &file, option, "1"]).await;
        assert_eq!(run.status, 1, "{option} 1: {run:#?}");
        assert!(run.stderr.contains("IMG 9 NO_FREE_SLOT"), "{}", run.stderr);
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn os_params_asks_the_device_once() {
    // The client reads the parameters when it connects: `os params` prints those.
    let sim = start().await;
    let run = on(&sim, &["os", "params"]).await;
    assert_eq!(run.ok(), "buf_size: 2048\nbuf_count: 2\n");
    assert_eq!(sim.counters().received, 1, "one request, not two");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fs_supported_checksums_and_close() {
    let sim = start().await;
    let run = on(&sim, &["fs", "supported-checksums"]).await;
    assert_eq!(
        run.ok(),
        "NAME    SIZE  OUTPUT\ncrc32   4 B   number\nsha256  32 B  bytes\n"
    );
    let doc = on_json(&sim, &["fs", "supported-checksums"])
        .await
        .ok_json();
    assert_eq!(
        doc,
        json!({"types": [{"name": "crc32", "size": 4, "format": 0, "output": "number"},
                         {"name": "sha256", "size": 32, "format": 1, "output": "bytes"}]})
    );
    let run = on(&sim, &["fs", "close"]).await;
    assert_eq!(run.ok(), "the device's open files closed\n");
    let doc = on_json(&sim, &["fs", "close"]).await.ok_json();
    assert_eq!(doc, json!({"ok": true}));
    sim.shutdown().await;
}

/// The image running in the simulated device's slot 0, written to `dir`; its path and hash.
fn running_image(sim: &Sim, dir: &Path) -> (PathBuf, String) {
    let slot = sim.slot(0).expect("slot 0");
    let image = Image::parse(&slot).expect("slot 0 holds an image");
    let path = dir.join("running.bin");
    std::fs::write(&path, &slot[..image.total_size()]).expect("write the image");
    (path, hex(&image.hash().expect("a hash")))
}

#[tokio::test(flavor = "multi_thread")]
async fn uploading_the_running_image_reports_the_slot_written() {
    let sim = start().await;
    let dir = scratch("running_image");
    let (path, hash) = running_image(&sim, &dir);
    let file = path_str(&path);

    let run = on(&sim, &["image", "upload", &file]).await;
    let text = run.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[1].starts_with("uploaded "), "{text}");
    assert_eq!(
        lines[2..],
        [
            "now in image 0 slot 1: version 1.0.0 [bootable]",
            &format!("  hash {hash}"),
            "this image is already running, from image 0 slot 0",
        ],
        "{text}"
    );
    let doc = on_json(&sim, &["image", "upload", &file]).await.ok_json();
    assert_eq!(
        (&doc["slot"]["slot"], &doc["slot"]["hash"]),
        (&json!(1), &json!(hash))
    );
    assert_eq!(doc["already_running"], true, "{doc}");

    // Another image: written to slot 1, not running.
    let (other, _) = write_image(&dir, ImageVersion::new(2, 0, 0, 0), 3000);
    let doc = on_json(&sim, &["image", "upload", &path_str(&other)])
        .await
        .ok_json();
    assert_eq!(
        (&doc["slot"]["slot"], &doc["already_running"]),
        (&json!(1), &json!(false))
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_errors_people_hit_most_come_with_a_hint() {
    let sim = start().await;
    let dir = scratch("hints");
    let (first, hash) = write_image(&dir, ImageVersion::new(1, 1, 0, 0), 3000);
    let (second, _) = write_image(&dir, ImageVersion::new(1, 2, 0, 0), 3000);
    on(&sim, &["image", "upload", &path_str(&first)]).await.ok();
    on(&sim, &["image", "test", &hash]).await.ok();

    // A test image is pending in the other slot: where to go from there.
    let run = on(&sim, &["image", "upload", &path_str(&second)]).await;
    assert_eq!(run.status, 1, "{run:#?}");
    assert_eq!(
        run.stderr.lines().collect::<Vec<_>>(),
        [
            "image upload: device refused: IMG 9 NO_FREE_SLOT",
            "hint: the other slot is in use: an image there is pending for test \
             (`smp os reset` boots it), or the running image is on test and not confirmed \
             yet (`smp image confirm` keeps it); `smp image list` shows which",
        ]
    );
    let run = on_json(&sim, &["image", "upload", &path_str(&second)]).await;
    let error = &run.json()["error"];
    assert_eq!(error["name"], "NO_FREE_SLOT");
    assert!(
        error["hint"]
            .as_str()
            .is_some_and(|h| h.contains("`smp os reset`")),
        "{error}"
    );

    // A hash no slot holds.
    let run = on(&sim, &["image", "test", &"00".repeat(32)]).await;
    assert_eq!(
        run.stderr,
        "image test: device refused: IMG 8 HASH_NOT_FOUND\nhint: no slot holds an image \
         with this hash: `smp image list` shows the hashes the device has\n"
    );

    // A path outside any file system.
    let local = dir.join("data.txt");
    std::fs::write(&local, "data").expect("write");
    let run = on(&sim, &["fs", "upload", &path_str(&local), "/nofs/data.txt"]).await;
    assert_eq!(run.status, 1, "{run:#?}");
    assert!(
        run.stderr.starts_with(
            "fs upload: device refused: FS 14 MOUNT_POINT_NOT_FOUND\n\
             hint: no file system is mounted there"
        ),
        "{}",
        run.stderr
    );

    // No reply to the very first request: where to look.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr");
    let args = [
        "--udp",
        &addr.to_string(),
        "--timeout",
        "100ms",
        "--retries",
        "0",
        "os",
        "echo",
        "hi",
    ];
    let run = smp(args).await;
    assert_eq!(run.status, 3);
    assert_eq!(
        run.stderr.lines().nth(1),
        Some(
            format!(
                "hint: nothing answered at all: check the address and port (--udp \
                 HOST[:PORT], port 1337 unless given), that the device runs an MCUmgr UDP \
                 server, and that no firewall drops UDP port {}",
                addr.port()
            )
            .as_str()
        ),
        "{}",
        run.stderr
    );
    let mut json_args = vec!["--json"];
    json_args.extend(args);
    let run = smp(json_args).await;
    let hint = &run.json()["error"]["hint"];
    assert!(
        hint.as_str()
            .is_some_and(|h| h.starts_with("nothing answered")),
        "{hint}"
    );
    sim.shutdown().await;
}

/// Writes an image whose hash TLV is `hash` (the simulated device lists what the TLV
/// says); returns its path.
fn image_with_hash(dir: &Path, hash: &[u8; 32]) -> PathBuf {
    let mut bytes = smp_mcuboot::ImageBuilder::new(ImageVersion::new(3, 0, 0, 0))
        .build(&smp_mcuboot::sample_body(2000, 3));
    let real = Image::parse(&bytes)
        .expect("parses")
        .hash()
        .expect("a hash");
    let at = bytes
        .windows(32)
        .position(|w| w == real)
        .expect("the hash TLV");
    bytes[at..at + 32].copy_from_slice(hash);
    let path = dir.join("forged.bin");
    std::fs::write(&path, &bytes).expect("write");
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn short_hashes_are_resolved_against_the_device() {
    let sim = start().await;
    let dir = scratch("short_hashes");
    let (path, hash) = write_image(&dir, ImageVersion::new(1, 2, 3, 0), 3000);
    on(&sim, &["image", "upload", &path_str(&path)]).await.ok();

    // The first digits name the image, as in git.
    let run = on(&sim, &["image", "test", &hash[..6]]).await;
    assert!(
        run.ok()
            .starts_with(&format!("image {hash} will be tested on the next boot\n")),
        "{run:#?}"
    );
    let doc = on_json(&sim, &["image", "confirm", &hash[..8].to_uppercase()])
        .await
        .ok_json();
    assert!(doc["images"].is_array(), "{doc}");
    // The image the prefix names was confirmed, not the running one.
    let state = sim.image_state();
    let slot1 = state.images.iter().find(|s| s.slot == 1).expect("slot 1");
    assert_eq!(slot1.permanent, Some(true), "{slot1:?}");

    // Digits no image's hash starts with: a usage error naming what the device has.
    let running_hash = {
        let state = sim.image_state();
        let slot0 = state.images.iter().find(|s| s.slot == 0).expect("slot 0");
        slot0.hash.as_ref().expect("a hash").to_string()
    };
    let unknown = if hash.starts_with('f') || running_hash.starts_with('f') {
        if hash.starts_with('e') || running_hash.starts_with('e') {
            "dddd"
        } else {
            "eeee"
        }
    } else {
        "ffff"
    };
    let run = on(&sim, &["image", "test", unknown]).await;
    assert_eq!(run.status, 2, "{run:#?}");
    assert_eq!(
        run.stderr,
        format!(
            "image test: no image on the device has a hash starting with {unknown}\n\
             hint: the device has image 0 slot 0 {running_hash}, image 0 slot 1 {hash}\n"
        )
    );
    let run = on_json(&sim, &["image", "test", unknown]).await;
    assert_eq!(run.status, 2);
    let error = &run.json()["error"];
    assert_eq!(error["kind"], "usage");
    assert_eq!(
        error["candidates"],
        json!([{"image": 0, "slot": 0, "hash": running_hash},
               {"image": 0, "slot": 1, "hash": hash}])
    );

    sim.shutdown().await;

    // Two images whose hashes share their first 62 digits: ambiguous until the last.
    let sim = start().await;
    let mut twin = [0u8; 32];
    for (byte, pair) in twin.iter_mut().zip(running_hash.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).expect("hex"), 16).expect("hex");
    }
    twin[31] ^= 1;
    let forged = image_with_hash(&dir, &twin);
    on(&sim, &["image", "upload", "--raw", &path_str(&forged)])
        .await
        .ok();
    let twin_hex = hex(&twin);
    let run = on(&sim, &["image", "test", &running_hash[..8]]).await;
    assert_eq!(run.status, 2, "{run:#?}");
    assert_eq!(
        run.stderr,
        format!(
            "image test: hash prefix {} is ambiguous: 2 images' hashes start with it\n\
             hint: give more digits of one: image 0 slot 0 {running_hash}, image 0 slot 1 \
             {twin_hex}\n",
            &running_hash[..8]
        )
    );
    // The whole hash is sent as it is.
    let run = on(&sim, &["image", "test", &twin_hex]).await;
    assert!(
        run.ok().starts_with(&format!("image {twin_hex} will")),
        "{run:#?}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_port_ends_the_command_at_once() {
    // A port nobody listens on: the network refuses each attempt at once.
    let closed = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.local_addr().expect("addr")
    };
    let started = std::time::Instant::now();
    // The default timeout (2.5 s) and retries (3): 10.4 s of waiting before.
    let run = smp(["--udp", &closed.to_string(), "os", "echo", "hi"]).await;
    let elapsed = started.elapsed();
    assert_eq!(run.status, 3, "{run:#?}");
    assert_eq!(
        run.stderr,
        format!(
            "os echo: device unreachable: nothing listens on {closed} (connection refused)\n\
             hint: check the address and port; a device that is restarting refuses requests \
             for a moment: try again then\n"
        )
    );
    assert!(elapsed < std::time::Duration::from_secs(2), "{elapsed:?}");
    let run = smp(["--json", "--udp", &closed.to_string(), "os", "echo", "hi"]).await;
    assert_eq!(run.status, 3);
    let error = &run.json()["error"];
    assert_eq!(error["kind"], "unreachable");
    assert_eq!(error["target"], closed.to_string());
}

/// Starts `smp args...` with piped stdout and stderr, SIGINTs it (as Ctrl-C does) once
/// the simulated device holds more than `past` bytes of an image upload, and returns
/// what it did.
async fn interrupt_upload(sim: &Sim, args: &[&str], past: u64) -> Run {
    let mut all = vec!["--udp".to_owned(), sim.addr().to_string()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let child = smp_command(&all)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the smp binary starts");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while sim.upload_progress().is_none_or(|(off, _)| off <= past) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upload never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let status = Command::new("kill")
        .args(["-s", "INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    tokio::task::spawn_blocking(move || Run::from_output(child.wait_with_output().expect("ends")))
        .await
        .expect("the blocking task finishes")
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_an_upload_says_where_it_stopped() {
    // Slow flash: a 200 KB image takes seconds to upload.
    let sim = start_with(SimConfig {
        delays: Delays {
            per_kib_written: std::time::Duration::from_millis(10),
            ..Delays::default()
        },
        ..SimConfig::default()
    })
    .await;
    let dir = scratch("interrupted");
    let (path, _) = write_image(&dir, ImageVersion::new(1, 5, 0, 0), 200_000);
    let file = path_str(&path);
    let size = std::fs::metadata(&path).expect("metadata").len();

    // Far enough for the client to have heard of some of it.
    let run = interrupt_upload(&sim, &["image", "upload", &file], 30_000).await;
    assert_eq!(run.status, 130, "{run:#?}");
    let message = run.stderr.trim_end();
    let offset: u64 = message
        .strip_prefix("image upload: interrupted at offset ")
        .and_then(|rest| rest.strip_suffix(&format!(" of {size}; run the same command to resume")))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{run:#?}"));
    assert!(offset > 0 && offset < size, "{offset}");

    // With --json, the error document, still.
    let (held, _) = sim.upload_progress().expect("the device keeps the upload");
    let run = interrupt_upload(&sim, &["--json", "image", "upload", &file], held + 30_000).await;
    assert_eq!(run.status, 130, "{run:#?}");
    assert_eq!(run.stderr, "");
    let error = &run.json()["error"];
    assert_eq!(error["kind"], "interrupted");
    assert_eq!(error["exit_code"], 130);
    assert_eq!(error["size"], size);
    let offset = error["offset"].as_u64().expect("an offset");
    assert_eq!(
        error["message"],
        format!("interrupted at offset {offset} of {size}; run the same command to resume")
    );

    // As it says: the same command resumes.
    let doc = on_json(&sim, &["image", "upload", &file]).await.ok_json();
    assert!(doc["resumed_at"].as_u64().is_some_and(|at| at > 0), "{doc}");
    sim.shutdown().await;
}

/// The longest "ETA ..." a progress bar drew in `terminal` output, and how many it drew.
fn etas(terminal: &str) -> (usize, std::time::Duration) {
    let mut longest = std::time::Duration::ZERO;
    let mut count = 0;
    for frame in terminal.split(['\r', '\n']) {
        let Some(eta) = frame.split("ETA ").nth(1) else {
            continue;
        };
        let eta = eta.split_whitespace().next().unwrap_or_default();
        let (number, unit) = eta.split_at(eta.find(|c: char| c.is_alphabetic()).unwrap_or(0));
        let number: u64 = number.parse().unwrap_or_else(|_| panic!("{frame:?}"));
        let seconds = match unit {
            "s" => number,
            "m" => number * 60,
            "h" => number * 3600,
            other => panic!("unit {other:?} in {frame:?}"),
        };
        longest = longest.max(std::time::Duration::from_secs(seconds));
        count += 1;
    }
    (count, longest)
}

#[tokio::test(flavor = "multi_thread")]
async fn no_eta_from_the_slot_erase() {
    // The progress bar is drawn on a terminal only: `script` gives smp one.
    // (util-linux's `script`, in Debian's essential bsdutils: never a skip counted as a
    // pass.)
    assert!(
        Command::new("script").arg("--version").output().is_ok(),
        "no `script` (util-linux) here to run smp on a terminal"
    );
    // The first chunk waits 1.5 s for the erase, the rest takes about a second.
    let sim = start_with(SimConfig {
        delays: Delays {
            erase: std::time::Duration::from_millis(1500),
            per_kib_written: std::time::Duration::from_millis(5),
            ..Delays::default()
        },
        ..SimConfig::default()
    })
    .await;
    let dir = scratch("eta");
    let (path, _) = write_image(&dir, ImageVersion::new(1, 6, 0, 0), 200_000);
    let command = format!(
        "'{}' --udp {} image upload '{}'",
        env!("CARGO_BIN_EXE_smp"),
        sim.addr(),
        path_str(&path)
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new("script")
            .args(["-qfec", &command, "/dev/null"])
            .env_remove("SMP_UDP")
            .stdin(Stdio::null())
            .output()
            .expect("script runs")
    })
    .await
    .expect("the blocking task finishes");
    let terminal = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{terminal}");
    assert!(terminal.contains("upload ["), "no progress bar: {terminal}");
    // The erase made a 2.5 s upload show "ETA 2m"; the estimate now waits for the rate.
    let (count, longest) = etas(&terminal);
    assert!(count > 0, "no ETA at all: {terminal}");
    assert!(
        longest <= std::time::Duration::from_secs(3),
        "ETA {longest:?}: {terminal}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_sends_any_request_and_shows_the_reply_as_json() {
    let sim = start().await;
    // Echo, by group name and command number: the reply alone, indented.
    let run = on(&sim, &["raw", "os", "0", "--write", r#"{"d": "hello"}"#]).await;
    assert_eq!(run.ok(), "{\n  \"r\": \"hello\"\n}\n");
    let doc = on_json(&sim, &["raw", "0", "0", "--write", r#"{"d": "hi"}"#])
        .await
        .ok_json();
    assert_eq!(
        doc,
        json!({"group": 0, "command": 0, "op": "write", "request": {"d": "hi"},
               "reply": {"r": "hi"}})
    );

    // Byte strings both ways: the image state's hash, and a setting written as bytes.
    let doc = on_json(&sim, &["raw", "image", "0"]).await.ok_json();
    let hash = sim.image_state().images[0]
        .hash
        .as_ref()
        .expect("a hash")
        .to_string();
    assert_eq!(doc["op"], "read");
    assert_eq!(doc["reply"]["images"][0]["hash"], json!({"$bytes": hash}));
    let body = r#"{"name": "sim/raw", "val": {"$bytes": "00ff"}}"#;
    on(&sim, &["raw", "settings", "0", "--write", body])
        .await
        .ok();
    assert_eq!(
        on(&sim, &["settings", "get", "sim/raw"]).await.ok(),
        "0x00ff\n"
    );
    let doc = on_json(&sim, &["raw", "settings", "0", r#"{"name": "sim/raw"}"#])
        .await
        .ok_json();
    assert_eq!(doc["reply"]["val"], json!({"$bytes": "00ff"}));

    // A group the device lacks: its error, and the hint for a missing group.
    let run = on(&sim, &["raw", "64", "0"]).await;
    assert_eq!(run.status, 1, "{run:#?}");
    assert_eq!(
        run.stderr,
        "raw: device refused: MGMT 8 ENOTSUP for group 64\n\
         hint: the device lacks this command, or the whole group 64: `smp enum groups` \
         lists the groups it has\n"
    );
    let run = on(&sim, &["raw", "log", "0"]).await;
    assert!(
        run.stderr
            .contains("hint: the device lacks this command, or the whole LOG group"),
        "{run:#?}"
    );

    // A body that is not a JSON object: a usage error before anything is sent.
    let received = sim.counters().received;
    for bad in ["[1]", "{", r#"{"d": {"$bytes": "0g"}}"#] {
        let run = on_json(&sim, &["raw", "0", "0", "--write", bad]).await;
        assert_eq!(run.status, 2, "{bad}: {run:#?}");
        assert_eq!(run.json()["error"]["kind"], "usage");
    }
    assert_eq!(sim.counters().received, received, "nothing sent");
    sim.shutdown().await;
}

/// What one run of `smp` with `stdin` as its input did, stdout as bytes.
async fn smp_with_input(args: &[&str], stdin: Vec<u8>) -> (i32, Vec<u8>, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut child = smp_command(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the smp binary starts");
        let mut input = child.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || {
            use std::io::Write as _;
            let _ = input.write_all(&stdin);
        });
        let output = child.wait_with_output().expect("smp ends");
        writer.join().expect("the writer ends");
        (
            output.status.code().expect("smp exits"),
            output.stdout,
            String::from_utf8(output.stderr).expect("UTF-8 stderr"),
        )
    })
    .await
    .expect("the blocking task finishes")
}

#[tokio::test(flavor = "multi_thread")]
async fn fs_transfers_from_stdin_and_to_stdout() {
    let sim = start().await;
    let addr = sim.addr().to_string();
    // Binary data, not text.
    let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();

    // Standard input to the device.
    let (status, stdout, stderr) = smp_with_input(
        &["--udp", &addr, "fs", "upload", "-", "/lfs1/in.bin"],
        data.clone(),
    )
    .await;
    assert_eq!(status, 0, "{stderr}");
    assert!(String::from_utf8_lossy(&stdout).starts_with("uploaded 19.53 KiB (20000 B) in "));
    assert_eq!(sim.file("/lfs1/in.bin").as_deref(), Some(&data[..]));
    let (status, stdout, _) = smp_with_input(
        &["--json", "--udp", &addr, "fs", "upload", "-", "/lfs1/j.bin"],
        b"small".to_vec(),
    )
    .await;
    assert_eq!(status, 0);
    let doc: serde_json::Value = serde_json::from_slice(&stdout).expect("JSON on stdout");
    assert_eq!((&doc["local"], &doc["size"]), (&json!("-"), &json!(5)));

    // The device's file to standard output: the bytes alone there, the summary on stderr.
    let (status, stdout, stderr) = smp_with_input(
        &["--udp", &addr, "fs", "download", "/lfs1/in.bin", "-"],
        vec![],
    )
    .await;
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout == data, "stdout holds the file's bytes only");
    assert!(
        stderr.starts_with("downloaded 19.53 KiB (20000 B) in "),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("verified: the device's sha256 matches\n"),
        "{stderr}"
    );
    // With --json, the document goes to stderr too; errors included.
    let args = [
        "--json",
        "--udp",
        &addr,
        "fs",
        "download",
        "/lfs1/in.bin",
        "-",
    ];
    let (status, stdout, stderr) = smp_with_input(&args, vec![]).await;
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout == data);
    let doc: serde_json::Value = serde_json::from_str(&stderr).expect("JSON on stderr");
    assert_eq!((&doc["local"], &doc["size"]), (&json!("-"), &json!(20_000)));
    let args = [
        "--json",
        "--udp",
        &addr,
        "fs",
        "download",
        "/lfs1/none",
        "-",
    ];
    let (status, stdout, stderr) = smp_with_input(&args, vec![]).await;
    assert_eq!(status, 1);
    assert!(stdout.is_empty());
    let doc: serde_json::Value = serde_json::from_str(&stderr).expect("JSON on stderr");
    assert_eq!(doc["error"]["name"], "FILE_NOT_FOUND");

    // `smp fs download REMOTE - | head -c 10`: a reader that leaves early is no error.
    let run = with_closed_stdout(&["--udp", &addr, "fs", "download", "/lfs1/in.bin", "-"]).await;
    assert_eq!((run.status, run.stderr.lines().count()), (0, 2), "{run:#?}");
    sim.shutdown().await;
}

/// The log lines of `stderr` without the time each starts with.
fn log_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .map(|line| {
            let line = line.trim_start();
            let (time, rest) = line.split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
            assert!(time.ends_with('s'), "no time in {line:?}");
            rest.trim_start().to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn verbose_levels_do_what_their_help_says() {
    let sim = start().await;
    // -v: one line per command.
    let run = on(&sim, &["-v", "os", "echo", "hi"]).await;
    assert_eq!(run.ok(), "hi\n");
    let lines = log_lines(&run.stderr);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with("INFO os echo: ok in ") && lines[0].ends_with(" ms"),
        "{lines:#?}"
    );
    assert!(!run.stderr.contains('\u{1b}'), "no colour on a pipe");

    // -vv: one line per request and reply: name, sequence, length, round-trip time.
    let run = on(&sim, &["-vv", "os", "echo", "hi"]).await;
    let lines = log_lines(&run.stderr);
    let find = |lines: &[String], start: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(start))
            .cloned()
            .unwrap_or_else(|| panic!("no {start:?} in {lines:#?}"))
    };
    let request = find(&lines, "DEBUG request os echo seq=");
    assert!(request.ends_with(" len=14 attempt=0"), "{request}");
    let seq = request
        .split("seq=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .expect("a sequence number");
    let reply = find(
        &lines,
        &format!("DEBUG reply os echo seq={seq} len=15 rtt="),
    );
    assert!(reply.ends_with(" ms"), "{reply}");
    find(&lines, "DEBUG request os params seq=");
    find(&lines, "DEBUG reply os params seq=");
    find(&lines, "INFO os echo: ok in ");
    assert!(!run.stderr.contains("cbor="), "{lines:#?}");

    // -vvv: the same lines with the CBOR in diagnostic notation and the frame in hex.
    let run = on(&sim, &["-vvv", "os", "echo", "hi"]).await;
    let lines = log_lines(&run.stderr);
    let request = find(&lines, "TRACE request os echo seq=");
    assert!(
        request.contains(r#" cbor={"d": "hi"} frame=0a000006"#)
            && request.ends_with("a16164626869"),
        "{request}"
    );
    let reply = find(&lines, "TRACE reply os echo seq=");
    assert!(
        reply.contains(r#" cbor={"r": "hi"} frame=0b000007"#),
        "{reply}"
    );
    let params = find(&lines, "TRACE reply os params seq=");
    assert!(
        params.contains(r#"cbor={"buf_size": 2048, "buf_count": 2}"#),
        "{params}"
    );
    sim.shutdown().await;
}
