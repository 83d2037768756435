//! `smp zephyr ...`: Zephyr basic management (group 63).

use serde_json::json;
use smp_client::messages::zephyr::EraseStorageRequest;

use super::Ctx;
use crate::cli::ZephyrCommand;
use crate::error::CliError;
use crate::output::Outcome;

/// Runs a `zephyr` command.
pub(super) async fn run(command: &ZephyrCommand, ctx: &Ctx<'_>) -> Result<Outcome, CliError> {
    let ZephyrCommand::EraseStorage = command;
    let client = ctx.client().await?;
    client.request(&EraseStorageRequest).await?;
    Ok(Outcome::new(
        json!({ "ok": true }),
        "storage partition erased",
    ))
}
