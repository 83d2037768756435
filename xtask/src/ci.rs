//! `cargo xtask ci`: every check CI makes, in order, stopping at the first failure.
//!
//! Every cargo command on the workspace runs with `--locked` (the interop tests too), so
//! a Cargo.lock that does not match the manifests fails instead of being rewritten. The
//! fuzz crate is outside the workspace, with its own lock file.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::json::Json;
use crate::util::{self, Result};

/// The bare-metal target that proves `smp-header` and `smp-proto` are `no_std`.
const NO_STD_TARGET: &str = "thumbv7em-none-eabihf";
/// Seconds of fuzzing per target in CI: enough to catch a shallow regression.
const FUZZ_SECONDS: u64 = 20;

/// What to leave out. CI runs everything but the workspace tests, which `.ci/run` has
/// run already as the README's test command; the other options only shorten a local run.
#[derive(Debug, Default)]
pub(crate) struct Options {
    no_tests: bool,
    no_interop: bool,
    skip_deny: bool,
    no_fuzz: bool,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let mut options = Self::default();
        for arg in args {
            match arg.as_str() {
                "--no-tests" => options.no_tests = true,
                "--no-interop" => options.no_interop = true,
                "--skip-deny" => options.skip_deny = true,
                "--no-fuzz" => options.no_fuzz = true,
                other => {
                    return Err(format!(
                        "ci: unknown option `{other}` \
                         (known: --no-tests, --no-interop, --skip-deny, --no-fuzz)"
                    ));
                }
            }
        }
        Ok(options)
    }
}

/// One step: a name for the heading and summary, and what it runs.
struct Step {
    name: String,
    action: Action,
}

enum Action {
    /// A cargo command, on the toolchain that runs xtask or on the one named.
    Cargo {
        toolchain: Option<String>,
        args: Vec<&'static str>,
        env: Vec<(&'static str, &'static str)>,
    },
    Packages(Vec<Package>),
    Examples,
    Fuzz,
    Interop,
}

impl Step {
    fn cargo(args: &[&'static str]) -> Self {
        Self::cargo_env(args, &[])
    }

    fn cargo_env(args: &[&'static str], env: &[(&'static str, &'static str)]) -> Self {
        let mut name = String::new();
        for (key, value) in env {
            name.push_str(&format!("{key}={value} "));
        }
        name.push_str("cargo ");
        name.push_str(&args.join(" "));
        Self {
            name,
            action: Action::Cargo {
                toolchain: None,
                args: args.to_vec(),
                env: env.to_vec(),
            },
        }
    }

    /// `cargo +TOOLCHAIN ARGS`, through rustup.
    fn cargo_on(toolchain: &str, args: &[&'static str]) -> Self {
        Self {
            name: format!("cargo +{toolchain} {}", args.join(" ")),
            action: Action::Cargo {
                toolchain: Some(toolchain.to_owned()),
                args: args.to_vec(),
                env: Vec::new(),
            },
        }
    }

    fn run(&self) -> Result {
        match &self.action {
            Action::Cargo {
                toolchain,
                args,
                env,
            } => {
                let mut command: Command = match toolchain {
                    Some(toolchain) => util::toolchain_cargo(toolchain),
                    None => util::cargo(),
                };
                command.args(args).envs(env.iter().copied());
                util::run(&mut command).map_err(|message| match toolchain {
                    Some(toolchain) => format!(
                        "{message}\n(if the toolchain is missing: \
                         rustup toolchain install {toolchain} --profile minimal, \
                         as .ci/run does)"
                    ),
                    None => message,
                })
            }
            Action::Packages(packages) => check_packages(packages),
            Action::Examples => crate::examples::run(),
            Action::Fuzz => crate::fuzz::run(crate::fuzz::Options {
                seconds: FUZZ_SECONDS,
                targets: crate::fuzz::TARGETS.map(str::to_owned).to_vec(),
            }),
            Action::Interop => crate::interop::run(None),
        }
    }
}

pub(crate) fn run(options: Options) -> Result {
    let workspace = Workspace::read()?;
    let mut steps = vec![
        Step::cargo(&["fmt", "--all", "--", "--check"]),
        Step::cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
        Step::cargo_env(
            &["doc", "--workspace", "--no-deps", "--locked"],
            &[("RUSTDOCFLAGS", "-Dwarnings")],
        ),
    ];
    if !options.no_tests {
        steps.push(Step::cargo(&["test", "--workspace", "--locked"]));
    }
    // The examples run even with --no-tests: .ci/run's `cargo test --workspace` builds
    // them but does not run them.
    steps.push(Step {
        name: "cargo xtask examples".to_owned(),
        action: Action::Examples,
    });
    steps.extend([
        Step::cargo(&[
            "build",
            "-p",
            "smp-header",
            "-p",
            "smp-proto",
            "--target",
            NO_STD_TARGET,
            "--locked",
        ]),
        // The client without its default `udp` feature (no UDP transport) still builds.
        Step::cargo(&[
            "check",
            "-p",
            "smp-client",
            "--no-default-features",
            "--locked",
        ]),
        // The oldest Rust the manifests promise (`rust-version`), on every target,
        // dev-dependencies included.
        Step::cargo_on(
            &workspace.rust_version,
            &["check", "--workspace", "--all-targets", "--locked"],
        ),
        Step {
            name: format!(
                "cargo package --list --locked -p CRATE: {}",
                workspace.publishable_names().join(", ")
            ),
            action: Action::Packages(workspace.publishable),
        },
    ]);
    if !options.skip_deny {
        steps.push(Step::cargo(&[
            "deny", "check", "licenses", "bans", "sources",
        ]));
    }
    if !options.no_fuzz {
        steps.push(Step {
            name: format!("cargo xtask fuzz --seconds {FUZZ_SECONDS}"),
            action: Action::Fuzz,
        });
    }
    if !options.no_interop {
        steps.push(Step {
            name: "cargo xtask interop".to_owned(),
            action: Action::Interop,
        });
    }

    let total = steps.len();
    let mut done: Vec<(&str, Duration)> = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        util::heading(&format!("ci [{}/{total}] {}", index + 1, step.name));
        let started = Instant::now();
        let result = step.run();
        done.push((&step.name, started.elapsed()));
        if let Err(message) = result {
            summary(&done, true);
            return Err(format!("ci step {}/{total} failed: {message}", index + 1));
        }
    }
    summary(&done, false);
    let skipped: Vec<&str> = [
        (options.no_tests, "cargo test"),
        (options.skip_deny, "cargo deny"),
        (options.no_fuzz, "fuzz"),
        (options.no_interop, "interop"),
    ]
    .into_iter()
    .filter_map(|(skip, name)| skip.then_some(name))
    .collect();
    if skipped.is_empty() {
        println!("\nci: all {total} steps passed");
    } else {
        println!(
            "\nci: all {total} steps passed; SKIPPED on request: {}",
            skipped.join(", ")
        );
    }
    Ok(())
}

/// Elapsed time of each step run so far; the last one is marked if it failed.
fn summary(done: &[(&str, Duration)], last_failed: bool) {
    println!("\nci summary:");
    for (index, (name, elapsed)) in done.iter().enumerate() {
        let status = if last_failed && index + 1 == done.len() {
            "FAILED"
        } else {
            "ok"
        };
        println!("  {status:<6} {:>7}  {name}", util::seconds(*elapsed));
    }
}

/// What CI needs to know about the workspace, from `cargo metadata`: so that a new
/// crate is checked without anyone editing this file.
struct Workspace {
    /// The `rust-version` every member declares.
    rust_version: String,
    /// The members that `cargo publish` would publish (no `publish = false`).
    publishable: Vec<Package>,
}

/// A member that would be published, and what its package must carry.
#[derive(Debug, PartialEq)]
struct Package {
    name: String,
    /// `readme` as cargo resolved it (cargo also finds a `README.md` left undeclared).
    readme: Option<String>,
    /// The SPDX `license` expression.
    license: Option<String>,
    /// `license-file`, relative to the crate.
    license_file: Option<String>,
}

impl Workspace {
    fn read() -> Result<Self> {
        let metadata =
            util::capture(util::cargo().args(["metadata", "--no-deps", "--format-version", "1"]))?;
        Self::from_metadata(&Json::parse(&metadata)?)
    }

    fn from_metadata(metadata: &Json) -> Result<Self> {
        let packages = metadata
            .get("packages")
            .and_then(Json::as_array)
            .ok_or("cargo metadata: no `packages` list")?;
        let mut rust_versions: Vec<(&str, &str)> = Vec::new();
        let mut publishable = Vec::new();
        for package in packages {
            let name = text(package, "name").ok_or("cargo metadata: a package without name")?;
            rust_versions.push((name, text(package, "rust_version").unwrap_or("none")));
            // `publish`: null when publishable anywhere, a list of registries otherwise;
            // `publish = false` is the empty list.
            let unpublished = package
                .get("publish")
                .and_then(Json::as_array)
                .is_some_and(<[Json]>::is_empty);
            if !unpublished {
                publishable.push(Package {
                    name: name.to_owned(),
                    readme: text(package, "readme").map(str::to_owned),
                    license: text(package, "license").map(str::to_owned),
                    license_file: text(package, "license_file").map(str::to_owned),
                });
            }
        }
        let rust_version = match rust_versions.as_slice() {
            [(_, first), rest @ ..] if rest.iter().all(|(_, v)| v == first) && *first != "none" => {
                (*first).to_owned()
            }
            _ => {
                return Err(format!(
                    "every workspace member should declare the same rust-version \
                     (rust-version.workspace = true); they declare: {rust_versions:?}"
                ));
            }
        };
        Ok(Self {
            rust_version,
            publishable,
        })
    }

    fn publishable_names(&self) -> Vec<&str> {
        self.publishable.iter().map(|p| p.name.as_str()).collect()
    }
}

/// The text member `key` of `object`.
fn text<'a>(object: &'a Json, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Json::as_str)
}

/// Lists the files of each crate's package, as `cargo package` would make it, and fails
/// if a package would go out without its README or its license.
fn check_packages(packages: &[Package]) -> Result {
    if packages.is_empty() {
        return Err("cargo metadata lists no publishable crate".to_owned());
    }
    let mut problems = Vec::new();
    for package in packages {
        let listed = util::capture(util::cargo().args([
            "package",
            "--list",
            "--locked",
            "-p",
            &package.name,
        ]))?;
        let files: Vec<&str> = listed.lines().map(str::trim).collect();
        let found = package.missing(&files);
        println!(
            "  {:<16} {:>3} files, readme {}, license {}",
            package.name,
            files.len(),
            package.readme.as_deref().unwrap_or("NONE"),
            package
                .license
                .as_deref()
                .or(package.license_file.as_deref())
                .unwrap_or("NONE"),
        );
        problems.extend(found.into_iter().map(|p| format!("{}: {p}", package.name)));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "packages would be published incomplete:\n  {}",
            problems.join("\n  ")
        ))
    }
}

impl Package {
    /// What the package would lack, given the files `cargo package --list` shows.
    fn missing(&self, files: &[&str]) -> Vec<String> {
        let packaged = |path: &str| {
            let path = Path::new(path);
            let outside = path.is_absolute() || path.starts_with("..");
            // A file from outside the crate (`readme = "../README.md"`) is packaged at
            // the root under its own name; one inside keeps its path.
            let expected = if outside {
                path.file_name().map(Path::new)
            } else {
                Some(path)
            };
            expected.is_some_and(|expected| files.iter().any(|f| Path::new(f) == expected))
        };
        let mut missing = Vec::new();
        match &self.readme {
            None => missing.push(
                "no README: add crates/<crate>/README.md and `readme = \"README.md\"`".to_owned(),
            ),
            Some(readme) if !packaged(readme) => {
                missing.push(format!("its readme `{readme}` is not in the package"));
            }
            Some(_) => {}
        }
        match (&self.license, &self.license_file) {
            (None, None) => missing.push("no `license` (or `license-file`)".to_owned()),
            (_, Some(file)) if !packaged(file) => {
                missing.push(format!("its license file `{file}` is not in the package"));
            }
            _ => {}
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(packages: &str) -> Json {
        Json::parse(&format!(r#"{{"packages": [{packages}], "version": 1}}"#)).unwrap()
    }

    const HEADER: &str = r#"{"name": "smp-header", "publish": null, "rust_version": "1.85",
        "readme": "README.md", "license": "MIT OR Apache-2.0", "license_file": null}"#;
    const XTASK: &str = r#"{"name": "xtask", "publish": [], "rust_version": "1.85",
        "readme": null, "license": "MIT OR Apache-2.0", "license_file": null}"#;

    #[test]
    fn publishable_crates_and_the_rust_version_come_from_the_metadata() {
        let private = r#"{"name": "internal", "publish": ["company"], "rust_version": "1.85",
            "readme": null, "license": null, "license_file": "LICENSE"}"#;
        let workspace =
            Workspace::from_metadata(&metadata(&[HEADER, XTASK, private].join(","))).unwrap();
        assert_eq!(workspace.rust_version, "1.85");
        // `publish = false` is left out; a crate for another registry is still published.
        assert_eq!(workspace.publishable_names(), ["smp-header", "internal"]);
        assert_eq!(
            workspace.publishable[1],
            Package {
                name: "internal".to_owned(),
                readme: None,
                license: None,
                license_file: Some("LICENSE".to_owned()),
            }
        );
    }

    #[test]
    fn members_must_agree_on_the_rust_version() {
        let newer = XTASK.replace("1.85", "1.88");
        assert!(Workspace::from_metadata(&metadata(&[HEADER, &newer].join(","))).is_err());
        let none = HEADER.replace(r#""rust_version": "1.85""#, r#""rust_version": null"#);
        assert!(Workspace::from_metadata(&metadata(&none)).is_err());
        assert!(Workspace::from_metadata(&metadata("")).is_err());
    }

    fn package(readme: Option<&str>, license: Option<&str>, file: Option<&str>) -> Package {
        Package {
            name: "p".to_owned(),
            readme: readme.map(str::to_owned),
            license: license.map(str::to_owned),
            license_file: file.map(str::to_owned),
        }
    }

    #[test]
    fn a_package_needs_its_readme_and_a_license() {
        let files = ["Cargo.toml", "README.md", "LICENSE-MIT", "src/lib.rs"];
        let mit = Some("MIT");
        let problems = |readme, license, file| package(readme, license, file).missing(&files);
        assert_eq!(problems(Some("README.md"), mit, None), Vec::<String>::new());
        // A README outside the crate is packaged under its file name.
        assert!(problems(Some("../../README.md"), mit, None).is_empty());
        assert!(problems(Some("README.md"), None, Some("LICENSE-MIT")).is_empty());
        assert_eq!(problems(None, mit, None).len(), 1);
        assert_eq!(problems(Some("README.md"), None, None).len(), 1);
        assert_eq!(problems(Some("docs/README.md"), mit, None).len(), 1);
        assert_eq!(problems(Some("README.md"), None, Some("COPYING")).len(), 1);
        assert_eq!(problems(None, None, None).len(), 2);
    }
}
