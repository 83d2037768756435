//! smp-sim against the real Zephyr UDP server: the same scripted datagrams to both, the
//! replies compared header field by header field and body entry by entry.
//!
//! Differences that are the device's own business, and so not compared:
//! - `smp_svr_stats` `ticks`: seconds since each device booted;
//! - the enumeration group's answers: smp-sim also serves the image group (1), which
//!   the real UDP server is built without; group 1 is removed from smp-sim's answers
//!   (list, count, details) before comparing;
//! - not scripted at all: the image group (the real server answers `rc 8`), OS
//!   datetime, mpstat and bootloader info (`rc 8` on the real server, served by
//!   smp-sim), task statistics and `os info` letters other than `s` and `o` (build
//!   specific), settings under smp-sim's own `sim/` root (the real server has no
//!   settings handler), and the zephyr storage erase (it would wipe the real server's
//!   file system for the tests that follow).

use std::time::Duration;

use minicbor::Encoder;
use smp_client::header::{self, Header, Op, Version, command, group};
use smp_client::messages::Value;
use smp_sim::{Sim, SimConfig};
use tokio::net::UdpSocket;

const REPLY_TIMEOUT: Duration = Duration::from_secs(3);

/// One scripted exchange: a datagram and how many replies it gets.
struct Step {
    name: String,
    datagram: Vec<u8>,
    replies: usize,
    /// Body paths (`fields.ticks`) whose values are device-specific.
    except: &'static [&'static str],
    /// Remove the image group from the simulated device's enumeration answers.
    without_image_group: bool,
}

impl Step {
    /// A datagram of the script, compared in full.
    fn raw(name: &str, datagram: Vec<u8>, replies: usize) -> Self {
        Self {
            name: name.to_owned(),
            datagram,
            replies,
            except: &[],
            without_image_group: false,
        }
    }
}

/// Builds CBOR maps with text keys for the script.
fn map(entries: &[(&str, Value)]) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    e.map(entries.len() as u64).unwrap();
    for (key, value) in entries {
        e.str(key).unwrap();
        e.encode(value).unwrap();
    }
    e.into_writer()
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn int(n: i128) -> Value {
    Value::Int(n)
}

fn frame(version: Version, op: Op, group: u16, command: u8, seq: u8, payload: &[u8]) -> Vec<u8> {
    let header = Header::new(op, group, command, payload.len() as u16)
        .with_version(version)
        .with_sequence(seq);
    [&header.encode()[..], payload].concat()
}

/// The script: every group both devices serve, success and error paths, v1 and v2,
/// and the datagram rules.
fn script() -> Vec<Step> {
    let mut steps = Vec::new();
    let mut seq = 0x40u8;
    let mut push =
        |name: &str, version: Version, op: Op, group: u16, command: u8, payload: Vec<u8>| {
            seq = seq.wrapping_add(1);
            steps.push(Step {
                name: format!("{name} ({version:?})"),
                datagram: frame(version, op, group, command, seq, &payload),
                replies: 1,
                except: &[],
                without_image_group: group == header::group::ENUM,
            });
        };
    use Op::{Read, Write};
    use Version::{V1, V2};
    let (os, stat, settings, fs, shell, en) = (
        group::OS,
        group::STAT,
        group::SETTINGS,
        group::FS,
        group::SHELL,
        group::ENUM,
    );
    for v in [V2, V1] {
        push(
            "echo",
            v,
            Write,
            os,
            command::os::ECHO,
            map(&[("d", text("hello"))]),
        );
    }
    push("echo without d", V2, Write, os, command::os::ECHO, map(&[]));
    push(
        "echo d not text",
        V2,
        Write,
        os,
        command::os::ECHO,
        map(&[("d", int(5))]),
    );
    push(
        "echo empty payload",
        V2,
        Write,
        os,
        command::os::ECHO,
        Vec::new(),
    );
    push("params", V2, Read, os, command::os::MCUMGR_PARAMS, map(&[]));
    push("os info default", V2, Read, os, command::os::INFO, map(&[]));
    push(
        "os info so",
        V2,
        Read,
        os,
        command::os::INFO,
        map(&[("format", text("so"))]),
    );
    for v in [V2, V1] {
        push(
            "os info bad letter",
            v,
            Read,
            os,
            command::os::INFO,
            map(&[("format", text("q"))]),
        );
    }
    push("os unknown command", V2, Read, os, 99, map(&[]));
    push("unknown group", V2, Read, 99, 0, map(&[]));
    push(
        "response op sent",
        V2,
        Op::ReadRsp,
        os,
        command::os::ECHO,
        map(&[("d", text("x"))]),
    );

    push("stat list", V2, Read, stat, command::stat::LIST, map(&[]));
    push(
        "stat thresholds",
        V2,
        Read,
        stat,
        command::stat::GROUP_DATA,
        map(&[("name", text("flash_sim_thresholds"))]),
    );
    push(
        "stat flash_sim_stats",
        V2,
        Read,
        stat,
        command::stat::GROUP_DATA,
        map(&[("name", text("flash_sim_stats"))]),
    );
    for v in [V2, V1] {
        push(
            "stat unknown group",
            v,
            Read,
            stat,
            command::stat::GROUP_DATA,
            map(&[("name", text("nope"))]),
        );
    }

    let long = "k".repeat(40);
    for v in [V2, V1] {
        push(
            "settings read",
            v,
            Read,
            settings,
            command::settings::READ_WRITE,
            map(&[("name", text("nope/x"))]),
        );
        push(
            "settings write",
            v,
            Write,
            settings,
            command::settings::READ_WRITE,
            map(&[("name", text("nope/x")), ("val", Value::Bytes(vec![1, 2]))]),
        );
        push(
            "settings delete",
            v,
            Write,
            settings,
            command::settings::DELETE,
            map(&[("name", text("nope/x"))]),
        );
        push(
            "settings long name",
            v,
            Read,
            settings,
            command::settings::READ_WRITE,
            map(&[("name", text(&long))]),
        );
        push(
            "settings save",
            v,
            Write,
            settings,
            command::settings::LOAD_SAVE,
            map(&[]),
        );
    }
    push(
        "settings commit",
        V2,
        Write,
        settings,
        command::settings::COMMIT,
        map(&[]),
    );
    push(
        "settings load",
        V2,
        Read,
        settings,
        command::settings::LOAD_SAVE,
        map(&[]),
    );

    // Files small enough to be inlined by littlefs: the real file system is 16 KiB.
    let name = "/lfs1/compare.bin";
    let data: Vec<u8> = (0..60u8)
        .map(|i| i.wrapping_mul(7).wrapping_add(3))
        .collect();
    for v in [V2, V1] {
        push(
            "fs status missing",
            v,
            Read,
            fs,
            command::fs::STATUS,
            map(&[("name", text("/lfs1/missing"))]),
        );
    }
    push(
        "fs upload first",
        V2,
        Write,
        fs,
        command::fs::FILE,
        map(&[
            ("name", text(name)),
            ("off", int(0)),
            ("len", int(60)),
            ("data", Value::Bytes(data[..35].to_vec())),
        ]),
    );
    push(
        "fs upload last",
        V2,
        Write,
        fs,
        command::fs::FILE,
        map(&[
            ("name", text(name)),
            ("off", int(35)),
            ("data", Value::Bytes(data[35..].to_vec())),
        ]),
    );
    push(
        "fs status",
        V2,
        Read,
        fs,
        command::fs::STATUS,
        map(&[("name", text(name))]),
    );
    for off in [0, 20, 60, 61] {
        push(
            &format!("fs download at {off}"),
            V2,
            Read,
            fs,
            command::fs::FILE,
            map(&[("name", text(name)), ("off", int(off))]),
        );
    }
    push(
        "fs hash default",
        V2,
        Read,
        fs,
        command::fs::HASH_CHECKSUM,
        map(&[("name", text(name))]),
    );
    push(
        "fs hash sha256",
        V2,
        Read,
        fs,
        command::fs::HASH_CHECKSUM,
        map(&[("name", text(name)), ("type", text("sha256"))]),
    );
    push(
        "fs hash crc32 part",
        V2,
        Read,
        fs,
        command::fs::HASH_CHECKSUM,
        map(&[
            ("name", text(name)),
            ("type", text("crc32")),
            ("off", int(10)),
            ("len", int(20)),
        ]),
    );
    push(
        "fs hash unknown type",
        V2,
        Read,
        fs,
        command::fs::HASH_CHECKSUM,
        map(&[("name", text(name)), ("type", text("md5"))]),
    );
    push(
        "fs supported hashes",
        V2,
        Read,
        fs,
        command::fs::SUPPORTED_HASH_CHECKSUM,
        map(&[]),
    );
    push("fs close", V2, Write, fs, command::fs::CLOSE, map(&[]));
    push(
        "fs status of the mount point",
        V2,
        Read,
        fs,
        command::fs::STATUS,
        map(&[("name", text("/lfs1"))]),
    );
    push(
        "fs upload outside the mount point",
        V2,
        Write,
        fs,
        command::fs::FILE,
        map(&[
            ("name", text("/nope/x")),
            ("off", int(0)),
            ("len", int(1)),
            ("data", Value::Bytes(vec![1])),
        ]),
    );
    for v in [V2, V1] {
        push(
            "fs hash missing",
            v,
            Read,
            fs,
            command::fs::HASH_CHECKSUM,
            map(&[("name", text("/lfs1/missing"))]),
        );
    }

    let argv = |words: &[&str]| {
        map(&[(
            "argv",
            Value::Array(words.iter().map(|w| text(w)).collect()),
        )])
    };
    push(
        "shell kernel version",
        V2,
        Write,
        shell,
        command::shell::EXEC,
        argv(&["kernel", "version"]),
    );
    push(
        "shell unknown command",
        V2,
        Write,
        shell,
        command::shell::EXEC,
        argv(&["nonexistent"]),
    );
    for v in [V2, V1] {
        push(
            "shell empty argv",
            v,
            Write,
            shell,
            command::shell::EXEC,
            argv(&[]),
        );
    }

    push(
        "enum count",
        V2,
        Read,
        en,
        command::enumeration::COUNT,
        map(&[]),
    );
    push(
        "enum list",
        V2,
        Read,
        en,
        command::enumeration::LIST,
        map(&[]),
    );
    push(
        "enum single 0",
        V2,
        Read,
        en,
        command::enumeration::SINGLE,
        map(&[("index", int(0))]),
    );
    push(
        "enum single past the end",
        V2,
        Read,
        en,
        command::enumeration::SINGLE,
        map(&[("index", int(99))]),
    );
    push(
        "enum details all",
        V2,
        Read,
        en,
        command::enumeration::DETAILS,
        map(&[]),
    );
    push(
        "enum details some",
        V2,
        Read,
        en,
        command::enumeration::DETAILS,
        map(&[("groups", Value::Array(vec![int(0), int(99), int(2)]))]),
    );

    // Datagram rules.
    let echo = |seq: u8, d: &str| {
        frame(
            V2,
            Write,
            os,
            command::os::ECHO,
            seq,
            &map(&[("d", text(d))]),
        )
    };
    steps.push(Step::raw(
        "two frames in one datagram",
        [echo(0x10, "one"), echo(0x11, "two")].concat(),
        2,
    ));
    let mut long_header = echo(0x12, "cut");
    long_header[3] += 4;
    steps.push(Step::raw("header longer than the datagram", long_header, 1));
    steps.push(Step::raw(
        "datagram over 1500 bytes",
        echo(0x13, &"m".repeat(1600)),
        1,
    ));
    steps.push(Step::raw(
        "datagram of exactly 1500 bytes",
        echo(0x14, &"m".repeat(1486)),
        1,
    ));
    let mut too_new = echo(0x15, "v3");
    too_new[0] |= 0x18;
    steps.push(Step::raw("version 3 header", too_new, 1));
    steps.push(Step {
        except: &["fields.ticks"],
        ..Step::raw(
            "smp_svr_stats",
            frame(
                V2,
                Read,
                stat,
                command::stat::GROUP_DATA,
                0x16,
                &map(&[("name", text("smp_svr_stats"))]),
            ),
            1,
        )
    });
    steps
}

/// A canonical text form of a CBOR value: maps sorted by key, `except` paths masked.
fn canon(value: &Value, path: &str, except: &[&str]) -> String {
    if except.contains(&path) {
        return "<device-specific>".to_owned();
    }
    match value {
        Value::Map(entries) => {
            let mut parts: Vec<String> = entries
                .iter()
                .map(|(k, v)| {
                    let key = k.as_str().map_or_else(|| format!("{k:?}"), str::to_owned);
                    let sub = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    format!("{key:?}: {}", canon(v, &sub, except))
                })
                .collect();
            parts.sort();
            format!("{{{}}}", parts.join(", "))
        }
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|v| canon(v, path, except))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => format!("{other:?}"),
    }
}

/// Removes group 1 from an enumeration answer of smp-sim.
fn drop_image_group(value: &mut Value) {
    let Value::Map(entries) = value else { return };
    for (key, v) in entries.iter_mut() {
        match (key.as_str(), v) {
            (Some("count"), Value::Int(n)) => *n -= 1,
            (Some("groups"), Value::Array(items)) => items.retain(|item| match item {
                Value::Int(1) => false,
                Value::Map(details) => !details
                    .iter()
                    .any(|(k, v)| k.as_str() == Some("group") && *v == Value::Int(1)),
                _ => true,
            }),
            _ => {}
        }
    }
}

async fn exchange(socket: &UdpSocket, step: &Step) -> Vec<Vec<u8>> {
    socket.send(&step.datagram).await.unwrap();
    let mut replies = Vec::new();
    let mut buf = vec![0u8; 65_536];
    for _ in 0..step.replies {
        let len = tokio::time::timeout(REPLY_TIMEOUT, socket.recv(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{}: no reply", step.name))
            .unwrap();
        replies.push(buf[..len].to_vec());
    }
    replies
}

/// What a reply is, for comparing: its header fields, whether its map is indefinite,
/// and the canonical body.
fn describe(reply: &[u8], step: &Step, is_sim: bool) -> String {
    let header =
        Header::decode(reply).unwrap_or_else(|e| panic!("{}: bad reply header: {e}", step.name));
    let body = &reply[header::SIZE..];
    assert_eq!(
        usize::from(header.length),
        body.len(),
        "{}: header length",
        step.name
    );
    let mut value: Value =
        minicbor::decode(body).unwrap_or_else(|e| panic!("{}: bad reply body: {e}", step.name));
    if is_sim && step.without_image_group {
        drop_image_group(&mut value);
    }
    format!(
        "op {:?} version {:?} flags {} group {} seq {} command {} indefinite {} body {}",
        header.op,
        header.version,
        header.flags,
        header.group,
        header.sequence,
        header.command,
        body.first() == Some(&0xbf),
        canon(&value, "", step.except)
    )
}

pub(crate) async fn compare_with_real_server(real: &str) {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let real_socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    real_socket.connect(real).await.unwrap();
    let sim_socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sim_socket.connect(sim.addr()).await.unwrap();
    let mut differences = Vec::new();
    let script = script();
    for step in &script {
        let from_real = exchange(&real_socket, step).await;
        let from_sim = exchange(&sim_socket, step).await;
        for (i, (r, s)) in from_real.iter().zip(&from_sim).enumerate() {
            let (r, s) = (describe(r, step, false), describe(s, step, true));
            if r != s {
                differences.push(format!(
                    "{} reply {i}:\n    real: {r}\n    sim:  {s}",
                    step.name
                ));
            }
        }
    }
    println!(
        "compared {} scripted exchanges with the real server",
        script.len()
    );
    assert!(
        differences.is_empty(),
        "smp-sim differs from the real server in {} of {} exchanges:\n  {}",
        differences.len(),
        script.len(),
        differences.join("\n  ")
    );
    sim.shutdown().await;
}
