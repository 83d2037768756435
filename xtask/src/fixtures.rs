//! The serial fixtures of the `smpclient` sdist, read from its `manifest.json`: which can
//! run here, how to launch each, how to reach it, and which tests it gets.
//!
//! The manifest describes every server of the fixture release, one entry each: the
//! artifact, a launch command (`run` for native_sim programs, `qemu_cmd` for emulated
//! boards, with `<PORT>` for the TCP port of the serial chardev), the SMP transport
//! (`serial`, `serial_raw`, `shell`, `udp`, `bt`), buffer sizes and management groups.
//! [`classify`] turns each entry into a [`Role`]: a serial fixture to run, a UDP server
//! (run by the `udp4`/`udp6` entries of `interop.rs`), or a reason it cannot run here
//! that lies outside this project (the sdist does not ship the artifact; the entry has
//! no launch command, being a build for a board on a bench). Everything else fails the
//! run.
//!
//! A serial fixture's tests are the `serial_*` tests of every suite; [`RULES`] says,
//! by the start of a test's name, what the fixture must have for the test to run there
//! and whether the test needs a device of its own (it resets or erases the device),
//! MCUboot alone on the board ([`Launch::Bare`]), or flash that keeps what the guest
//! writes across resets ([`Launch::LoadOnce`]).

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::gdb;
use crate::interop::{ServerGuard, remove_dir_if_exists, wait_until};
use crate::json::Json;
use crate::util::Result;

/// The SHA-256 of the sdist's `manifest.json` and `SHA256SUMS`, pinned so that another
/// sdist cannot change the fixtures silently; every artifact launched or uploaded is
/// then checked against `SHA256SUMS`. (The sdist's `manifest.json` is a local merge, its
/// `VERSION` says, so `SHA256SUMS` lists another sum for it.)
const MANIFEST_SHA256: &str = "d8ab8655c18eaac4cf3e98f7c1219e2b1561d9e111a008c30edbed4ac08e0ab1";
const SHA256SUMS_SHA256: &str = "551b154315188b5c5238939d892f8ce08d1cea53286b158136041073453be3ae";

/// Variables that tell a serial test its fixture (see `tests/support/serial.rs`).
pub(crate) const SERIAL_ENV: &str = "SMP_INTEROP_SERIAL";
pub(crate) const SERIAL_FIXTURE_ENV: &str = "SMP_INTEROP_SERIAL_FIXTURE";

/// native_sim prints this, then the pseudo-terminal's path, once its UART is up.
const PTY_LINE: &str = "connected to pseudotty: ";

/// What is wrong with a group the manifest lists for a fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Erratum {
    /// The build does not have it: the tests leave it out and check that the device does
    /// not list it.
    Absent,
    /// The device lists it, but it fails on the server's side: its tests do not run
    /// there (the enumeration test still expects it listed).
    Broken,
}

/// Where the manifest and the servers disagree: fixture, group, what, and the evidence.
const ERRATA: &[(&str, &str, Erratum, &str)] = &[
    (
        "native_sim.serial_raw",
        "zbasic",
        Erratum::Absent,
        "its enumeration lists groups 0, 2, 3, 9, 10 and erase storage (63/0) answers ENOTSUP",
    ),
    (
        "mps2_an385.serial_recovery_buf1024",
        "fs",
        Erratum::Broken,
        "a 3000 B file upload in 1020 B frames is answered with FS error 1 (unknown): its \
         littlefs lives in a RAM flash simulator that shares SRAM with the image slots, and \
         the reference's own suite leaves fs out on these builds (buf_size > 512)",
    ),
    (
        "mps2_an385.serial_recovery_buf2048",
        "fs",
        Erratum::Broken,
        "during a 3000 B file upload in 2044 B frames the application stops answering for \
         good: its littlefs lives in a RAM flash simulator that shares SRAM with the image \
         slots, and the reference's own suite leaves fs out on these builds (buf_size > 512)",
    ),
];

/// What a test needs of a fixture to run there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Every serial fixture.
    Always,
    /// The application has this management group (the manifest's name).
    Group(&'static str),
    /// The `img` group on an application whose MCUboot swaps images: not the
    /// serial-recovery builds, whose MCUboot loads the image into RAM.
    SwapImages,
    /// MCUboot serial recovery.
    Recovery,
    /// One of these fixtures (by name): for a test that one representative fixture
    /// proves, where the others would only repeat it at the cost of minutes.
    Named(&'static [&'static str]),
}

/// Where a test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Session {
    /// With the fixture's other shared tests, on one device launched as the manifest says.
    Shared,
    /// On a device of its own, launched as the manifest says: it resets or erases it.
    Own,
    /// On a device of its own with MCUboot alone: the manifest's command without the
    /// loader that puts the shipped application into slot 0 (see [`Launch::Bare`]).
    OwnBare,
    /// On a device of its own whose firmware was written into its flash once, so that
    /// the flash keeps what MCUboot and the application write across resets (see
    /// [`Launch::LoadOnce`]).
    OwnLoadedOnce,
}

/// One row of the test table: tests whose names start with `prefix`.
struct Rule {
    prefix: &'static str,
    need: Need,
    session: Session,
}

/// Which `serial_*` test runs on which fixture, by the start of its name. A `serial_*`
/// test that matches no rule fails the run: it would never run.
const RULES: &[Rule] = &[
    Rule {
        prefix: "serial_os_",
        need: Need::Always,
        session: Session::Shared,
    },
    Rule {
        prefix: "serial_stat_",
        need: Need::Group("stat"),
        session: Session::Shared,
    },
    Rule {
        prefix: "serial_enum_",
        need: Need::Group("enum"),
        session: Session::Shared,
    },
    Rule {
        prefix: "serial_fs_",
        need: Need::Group("fs"),
        session: Session::Shared,
    },
    Rule {
        prefix: "serial_settings_",
        need: Need::Group("settings"),
        session: Session::Shared,
    },
    Rule {
        prefix: "serial_shell_",
        need: Need::Group("shell"),
        session: Session::Shared,
    },
    Rule {
        prefix: "serial_img_state_",
        need: Need::Group("img"),
        session: Session::Shared,
    },
    // Erases the storage partition.
    Rule {
        prefix: "serial_zbasic_",
        need: Need::Group("zbasic"),
        session: Session::Own,
    },
    // Uploads, marks for test and resets.
    Rule {
        prefix: "serial_img_swap_",
        need: Need::SwapImages,
        session: Session::Own,
    },
    // Resets into the bootloader and out again.
    Rule {
        prefix: "serial_recovery_",
        need: Need::Recovery,
        session: Session::Own,
    },
    Rule {
        prefix: "serial_bare_recovery_",
        need: Need::Recovery,
        session: Session::OwnBare,
    },
    // `smp upgrade` through MCUboot's serial recovery, on MCUboot alone: the library's
    // `serial_bare_recovery_` test upgrades every recovery fixture; the binary's adds
    // its output on one.
    Rule {
        prefix: "serial_bare_cli_",
        need: Need::Named(&["mps2_an385.serial_recovery"]),
        session: Session::OwnBare,
    },
    // Upgrades through the application and resets twice: needs flash that keeps what
    // the guest writes across a reset.
    Rule {
        prefix: "serial_img_upgrade_",
        need: Need::SwapImages,
        session: Session::OwnLoadedOnce,
    },
];

/// Tests named for serial fixtures start with this.
pub(crate) const SERIAL_PREFIX: &str = "serial_";

/// The rule for a `serial_*` test, if any.
fn rule(test: &str) -> Option<&'static Rule> {
    RULES.iter().find(|rule| test.starts_with(rule.prefix))
}

/// Whether `test` is a serial test no rule covers.
pub(crate) fn unruled(test: &str) -> bool {
    test.starts_with(SERIAL_PREFIX) && rule(test).is_none()
}

/// One `manifest.json` entry, the fields this runner reads.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) artifact: String,
    target: String,
    config: String,
    pub(crate) transport: String,
    buf_size: Option<u64>,
    buf_count: Option<u64>,
    recovery_buf_size: Option<u64>,
    recovery_buf_count: Option<u64>,
    groups: Vec<String>,
    line_length_max: Option<u64>,
    mcuboot: bool,
    serial_recovery: bool,
    run: Option<String>,
    qemu_cmd: Option<String>,
}

impl Entry {
    /// `TARGET.CONFIG`, as the reference names fixtures (`native_sim.serial_buf96`).
    pub(crate) fn name(&self) -> String {
        format!("{}.{}", self.target, self.config)
    }

    fn from_json(json: &Json) -> Result<Self> {
        let string = |key: &str| -> Result<String> {
            json.get(key)
                .and_then(Json::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("manifest entry without a string {key:?}: {json:?}"))
        };
        let optional_string = |key: &str| -> Result<Option<String>> {
            match json.get(key) {
                None | Some(Json::Null) => Ok(None),
                Some(value) => value
                    .as_str()
                    .map(|s| Some(s.to_owned()))
                    .ok_or_else(|| format!("manifest: {key} is not a string: {value:?}")),
            }
        };
        let number = |key: &str| -> Result<Option<u64>> {
            match json.get(key) {
                None | Some(Json::Null) => Ok(None),
                Some(value) => value
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| format!("manifest: {key} is not a count: {value:?}")),
            }
        };
        let flag = |key: &str| -> Result<bool> {
            json.get(key)
                .and_then(Json::as_bool)
                .ok_or_else(|| format!("manifest entry without a boolean {key:?}: {json:?}"))
        };
        let groups = json
            .get("groups")
            .and_then(Json::as_array)
            .ok_or_else(|| format!("manifest entry without groups: {json:?}"))?
            .iter()
            .map(|g| {
                g.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("manifest: a group is not a string: {g:?}"))
            })
            .collect::<Result<Vec<String>>>()?;
        Ok(Self {
            artifact: string("artifact")?,
            target: string("target")?,
            config: string("config")?,
            transport: string("transport")?,
            buf_size: number("buf_size")?,
            buf_count: number("buf_count")?,
            recovery_buf_size: number("recovery_buf_size")?,
            recovery_buf_count: number("recovery_buf_count")?,
            groups,
            line_length_max: number("line_length_max")?,
            mcuboot: flag("mcuboot")?,
            serial_recovery: flag("serial_recovery")?,
            run: optional_string("run")?,
            qemu_cmd: optional_string("qemu_cmd")?,
        })
    }
}

/// The sdist's fixtures: the manifest's entries and the sums to check artifacts with.
pub(crate) struct Manifest {
    pub(crate) dir: PathBuf,
    pub(crate) entries: Vec<Entry>,
    sums: Vec<(String, String)>,
}

impl Manifest {
    /// Reads `manifest.json` and `SHA256SUMS` of `dir`, checking both against the sums
    /// pinned here.
    pub(crate) fn load(dir: &Path) -> Result<Self> {
        for (file, pinned) in [
            ("manifest.json", MANIFEST_SHA256),
            ("SHA256SUMS", SHA256SUMS_SHA256),
        ] {
            let actual = sha256(&dir.join(file))?;
            if actual != pinned {
                return Err(format!(
                    "{} has SHA-256 {actual}, expected {pinned}: is this the smpclient 7.3.0 sdist? \
                     (delete {} and run again)",
                    dir.join(file).display(),
                    dir.display()
                ));
            }
        }
        let text = fs::read_to_string(dir.join("manifest.json"))
            .map_err(|e| format!("cannot read {}: {e}", dir.join("manifest.json").display()))?;
        let entries = Json::parse(&text)?
            .as_array()
            .ok_or("manifest.json is not a list")?
            .iter()
            .map(Entry::from_json)
            .collect::<Result<Vec<_>>>()?;
        let sums = fs::read_to_string(dir.join("SHA256SUMS"))
            .map_err(|e| format!("cannot read {}: {e}", dir.join("SHA256SUMS").display()))?
            .lines()
            .filter_map(|line| {
                let (sum, file) = line.split_once(char::is_whitespace)?;
                Some((
                    file.trim().trim_start_matches('*').to_owned(),
                    sum.to_owned(),
                ))
            })
            .collect();
        Ok(Self {
            dir: dir.to_owned(),
            entries,
            sums,
        })
    }

    /// Checks `file` (in the fixtures directory) against `SHA256SUMS`.
    fn verify(&self, file: &str) -> Result {
        let listed = self
            .sums
            .iter()
            .find(|(name, _)| name == file)
            .map(|(_, sum)| sum.as_str())
            .ok_or_else(|| format!("{file} is not listed in SHA256SUMS"))?;
        let actual = sha256(&self.dir.join(file))?;
        if actual == listed {
            Ok(())
        } else {
            Err(format!(
                "{file} has SHA-256 {actual}, SHA256SUMS says {listed}; delete {} and run again",
                self.dir.display()
            ))
        }
    }
}

fn sha256(path: &Path) -> Result<String> {
    let output = Command::new("sha256sum")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not run sha256sum: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "sha256sum {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// What the runner does with a manifest entry.
pub(crate) enum Role {
    /// A UDP server: the `udp4`/`udp6` entries of `interop.rs` run it.
    Udp,
    /// A serial fixture to run.
    Serial(Box<SerialFixture>),
    /// It cannot run here, for this reason (outside this project).
    NotHere(String),
}

/// Decides what to do with `entry`; an entry this runner cannot place is an error.
pub(crate) fn classify(entry: &Entry, manifest: &Manifest) -> Result<Role> {
    let shipped = manifest.dir.join(&entry.artifact).is_file();
    if entry.run.is_none() && entry.qemu_cmd.is_none() {
        return Ok(Role::NotHere(format!(
            "no launch command: a {} build for a board on a bench ({} transport){}",
            entry.target,
            entry.transport,
            if shipped { "" } else { ", not in the sdist" }
        )));
    }
    if !shipped {
        return Ok(Role::NotHere(
            "the sdist does not ship it (the manifest lists the whole fixture release, \
             the sdist a subset)"
                .to_owned(),
        ));
    }
    match entry.transport.as_str() {
        "udp" => Ok(Role::Udp),
        "serial" | "serial_raw" | "shell" => {
            SerialFixture::new(entry, manifest).map(|f| Role::Serial(Box::new(f)))
        }
        other => Err(format!(
            "{}: the manifest gives a launch command for transport {other:?}, which this runner \
             does not know; add it to xtask/src/fixtures.rs",
            entry.name()
        )),
    }
}

/// How a fixture is started.
#[derive(Debug, Clone)]
enum Start {
    /// A native_sim program, the artifact itself.
    Native { exe: PathBuf },
    /// The manifest's `qemu_cmd`, split into words, `<PORT>` still in it.
    Qemu { words: Vec<String> },
}

/// Which command starts a session's device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Launch {
    /// As the manifest says.
    Manifest,
    /// The manifest's `qemu_cmd` without the `-device loader` that writes the shipped
    /// `*.signed.bin` into slot 0: MCUboot alone. QEMU writes its loaders' data again at
    /// every system reset, so over that loader an image uploaded into slot 0 is replaced
    /// by the shipped one before MCUboot runs again, and could never be seen booting.
    Bare,
    /// The manifest's `qemu_cmd` without any `-device loader`, and frozen at start
    /// (`-S`) with QEMU's GDB stub on a free port of 127.0.0.1: the runner writes the
    /// loaders' data into memory through the stub, once, resets the machine and lets it
    /// run (`gdb.rs`). The flash then keeps across guest resets what MCUboot and the
    /// application write (a loader would write the shipped image back at each one).
    LoadOnce,
}

/// A runnable serial fixture.
#[derive(Debug)]
pub(crate) struct SerialFixture {
    pub(crate) name: String,
    entry: Entry,
    /// The fixtures directory of the sdist.
    dir: PathBuf,
    command: Start,
    /// The framing of the application, and of MCUboot's serial recovery.
    pub(crate) framing: &'static str,
    recovery_framing: &'static str,
    groups: Vec<String>,
    absent_groups: Vec<String>,
    /// Groups whose tests do not run here (see [`ERRATA`]).
    broken_groups: Vec<String>,
    /// The shipped signed application (`*.signed.bin` beside the `.hex`), if any.
    image: Option<PathBuf>,
}

impl SerialFixture {
    fn new(entry: &Entry, manifest: &Manifest) -> Result<Self> {
        let name = entry.name();
        manifest.verify(&entry.artifact)?;
        let command = match (&entry.run, &entry.qemu_cmd) {
            (Some(run), _) => {
                // The manifest's `run` is `./ARTIFACT`; anything else would need reading.
                if *run != format!("./{}", entry.artifact) {
                    return Err(format!("{name}: unexpected run command {run:?}"));
                }
                Start::Native {
                    exe: manifest.dir.join(&entry.artifact),
                }
            }
            (None, Some(qemu)) => {
                if qemu.contains(['"', '\'', '\\', '$', '`']) {
                    return Err(format!(
                        "{name}: qemu_cmd has shell quoting this runner does not interpret: {qemu}"
                    ));
                }
                let words: Vec<String> = qemu.split_whitespace().map(str::to_owned).collect();
                if !words.iter().any(|w| w.contains("<PORT>")) {
                    return Err(format!("{name}: qemu_cmd has no <PORT>: {qemu}"));
                }
                for word in &words {
                    for file in referenced_files(word) {
                        manifest.verify(file)?;
                    }
                }
                Start::Qemu { words }
            }
            (None, None) => unreachable!("classify leaves out entries without a command"),
        };
        // Console framing for SMP over the console and over the shell (Zephyr's shell
        // transport takes and sends the same framed lines among its own output).
        let framing = match entry.transport.as_str() {
            "serial" | "shell" => "console",
            "serial_raw" => "raw",
            other => return Err(format!("{name}: no framing for transport {other}")),
        };
        // The COBS build is the raw one with MCUboot's COBS framing (the sdist's VERSION
        // notes); its application speaks raw.
        let recovery_framing = if entry.config.ends_with("_raw_cobs") {
            "cobs"
        } else {
            framing
        };
        let errata = |kind: Erratum| -> Vec<String> {
            ERRATA
                .iter()
                .filter(|(fixture, _, what, _)| *fixture == name && *what == kind)
                .map(|(_, group, _, _)| (*group).to_owned())
                .collect()
        };
        let absent_groups = errata(Erratum::Absent);
        let broken_groups = errata(Erratum::Broken);
        let groups = entry
            .groups
            .iter()
            .filter(|g| !absent_groups.contains(g))
            .cloned()
            .collect();
        let image = entry.mcuboot.then(|| {
            let stem = entry
                .artifact
                .trim_end_matches(".hex")
                .trim_end_matches(".merged");
            manifest.dir.join(format!("{stem}.signed.bin"))
        });
        let image = match image {
            Some(path) if path.is_file() => {
                let file = path
                    .file_name()
                    .and_then(|f| f.to_str())
                    .unwrap_or_default();
                manifest.verify(file)?;
                Some(path)
            }
            _ => None,
        };
        Ok(Self {
            name,
            entry: entry.clone(),
            dir: manifest.dir.clone(),
            command,
            framing,
            recovery_framing,
            groups,
            absent_groups,
            broken_groups,
            image,
        })
    }

    /// The errata of this fixture, for the log: `group: what (evidence)`.
    pub(crate) fn errata(&self) -> Vec<String> {
        ERRATA
            .iter()
            .filter(|(fixture, _, _, _)| *fixture == self.name)
            .map(|(_, group, what, why)| match what {
                Erratum::Absent => format!("{group} is not in this build: {why}"),
                Erratum::Broken => format!("{group} is not tested: {why}"),
            })
            .collect()
    }

    /// The fixture's own signed application image, if the sdist ships one.
    pub(crate) fn image(&self) -> Option<&Path> {
        self.image.as_deref()
    }

    /// Whether this fixture runs on an emulator.
    pub(crate) fn emulated(&self) -> bool {
        matches!(self.command, Start::Qemu { .. })
    }

    /// How the fixture is reached, for the summary: `pty` or `tcp`, and the framing(s).
    pub(crate) fn link(&self) -> String {
        let port = if self.emulated() { "tcp" } else { "pty" };
        if self.entry.serial_recovery && self.recovery_framing != self.framing {
            format!("{port}, {}/{} (boot)", self.framing, self.recovery_framing)
        } else if self.entry.transport == "shell" {
            format!("{port}, {} (shell)", self.framing)
        } else {
            format!("{port}, {}", self.framing)
        }
    }

    /// The session `test` runs in on this fixture, or `None` when it does not run here.
    pub(crate) fn session(&self, test: &str) -> Option<Session> {
        let rule = rule(test)?;
        let fits = match rule.need {
            Need::Always => true,
            Need::Group(group) => {
                self.groups.iter().any(|g| g == group)
                    && !self.broken_groups.iter().any(|g| g == group)
            }
            Need::SwapImages => {
                self.entry.mcuboot
                    && !self.entry.serial_recovery
                    && self.groups.iter().any(|g| g == "img")
                    && !self.broken_groups.iter().any(|g| g == "img")
            }
            Need::Recovery => self.entry.serial_recovery,
            Need::Named(names) => names.contains(&self.name.as_str()),
        };
        fits.then_some(rule.session)
    }

    /// The fixture's description for the tests (`SMP_INTEROP_SERIAL_FIXTURE`).
    pub(crate) fn json(&self) -> String {
        let e = &self.entry;
        let mut out = String::from("{");
        let mut field = |key: &str, value: String| {
            if out.len() > 1 {
                out.push(',');
            }
            let _ = write!(out, "{}:{value}", json_string(key));
        };
        let number = |n: Option<u64>| n.map_or_else(|| "null".to_owned(), |n| n.to_string());
        let list = |items: &[String]| {
            format!(
                "[{}]",
                items
                    .iter()
                    .map(|s| json_string(s))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        field("name", json_string(&self.name));
        field("framing", json_string(self.framing));
        field("recovery_framing", json_string(self.recovery_framing));
        field("line_length", number(e.line_length_max));
        field("buf_size", number(e.buf_size));
        field("buf_count", number(e.buf_count));
        field("recovery_buf_size", number(e.recovery_buf_size));
        field("recovery_buf_count", number(e.recovery_buf_count));
        // The `noparams` builds leave out the MCUmgr parameters command (the reference
        // knows them by this name too).
        field("params", (!e.config.contains("noparams")).to_string());
        field("groups", list(&self.groups));
        field("absent_groups", list(&self.absent_groups));
        field("mcuboot", e.mcuboot.to_string());
        field("serial_recovery", e.serial_recovery.to_string());
        field(
            "image",
            self.image.as_ref().map_or_else(
                || "null".to_owned(),
                |path| json_string(&path.display().to_string()),
            ),
        );
        out.push('}');
        out
    }

    /// Starts the fixture in a fresh `run_dir`, output in `server.log` there, and waits
    /// until its serial port is there: returns it with the port (`/dev/pts/N` or
    /// `socket://127.0.0.1:PORT`).
    pub(crate) fn start(&self, launch: Launch, run_dir: &Path) -> Result<(ServerGuard, String)> {
        remove_dir_if_exists(run_dir)?;
        fs::create_dir_all(run_dir)
            .map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;
        let log = run_dir.join("server.log");
        let stdout =
            File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let stderr = stdout
            .try_clone()
            .map_err(|e| format!("cannot share {}: {e}", log.display()))?;
        // With the load-once launch: the GDB stub's port, and what to write through it.
        let mut load_once: Option<(u16, Vec<gdb::Segment>)> = None;
        let (mut command, port) = match (&self.command, launch) {
            (Start::Native { exe }, Launch::Manifest) => {
                make_executable(exe)?;
                (Command::new(exe), None)
            }
            (Start::Native { .. }, Launch::Bare | Launch::LoadOnce) => {
                return Err(format!(
                    "{}: a native_sim program has only the manifest's launch",
                    self.name
                ));
            }
            (Start::Qemu { words }, launch) => {
                let port = free_tcp_port()?;
                let mut words: Vec<String> = words
                    .iter()
                    .map(|w| w.replace("<PORT>", &port.to_string()))
                    .collect();
                match launch {
                    Launch::Manifest => {}
                    Launch::Bare => {
                        words = without_slot0_loader(&words).ok_or_else(|| {
                            format!("{}: no slot-0 loader to leave out", self.name)
                        })?;
                    }
                    Launch::LoadOnce => {
                        let (rest, loaders) = without_loaders(&words)?;
                        if loaders.is_empty() || rest.iter().any(|w| w == "-kernel") {
                            return Err(format!(
                                "{}: the load-once launch needs `-device loader`s and no -kernel",
                                self.name
                            ));
                        }
                        // (Their files are the fixture's artifacts, checked against
                        // SHA256SUMS when the manifest was read.)
                        let mut segments = Vec::new();
                        for loader in &loaders {
                            segments.extend(loader.segments(&self.dir)?);
                        }
                        let gdb_port = free_tcp_port()?;
                        words = rest;
                        words.extend(["-S".to_owned(), "-gdb".to_owned()]);
                        words.push(format!("tcp:127.0.0.1:{gdb_port}"));
                        load_once = Some((gdb_port, segments));
                    }
                }
                // Its files, named relative to the fixtures directory, from the run
                // directory: links, so that nothing the emulator writes lands in the sdist.
                for word in &words {
                    for file in referenced_files(word) {
                        let link = run_dir.join(file);
                        if !link.exists() {
                            std::os::unix::fs::symlink(
                                std::path::absolute(self.dir.join(file))
                                    .map_err(|e| format!("{file}: {e}"))?,
                                &link,
                            )
                            .map_err(|e| format!("cannot link {}: {e}", link.display()))?;
                        }
                    }
                }
                let mut command = Command::new(&words[0]);
                command.args(&words[1..]);
                (command, Some(port))
            }
        };
        let shown = crate::util::show(&command);
        let child = command
            .current_dir(run_dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start `{shown}`: {e}"))?;
        println!(
            "interop: started {} (pid {}, log: {})\n  {shown}",
            self.name,
            child.id(),
            log.display()
        );
        let mut guard = ServerGuard::new(self.name.clone(), child, log);
        if let Some((gdb_port, segments)) = load_once {
            let started = Instant::now();
            let written = gdb::load_once(gdb_port, &segments)?;
            println!(
                "interop: {}: wrote {written} bytes in {} segment(s) through the GDB stub \
                 (127.0.0.1:{gdb_port}) in {} ms, reset it and let it run",
                self.name,
                segments.len(),
                started.elapsed().as_millis()
            );
        }
        let target = wait_for_port(&mut guard, port)?;
        Ok((guard, target))
    }
}

/// Files a qemu argument names: `file=NAME` in a `-device loader,...`, or a bare
/// artifact name (`-kernel NAME`).
fn referenced_files(word: &str) -> Vec<&str> {
    let is_artifact =
        |w: &str| [".hex", ".bin", ".elf"].iter().any(|ext| w.ends_with(ext)) && !w.contains('/');
    let mut files: Vec<&str> = word
        .split(',')
        .filter_map(|part| part.strip_prefix("file="))
        .filter(|f| is_artifact(f))
        .collect();
    if files.is_empty() && is_artifact(word) {
        files.push(word);
    }
    files
}

/// `words` without `-device loader,file=*.signed.bin,...`, or `None` if it has none.
fn without_slot0_loader(words: &[String]) -> Option<Vec<String>> {
    let at = words.windows(2).position(|pair| {
        pair[0] == "-device"
            && pair[1].starts_with("loader,")
            && referenced_files(&pair[1])
                .iter()
                .any(|f| f.ends_with(".signed.bin"))
    })?;
    let mut out = words.to_vec();
    out.drain(at..at + 2);
    Some(out)
}

/// `words` without any `-device loader,...`, and those loaders.
fn without_loaders(words: &[String]) -> Result<(Vec<String>, Vec<gdb::Loader>)> {
    let mut rest = Vec::with_capacity(words.len());
    let mut loaders = Vec::new();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        match words.as_slice().first() {
            Some(value) if word == "-device" && value.starts_with("loader,") => {
                loaders.push(gdb::Loader::parse(value)?);
                words.next();
            }
            _ => rest.push(word.clone()),
        }
    }
    Ok((rest, loaders))
}

fn make_executable(exe: &Path) -> Result {
    let mut permissions = fs::metadata(exe)
        .map_err(|e| format!("cannot stat {}: {e}", exe.display()))?
        .permissions();
    if permissions.mode() & 0o111 != 0o111 {
        permissions.set_mode(permissions.mode() | 0o755);
        fs::set_permissions(exe, permissions)
            .map_err(|e| format!("cannot make {} executable: {e}", exe.display()))?;
    }
    Ok(())
}

/// A TCP port of 127.0.0.1 that nothing listens on now (the emulator binds it next).
fn free_tcp_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot find a free TCP port: {e}"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| format!("cannot find a free TCP port: {e}"))
}

/// Waits for the fixture's serial port: the pseudo-terminal native_sim names in its log,
/// or the emulator's TCP socket accepting a connection.
fn wait_for_port(guard: &mut ServerGuard, port: Option<u16>) -> Result<String> {
    let name = guard.name.clone();
    wait_until(guard, "up on its serial port", |log, elapsed| match port {
        None => {
            let Some(at) = log.find(PTY_LINE) else {
                return Ok(None);
            };
            let rest = &log[at + PTY_LINE.len()..];
            let path = rest
                .split_whitespace()
                .next()
                .filter(|_| rest.contains('\n'));
            Ok(path.map(|path| {
                println!(
                    "interop: {name} is up after {} ms on {path}",
                    elapsed.as_millis()
                );
                path.to_owned()
            }))
        }
        Some(port) => {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(_) => {
                    println!(
                        "interop: {name} listens on 127.0.0.1:{port} after {} ms",
                        elapsed.as_millis()
                    );
                    Ok(Some(format!("socket://127.0.0.1:{port}")))
                }
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => Ok(None),
                Err(e) => Err(format!("connecting to {addr}: {e}")),
            }
        }
    })
}

/// `text` as a JSON string.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_of_a_qemu_command() {
        assert_eq!(
            referenced_files("loader,file=a.signed.bin,addr=0x20050000"),
            ["a.signed.bin"]
        );
        assert_eq!(referenced_files("x.elf"), ["x.elf"]);
        assert!(referenced_files("socket,id=con,host=127.0.0.1,port=1").is_empty());
        let words: Vec<String> = "qemu -device loader,file=a.hex -device loader,file=a.signed.bin,addr=0x1 -monitor none"
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        assert_eq!(
            without_slot0_loader(&words).unwrap().join(" "),
            "qemu -device loader,file=a.hex -monitor none"
        );
        assert_eq!(without_slot0_loader(&words[..3]), None);
    }

    #[test]
    fn every_rule_prefix_is_its_own() {
        for (i, a) in RULES.iter().enumerate() {
            assert!(a.prefix.starts_with(SERIAL_PREFIX));
            for b in &RULES[i + 1..] {
                assert!(
                    !a.prefix.starts_with(b.prefix) && !b.prefix.starts_with(a.prefix),
                    "{} and {} overlap",
                    a.prefix,
                    b.prefix
                );
            }
        }
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
