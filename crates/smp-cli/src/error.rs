//! Why a command failed, the exit status that tells scripts, and the error report printed
//! as text or JSON.

use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use smp_client::header::group;
use smp_client::transport::HumanDuration;
use smp_client::{ClientError, DeviceError, ErrorScope, Progress, TransportError};

use crate::cli::Target;

/// Exit statuses (documented in `reference.md` and `smp --help`).
pub(crate) mod exit {
    /// The device refused the request, or stayed busy.
    pub(crate) const DEVICE: u8 = 1;
    /// Bad arguments or options.
    pub(crate) const USAGE: u8 = 2;
    /// No reply from the device, or nothing there.
    pub(crate) const UNREACHABLE: u8 = 3;
    /// A local file, or an image file that is not valid.
    pub(crate) const LOCAL: u8 = 4;
    /// Replies that make no sense, a transfer that failed its check, or `smp` itself.
    pub(crate) const PROTOCOL: u8 = 5;
    /// Interrupted (Ctrl-C, SIGINT): 128 + 2, as shells report a process SIGINT ended.
    pub(crate) const INTERRUPTED: u8 = 130;
    /// `upgrade`: a device came back running its old image (and nothing worse happened).
    pub(crate) const ROLLED_BACK: u8 = 6;
}

/// Why a command failed.
#[derive(Debug)]
pub(crate) enum CliError {
    /// The command line asks for something impossible (found after parsing).
    Usage(String),
    /// The client failed: the device refused, did not answer, or answered nonsense.
    Client(ClientError),
    /// A local file could not be read or written.
    File {
        /// The file.
        path: PathBuf,
        /// `"read"` or `"write"`.
        action: &'static str,
        /// What the system said.
        source: io::Error,
    },
    /// `smp` itself failed (it could not start its runtime).
    Internal(String),
    /// A file is not a valid MCUboot image.
    Image {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The client's first request (the MCUmgr parameters, read on connect) failed: a
    /// timeout then means nothing answered at all.
    Connect(ClientError),
    /// Ctrl-C (SIGINT) ended the command.
    Interrupted {
        /// How far its transfer had come, if it had one under way.
        progress: Option<Progress>,
        /// Whether running the same command again continues the transfer.
        resumable: bool,
    },
    /// A short hash that does not name exactly one of the device's images.
    HashPrefix {
        /// The digits given.
        prefix: String,
        /// The images whose hash starts with them (none, or several different hashes).
        matches: Vec<ListedImage>,
        /// Every image the device lists.
        listed: Vec<ListedImage>,
    },
}

/// An image a device lists, as an error about short hashes names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListedImage {
    /// Image number.
    pub(crate) image: u32,
    /// Slot.
    pub(crate) slot: u32,
    /// Hash, in hex.
    pub(crate) hash: String,
}

impl ListedImage {
    fn json(&self) -> Value {
        json!({ "image": self.image, "slot": self.slot, "hash": self.hash })
    }
}

impl std::fmt::Display for ListedImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "image {} slot {} {}", self.image, self.slot, self.hash)
    }
}

impl From<ClientError> for CliError {
    fn from(err: ClientError) -> Self {
        Self::Client(err)
    }
}

impl CliError {
    /// Reading `path` failed.
    pub(crate) fn read(path: &Path, source: io::Error) -> Self {
        Self::File {
            path: path.to_owned(),
            action: "read",
            source,
        }
    }

    /// Writing `path` failed.
    pub(crate) fn write(path: &Path, source: io::Error) -> Self {
        Self::File {
            path: path.to_owned(),
            action: "write",
            source,
        }
    }
}

/// A failure as reported to the user: kind, exit status, message and details.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ErrorReport {
    /// The JSON `kind`: `device`, `busy`, `usage`, `too_large`, `unreachable`, `file`,
    /// `image`, `protocol`, `transfer`, `internal` or `interrupted`.
    pub(crate) kind: &'static str,
    /// The process's exit status.
    pub(crate) exit_code: u8,
    /// One line for people, without the command's name.
    pub(crate) message: String,
    /// The command as typed (`"image upload"`), when the command line parsed.
    pub(crate) command: Option<String>,
    /// The kind's own fields.
    pub(crate) details: Map<String, Value>,
    /// What to do about it, when `smp` knows: printed as `hint: ...` after the message,
    /// and in JSON as `hint` (null otherwise).
    pub(crate) hint: Option<String>,
}

impl ErrorReport {
    /// A usage error; `message` may span lines (clap's own report).
    pub(crate) fn usage(message: impl Into<String>, command: Option<&str>) -> Self {
        Self::plain("usage", exit::USAGE, message.into(), command)
    }

    fn plain(kind: &'static str, exit_code: u8, message: String, command: Option<&str>) -> Self {
        Self {
            kind,
            exit_code,
            message,
            command: command.map(str::to_owned),
            details: Map::new(),
            hint: None,
        }
    }

    fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// The report of `err`, which `command` hit talking to `target`.
    pub(crate) fn new(err: &CliError, command: &str, target: Option<&Target>) -> Self {
        let command = Some(command);
        match err {
            CliError::Usage(message) => Self::usage(message.clone(), command),
            CliError::File {
                path,
                action,
                source,
            } => {
                let name = match (crate::cli::is_std_stream(path), *action) {
                    (true, "read") => "standard input".to_owned(),
                    (true, _) => "standard output".to_owned(),
                    (false, _) => path.display().to_string(),
                };
                Self::plain(
                    "file",
                    exit::LOCAL,
                    format!("cannot {action} {name}: {source}"),
                    command,
                )
            }
            CliError::Image { path, message } => Self::plain(
                "image",
                exit::LOCAL,
                format!("{}: {message}", path.display()),
                command,
            ),
            CliError::Internal(message) => {
                Self::plain("internal", exit::PROTOCOL, message.clone(), command)
            }
            CliError::Client(err) => Self::client(err, command, target),
            CliError::Connect(err) => {
                let report = Self::client(err, command, target);
                match err {
                    ClientError::Timeout { .. } => report.with_hint(Some(no_answer_hint(target))),
                    _ => report,
                }
            }
            CliError::HashPrefix {
                prefix,
                matches,
                listed,
            } => hash_prefix(prefix, matches, listed, command),
            CliError::Interrupted {
                progress,
                resumable,
            } => interrupted(*progress, *resumable, command),
        }
    }

    fn client(err: &ClientError, command: Option<&str>, target: Option<&Target>) -> Self {
        let place = target.map_or_else(|| "the device".to_owned(), ToString::to_string);
        let unreachable = |message: String| {
            let mut report = Self::plain("unreachable", exit::UNREACHABLE, message, command);
            report.details.insert(
                "target".into(),
                target.map_or(Value::Null, |t| json!(t.to_string())),
            );
            report
        };
        match err {
            ClientError::Device(device) => {
                let mut report = Self::plain(
                    "device",
                    exit::DEVICE,
                    format!("device refused: {}", describe(device)),
                    command,
                );
                report.details = device_details(device);
                report.with_hint(device_hint(device))
            }
            ClientError::Busy { last, attempts } => {
                let mut report = Self::plain(
                    "busy",
                    exit::DEVICE,
                    format!(
                        "device stayed busy through {attempts} attempts: {}",
                        describe(last)
                    ),
                    command,
                );
                report.details = device_details(last);
                report.details.insert("attempts".into(), json!(attempts));
                report
            }
            ClientError::Timeout {
                attempts, waited, ..
            } => unreachable(format!(
                "device unreachable: no reply from {place} after {attempts} {} over {}",
                if *attempts == 1 {
                    "attempt"
                } else {
                    "attempts"
                },
                HumanDuration(*waited)
            )),
            ClientError::Transport(transport) => match transport {
                TransportError::MtuTooSmall { .. } => Self::usage(chain(transport), command),
                TransportError::Unreachable(io) => unreachable(format!(
                    "device unreachable: nothing listens on {place} ({io})"
                ))
                .with_hint(Some(
                    "check the address and port; a device that is restarting refuses \
                     requests for a moment: try again then"
                        .to_owned(),
                )),
                TransportError::ConnectTimeout { timeout, .. } => unreachable(format!(
                    "device unreachable: connecting to {place} timed out after {}",
                    HumanDuration(*timeout)
                )),
                TransportError::Resolve { .. }
                | TransportError::NoAddress { .. }
                | TransportError::Io(_) => {
                    unreachable(format!("device unreachable: {}", chain(transport)))
                }
                other => Self::plain(
                    "protocol",
                    exit::PROTOCOL,
                    format!("transport failed: {}", chain(other)),
                    command,
                ),
            },
            ClientError::FrameTooLarge { .. } => {
                Self::plain("too_large", exit::USAGE, chain(err), command)
            }
            ClientError::Transfer(_) => {
                Self::plain("transfer", exit::PROTOCOL, chain(err), command)
            }
            ClientError::Closed if matches!(target, Some(Target::Serial(_))) => {
                unreachable(format!(
                    "device unreachable: the serial port {place} went away (unplugged, or the \
                 program behind it stopped)"
                ))
            }
            other => Self::plain("protocol", exit::PROTOCOL, chain(other), command),
        }
    }

    /// The JSON document: `{"error": {"kind", "message", "command", "exit_code", ...}}`.
    pub(crate) fn to_json(&self) -> Value {
        let mut error = Map::new();
        error.insert("kind".into(), json!(self.kind));
        error.insert("message".into(), json!(self.message));
        error.insert("command".into(), json!(self.command));
        error.insert("exit_code".into(), json!(self.exit_code));
        for (key, value) in &self.details {
            error.insert(key.clone(), value.clone());
        }
        error.insert("hint".into(), json!(self.hint));
        json!({ "error": error })
    }
}

/// The report of an interruption: where a transfer stopped, and whether running the
/// command again continues it.
fn interrupted(progress: Option<Progress>, resumable: bool, command: Option<&str>) -> ErrorReport {
    let message = match progress {
        Some(p) if resumable => format!(
            "interrupted at offset {} of {}; run the same command to resume",
            p.done, p.total
        ),
        Some(p) => format!("interrupted at offset {} of {}", p.done, p.total),
        None => "interrupted".to_owned(),
    };
    let mut report = ErrorReport::plain("interrupted", exit::INTERRUPTED, message, command);
    report
        .details
        .insert("offset".into(), json!(progress.map(|p| p.done)));
    report
        .details
        .insert("size".into(), json!(progress.map(|p| p.total)));
    report
}

/// The report of a short hash that names no image, or several.
fn hash_prefix(
    prefix: &str,
    matches: &[ListedImage],
    listed: &[ListedImage],
    command: Option<&str>,
) -> ErrorReport {
    let list = |images: &[ListedImage]| {
        images
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (message, hint, candidates) = if matches.is_empty() {
        let hint = if listed.is_empty() {
            "the device lists no images".to_owned()
        } else {
            format!("the device has {}", list(listed))
        };
        (
            format!("no image on the device has a hash starting with {prefix}"),
            hint,
            listed,
        )
    } else {
        (
            format!(
                "hash prefix {prefix} is ambiguous: {} images' hashes start with it",
                matches.len()
            ),
            format!("give more digits of one: {}", list(matches)),
            matches,
        )
    };
    let mut report = ErrorReport::usage(message, command).with_hint(Some(hint));
    report.details.insert(
        "candidates".into(),
        Value::Array(candidates.iter().map(ListedImage::json).collect()),
    );
    report
}

/// The hint for a first request that got no reply at all.
fn no_answer_hint(target: Option<&Target>) -> String {
    match target {
        Some(Target::Serial(_)) => "nothing answered at all: check the port, that the \
             device runs an MCUmgr serial transport on it, the framing (--framing console, \
             raw or cobs) and line length (--line-length) it expects, the baud rate \
             (--baud), and that no other program holds the port"
            .to_owned(),
        Some(Target::Udp(udp)) => udp_hint(udp.port()),
        None => udp_hint(smp_client::udp::DEFAULT_PORT),
    }
}

fn udp_hint(port: u16) -> String {
    format!(
        "nothing answered at all: check the address and port (--udp HOST[:PORT], port \
         1337 unless given), that the device runs an MCUmgr UDP server, and that no \
         firewall drops UDP port {port}"
    )
}

/// What to do about the device errors people hit most.
fn device_hint(err: &DeviceError) -> Option<String> {
    let group_name = group::name(err.group);
    let hint = match (err.scope, err.group, err.name()) {
        (ErrorScope::Management, _, Some("ENOTSUP")) => match group_name {
            Some(name) => format!(
                "the device lacks this command, or the whole {name} group: \
                 `smp enum groups` lists the groups it has"
            ),
            None => format!(
                "the device lacks this command, or the whole group {}: \
                 `smp enum groups` lists the groups it has",
                err.group
            ),
        },
        (ErrorScope::Group, group::IMAGE, Some("NO_FREE_SLOT")) => {
            "the other slot is in use: an image there is pending for test (`smp os reset` \
             boots it), or the running image is on test and not confirmed yet \
             (`smp image confirm` keeps it); `smp image list` shows which"
                .to_owned()
        }
        (ErrorScope::Group, group::IMAGE, Some("HASH_NOT_FOUND")) => {
            "no slot holds an image with this hash: `smp image list` shows the hashes the \
             device has"
                .to_owned()
        }
        (ErrorScope::Group, group::FS, Some("MOUNT_POINT_NOT_FOUND")) => {
            "no file system is mounted there: a path starts with the device's mount point \
             (Zephyr's samples use /lfs1), and the device may have no file system at all"
                .to_owned()
        }
        (ErrorScope::Group, group::FS, Some("FILE_WRITE_FAILED")) => {
            "the device could not write the file: its file system may be full".to_owned()
        }
        (ErrorScope::Group, group::FS, Some("READ_ONLY_FILESYSTEM")) => {
            "the file system there is mounted read-only".to_owned()
        }
        _ => return None,
    };
    Some(hint)
}

/// An error and every cause under it, each once: `malformed reply to os echo: unexpected
/// type array at position 0: expected map`.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    smp_client::ErrorChain(err).to_string()
}

/// `IMG 30 INVALID_IMAGE_TOO_LARGE`; a management code also names the request's group
/// (`MGMT 8 ENOTSUP for group OS`).
fn describe(err: &DeviceError) -> String {
    match err.scope {
        ErrorScope::Group => err.to_string(),
        ErrorScope::Management => match group::name(err.group) {
            Some(name) => format!("{err} for group {name}"),
            None => format!("{err} for group {}", err.group),
        },
    }
}

/// The JSON fields of a device error.
fn device_details(err: &DeviceError) -> Map<String, Value> {
    let mut details = Map::new();
    details.insert("group".into(), json!(group::name(err.group)));
    details.insert("group_id".into(), json!(err.group));
    details.insert("rc".into(), json!(err.rc));
    details.insert("name".into(), json!(err.name()));
    let scope = match err.scope {
        ErrorScope::Group => "group",
        ErrorScope::Management => "mgmt",
    };
    details.insert("scope".into(), json!(scope));
    details.insert("reason".into(), json!(err.reason));
    details
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn device(group: u16, rc: i64, scope: ErrorScope) -> DeviceError {
        DeviceError {
            group,
            rc,
            scope,
            reason: None,
        }
    }

    #[test]
    fn device_errors_name_group_and_code() {
        let err = CliError::from(ClientError::Device(device(
            group::IMAGE,
            30,
            ErrorScope::Group,
        )));
        let report = ErrorReport::new(&err, "image upload", None);
        assert_eq!(report.exit_code, 1);
        assert_eq!(
            report.message,
            "device refused: IMG 30 INVALID_IMAGE_TOO_LARGE"
        );
        assert_eq!(
            report.to_json(),
            json!({"error": {
                "kind": "device", "command": "image upload", "exit_code": 1,
                "message": "device refused: IMG 30 INVALID_IMAGE_TOO_LARGE",
                "group": "IMG", "group_id": 1, "rc": 30, "name": "INVALID_IMAGE_TOO_LARGE",
                "scope": "group", "reason": null, "hint": null
            }})
        );
    }

    #[test]
    fn the_errors_people_hit_most_have_hints() {
        let hint = |group, rc, scope| {
            let err = CliError::from(ClientError::Device(device(group, rc, scope)));
            ErrorReport::new(&err, "x", None).hint
        };
        let no_free_slot = hint(group::IMAGE, 9, ErrorScope::Group).expect("a hint");
        assert!(no_free_slot.contains("`smp os reset`"), "{no_free_slot}");
        assert!(
            no_free_slot.contains("`smp image confirm`"),
            "{no_free_slot}"
        );
        let enotsup = hint(group::FS, 8, ErrorScope::Management).expect("a hint");
        assert!(
            enotsup.contains("the whole FS group: `smp enum groups`"),
            "{enotsup}"
        );
        let enotsup = hint(70, 8, ErrorScope::Management).expect("a hint");
        assert!(enotsup.contains("the whole group 70"), "{enotsup}");
        for (group, rc) in [
            (group::IMAGE, 8),
            (group::FS, 10),
            (group::FS, 14),
            (group::FS, 15),
        ] {
            assert!(hint(group, rc, ErrorScope::Group).is_some(), "{group} {rc}");
        }
        // A code people can act on by its name alone gets none.
        assert_eq!(hint(group::IMAGE, 30, ErrorScope::Group), None);
        assert_eq!(hint(group::OS, 8, ErrorScope::Group), None);
        assert_eq!(hint(group::FS, 3, ErrorScope::Group), None);

        // No reply to the first request: where to look, with the port.
        let timeout = ClientError::Timeout {
            group: 0,
            command: 6,
            sequence: 1,
            attempts: 4,
            waited: Duration::from_secs(10),
        };
        let target = Target::Udp("192.0.2.1:1400".parse().expect("valid"));
        let report = ErrorReport::new(&CliError::Connect(timeout), "os echo", Some(&target));
        let text = report.hint.as_deref().expect("a hint");
        assert!(text.contains("UDP port 1400"), "{text}");
        assert_eq!(report.to_json()["error"]["hint"], text);
        // The same timeout later on (the device answered before): no such hint.
        let timeout = ClientError::Timeout {
            group: 0,
            command: 6,
            sequence: 1,
            attempts: 4,
            waited: Duration::from_secs(10),
        };
        let report = ErrorReport::new(&CliError::Client(timeout), "os echo", Some(&target));
        assert_eq!(report.hint, None);
    }

    #[test]
    fn short_hashes_that_name_no_image_or_several() {
        let image = |slot, hash: &str| ListedImage {
            image: 0,
            slot,
            hash: hash.to_owned(),
        };
        let listed = vec![image(0, "aa11"), image(1, "aa22")];
        let err = CliError::HashPrefix {
            prefix: "aa".into(),
            matches: listed.clone(),
            listed: listed.clone(),
        };
        let report = ErrorReport::new(&err, "image test", None);
        assert_eq!((report.kind, report.exit_code), ("usage", 2));
        assert_eq!(
            report.message,
            "hash prefix aa is ambiguous: 2 images' hashes start with it"
        );
        assert_eq!(
            report.hint.as_deref(),
            Some("give more digits of one: image 0 slot 0 aa11, image 0 slot 1 aa22")
        );
        assert_eq!(
            report.details["candidates"],
            json!([{"image": 0, "slot": 0, "hash": "aa11"},
                   {"image": 0, "slot": 1, "hash": "aa22"}])
        );
        let err = CliError::HashPrefix {
            prefix: "bb".into(),
            matches: vec![],
            listed,
        };
        let report = ErrorReport::new(&err, "image test", None);
        assert_eq!(
            report.message,
            "no image on the device has a hash starting with bb"
        );
        assert_eq!(
            report.hint.as_deref(),
            Some("the device has image 0 slot 0 aa11, image 0 slot 1 aa22")
        );
        assert_eq!(
            report.details["candidates"].as_array().map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn management_errors_say_which_group() {
        let mut err = device(group::OS, 8, ErrorScope::Management);
        err.reason = Some("not here".into());
        let report = ErrorReport::new(&ClientError::Device(err).into(), "os tasks", None);
        assert_eq!(
            report.message,
            "device refused: MGMT 8 ENOTSUP (not here) for group OS"
        );
        assert_eq!(report.details["scope"], "mgmt");
        assert_eq!(report.details["reason"], "not here");
        let err = device(70, 99, ErrorScope::Group);
        let report = ErrorReport::new(&ClientError::Device(err).into(), "x", None);
        assert_eq!(report.message, "device refused: group 70 error 99");
        assert_eq!(report.details["group"], Value::Null);
        assert_eq!(report.details["name"], Value::Null);
    }

    #[test]
    fn timeouts_are_unreachable_without_debug_formatting() {
        let err = ClientError::Timeout {
            group: 0,
            command: 6,
            sequence: 3,
            attempts: 1,
            waited: Duration::from_millis(512),
        };
        let target = Target::Udp("127.0.0.1:9".parse().expect("valid"));
        let report = ErrorReport::new(&err.into(), "os echo", Some(&target));
        assert_eq!(report.exit_code, 3);
        assert_eq!(report.kind, "unreachable");
        assert_eq!(
            report.message,
            "device unreachable: no reply from 127.0.0.1:9 after 1 attempt over 512 ms"
        );
        assert_eq!(report.details["target"], "127.0.0.1:9");
    }

    #[test]
    fn other_kinds() {
        let busy = ClientError::Busy {
            last: device(0, 2, ErrorScope::Management),
            attempts: 21,
        };
        let report = ErrorReport::new(&busy.into(), "os echo", None);
        assert_eq!((report.kind, report.exit_code), ("busy", 1));
        assert_eq!(report.details["attempts"], 21);
        let report = ErrorReport::new(
            &ClientError::FrameTooLarge {
                len: 9000,
                max: 1472,
            }
            .into(),
            "os echo",
            None,
        );
        assert_eq!((report.kind, report.exit_code), ("too_large", 2));
        let report = ErrorReport::new(
            &ClientError::Transfer(smp_client::TransferError::ImageMismatch).into(),
            "fs upload",
            None,
        );
        assert_eq!((report.kind, report.exit_code), ("transfer", 5));
        let report = ErrorReport::new(&ClientError::Closed.into(), "os echo", None);
        assert_eq!((report.kind, report.exit_code), ("protocol", 5));
        // A malformed reply: the message and its cause, each once.
        let cbor = smp_client::minicbor::decode::<smp_client::messages::os::EchoResponse>(b"\x80")
            .expect_err("an array is not a map");
        let malformed = ClientError::Decode {
            group: 0,
            command: 0,
            source: cbor.into(),
        };
        let report = ErrorReport::new(&malformed.into(), "os echo", None);
        assert_eq!((report.kind, report.exit_code), ("protocol", 5));
        assert_eq!(
            report.message,
            "malformed reply to os echo: unexpected type array at position 0: expected map"
        );
        let mtu = ClientError::Transport(TransportError::MtuTooSmall {
            mtu: 20,
            payload: 0,
            needed: 8,
        });
        let report = ErrorReport::new(&mtu.into(), "os echo", None);
        assert_eq!((report.kind, report.exit_code), ("usage", 2));
        let file = CliError::read(
            Path::new("a.bin"),
            io::Error::new(io::ErrorKind::NotFound, "gone"),
        );
        let report = ErrorReport::new(&file, "image info", None);
        assert_eq!((report.kind, report.exit_code), ("file", 4));
        assert_eq!(report.message, "cannot read a.bin: gone");
        let usage = ErrorReport::usage("bad", None);
        assert_eq!(usage.to_json()["error"]["command"], Value::Null);
    }
}
