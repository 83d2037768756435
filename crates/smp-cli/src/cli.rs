//! The command line: clap definitions of the global options and of every command.
//!
//! Values are checked here, while parsing, wherever clap can do it (addresses, hashes,
//! numbers), so that a bad argument is a usage error (exit status 2) before anything is
//! sent to a device.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use smp_client::serial::{Framing, Pacing, SerialTarget};
use smp_client::udp::UdpTarget;

use crate::reference;

/// The text after `smp --help`: conventions, exit codes, environment.
const AFTER_HELP: &str = "\
Output:
  Every command prints a human-readable answer on stdout by default. With --json it
  prints exactly one JSON document on stdout instead, also when it fails:
  {\"error\": {\"kind\", \"message\", \"command\", \"exit_code\", \"hint\", ...}}.
  Keys are snake_case, hashes and byte strings are lowercase hex strings, byte counts
  are integers, and keys are present with null when the device did not send a value.
  `smp COMMAND --help` shows each command's JSON shape. Logs (-v), progress bars and
  hints (`hint: ...`, what to do about an error) go to stderr.

Exit status:
  0  success
  1  the device refused the request (kind \"device\" or \"busy\"): the message names the
     group and code, e.g. `IMG 30 INVALID_IMAGE_TOO_LARGE`
  2  usage error: bad arguments or options (kind \"usage\"), or a request too large for
     one frame of the device (kind \"too_large\")
  3  the device is unreachable: no reply after the timeout and every retry, or the
     address does not resolve (kind \"unreachable\")
  4  a local file cannot be read or written (kind \"file\"), or is not a valid MCUboot
     image (kind \"image\")
  5  the device's replies make no sense (kind \"protocol\"), a transfer failed its
     check (kind \"transfer\"), or smp itself failed (kind \"internal\")
  6  upgrade: a device came back running its old image (it rolled back); with several
     devices, every one that did not succeed rolled back
  130  interrupted by Ctrl-C (kind \"interrupted\"): an image upload says where it
     stopped, and the same command resumes it

Environment:
  SMP_UDP     the device's address when --udp is not given
  SMP_SERIAL  the device's serial port when --serial is not given (a device named on the
              command line wins over the other variable)";

/// Manage Zephyr/MCUboot devices over SMP (MCUmgr) on UDP or a serial line.
///
/// Every command sends its request to the device given by --udp or --serial (or SMP_UDP,
/// SMP_SERIAL) and prints
/// the answer; `image info` and `completions` need no device.
#[derive(Debug, Parser)]
#[command(name = "smp", version, after_long_help = AFTER_HELP)]
pub(crate) struct Cli {
    /// Options that apply to every command.
    #[command(flatten)]
    pub(crate) global: GlobalOptions,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options that apply to every command; they may be given before or after it.
#[derive(Debug, Clone, Args)]
pub(crate) struct GlobalOptions {
    /// The device: `HOST`, `HOST:PORT`, an IPv6 address or `[IPV6]:PORT`.
    #[arg(
        help = "The device: HOST, HOST:PORT, an IPv6 address or [IPV6]:PORT; port 1337 by default",
        long,
        global = true,
        env = "SMP_UDP",
        value_name = "HOST[:PORT]",
        value_parser = parse_target,
        action = ArgAction::Append
    )]
    pub(crate) udp: Vec<UdpTarget>,

    /// The device on a serial line: a port (`/dev/ttyACM0`, `/dev/ttyUSB0`, a
    /// pseudo-terminal such as `/dev/pts/3`) or `socket://HOST:PORT` (an emulator's
    /// serial chardev, ser2net). Instead of --udp.
    #[arg(
        long,
        global = true,
        env = "SMP_SERIAL",
        value_name = "DEVICE",
        action = ArgAction::Append
    )]
    pub(crate) serial: Vec<String>,

    /// Baud rate of the serial port (meaningless for pseudo-terminals, TCP and USB CDC
    /// ACM, which run at the speed of the host).
    #[arg(long, global = true, value_name = "RATE", default_value_t = 115_200)]
    pub(crate) baud: u32,

    /// Serial console framing: the most bytes in one line, as the device's
    /// `CONFIG_UART_MCUMGR_RX_BUF_SIZE` takes them.
    #[arg(long, global = true, value_name = "BYTES", default_value_t = 128)]
    pub(crate) line_length: usize,

    /// How frames travel on the serial line: console (base64 lines, Zephyr's default and
    /// MCUboot serial recovery's), raw (Zephyr's raw UART transport) or cobs (MCUboot's
    /// raw COBS serial recovery).
    #[arg(long, global = true, value_enum, default_value_t = FramingArg::Console)]
    pub(crate) framing: FramingArg,

    /// How fast console lines go out: `auto` (each message in one write until a request or
    /// reply is lost, then 2 lines back to back and 20 ms: what a device whose UART drops
    /// bursts needs, native_sim's among them), `none` (every message in one write,
    /// always), or BURST:MS (paced from the first message on; `2:20` for a device known
    /// to drop bursts, which then loses nothing).
    #[arg(
        long,
        global = true,
        env = "SMP_PACING",
        value_name = "PACING",
        default_value = "auto"
    )]
    pub(crate) pacing: Pacing,

    /// Link MTU in bytes: every request is sized to fit one datagram.
    #[arg(long, global = true, value_name = "BYTES", default_value_t = 1500)]
    pub(crate) mtu: u16,

    /// The longest wait for a reply before the request is sent again (sooner once the
    /// round trip is learned): `500ms`, `2s`, `1.5s`, or plain seconds (`2.5`).
    #[arg(
        long,
        global = true,
        value_name = "DURATION",
        default_value = "2.5s",
        value_parser = parse_duration,
        // A negative value reaches the parser, which says what is wrong with it, instead
        // of clap taking it for an unknown option ("unexpected argument '-1'").
        allow_hyphen_values = true
    )]
    pub(crate) timeout: Duration,

    /// Re-sends of a request that got no reply (0: one attempt only).
    #[arg(long, global = true, value_name = "N", default_value_t = 3)]
    pub(crate) retries: u32,

    /// Print one JSON document on stdout (also for errors), for scripts.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Log to stderr: -v one line per command (result and time), -vv also one line per
    /// request and reply (command, sequence, length, round-trip time), -vvv also their
    /// CBOR in diagnostic notation and the frames in hex.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub(crate) verbose: u8,

    /// The devices, from --udp and --serial, once `main` has checked them: one for every
    /// command but `upgrade`, which also takes a fleet.
    #[arg(skip)]
    pub(crate) resolved: Vec<Target>,
}

/// How frames travel on a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FramingArg {
    /// Base64 lines with a length and a CRC16 (SMP over console/UART).
    Console,
    /// The bare frame.
    Raw,
    /// The frame and a CRC16, COBS-encoded.
    Cobs,
}

/// The device a command talks to: over UDP or a serial line.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// `--udp`.
    Udp(UdpTarget),
    /// `--serial`, with its baud rate and framing.
    Serial(SerialTarget),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Udp(target) => target.fmt(f),
            Self::Serial(target) => target.fmt(f),
        }
    }
}

impl GlobalOptions {
    /// The devices the options name: every --udp and --serial (each also from its
    /// environment variable), in that order.
    pub(crate) fn targets(&self) -> Result<Vec<Target>, String> {
        let mut targets: Vec<Target> = self
            .udp
            .iter()
            .map(|target| Target::Udp(target.clone().with_mtu(usize::from(self.mtu))))
            .collect();
        for device in &self.serial {
            targets.push(Target::Serial(self.serial_target(device)?));
        }
        Ok(targets)
    }

    /// The serial port `device` with the options' baud rate, framing, line length and
    /// pacing.
    pub(crate) fn serial_target(&self, device: &str) -> Result<SerialTarget, String> {
        let target: SerialTarget = device
            .parse()
            .map_err(|err| format!("--serial {device}: {}", smp_client::ErrorChain(&err)))?;
        let framing = match self.framing {
            FramingArg::Console => Framing::Console,
            FramingArg::Raw => Framing::Raw,
            FramingArg::Cobs => Framing::RawCobs,
        };
        let options = target
            .options()
            .clone()
            .framing(framing)
            .line_length(self.line_length)
            .pacing(self.pacing);
        Ok(target.with_baud_rate(self.baud).with_options(options))
    }

    /// The one device of a command that talks to one (`None` when none is given).
    pub(crate) fn single_target(&self) -> Option<&Target> {
        self.resolved.first()
    }
}

/// The command groups.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// OS management: echo, reset, parameters, information, date and time, tasks,
    /// memory pools, bootloader.
    #[command(subcommand)]
    Os(OsCommand),
    /// Image management: list, upload, test, confirm and erase firmware images; inspect
    /// an image file.
    #[command(subcommand)]
    Image(ImageCommand),
    /// File system: upload, download, size and hash of files on the device; the hashes
    /// it supports; closing its open files.
    #[command(subcommand)]
    Fs(FsCommand),
    /// Statistics groups of the device.
    #[command(subcommand)]
    Stat(StatCommand),
    /// Settings: read, write, delete; commit, load, save.
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// Run a command in the device's shell.
    #[command(subcommand)]
    Shell(ShellCommand),
    /// The management groups the device supports.
    #[command(subcommand)]
    Enum(EnumCommand),
    /// Zephyr-specific commands.
    #[command(subcommand)]
    Zephyr(ZephyrCommand),
    /// Send any request, and show the reply as JSON: an application's own group, a
    /// command `smp` has no name for, debugging.
    ///
    /// The body is JSON, turned into the request's CBOR map: objects with text keys,
    /// arrays, strings, numbers, true, false, null; a byte string is written
    /// {"$bytes": "HEX"}. The reply prints the same way (byte strings as {"$bytes":
    /// "HEX"}), so that it can be sent back as a body. A device error is reported as for
    /// every command.
    #[command(after_long_help = reference::shape("raw"))]
    Raw(RawArgs),
    /// Update the firmware safely, on one device or a fleet: upload, test, reset, wait,
    /// check, confirm.
    ///
    /// Each step is decided from the device's image state, so an upgrade interrupted at
    /// any point (Ctrl-C, a lost link, a device reset) is continued by running the same
    /// command again; an image already running and confirmed is left alone. A device
    /// that comes back running its old image rolled back (MCUboot refused the image, or
    /// it was reverted before it was confirmed): exit status 6. Several devices
    /// (--udp and --serial more than once, or --devices LIST) are upgraded at once, up to
    /// --parallel; one failing or rolling back never stops the others.
    #[command(after_long_help = reference::shape("upgrade"))]
    Upgrade(UpgradeArgs),
    /// Print a shell completion script for `smp` on stdout (never JSON).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// OS management (group 0).
#[derive(Debug, Subcommand)]
pub(crate) enum OsCommand {
    /// Send TEXT; the device answers with the same text.
    #[command(after_long_help = reference::shape("os echo"))]
    Echo {
        /// The text to echo.
        text: String,
    },
    /// Reset the device.
    #[command(after_long_help = reference::shape("os reset"))]
    Reset {
        /// Reset even when the application would refuse.
        #[arg(long)]
        force: bool,
        /// Boot mode for the next boot (1: the bootloader, e.g. MCUboot serial recovery).
        #[arg(long, value_name = "N")]
        boot_mode: Option<u8>,
    },
    /// The device's MCUmgr buffer size and count.
    #[command(after_long_help = reference::shape("os params"))]
    Params,
    /// OS and application information (like uname).
    #[command(after_long_help = reference::shape("os info"))]
    Info {
        /// Format letters: s kernel name, n node, r release, v version, b build time,
        /// m machine, p processor, i platform, o OS, a all (the device's default: s).
        format: Option<String>,
    },
    /// Read the device's date and time, or set it.
    #[command(after_long_help = reference::shape("os datetime"))]
    Datetime {
        /// The new date and time, ISO 8601: `yyyy-MM-ddTHH:mm:ss[.SSSSSS][+HH:MM]`.
        #[arg(
            value_name = "SET",
            help = "The new date and time, ISO 8601: yyyy-MM-ddTHH:mm:ss[.SSSSSS][+HH:MM]"
        )]
        set: Option<String>,
    },
    /// Task (thread) statistics.
    #[command(after_long_help = reference::shape("os tasks"))]
    Tasks,
    /// Memory pool statistics.
    #[command(after_long_help = reference::shape("os mempools"))]
    Mempools,
    /// Bootloader information: its name, or the answer to QUERY (MCUboot: "mode").
    #[command(after_long_help = reference::shape("os bootloader"))]
    Bootloader {
        /// What to ask the bootloader, e.g. "mode".
        query: Option<String>,
    },
}

/// Image management (group 1).
#[derive(Debug, Subcommand)]
pub(crate) enum ImageCommand {
    /// The images in the device's slots: version, hash and state.
    #[command(after_long_help = reference::shape("image list"))]
    List,
    /// Upload a firmware image to the device's secondary slot.
    ///
    /// The file must be an MCUboot image (unless --raw); its version is printed first.
    /// A progress bar shows on a terminal. Afterwards the image state is read back and
    /// the slot the image was written to is reported, and whether the same image is
    /// already running. Uploading the same file again after an interruption resumes
    /// where the device stopped.
    #[command(after_long_help = reference::shape("image upload"))]
    Upload(UploadArgs),
    /// Mark the image with HASH to be tested on the next boot.
    ///
    /// HASH may be the first digits of the hash only (at least 4), as git takes short
    /// commit hashes: they are looked up in the device's image list and must name one
    /// image.
    #[command(after_long_help = reference::shape("image test"))]
    Test {
        /// The image's hash (as `image list` shows it), in hex, or its first digits.
        #[arg(value_parser = parse_hash)]
        hash: String,
    },
    /// Confirm the image with HASH, or the running image, so it stays after reboots.
    ///
    /// HASH may be the first digits of the hash only, as for `image test`.
    #[command(after_long_help = reference::shape("image confirm"))]
    Confirm {
        /// The image's hash in hex, or its first digits; the running image when absent.
        #[arg(value_parser = parse_hash)]
        hash: Option<String>,
    },
    /// Erase an image slot (the device's default, the secondary slot, when absent).
    #[command(after_long_help = reference::shape("image erase"))]
    Erase {
        /// The slot to erase.
        slot: Option<u32>,
    },
    /// The device's image slots and their sizes.
    #[command(after_long_help = reference::shape("image slots"))]
    Slots,
    /// Inspect an MCUboot image file offline: version, sizes, flags, TLVs, hash.
    ///
    /// Needs no device. The hash TLV is checked against the image's contents.
    #[command(after_long_help = reference::shape("image info"))]
    Info {
        /// The image file.
        file: PathBuf,
    },
}

/// Arguments of `image upload`.
#[derive(Debug, Args)]
pub(crate) struct UploadArgs {
    /// The image file.
    pub(crate) file: PathBuf,
    /// Image number to upload to (multi-image devices); 0 by default. The image goes to
    /// that image's secondary slot.
    // `--slot` was this option's first name, although it never chose a slot: kept as a
    // hidden alias so that scripts written with it keep working.
    #[arg(long = "image", alias = "slot", value_name = "N")]
    pub(crate) image: Option<u32>,
    /// Ask the device to refuse an image that is not newer than the running one.
    #[arg(long)]
    pub(crate) upgrade: bool,
    /// Upload the file as it is, without checking that it is an MCUboot image.
    #[arg(long)]
    pub(crate) raw: bool,
    /// Most chunks in flight at once. By default as many as the device's buffers hold
    /// (its `buf_count` - 1); a number only lowers that; 1 sends one chunk at a time.
    #[arg(long, value_name = "N")]
    pub(crate) window: Option<NonZeroUsize>,
}

/// Arguments of `upgrade`.
#[derive(Debug, Args)]
pub(crate) struct UpgradeArgs {
    /// The MCUboot image file.
    pub(crate) file: PathBuf,
    /// Leave the new image running on test: the next reset reverts it unless something
    /// confirms it.
    #[arg(long)]
    pub(crate) no_confirm: bool,
    /// Mark the image for good instead of for test: MCUboot will not revert it.
    #[arg(long, conflicts_with = "no_confirm")]
    pub(crate) permanent: bool,
    /// Upgrade even when another image is pending or the running one is not confirmed.
    #[arg(long)]
    pub(crate) force: bool,
    /// How long a device may take to come back after its reset.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "60s",
        value_parser = parse_duration,
        allow_hyphen_values = true
    )]
    pub(crate) reset_timeout: Duration,
    /// A file listing devices, one a line: an address (as --udp takes it) or a serial
    /// port (a path or socket://HOST:PORT), then optionally a name; `#` starts a comment.
    #[arg(long, value_name = "LIST")]
    pub(crate) devices: Option<PathBuf>,
    /// Devices upgraded at once.
    #[arg(long, value_name = "N", default_value_t = NonZeroUsize::new(16).unwrap_or(NonZeroUsize::MIN))]
    pub(crate) parallel: NonZeroUsize,
}

/// Arguments of `raw`.
#[derive(Debug, Args)]
pub(crate) struct RawArgs {
    /// The group: its number (64 and up for an application's own groups) or its name
    /// (os, img or image, stat, settings, log, crash, split, run, fs, shell, enum, zephyr).
    #[arg(value_parser = parse_group)]
    pub(crate) group: u16,
    /// The command's number in the group.
    pub(crate) command: u8,
    /// Send a write request; a read request otherwise.
    #[arg(long)]
    pub(crate) write: bool,
    /// The request's body: a JSON object (`{}` when absent), e.g. '{"d": "hello"}'.
    #[arg(value_name = "JSON-BODY")]
    pub(crate) body: Option<String>,
}

/// File system management (group 8).
#[derive(Debug, Subcommand)]
pub(crate) enum FsCommand {
    /// Upload the local file LOCAL to REMOTE on the device, replacing it.
    ///
    /// The device's SHA-256 (or CRC32) of the file is compared with LOCAL afterwards,
    /// when it can compute one. LOCAL `-` is standard input, read to its end first.
    #[command(after_long_help = reference::shape("fs upload"))]
    Upload {
        /// The local file; `-` for standard input.
        local: PathBuf,
        /// The absolute path on the device.
        remote: String,
        /// Most chunks in flight at once. By default as many as the device's buffers
        /// hold (its `buf_count` - 1); a number only lowers that.
        #[arg(long, value_name = "N")]
        window: Option<NonZeroUsize>,
    },
    /// Download REMOTE from the device into the local file LOCAL.
    ///
    /// LOCAL `-` is standard output, which then carries the file's bytes only: the
    /// answer goes to standard error instead, the summary as text or, with --json, the
    /// JSON document (errors included).
    #[command(after_long_help = reference::shape("fs download"))]
    Download {
        /// The absolute path on the device.
        remote: String,
        /// The local file to write; `-` for standard output.
        local: PathBuf,
        /// Most requests in flight at once. By default as many as the device's buffers
        /// hold (its `buf_count` - 1); a number only lowers that.
        #[arg(long, value_name = "N")]
        window: Option<NonZeroUsize>,
    },
    /// The size of a file on the device.
    #[command(after_long_help = reference::shape("fs stat"))]
    Stat {
        /// The absolute path on the device.
        remote: String,
    },
    /// The device's hash or checksum of a file.
    #[command(after_long_help = reference::shape("fs hash"))]
    Hash {
        /// The absolute path on the device.
        remote: String,
        /// The hash or checksum; the device's default when absent.
        #[arg(long = "type", value_enum, value_name = "TYPE")]
        kind: Option<HashType>,
    },
    /// The hashes and checksums the device computes for `fs hash`, with their sizes.
    #[command(after_long_help = reference::shape("fs supported-checksums"))]
    SupportedChecksums,
    /// Close the files the device keeps open between the chunks of a transfer (one that
    /// was interrupted, say), so that other code on the device can use them.
    #[command(after_long_help = reference::shape("fs close"))]
    Close,
}

/// Hash types of `fs hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum HashType {
    /// SHA-256.
    Sha256,
    /// IEEE CRC32.
    Crc32,
}

impl HashType {
    /// The name on the wire.
    pub(crate) fn wire_name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Crc32 => "crc32",
        }
    }
}

/// Statistics management (group 2).
#[derive(Debug, Subcommand)]
pub(crate) enum StatCommand {
    /// The names of the statistics groups.
    #[command(after_long_help = reference::shape("stat list"))]
    List,
    /// The counters of one statistics group.
    #[command(after_long_help = reference::shape("stat show"))]
    Show {
        /// The group's name.
        group: String,
    },
}

/// Settings management (group 3).
#[derive(Debug, Subcommand)]
pub(crate) enum SettingsCommand {
    /// Read a setting; printed as text when it is printable UTF-8, else as hex (`0x...`).
    #[command(after_long_help = reference::shape("settings get"))]
    Get {
        /// The setting's name, e.g. "app/name".
        name: String,
    },
    /// Write a setting.
    #[command(after_long_help = reference::shape("settings set"))]
    Set {
        /// The setting's name.
        name: String,
        /// The value: its UTF-8 bytes, or hex digits with --hex.
        value: String,
        /// VALUE is hex: write those bytes.
        #[arg(long)]
        hex: bool,
    },
    /// Delete a setting.
    #[command(after_long_help = reference::shape("settings delete"))]
    Delete {
        /// The setting's name.
        name: String,
    },
    /// Apply the settings written but not applied yet.
    #[command(after_long_help = reference::shape("settings commit"))]
    Commit,
    /// Load the settings from persistent storage.
    #[command(after_long_help = reference::shape("settings load"))]
    Load,
    /// Save the settings to persistent storage.
    #[command(after_long_help = reference::shape("settings save"))]
    Save,
}

/// Shell management (group 9).
#[derive(Debug, Subcommand)]
pub(crate) enum ShellCommand {
    /// Run a shell command on the device and print its output: `smp shell exec -- kernel
    /// version`.
    ///
    /// The command's own exit code is reported (in JSON as "ret"); smp exits with 0
    /// whenever the device ran the command.
    #[command(after_long_help = reference::shape("shell exec"))]
    Exec {
        /// The command and its arguments (put `--` before them).
        #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
        argv: Vec<String>,
    },
}

/// Enumeration management (group 10).
#[derive(Debug, Subcommand)]
pub(crate) enum EnumCommand {
    /// The ids (and well-known names) of the groups the device supports.
    #[command(after_long_help = reference::shape("enum groups"))]
    Groups,
    /// Details of the supported groups: names and handler counts, as the device reports.
    #[command(after_long_help = reference::shape("enum details"))]
    Details,
}

/// Zephyr basic management (group 63).
#[derive(Debug, Subcommand)]
pub(crate) enum ZephyrCommand {
    /// Erase the device's storage partition.
    #[command(after_long_help = reference::shape("zephyr erase-storage"))]
    EraseStorage,
}

impl Command {
    /// True for the one command that may talk to several devices (`upgrade`).
    pub(crate) fn takes_a_fleet(&self) -> bool {
        matches!(self, Self::Upgrade(_))
    }

    /// True when running the command again after an interruption continues where it
    /// stopped: an image upload (the device keeps it; a file transfer starts over).
    pub(crate) fn resumes_on_rerun(&self) -> bool {
        matches!(self, Self::Image(ImageCommand::Upload(_)))
    }

    /// True when stdout carries the command's data (`fs download REMOTE -`): answers and
    /// notes go to stderr then.
    pub(crate) fn stdout_carries_data(&self) -> bool {
        matches!(self, Self::Fs(FsCommand::Download { local, .. }) if is_std_stream(local))
    }

    /// The command as typed, without arguments (`"image upload"`), to prefix messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Os(c) => match c {
                OsCommand::Echo { .. } => "os echo",
                OsCommand::Reset { .. } => "os reset",
                OsCommand::Params => "os params",
                OsCommand::Info { .. } => "os info",
                OsCommand::Datetime { .. } => "os datetime",
                OsCommand::Tasks => "os tasks",
                OsCommand::Mempools => "os mempools",
                OsCommand::Bootloader { .. } => "os bootloader",
            },
            Self::Image(c) => match c {
                ImageCommand::List => "image list",
                ImageCommand::Upload(_) => "image upload",
                ImageCommand::Test { .. } => "image test",
                ImageCommand::Confirm { .. } => "image confirm",
                ImageCommand::Erase { .. } => "image erase",
                ImageCommand::Slots => "image slots",
                ImageCommand::Info { .. } => "image info",
            },
            Self::Fs(c) => match c {
                FsCommand::Upload { .. } => "fs upload",
                FsCommand::Download { .. } => "fs download",
                FsCommand::Stat { .. } => "fs stat",
                FsCommand::Hash { .. } => "fs hash",
                FsCommand::SupportedChecksums => "fs supported-checksums",
                FsCommand::Close => "fs close",
            },
            Self::Stat(c) => match c {
                StatCommand::List => "stat list",
                StatCommand::Show { .. } => "stat show",
            },
            Self::Settings(c) => match c {
                SettingsCommand::Get { .. } => "settings get",
                SettingsCommand::Set { .. } => "settings set",
                SettingsCommand::Delete { .. } => "settings delete",
                SettingsCommand::Commit => "settings commit",
                SettingsCommand::Load => "settings load",
                SettingsCommand::Save => "settings save",
            },
            Self::Shell(ShellCommand::Exec { .. }) => "shell exec",
            Self::Enum(c) => match c {
                EnumCommand::Groups => "enum groups",
                EnumCommand::Details => "enum details",
            },
            Self::Zephyr(ZephyrCommand::EraseStorage) => "zephyr erase-storage",
            Self::Raw(_) => "raw",
            Self::Upgrade(_) => "upgrade",
            Self::Completions { .. } => "completions",
        }
    }
}

/// Parses the group of `raw`: a number, or a well-known group's name in any case
/// (`image` too, for `IMG`).
fn parse_group(s: &str) -> Result<u16, String> {
    if let Ok(id) = s.parse::<u16>() {
        return Ok(id);
    }
    let wanted = if s.eq_ignore_ascii_case("image") {
        "IMG"
    } else {
        s
    };
    (0..smp_client::header::group::USER_BASE)
        .find(|&id| {
            smp_client::header::group::name(id).is_some_and(|n| n.eq_ignore_ascii_case(wanted))
        })
        .ok_or_else(|| {
            "a group number (0-65535) or a name: os, img, image, stat, settings, log, crash, \
             split, run, fs, shell, enum, zephyr"
                .to_owned()
        })
}

/// The fewest digits of a short hash, as git asks for.
const MIN_HASH_DIGITS: usize = 4;

/// Parses an image hash or its first digits: hex (either case, an optional `0x`), at
/// least [`MIN_HASH_DIGITS`] digits; lower case out.
fn parse_hash(s: &str) -> Result<String, String> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if let Some(bad) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!("`{bad}` is not a hex digit"));
    }
    if digits.len() < MIN_HASH_DIGITS {
        return Err(format!(
            "a hash, or at least its first {MIN_HASH_DIGITS} hex digits"
        ));
    }
    Ok(digits.to_ascii_lowercase())
}

/// True for the path `-`: standard input or output instead of a file.
pub(crate) fn is_std_stream(path: &std::path::Path) -> bool {
    path.as_os_str() == "-"
}

/// Parses `--udp`: HOST, HOST:PORT, an IPv6 address or `[IPV6]:PORT`.
fn parse_target(s: &str) -> Result<UdpTarget, String> {
    s.parse::<UdpTarget>()
        .map_err(|_| "expected HOST, HOST:PORT, an IPv6 address or [IPV6]:PORT".to_owned())
}

/// The longest `--timeout`: a day.
const MAX_TIMEOUT_SECONDS: f64 = 86_400.0;

/// Parses `--timeout`: a number with a unit (`500ms`, `2s`, `1.5 s`, `1m`), or plain
/// seconds (`2.5`), above 0 and at most a day.
fn parse_duration(s: &str) -> Result<Duration, String> {
    const EXPECTED: &str = "expected a duration such as 500ms, 2s or 1.5 (seconds)";
    let text = s.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = (text[..split].trim_end(), &text[split..]);
    let scale = match unit {
        "" | "s" | "sec" => 1.0,
        "ms" => 1e-3,
        "m" | "min" => 60.0,
        _ => return Err(format!("unknown unit `{unit}`: {EXPECTED}")),
    };
    // Only digits and one point: no signs, exponents, `inf` or `NaN`.
    let plain = !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && number.bytes().filter(|&b| b == b'.').count() <= 1
        && number != ".";
    if number.starts_with('-') {
        return Err(format!("`{s}` is negative: {EXPECTED}, above 0"));
    }
    let value: f64 = match number.parse() {
        Ok(value) if plain => value,
        _ => return Err(format!("`{s}` is not a duration: {EXPECTED}")),
    };
    let seconds = value * scale;
    if seconds <= 0.0 {
        return Err(format!(
            "`{s}` is no time at all: a timeout must be above 0"
        ));
    }
    if seconds > MAX_TIMEOUT_SECONDS {
        return Err(format!("`{s}` is longer than a day, the longest timeout"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("smp").chain(args.iter().copied()))
    }

    fn kind(args: &[&str]) -> Option<ErrorKind> {
        parse(args).err().map(|e| e.kind())
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn udp_forms() {
        let cli = parse(&["--udp", "192.0.2.1", "os", "params"]).expect("parses");
        let t = cli.global.udp.first().cloned().expect("target");
        assert_eq!((t.host(), t.port()), ("192.0.2.1", 1337));
        let cli = parse(&["os", "params", "--udp", "[::1]:1400"]).expect("parses");
        let t = cli.global.udp.first().cloned().expect("target");
        assert_eq!((t.host(), t.port()), ("::1", 1400));
        let cli = parse(&["--udp", "::1", "os", "params"]).expect("parses");
        assert_eq!(cli.global.udp.first().expect("target").port(), 1337);
        let cli = parse(&["--udp=device.local:9", "os", "params"]).expect("parses");
        let t = cli.global.udp.first().cloned().expect("target");
        assert_eq!((t.host(), t.port()), ("device.local", 9));
        for bad in ["[::1", "host:port", "host:70000", ":1337", ""] {
            assert_eq!(
                kind(&["--udp", bad, "os", "params"]),
                Some(ErrorKind::ValueValidation),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn defaults() {
        let cli = parse(&["os", "params"]).expect("parses");
        assert_eq!(cli.global.mtu, 1500);
        assert_eq!(cli.global.timeout, Duration::from_millis(2500));
        assert_eq!(cli.global.retries, 3);
        assert!(!cli.global.json);
        assert_eq!(cli.global.verbose, 0);
    }

    #[test]
    fn global_options_anywhere() {
        let cli =
            parse(&["os", "echo", "hi", "--json", "-vv", "--timeout", "0.25"]).expect("parses");
        assert!(cli.global.json);
        assert_eq!(cli.global.verbose, 2);
        assert_eq!(cli.global.timeout, Duration::from_millis(250));
        for bad in [
            "0", "-1", "-1s", "abc", "inf", "NaN", "1e9", "1e3", "2h", "", "s", ".", "1.2.3",
            "0ms", "86401", "+1",
        ] {
            assert_eq!(
                kind(&["--timeout", bad, "os", "params"]),
                Some(ErrorKind::ValueValidation),
                "{bad:?} should be refused by the value parser"
            );
        }
        for (good, millis) in [
            ("500ms", 500),
            ("2s", 2000),
            ("1.5 s", 1500),
            ("2.5", 2500),
            ("1m", 60_000),
            (".25", 250),
            ("86400", 86_400_000),
        ] {
            let cli = parse(&["--timeout", good, "os", "params"]).expect(good);
            assert_eq!(cli.global.timeout, Duration::from_millis(millis), "{good}");
        }
        assert_eq!(
            kind(&["--mtu", "70000", "os", "params"]),
            Some(ErrorKind::ValueValidation)
        );
        assert_eq!(
            kind(&["--retries", "-1", "os", "params"]),
            Some(ErrorKind::UnknownArgument)
        );
    }

    #[test]
    fn echo_text_may_start_with_a_dash_after_double_dash() {
        let cli = parse(&["os", "echo", "--", "-x"]).expect("parses");
        match cli.command {
            Command::Os(OsCommand::Echo { text }) => assert_eq!(text, "-x"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn shell_exec_takes_everything_after_double_dash() {
        let cli = parse(&["shell", "exec", "--", "kernel", "version", "--json"]).expect("parses");
        assert!(
            !cli.global.json,
            "--json after -- belongs to the shell command"
        );
        match cli.command {
            Command::Shell(ShellCommand::Exec { argv }) => {
                assert_eq!(argv, ["kernel", "version", "--json"]);
            }
            other => panic!("unexpected {other:?}"),
        }
        let cli = parse(&["shell", "exec", "log", "-h"]).expect("parses");
        match cli.command {
            Command::Shell(ShellCommand::Exec { argv }) => assert_eq!(argv, ["log", "-h"]),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            kind(&["shell", "exec"]),
            Some(ErrorKind::MissingRequiredArgument)
        );
    }

    #[test]
    fn hashes_are_hex_or_their_first_digits() {
        for (given, digits) in [("00FFab", "00ffab"), ("0xDD175", "dd175"), ("abcd", "abcd")] {
            let cli = parse(&["image", "test", given]).expect("parses");
            match cli.command {
                Command::Image(ImageCommand::Test { hash }) => assert_eq!(hash, digits),
                other => panic!("unexpected {other:?}"),
            }
        }
        let cli = parse(&["image", "confirm"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Image(ImageCommand::Confirm { hash: None })
        ));
        for bad in ["abc", "xyz0", "0x", "dd17-58", ""] {
            assert_eq!(
                kind(&["image", "test", bad]),
                Some(ErrorKind::ValueValidation),
                "{bad:?}"
            );
        }
        assert_eq!(
            kind(&["image", "test"]),
            Some(ErrorKind::MissingRequiredArgument)
        );
    }

    #[test]
    fn upload_options() {
        let cli = parse(&[
            "image",
            "upload",
            "a.bin",
            "--image",
            "1",
            "--upgrade",
            "--window",
            "4",
        ])
        .expect("parses");
        match cli.command {
            Command::Image(ImageCommand::Upload(args)) => {
                assert_eq!(args.file, PathBuf::from("a.bin"));
                assert_eq!(args.image, Some(1));
                assert!(args.upgrade && !args.raw);
                assert_eq!(args.window.map(NonZeroUsize::get), Some(4));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            kind(&["image", "upload", "a.bin", "--window", "0"]),
            Some(ErrorKind::ValueValidation)
        );
        assert_eq!(
            kind(&["image", "upload", "a.bin", "--image", "x"]),
            Some(ErrorKind::ValueValidation)
        );
        // The option's old name still works.
        let cli = parse(&["image", "upload", "a.bin", "--slot", "2"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Image(ImageCommand::Upload(UploadArgs { image: Some(2), .. }))
        ));
    }

    #[test]
    fn fs_hash_type() {
        let cli = parse(&["fs", "hash", "/lfs1/a", "--type", "crc32"]).expect("parses");
        match cli.command {
            Command::Fs(FsCommand::Hash { remote, kind }) => {
                assert_eq!(remote, "/lfs1/a");
                assert_eq!(kind.map(HashType::wire_name), Some("crc32"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            kind(&["fs", "hash", "/a", "--type", "md5"]),
            Some(ErrorKind::InvalidValue)
        );
    }

    #[test]
    fn settings_and_reset() {
        let cli = parse(&["settings", "set", "a/b", "0102", "--hex"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Settings(SettingsCommand::Set { hex: true, .. })
        ));
        let cli = parse(&["os", "reset", "--force", "--boot-mode", "1"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Os(OsCommand::Reset {
                force: true,
                boot_mode: Some(1)
            })
        ));
        assert_eq!(
            kind(&["os", "reset", "--boot-mode", "256"]),
            Some(ErrorKind::ValueValidation)
        );
        assert_eq!(kind(&["nope"]), Some(ErrorKind::InvalidSubcommand));
        assert_eq!(
            kind(&["os"]),
            Some(ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand)
        );
    }

    #[test]
    fn raw_groups_by_number_or_name() {
        let group = |args: &[&str]| match parse(args).map(|cli| cli.command) {
            Ok(Command::Raw(raw)) => Some((raw.group, raw.command, raw.write, raw.body)),
            _ => None,
        };
        assert_eq!(group(&["raw", "64", "3"]), Some((64, 3, false, None)));
        assert_eq!(
            group(&["raw", "OS", "0", "--write", "{\"d\": \"x\"}"]),
            Some((0, 0, true, Some("{\"d\": \"x\"}".to_owned())))
        );
        assert_eq!(group(&["raw", "image", "0"]).map(|g| g.0), Some(1));
        assert_eq!(group(&["raw", "img", "0"]).map(|g| g.0), Some(1));
        assert_eq!(group(&["raw", "zephyr", "0"]).map(|g| g.0), Some(63));
        assert_eq!(
            kind(&["raw", "nosuch", "0"]),
            Some(ErrorKind::ValueValidation)
        );
        assert_eq!(kind(&["raw", "0", "256"]), Some(ErrorKind::ValueValidation));
        assert_eq!(
            kind(&["raw", "70000", "0"]),
            Some(ErrorKind::ValueValidation)
        );
    }

    #[test]
    fn command_names_match_the_command_line() {
        let cli = parse(&["zephyr", "erase-storage"]).expect("parses");
        assert_eq!(cli.command.name(), "zephyr erase-storage");
        let cli = parse(&["image", "upload", "x"]).expect("parses");
        assert_eq!(cli.command.name(), "image upload");
    }
}
