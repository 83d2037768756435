//! `smp shell exec`: the device's shell (group 9).

use serde_json::json;
use smp_client::messages::shell::ExecRequest;

use super::Ctx;
use crate::cli::ShellCommand;
use crate::error::CliError;
use crate::output::Outcome;

/// Runs `shell exec`. The shell command's exit code is part of the answer: it is not an
/// error of `smp`.
pub(super) async fn run(command: &ShellCommand, ctx: &Ctx<'_>) -> Result<Outcome, CliError> {
    let ShellCommand::Exec { argv } = command;
    let client = ctx.client().await?;
    let reply = client.request(&ExecRequest { argv: argv.clone() }).await?;
    let mut human = reply.o.clone();
    if reply.ret != 0 {
        if !human.is_empty() && !human.ends_with('\n') {
            human.push('\n');
        }
        human.push_str(&format!("(exit status {})", reply.ret));
    }
    Ok(Outcome::new(
        json!({ "argv": argv, "output": reply.o, "ret": reply.ret }),
        human,
    ))
}
