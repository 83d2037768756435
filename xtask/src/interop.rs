//! `cargo xtask interop [FILTER]`: the interop suite against the real Zephyr SMP servers
//! of the `smpclient` sdist and the Python reference tools.
//!
//! Setup, each part skipped when already done, so that it works from nothing on a fresh
//! Debian machine (as root) and costs a second on the next run:
//! 1. Debian packages (`apt-get`): the 32-bit C runtime the `native_sim` servers are
//!    linked against, and `qemu-system-arm` for the emulated boards;
//! 2. the `smpclient` sdist, which ships the Zephyr servers as test fixtures (`pip download`),
//!    extracted to `target/interop/smpclient-<version>/`; in parallel, a Python venv with the
//!    reference client (`smp`, `smpclient`) and MCUboot's `imgtool` at `target/interop/venv/`;
//! 3. the two UDP servers checked against the SHA-256 sums pinned here and in the sdist,
//!    the fixtures' `manifest.json` and `SHA256SUMS` against sums pinned in
//!    `fixtures.rs`, and every serial fixture against `SHA256SUMS`.
//!
//! The tests are the `#[ignore]`d tests of every suite in [`SUITES`]. A test's name says
//! what it runs against:
//! - `zephyr_udp4_*`, `zephyr_udp6_*`, `sim_*`: an entry of [`SERVERS`]. A real server
//!   (`udp4`, `udp6`; both bind UDP port 1337): check the port is free, start the server
//!   in a fresh directory with its output in a log, wait for `smp_udp: Started`, run its
//!   tests suite by suite with the server's address in the environment, and stop the
//!   server by its process id, whatever the tests did. `sim`: nothing to start, as each
//!   test starts the simulated device (`smp-sim`) in-process.
//! - `serial_*`: every serial fixture of the sdist's manifest that can run here (see
//!   `fixtures.rs`: native_sim programs on a pseudo-terminal, emulated
//!   boards under `qemu-system-arm` on a TCP port chosen here), each test where the
//!   fixture has what the test needs. Per fixture and suite, the tests that leave the
//!   device as they found it share one device; a test that resets or erases it gets a
//!   fresh one, launched as the manifest says, with MCUboot alone, or with its firmware
//!   written into flash once through QEMU's GDB stub (`gdb.rs`), as its rule says. The
//!   tests get the port and the fixture's description in
//!   `SMP_INTEROP_SERIAL` and `SMP_INTEROP_SERIAL_FIXTURE`; each device is stopped by its
//!   process id afterwards.
//!
//! Manifest entries that cannot run here (the sdist does not ship them; builds for a
//! board on a bench) are listed in the summary with the reason; anything else that does
//! not run fails the run. Every test run also gets the venv's Python and `imgtool` as
//! absolute paths in `SMP_INTEROP_PYTHON` and `SMP_INTEROP_IMGTOOL`. The summary is a
//! Markdown table of every server and fixture with its tests passed and failed.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, ErrorKind};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::fixtures::{self, Launch, Manifest, Role, SerialFixture, Session};
use crate::util::{self, Result};

/// The `smpclient` release whose sdist carries the servers.
const SMPCLIENT_VERSION: &str = "7.3.0";
/// The `smp` release the Python reference venv pins.
const SMP_VERSION: &str = "4.2.0";
/// The MCUboot `imgtool` release the venv pins (the one `smp-mcuboot` is tested against).
const IMGTOOL_VERSION: &str = "2.5.0";
/// Variables that give every test run the venv's Python and `imgtool` (absolute paths).
const PYTHON_ENV: &str = "SMP_INTEROP_PYTHON";
const IMGTOOL_ENV: &str = "SMP_INTEROP_IMGTOOL";
/// The UDP port both servers bind.
const PORT: u16 = 1337;
/// The log line a server prints once its UDP socket is bound.
const READY: &str = "smp_udp: Started";
/// The log line a server prints when the port is taken; it keeps running regardless.
const BIND_FAILED: &str = "smp_udp: Could not bind";
/// How long a server or fixture may take to come up (a native_sim server prints [`READY`]
/// in ~20 ms; a qemu board's socket listens at once and the board boots meanwhile).
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// 32-bit runtime files the native_sim servers need, and the Debian packages that
/// provide them.
const RUNTIME_FILES: [&str; 2] = ["/lib32/libc.so.6", "/usr/lib32/libgcc_s.so.1"];
const RUNTIME_PACKAGES: [&str; 2] = ["libc6-i386", "lib32gcc-s1"];
/// The emulator of the manifest's `qemu_cmd` fixtures, and its Debian package.
const QEMU: &str = "qemu-system-arm";
const QEMU_PACKAGE: &str = "qemu-system-arm";
/// One test target holding interop tests: `cargo test -p PACKAGE --test TARGET`.
#[derive(Clone, Copy)]
struct Suite {
    package: &'static str,
    target: &'static str,
}

impl Suite {
    /// `cargo test --locked -p PACKAGE --test TARGET`, run from the workspace root.
    fn cargo_test(&self) -> Command {
        let mut command = util::cargo();
        command.args([
            "test",
            "--locked",
            "-p",
            self.package,
            "--test",
            self.target,
        ]);
        command
    }

    fn name(&self) -> String {
        format!("{} --test {}", self.package, self.target)
    }

    /// `PACKAGE-TARGET`, for the run directory of a server started for this suite.
    fn dir_name(&self) -> String {
        format!("{}-{}", self.package, self.target)
    }
}

/// Every suite is required: a missing one fails the run, as a test that vanished would.
const SUITES: [Suite; 3] = [
    // The library against the servers (`tests/interop.rs`).
    Suite {
        package: "smp-integration-tests",
        target: "interop",
    },
    // The library against the serial fixtures (`tests/interop_serial.rs`).
    Suite {
        package: "smp-integration-tests",
        target: "interop_serial",
    },
    // The `smp` command-line tool against them (`crates/smp-cli/tests/interop.rs`).
    Suite {
        package: "smp-cli",
        target: "interop",
    },
];

/// What the tests of one [`SERVERS`] entry run against.
struct Server {
    /// Short name for headings, the run directory and the summary.
    name: &'static str,
    /// The real server to start, or `None` when each test starts its device itself.
    zephyr: Option<Zephyr>,
    /// Tests whose names start with this run against this entry.
    prefix: &'static str,
    /// How the tests reach it, for the summary.
    link: &'static str,
}

/// A real Zephyr server from the sdist, started by this task.
struct Zephyr {
    /// File name in the sdist's `tests/fixtures/smp-server/`.
    exe: &'static str,
    /// Its SHA-256, pinned here so that a changed sdist cannot swap the server silently.
    sha256: &'static str,
    args: &'static [&'static str],
    /// The variable the tests read the address from, and the address.
    env: &'static str,
    addr: &'static str,
}

const SERVERS: [Server; 3] = [
    Server {
        name: "udp4",
        zephyr: Some(Zephyr {
            exe: "zephyr_4.4.0_smp_server_0eae053d_native_sim_udp.exe",
            sha256: "9affd08d35402b94b3f0b75dd3bfd31616151c5016bc00fcc58f8f2207a3600f",
            // Flash in RAM: no flash.bin is left behind to carry state into the next run.
            args: &["-flash_in_ram"],
            env: "SMP_INTEROP_UDP4",
            addr: "127.0.0.1:1337",
        }),
        prefix: "zephyr_udp4_",
        link: "udp 127.0.0.1:1337",
    },
    Server {
        name: "udp6",
        zephyr: Some(Zephyr {
            exe: "zephyr_4.4.0_smp_server_0eae053d_native_sim_udp6.exe",
            sha256: "b4dc889715cb50ee478bf851ed2b6ae8c14dec84efd8c92670e164d84b18de85",
            args: &[],
            env: "SMP_INTEROP_UDP6",
            addr: "[::1]:1337",
        }),
        prefix: "zephyr_udp6_",
        link: "udp [::1]:1337",
    },
    // The simulated device (`smp-sim`), which each test starts in-process on a free port,
    // against the Python reference tools of the venv.
    Server {
        name: "sim",
        zephyr: None,
        prefix: "sim_",
        link: "udp, smp-sim in the test",
    },
];

/// The real servers of [`SERVERS`].
fn zephyr_servers() -> impl Iterator<Item = &'static Zephyr> {
    SERVERS.iter().filter_map(|server| server.zephyr.as_ref())
}

/// The `#[ignore]`d tests of one suite, as `--list` names them.
struct Listed {
    suite: Suite,
    tests: Vec<String>,
}

/// The tests selected for one server: for each suite that has any, their names.
type Selection<'a> = Vec<(Suite, Vec<&'a str>)>;

/// What happened to one server's run.
enum Outcome {
    /// The filter left no test for this server; it was not started.
    Skipped,
    /// A manifest entry that cannot run here, and why.
    NotHere(String),
    /// The tests ran (or were meant to); `errors` say why the run counts as failed.
    Ran {
        passed: usize,
        failed: usize,
        elapsed: Duration,
        errors: Vec<String>,
    },
}

/// One line of the summary: a server or fixture, how it is reached, what happened.
struct Row {
    name: String,
    link: String,
    outcome: Outcome,
}

/// The counts of one or more `cargo test` runs, and why they count as failed.
#[derive(Default)]
struct Counts {
    passed: usize,
    failed: usize,
    errors: Vec<String>,
}

pub(crate) fn run(filter: Option<&str>) -> Result {
    let started = Instant::now();
    let dir = util::target_dir().join("interop");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;

    util::heading("interop: setup");
    ensure_packages()?;
    let sdist = ensure_sdist_and_venv(&dir)?;
    let fixtures = sdist.join("tests/fixtures/smp-server");
    verify_servers(&fixtures)?;
    let tools = Tools::in_venv(&dir.join("venv"))?;
    let manifest = Manifest::load(&fixtures)?;
    let (serial, not_here) = place_fixtures(&manifest)?;

    util::heading("interop: golden vectors against the Python reference");
    for script in ["scripts/gen_vectors.py", "scripts/gen_serial_vectors.py"] {
        util::run(
            Command::new(&tools.python)
                .arg(util::root().join(script))
                .arg("--check"),
        )?;
    }

    util::heading("interop: building and listing the interop tests");
    let listed = SUITES
        .iter()
        .map(|suite| list_tests(*suite))
        .collect::<Result<Vec<Listed>>>()?;
    let all_tests = || {
        listed
            .iter()
            .flat_map(|listed| listed.tests.iter().map(String::as_str))
    };
    let unruled: Vec<&str> = all_tests().filter(|name| fixtures::unruled(name)).collect();
    if !unruled.is_empty() {
        return Err(format!(
            "serial tests that no rule of xtask/src/fixtures.rs places on a fixture, so \
             they would never run: {}",
            unruled.join(", ")
        ));
    }
    let unassigned: Vec<&str> = all_tests()
        .filter(|name| !SERVERS.iter().any(|server| name.starts_with(server.prefix)))
        .filter(|name| !name.starts_with(fixtures::SERIAL_PREFIX))
        .collect();
    if !unassigned.is_empty() {
        println!(
            "interop: warning: never run, as their names start with no server's prefix ({}, {}*): {}",
            SERVERS.map(|server| server.prefix).join(", "),
            fixtures::SERIAL_PREFIX,
            unassigned.join(", ")
        );
    }
    let setup = started.elapsed();
    println!("interop: setup done in {}", util::seconds(setup));

    let selection = |keep: &dyn Fn(&str) -> bool| -> Selection<'_> {
        listed
            .iter()
            .map(|listed| {
                let tests = listed
                    .tests
                    .iter()
                    .map(String::as_str)
                    .filter(|name| keep(name))
                    .filter(|name| filter.is_none_or(|filter| name.contains(filter)))
                    .collect::<Vec<_>>();
                (listed.suite, tests)
            })
            .filter(|(_, tests)| !tests.is_empty())
            .collect()
    };
    // For each server and fixture, the selected tests of each suite (suites without
    // any left out).
    let server_plan: Vec<(&Server, Selection<'_>)> = SERVERS
        .iter()
        .map(|server| (server, selection(&|name| name.starts_with(server.prefix))))
        .collect();
    let serial_plan: Vec<(&SerialFixture, Selection<'_>)> = serial
        .iter()
        .map(|fixture| (fixture, selection(&|name| fixture.session(name).is_some())))
        .collect();
    let nothing = server_plan.iter().all(|(_, selected)| selected.is_empty())
        && serial_plan.iter().all(|(_, selected)| selected.is_empty());
    if nothing {
        let all: Vec<&str> = all_tests().collect();
        return Err(match filter {
            Some(filter) => format!(
                "no interop test matches `{filter}` (tests: {}); a filter that selects nothing is not a pass",
                all.join(", ")
            ),
            None => format!(
                "no interop tests found in {}",
                SUITES.map(|suite| suite.name()).join(", ")
            ),
        });
    }

    // Without a filter every server and fixture must have tests: zero is not a pass.
    let outcome_of =
        |name: &str, selected: &Selection<'_>, what: &str, run: &dyn Fn() -> Outcome| {
            if selected.is_empty() && filter.is_some() {
                println!("\ninterop: {name}: no test matches the filter; not started");
                Outcome::Skipped
            } else if selected.is_empty() {
                Outcome::Ran {
                    passed: 0,
                    failed: 0,
                    elapsed: Duration::ZERO,
                    errors: vec![format!("no {what} in any suite")],
                }
            } else {
                run()
            }
        };
    let mut rows = Vec::new();
    for (server, selected) in &server_plan {
        let what = format!("test named {}*", server.prefix);
        let outcome = outcome_of(server.name, selected, &what, &|| {
            run_server(server, selected, &fixtures, &dir, &tools)
        });
        rows.push(Row {
            name: server.name.to_owned(),
            link: server.link.to_owned(),
            outcome,
        });
    }
    for (fixture, selected) in &serial_plan {
        let outcome = outcome_of(&fixture.name, selected, "serial test for it", &|| {
            run_serial_fixture(fixture, selected, &dir, &tools)
        });
        rows.push(Row {
            name: fixture.name.clone(),
            link: fixture.link(),
            outcome,
        });
    }
    for (name, link, why) in not_here {
        rows.push(Row {
            name,
            link,
            outcome: Outcome::NotHere(why),
        });
    }

    summary(&rows, setup, started.elapsed());
    let failures: Vec<String> = rows
        .iter()
        .flat_map(|row| match &row.outcome {
            Outcome::Ran { errors, .. } => errors
                .iter()
                .map(|error| format!("{}: {error}", row.name))
                .collect(),
            Outcome::Skipped | Outcome::NotHere(_) => Vec::new(),
        })
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("interop failed:\n  {}", failures.join("\n  ")))
    }
}

/// A manifest entry that does not run here: its name, transport and why.
type NotHere = (String, String, String);

/// Sorts the manifest's entries: the serial fixtures to run, and those that cannot run
/// here with the reason. A UDP entry must be one of [`SERVERS`]; an entry this runner
/// cannot place fails the run.
fn place_fixtures(manifest: &Manifest) -> Result<(Vec<SerialFixture>, Vec<NotHere>)> {
    let mut serial = Vec::new();
    let mut not_here = Vec::new();
    for entry in &manifest.entries {
        match fixtures::classify(entry, manifest)? {
            Role::Udp => {
                if !zephyr_servers().any(|server| server.exe == entry.artifact) {
                    return Err(format!(
                        "{} ({}) is a UDP server in the sdist that no entry of SERVERS runs",
                        entry.name(),
                        entry.artifact
                    ));
                }
            }
            Role::Serial(fixture) => serial.push(*fixture),
            Role::NotHere(why) => not_here.push((entry.name(), entry.transport.clone(), why)),
        }
    }
    println!(
        "interop: manifest: {} entries; {} serial fixtures to run, {} UDP servers, {} that cannot run here",
        manifest.entries.len(),
        serial.len(),
        zephyr_servers().count(),
        not_here.len()
    );
    Ok((serial, not_here))
}

/// The venv's tools every test run gets, by absolute path.
struct Tools {
    python: PathBuf,
    imgtool: PathBuf,
}

impl Tools {
    fn in_venv(venv: &Path) -> Result<Self> {
        let absolute = |path: PathBuf| {
            std::path::absolute(&path)
                .map_err(|e| format!("cannot make {} absolute: {e}", path.display()))
        };
        let tools = Self {
            python: absolute(venv.join("bin/python"))?,
            imgtool: absolute(venv.join("bin/imgtool"))?,
        };
        for tool in [&tools.python, &tools.imgtool] {
            if !tool.is_file() {
                return Err(format!(
                    "{} is missing; delete {} and run again",
                    tool.display(),
                    venv.display()
                ));
            }
        }
        Ok(tools)
    }
}

/// Installs with apt-get what the fixtures need and the machine lacks: the 32-bit C
/// runtime of the native_sim servers, and `qemu-system-arm` for the emulated boards.
pub(crate) fn ensure_packages() -> Result {
    let missing = || -> Vec<&str> {
        let mut packages = Vec::new();
        if RUNTIME_FILES.iter().any(|path| !Path::new(path).exists()) {
            packages.extend(RUNTIME_PACKAGES);
        }
        if !util::succeeds(Command::new(QEMU).arg("--version")) {
            packages.push(QEMU_PACKAGE);
        }
        packages
    };
    let before = missing();
    if before.is_empty() {
        println!("interop: 32-bit runtime and {QEMU} present");
        return Ok(());
    }
    println!(
        "interop: installing {} with apt-get (needs root)",
        before.join(" ")
    );
    let hint = |e: String| {
        format!(
            "{e}; the Zephyr native_sim servers are 32-bit programs and need Debian's {}, \
             the emulated boards Debian's {QEMU_PACKAGE} (install them as root)",
            RUNTIME_PACKAGES.join(" ")
        )
    };
    util::run(Command::new("apt-get").arg("update").stdin(Stdio::null())).map_err(hint)?;
    util::run(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&before)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null()),
    )
    .map_err(hint)?;
    let after = missing();
    if after.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "still missing after apt-get install: {}",
            after.join(", ")
        ))
    }
}

/// Gets the extracted sdist (the slow part, ~1 min from nothing) while the venv is set up
/// on another thread, and returns the sdist's directory.
fn ensure_sdist_and_venv(dir: &Path) -> Result<PathBuf> {
    std::thread::scope(|scope| {
        let venv = scope.spawn(|| ensure_venv(dir));
        let sdist = ensure_sdist(dir);
        let venv = venv
            .join()
            .unwrap_or_else(|_| Err("the venv setup thread panicked".to_owned()));
        let sdist = sdist?;
        venv?;
        Ok(sdist)
    })
}

/// Downloads and extracts the `smpclient` sdist unless its directory exists. Extraction
/// goes through a scratch directory, so the directory only ever exists complete.
pub(crate) fn ensure_sdist(dir: &Path) -> Result<PathBuf> {
    let name = format!("smpclient-{SMPCLIENT_VERSION}");
    let sdist = dir.join(&name);
    if sdist.is_dir() {
        println!("interop: sdist present at {}", sdist.display());
        return Ok(sdist);
    }
    let tarball = dir.join(format!("{name}.tar.gz"));
    if !tarball.is_file() {
        println!("interop: downloading the {name} sdist with pip (about a minute)");
        let started = Instant::now();
        util::run(
            Command::new("python3")
                .args(["-m", "pip", "download", "--disable-pip-version-check"])
                .args(["--no-deps", "--no-binary", ":all:"])
                .arg(format!("smpclient=={SMPCLIENT_VERSION}"))
                .arg("-d")
                .arg(dir)
                .stdin(Stdio::null()),
        )?;
        println!(
            "interop: sdist downloaded in {}",
            util::seconds(started.elapsed())
        );
        if !tarball.is_file() {
            return Err(format!(
                "pip download finished but {} is not there",
                tarball.display()
            ));
        }
    }
    let scratch = dir.join("extract.tmp");
    remove_dir_if_exists(&scratch)?;
    fs::create_dir_all(&scratch)
        .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    util::run(
        Command::new("tar")
            .arg("xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&scratch),
    )?;
    fs::rename(scratch.join(&name), &sdist).map_err(|e| {
        format!(
            "{} has no {name}/ directory at its top ({e})",
            tarball.display()
        )
    })?;
    remove_dir_if_exists(&scratch)?;
    println!("interop: sdist extracted to {}", sdist.display());
    Ok(sdist)
}

/// Creates `venv/` with the Python reference client and `imgtool` unless they already
/// import at the pinned versions. Its output goes to `venv-setup.log`, as it runs alongside
/// the sdist download.
pub(crate) fn ensure_venv(dir: &Path) -> Result {
    let venv = dir.join("venv");
    let python = venv.join("bin/python");
    let check = format!(
        "import smp, smpclient, imgtool, serial; from importlib.metadata import version as v; \
         assert (v('smp'), v('smpclient'), v('imgtool')) == \
         ('{SMP_VERSION}', '{SMPCLIENT_VERSION}', '{IMGTOOL_VERSION}')"
    );
    let ready = || {
        util::succeeds(Command::new(&python).args(["-c", &check]))
            && venv.join("bin/imgtool").is_file()
    };
    if ready() {
        println!("interop: venv present at {}", venv.display());
        return Ok(());
    }
    let log_path = dir.join("venv-setup.log");
    println!(
        "interop: creating {} with smp=={SMP_VERSION} smpclient=={SMPCLIENT_VERSION} \
         imgtool=={IMGTOOL_VERSION} (log: {})",
        venv.display(),
        log_path.display()
    );
    let started = Instant::now();
    let log = File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let logged = |command: &mut Command| -> Result {
        let out = log.try_clone().map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        util::run(command.stdin(Stdio::null()).stdout(out).stderr(err))
            .map_err(|e| format!("{e}; see {}", log_path.display()))
    };
    logged(
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
    )?;
    logged(
        Command::new(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check"])
            .arg(format!("smp=={SMP_VERSION}"))
            // The serial extra brings pyserial, which the serial transports import.
            .arg(format!("smpclient[serial]=={SMPCLIENT_VERSION}"))
            .arg(format!("imgtool=={IMGTOOL_VERSION}")),
    )?;
    if !ready() {
        return Err(format!(
            "the venv at {} does not import smp, smpclient and imgtool at the pinned versions \
             (or has no bin/imgtool); see {}",
            venv.display(),
            log_path.display()
        ));
    }
    println!(
        "interop: venv ready in {}",
        util::seconds(started.elapsed())
    );
    Ok(())
}

/// Checks each real server against the sum pinned in [`SERVERS`] and the sdist's
/// `SHA256SUMS`, and makes sure it is executable.
fn verify_servers(fixtures: &Path) -> Result {
    let sums_path = fixtures.join("SHA256SUMS");
    let sums = fs::read_to_string(&sums_path)
        .map_err(|e| format!("cannot read {}: {e}", sums_path.display()))?;
    for server in zephyr_servers() {
        let listed = sums.lines().find_map(|line| {
            let (sum, file) = line.split_once(char::is_whitespace)?;
            (file.trim_start().trim_start_matches('*') == server.exe).then_some(sum)
        });
        if listed != Some(server.sha256) {
            return Err(format!(
                "{} lists {} with sum {listed:?}, expected {}: is this the smpclient {SMPCLIENT_VERSION} sdist?",
                sums_path.display(),
                server.exe,
                server.sha256
            ));
        }
        let exe = fixtures.join(server.exe);
        let output = Command::new("sha256sum")
            .arg(&exe)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("could not run sha256sum: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "sha256sum {} failed: {}",
                exe.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let actual = stdout.split_whitespace().next().unwrap_or_default();
        if actual != server.sha256 {
            return Err(format!(
                "{} has SHA-256 {actual}, expected {}; delete {} and run again",
                exe.display(),
                server.sha256,
                fixtures.display()
            ));
        }
        let mut permissions = fs::metadata(&exe)
            .map_err(|e| format!("cannot stat {}: {e}", exe.display()))?
            .permissions();
        if permissions.mode() & 0o111 != 0o111 {
            permissions.set_mode(permissions.mode() | 0o755);
            fs::set_permissions(&exe, permissions)
                .map_err(|e| format!("cannot make {} executable: {e}", exe.display()))?;
        }
        println!(
            "interop: {} verified ({}...)",
            server.exe,
            &server.sha256[..16]
        );
    }
    Ok(())
}

/// Builds the test target of `suite` and returns the names of its `#[ignore]`d tests.
fn list_tests(suite: Suite) -> Result<Listed> {
    let mut command = suite.cargo_test();
    command
        .args(["--", "--ignored", "--list"])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    let shown = util::show(&command);
    let output = command
        .output()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "could not build or list the interop tests of {}: `{shown}` failed ({})",
            suite.name(),
            output.status
        ));
    }
    let tests: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .map(str::to_owned)
        .collect();
    println!(
        "interop: {}: {} tests: {}",
        suite.name(),
        tests.len(),
        tests.join(", ")
    );
    Ok(Listed { suite, tests })
}

/// Runs the `selected` tests of `server` suite by suite. A real server is started afresh
/// for each suite and stopped after it, so that every suite meets the device as it would
/// run alone (one suite's files, settings or uploads do not fill the device for the next).
fn run_server(
    server: &Server,
    selected: &[(Suite, Vec<&str>)],
    fixtures: &Path,
    dir: &Path,
    tools: &Tools,
) -> Outcome {
    util::heading(&format!(
        "interop: {} ({})",
        match &server.zephyr {
            Some(_) => format!("{} server", server.name),
            None => format!("{}, started by each test", server.name),
        },
        match selected.iter().map(|(_, tests)| tests.len()).sum::<usize>() {
            1 => "1 test".to_owned(),
            n => format!("{n} tests"),
        }
    ));
    let started = Instant::now();
    let run_dir = dir.join(format!("run-{}", server.name));
    let mut counts = Counts::default();
    if let Err(error) = remove_dir_if_exists(&run_dir) {
        counts.errors.push(error);
    }
    for (suite, tests) in selected {
        let result = match &server.zephyr {
            None => run_tests(*suite, tests, tools, &server_env(server), &[]),
            Some(zephyr) => start_server(
                server.name,
                zephyr,
                fixtures,
                &run_dir.join(suite.dir_name()),
            )
            .and_then(|mut guard| {
                wait_ready(&mut guard)?;
                // The guard lives until the tests are done, then stops the server.
                run_tests(*suite, tests, tools, &server_env(server), &[])
            }),
        };
        match result {
            Ok(suite_counts) => {
                counts.passed += suite_counts.passed;
                counts.failed += suite_counts.failed;
                counts.errors.extend(suite_counts.errors);
            }
            Err(error) => counts.errors.push(format!("{}: {error}", suite.name())),
        }
    }
    Outcome::Ran {
        passed: counts.passed,
        failed: counts.failed,
        elapsed: started.elapsed(),
        errors: counts.errors,
    }
}

/// A running server; dropping it kills the process by its id and reaps it, so it is
/// stopped on every path out of the run that started it, an error or a panic included.
pub(crate) struct ServerGuard {
    pub(crate) name: String,
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
}

impl ServerGuard {
    pub(crate) fn new(name: String, child: Child, log: PathBuf) -> Self {
        Self { name, child, log }
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let pid = self.child.id();
        // An error here means the process has already exited; wait() reaps it either way.
        let _ = self.child.kill();
        match self.child.wait() {
            Ok(status) => println!("interop: stopped {} (pid {pid}, {status})", self.name),
            Err(e) => eprintln!("interop: could not reap {} (pid {pid}): {e}", self.name),
        }
    }
}

/// Checks the port, then starts the server in a fresh `run_dir` (such as
/// `run-udp4/smp-cli-interop/`) with its output in `server.log` there.
fn start_server(
    name: &'static str,
    server: &Zephyr,
    fixtures: &Path,
    run_dir: &Path,
) -> Result<ServerGuard> {
    check_port_free()?;
    remove_dir_if_exists(run_dir)?;
    fs::create_dir_all(run_dir).map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;
    let log = run_dir.join("server.log");
    let stdout = File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let stderr = stdout
        .try_clone()
        .map_err(|e| format!("cannot share {}: {e}", log.display()))?;
    let exe = fixtures.join(server.exe);
    let child = Command::new(&exe)
        .args(server.args)
        .current_dir(run_dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    println!(
        "interop: started {} (pid {}, log: {})",
        [server.exe]
            .iter()
            .chain(server.args)
            .copied()
            .collect::<Vec<_>>()
            .join(" "),
        child.id(),
        log.display()
    );
    Ok(ServerGuard::new(format!("the {name} server"), child, log))
}

/// Fails with a clear message if anything holds UDP port [`PORT`] on either loopback.
fn check_port_free() -> Result {
    let addrs = [
        SocketAddr::from((Ipv4Addr::LOCALHOST, PORT)),
        SocketAddr::from((Ipv6Addr::LOCALHOST, PORT)),
    ];
    for addr in addrs {
        match UdpSocket::bind(addr) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AddrInUse => {
                return Err(format!(
                    "UDP port {PORT} is in use ({addr})\n  another SMP server, perhaps \
                     left from an interrupted run, or another program holds it; find it \
                     with `ss -ulpn 'sport = :{PORT}'` and stop it"
                ));
            }
            Err(e) if addr.is_ipv6() && e.kind() == ErrorKind::AddrNotAvailable => {
                println!("interop: warning: no IPv6 loopback here ({e}); udp6 tests will fail");
            }
            Err(e) => return Err(format!("cannot check UDP port {addr} is free: {e}")),
        }
    }
    Ok(())
}

/// Waits until the server's log says it is serving, or fails with the log's end.
fn wait_ready(guard: &mut ServerGuard) -> Result {
    let name = guard.name.clone();
    wait_until(
        guard,
        &format!("ready (`{READY}` in its log)"),
        |log, elapsed| {
            if log.contains(BIND_FAILED) {
                return Err(format!(
                    "{name} could not bind UDP port {PORT}; is another server running?\n{}",
                    tail(log)
                ));
            }
            Ok(log.contains(READY).then(|| {
                println!("interop: {name} ready after {} ms", elapsed.as_millis());
            }))
        },
    )
}

/// Waits for a starting server: asks `ready` (given the server's log so far and the
/// time since the start) every 10 ms until it answers; fails with the log's end when
/// the server exits first, or is not `what` within [`READY_TIMEOUT`].
pub(crate) fn wait_until<R>(
    guard: &mut ServerGuard,
    what: &str,
    mut ready: impl FnMut(&str, Duration) -> Result<Option<R>>,
) -> Result<R> {
    let started = Instant::now();
    loop {
        let log = String::from_utf8_lossy(&fs::read(&guard.log).unwrap_or_default()).into_owned();
        if let Some(ready) = ready(&log, started.elapsed())? {
            return Ok(ready);
        }
        if let Ok(Some(status)) = guard.child.try_wait() {
            return Err(format!(
                "{} exited before it was {what} ({status}):\n{}",
                guard.name,
                tail(&log)
            ));
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(format!(
                "{}: not {what} within {}s:\n{}",
                guard.name,
                READY_TIMEOUT.as_secs(),
                tail(&log)
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The variables that tell a test where `server` is.
fn server_env(server: &Server) -> Vec<(&'static str, String)> {
    server
        .zephyr
        .as_ref()
        .map(|zephyr| (zephyr.env, zephyr.addr.to_owned()))
        .into_iter()
        .collect()
}

/// Runs the `selected` tests of a serial fixture: per suite, the shared ones on one
/// device, then each test that needs a device of its own on a fresh one (as the manifest
/// launches it, or MCUboot alone). Every device is stopped by its process id afterwards.
fn run_serial_fixture(
    fixture: &SerialFixture,
    selected: &[(Suite, Vec<&str>)],
    dir: &Path,
    tools: &Tools,
) -> Outcome {
    util::heading(&format!(
        "interop: {} ({}; {})",
        fixture.name,
        fixture.link(),
        match selected.iter().map(|(_, tests)| tests.len()).sum::<usize>() {
            1 => "1 test".to_owned(),
            n => format!("{n} tests"),
        }
    ));
    for erratum in fixture.errata() {
        println!("interop: {}: manifest erratum: {erratum}", fixture.name);
    }
    let started = Instant::now();
    let run_dir = dir.join(format!("run-{}", fixture.name));
    let mut counts = Counts::default();
    if let Err(error) = remove_dir_if_exists(&run_dir) {
        counts.errors.push(error);
    }
    for (suite, tests) in selected {
        let in_session = |session: Session| -> Vec<&str> {
            tests
                .iter()
                .copied()
                .filter(|test| fixture.session(test) == Some(session))
                .collect()
        };
        let mut sessions: Vec<(Launch, String, Vec<&str>)> = Vec::new();
        let shared = in_session(Session::Shared);
        if !shared.is_empty() {
            sessions.push((Launch::Manifest, "shared".to_owned(), shared));
        }
        for (session, launch) in [
            (Session::Own, Launch::Manifest),
            (Session::OwnBare, Launch::Bare),
            (Session::OwnLoadedOnce, Launch::LoadOnce),
        ] {
            for test in in_session(session) {
                sessions.push((launch, test.to_owned(), vec![test]));
            }
        }
        for (launch, label, tests) in sessions {
            let session_dir = run_dir.join(suite.dir_name()).join(&label);
            match launch {
                Launch::Bare => println!("interop: {}: MCUboot alone, for {label}", fixture.name),
                Launch::LoadOnce => println!(
                    "interop: {}: firmware written into flash once (no loader), for {label}",
                    fixture.name
                ),
                Launch::Manifest => {}
            }
            let result = fixture
                .start(launch, &session_dir)
                .and_then(|(guard, target)| {
                    let env = vec![
                        (fixtures::SERIAL_ENV, target),
                        (fixtures::SERIAL_FIXTURE_ENV, fixture.json()),
                    ];
                    let counts = run_tests(*suite, &tests, tools, &env, &["--show-output"]);
                    // Stops the device now, before the next session starts one.
                    drop(guard);
                    counts
                });
            match result {
                Ok(session_counts) => {
                    counts.passed += session_counts.passed;
                    counts.failed += session_counts.failed;
                    counts.errors.extend(session_counts.errors);
                }
                Err(error) => counts
                    .errors
                    .push(format!("{} ({label}): {error}", suite.name())),
            }
        }
    }
    Outcome::Ran {
        passed: counts.passed,
        failed: counts.failed,
        elapsed: started.elapsed(),
        errors: counts.errors,
    }
}

/// Runs exactly `tests` of `suite` with `env` set (and every other server's variable
/// unset, so that a test for another one fails rather than reaching it), their output
/// passed through, and returns their counts. A run that executes fewer tests than
/// selected (none, say, as a renamed test would) counts as failed.
fn run_tests(
    suite: Suite,
    tests: &[&str],
    tools: &Tools,
    env: &[(&str, String)],
    args: &[&str],
) -> Result<Counts> {
    let mut command = suite.cargo_test();
    command
        .args(["--", "--ignored", "--test-threads=1", "--exact"])
        .args(args)
        .args(tests)
        .env(PYTHON_ENV, &tools.python)
        .env(IMGTOOL_ENV, &tools.imgtool)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    for zephyr in zephyr_servers() {
        command.env_remove(zephyr.env);
    }
    command
        .env_remove(fixtures::SERIAL_ENV)
        .env_remove(fixtures::SERIAL_FIXTURE_ENV);
    for (key, value) in env {
        command.env(key, value);
    }
    let shown = util::show(&command);
    println!("interop: {shown}");
    let mut child = command
        .spawn()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    let mut counts = Counts::default();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| format!("reading the test output: {e}"))?;
            println!("{line}");
            if let Some(result) = line.strip_prefix("test result: ") {
                counts.passed += count(result, "passed");
                counts.failed += count(result, "failed");
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for `{shown}`: {e}"))?;
    let executed = counts.passed + counts.failed;
    if !status.success() {
        counts.errors.push(format!(
            "{}: {} of {} tests failed ({status})",
            suite.name(),
            counts.failed,
            tests.len()
        ));
    } else if executed != tests.len() {
        counts.errors.push(format!(
            "{}: the test run executed {executed} of the {} selected tests",
            suite.name(),
            tests.len()
        ));
    }
    Ok(counts)
}

/// `count("ok. 2 passed; 0 failed; ...", "passed")` is 2.
fn count(result: &str, what: &str) -> usize {
    let words: Vec<&str> = result
        .split_whitespace()
        .map(|word| word.trim_end_matches([';', '.', ',']))
        .collect();
    words
        .windows(2)
        .find(|pair| pair[1] == what)
        .and_then(|pair| pair[0].parse().ok())
        .unwrap_or(0)
}

/// The last lines of a server log, without its ANSI colour codes.
pub(crate) fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let start = lines.len().saturating_sub(20);
    lines[start..]
        .iter()
        .map(|line| format!("    | {}", strip_ansi(line)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Removes `ESC [ ... letter` sequences.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
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

pub(crate) fn remove_dir_if_exists(path: &Path) -> Result {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

/// Prints every server and fixture with its counts, as a Markdown table.
fn summary(rows: &[Row], setup: Duration, total: Duration) {
    println!("\ninterop summary (setup {}):\n", util::seconds(setup));
    let name_width = rows
        .iter()
        .map(|row| row.name.len())
        .max()
        .unwrap_or(0)
        .max(7);
    let link_width = rows
        .iter()
        .map(|row| row.link.len())
        .max()
        .unwrap_or(0)
        .max(4);
    let line = |name: &str, link: &str, passed: &str, failed: &str, elapsed: &str, result: &str| {
        println!(
            "| {name:<name_width$} | {link:<link_width$} | {passed:>6} | {failed:>6} | {elapsed:>7} | {result} |"
        );
    };
    line("fixture", "link", "passed", "failed", "elapsed", "result");
    println!(
        "|{}|{}|-------:|-------:|--------:|--------|",
        "-".repeat(name_width + 2),
        "-".repeat(link_width + 2)
    );
    let (mut all_passed, mut all_failed) = (0, 0);
    for row in rows {
        match &row.outcome {
            Outcome::Skipped => line(&row.name, &row.link, "-", "-", "-", "skipped (filter)"),
            Outcome::NotHere(why) => line(
                &row.name,
                &row.link,
                "-",
                "-",
                "-",
                &format!("not run: {why}"),
            ),
            Outcome::Ran {
                passed,
                failed,
                elapsed,
                errors,
            } => {
                all_passed += passed;
                all_failed += failed;
                let result = match errors.as_slice() {
                    [] => "ok".to_owned(),
                    [error, rest @ ..] => {
                        let first = error.lines().next().unwrap_or_default();
                        match rest.len() {
                            0 => format!("FAILED: {first}"),
                            more => format!("FAILED: {first} (+{more} more)"),
                        }
                    }
                };
                line(
                    &row.name,
                    &row.link,
                    &passed.to_string(),
                    &failed.to_string(),
                    &util::seconds(*elapsed),
                    &result,
                );
            }
        }
    }
    line(
        "total",
        "",
        &all_passed.to_string(),
        &all_failed.to_string(),
        &util::seconds(total),
        "",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_a_libtest_summary() {
        let line =
            "ok. 2 passed; 1 failed; 0 ignored; 0 measured; 3 filtered out; finished in 0.01s";
        assert_eq!(count(line, "passed"), 2);
        assert_eq!(count(line, "failed"), 1);
        assert_eq!(count("ok. 0 passed; 0 failed;", "passed"), 0);
        assert_eq!(count("nonsense", "passed"), 0);
    }

    #[test]
    fn strips_colour_codes() {
        let line = "[00:00:00.000,000] \u{1b}[0m<inf> smp_udp: Started (IPv4)\u{1b}[0m";
        assert_eq!(
            strip_ansi(line),
            "[00:00:00.000,000] <inf> smp_udp: Started (IPv4)"
        );
    }
}
