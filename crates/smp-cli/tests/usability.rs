//! What a new user runs into with the real `smp` binary (issue 15): output cut by a
//! closed pipe, Ctrl-C, a closed port, hints on the errors people hit most, short
//! hashes, raw requests, standard input and output as files, the `-v` levels, and
//! option values that are refused with a clear message.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;
use smp_mcuboot::{Image, ImageVersion};
use smp_sim::Sim;
use support::Run;
use support::sim::{hex, on, on_json, path_str, smp, start, write_image};

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
            .rsplit("over ")
            .next()
            .and_then(|ms| ms.strip_suffix(" ms\n"))
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
        let mut child = Command::new(env!("CARGO_BIN_EXE_smp"))
            .args(&args)
            .env_remove("SMP_UDP")
            .env_remove("RUST_LOG")
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
