//! `smp enum ...`: the groups a device supports (group 10).

use serde_json::{Value, json};
use smp_client::header::group;
use smp_client::messages::enumeration::{DetailsRequest, DetailsResponse, ListRequest};

use super::Ctx;
use crate::cli::EnumCommand;
use crate::error::CliError;
use crate::output::{Outcome, cell, table};

/// Runs an `enum` command.
pub(super) async fn run(command: &EnumCommand, ctx: &Ctx<'_>) -> Result<Outcome, CliError> {
    let client = ctx.client().await?;
    Ok(match command {
        EnumCommand::Groups => groups(&client.request(&ListRequest).await?.groups),
        EnumCommand::Details => details(&client.request(&DetailsRequest { groups: None }).await?),
    })
}

/// The answer of `enum groups`.
fn groups(ids: &[u16]) -> Outcome {
    let json_groups: Vec<Value> = ids
        .iter()
        .map(|&id| json!({ "id": id, "name": group::name(id) }))
        .collect();
    let rows: Vec<Vec<String>> = ids
        .iter()
        .map(|&id| vec![id.to_string(), group::name(id).unwrap_or("-").to_owned()])
        .collect();
    Outcome::new(
        json!({ "groups": json_groups }),
        table(&["ID", "NAME"], &rows),
    )
}

/// The answer of `enum details`.
fn details(reply: &DetailsResponse) -> Outcome {
    let json_groups: Vec<Value> = reply
        .groups
        .iter()
        .map(|g| json!({ "id": g.group, "name": g.name, "handlers": g.handlers }))
        .collect();
    let rows: Vec<Vec<String>> = reply
        .groups
        .iter()
        .map(|g| {
            vec![
                g.group.to_string(),
                g.name.clone().unwrap_or_else(|| "-".to_owned()),
                cell(g.handlers),
            ]
        })
        .collect();
    Outcome::new(
        json!({ "groups": json_groups }),
        table(&["ID", "NAME", "HANDLERS"], &rows),
    )
}

#[cfg(test)]
mod tests {
    use smp_client::messages::build;
    use smp_client::messages::enumeration::GroupDetails;

    use super::*;

    #[test]
    fn groups_render_with_names() {
        let out = groups(&[0, 1, 64]);
        assert_eq!(
            out.json,
            json!({"groups": [{"id": 0, "name": "OS"}, {"id": 1, "name": "IMG"},
                              {"id": 64, "name": null}]})
        );
        assert_eq!(out.human, "ID  NAME\n0   OS\n1   IMG\n64  -\n");
        let out = details(&build(|v: &mut DetailsResponse| {
            v.groups = vec![build(|v: &mut GroupDetails| {
                v.name = Some("os mgmt".into());
                v.group = 0;
                v.handlers = None;
            })];
        }));
        assert_eq!(
            out.json,
            json!({"groups": [{"id": 0, "name": "os mgmt", "handlers": null}]})
        );
        assert_eq!(out.human, "ID  NAME     HANDLERS\n0   os mgmt  -\n");
    }
}
