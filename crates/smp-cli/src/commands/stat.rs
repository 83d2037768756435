//! `smp stat ...`: statistics (group 2).

use serde_json::json;
use smp_client::messages::stat::{GroupDataRequest, GroupDataResponse, ListRequest};

use super::Ctx;
use crate::cli::StatCommand;
use crate::error::CliError;
use crate::output::{Outcome, table};

/// Runs a `stat` command.
pub(super) async fn run(command: &StatCommand, ctx: &Ctx<'_>) -> Result<Outcome, CliError> {
    let client = ctx.client().await?;
    Ok(match command {
        StatCommand::List => {
            let reply = client.request(&ListRequest).await?;
            let human = if reply.stat_list.is_empty() {
                "no statistics groups".to_owned()
            } else {
                reply.stat_list.join("\n")
            };
            Outcome::new(json!({ "groups": reply.stat_list }), human)
        }
        StatCommand::Show { group } => {
            let reply = client
                .request(&GroupDataRequest {
                    name: group.clone(),
                })
                .await?;
            show(&reply)
        }
    })
}

/// The answer of `stat show`.
fn show(reply: &GroupDataResponse) -> Outcome {
    let rows: Vec<Vec<String>> = reply
        .fields
        .iter()
        .map(|(name, value)| vec![name.clone(), value.to_string()])
        .collect();
    let human = format!(
        "{}\n{}",
        reply.name,
        table(&["FIELD", "VALUE"], &rows).trim_end()
    );
    Outcome::new(
        json!({ "group": reply.name, "fields": reply.fields }),
        human,
    )
}

#[cfg(test)]
mod tests {
    use smp_client::messages::build;
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn groups_render() {
        let reply = build(|v: &mut GroupDataResponse| {
            v.name = "g".into();
            v.fields = BTreeMap::from([("a".to_owned(), 1), ("bb".to_owned(), 22)]);
        });
        let out = show(&reply);
        assert_eq!(
            out.json,
            json!({"group": "g", "fields": {"a": 1, "bb": 22}})
        );
        assert_eq!(out.human, "g\nFIELD  VALUE\na      1\nbb     22");
    }
}
