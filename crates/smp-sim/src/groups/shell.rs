//! Shell group (9): a few built-in commands of Zephyr's shell.

use smp_client::header::command::shell as cmd;
use smp_client::messages::shell::{ExecRequest, ExecResponse};

use crate::device::{Device, Incoming};
use crate::reply::{Outcome, mgmt, ok};

/// `SHELL_MGMT_ERR_INVALID_FORMAT`: an empty command line.
const INVALID_FORMAT: u16 = 2;
/// Zephyr's shell returns `-ENOEXEC` for a command it does not know.
const ENOEXEC: i64 = -8;

pub(crate) fn handle(dev: &mut Device, req: &Incoming<'_>) -> Outcome {
    match (req.command, req.is_read()) {
        (cmd::EXEC, false) => match req.decode::<ExecRequest>() {
            Ok(exec) if exec.argv.is_empty() => Outcome::Group(INVALID_FORMAT),
            Ok(exec) => ok(&run(dev, &exec.argv)),
            Err(e) => e,
        },
        _ => Outcome::Mgmt(mgmt::ENOTSUP),
    }
}

fn run(dev: &Device, argv: &[String]) -> ExecResponse {
    let words: Vec<&str> = argv.iter().map(String::as_str).collect();
    let (o, ret) = match words.as_slice() {
        ["echo", rest @ ..] => (format!("{}\r\n", rest.join(" ")), 0),
        ["kernel", "version"] => ("\r\nZephyr version 4.4.0\r\n".to_owned(), 0),
        ["kernel", "uptime"] => (
            format!("Uptime: {} ms\r\n", dev.booted.elapsed().as_millis()),
            0,
        ),
        ["help", ..] => (
            "Available commands:\r\n  echo    :Print the arguments\r\n  help    :Prints the help message.\r\n  kernel  :Kernel commands\r\n"
                .to_owned(),
            0,
        ),
        [name, ..] => (format!("{name}: command not found\r\n"), ENOEXEC),
        [] => (String::new(), 0),
    };
    ExecResponse { o, ret }
}
