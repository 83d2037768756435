//! Shell group (9): a few built-in commands of Zephyr's shell.

use smp_proto::header::command::shell as cmd;
use smp_proto::messages::build;
use smp_proto::messages::shell::{ExecRequest, ExecResponse};

use crate::device::Device;
use crate::reply::{Outcome, mgmt, ok};
use crate::request::Incoming;

/// Shell group errors as Zephyr 4.4.0 answers them: a command line too long for the
/// shell's buffer, and an empty one.
const COMMAND_TOO_LONG: u16 = 2;
const EMPTY_COMMAND: u16 = 3;
/// `CONFIG_SHELL_CMD_BUFF_SIZE`: the joined command line must be shorter.
const CMD_BUFF_SIZE: usize = 256;
/// The shell's output buffer keeps this many characters.
const OUTPUT_MAX: usize = 511;
/// Zephyr's shell returns `-ENOEXEC` for a command it does not know.
const ENOEXEC: i64 = -8;

pub(crate) fn handle(dev: &mut Device, req: &Incoming<'_>) -> Outcome {
    match (req.command, req.is_read()) {
        (cmd::EXEC, false) => match req.decode::<ExecRequest>() {
            Ok(exec) if exec.argv.is_empty() => Outcome::Group(EMPTY_COMMAND),
            Ok(exec) if exec.argv.join(" ").len() >= CMD_BUFF_SIZE => {
                Outcome::Group(COMMAND_TOO_LONG)
            }
            Ok(exec) => ok(&run(dev, &exec.argv)),
            Err(e) => e,
        },
        _ => Outcome::Mgmt(mgmt::ENOTSUP),
    }
}

/// Runs a command line. Output looks like Zephyr's shell prints it: a new line first,
/// VT100 colours for errors.
fn run(dev: &Device, argv: &[String]) -> ExecResponse {
    let words: Vec<&str> = argv.iter().map(String::as_str).collect();
    let (text, ret) = match words.as_slice() {
        ["echo", rest @ ..] => (format!("{}\r\n", rest.join(" ")), 0),
        ["kernel", "version"] => ("Zephyr version 4.4.0\r\n".to_owned(), 0),
        ["kernel", "uptime"] => (
            format!("Uptime: {} ms\r\n", dev.booted.elapsed().as_millis()),
            0,
        ),
        ["help", ..] => (
            "Available commands:\r\n  echo    : Print the arguments.\r\n  help    : Prints the help message.\r\n  kernel  : Kernel commands (version, uptime).\r\n"
                .to_owned(),
            0,
        ),
        [name, ..] => (
            format!("\u{1b}[1;31m{name}: command not found\r\n\u{1b}[m"),
            ENOEXEC,
        ),
        [] => (String::new(), 0),
    };
    let mut o = format!("\r\n{text}");
    if o.len() > OUTPUT_MAX {
        let mut end = OUTPUT_MAX;
        while !o.is_char_boundary(end) {
            end -= 1;
        }
        o.truncate(end);
    }
    build(|v: &mut ExecResponse| {
        v.o = o;
        v.ret = ret;
    })
}
