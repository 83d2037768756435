//! `smp settings ...`: settings (group 3).

use serde_json::json;
use smp_client::messages::settings::{
    CommitRequest, DeleteRequest, LoadRequest, ReadRequest, ReadResponse, SaveRequest, WriteRequest,
};

use super::Ctx;
use crate::cli::SettingsCommand;
use crate::error::CliError;
use crate::output::{self, Outcome, hex};

/// Runs a `settings` command.
pub(super) async fn run(command: &SettingsCommand, ctx: &Ctx<'_>) -> Result<Outcome, CliError> {
    // Check the value before talking to the device: bad hex is a usage error.
    let value = match command {
        SettingsCommand::Set {
            value, hex: true, ..
        } => Some(output::parse_hex(value).map_err(|e| CliError::Usage(format!("VALUE: {e}")))?),
        SettingsCommand::Set { value, .. } => Some(value.as_bytes().to_vec()),
        _ => None,
    };
    let client = ctx.client().await?;
    Ok(match command {
        SettingsCommand::Get { name } => {
            let reply = client
                .request(&ReadRequest {
                    name: name.clone(),
                    max_size: None,
                })
                .await?;
            get(name, &reply)
        }
        SettingsCommand::Set { name, .. } => {
            let val = value.unwrap_or_default();
            let value_hex = hex(&val);
            client
                .request(&WriteRequest {
                    val,
                    name: name.clone(),
                })
                .await?;
            Outcome::new(
                json!({ "ok": true, "name": name, "value_hex": value_hex }),
                format!("{name} set"),
            )
        }
        SettingsCommand::Delete { name } => {
            client
                .request(&DeleteRequest { name: name.clone() })
                .await?;
            Outcome::new(
                json!({ "ok": true, "name": name }),
                format!("{name} deleted"),
            )
        }
        SettingsCommand::Commit => {
            client.request(&CommitRequest).await?;
            Outcome::new(json!({ "ok": true }), "settings committed")
        }
        SettingsCommand::Load => {
            client.request(&LoadRequest).await?;
            Outcome::new(json!({ "ok": true }), "settings loaded")
        }
        SettingsCommand::Save => {
            client.request(&SaveRequest).await?;
            Outcome::new(json!({ "ok": true }), "settings saved")
        }
    })
}

/// The answer of `settings get`: text when the value is UTF-8 without control
/// characters other than whitespace, hex otherwise; JSON has both.
fn get(name: &str, reply: &ReadResponse) -> Outcome {
    let text = std::str::from_utf8(&reply.val).ok();
    let printable = text.filter(|t| {
        t.chars()
            .all(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r'))
    });
    let human = match printable {
        Some(text) => text.to_owned(),
        None => format!("0x{}", hex(&reply.val)),
    };
    Outcome::new(
        json!({
            "name": name, "value_hex": hex(&reply.val), "value_text": text,
            "max_size": reply.max_size,
        }),
        human,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use smp_client::messages::build;

    fn read(val: &[u8]) -> ReadResponse {
        build(|v: &mut ReadResponse| {
            v.val = val.to_vec();
            v.max_size = None;
        })
    }

    #[test]
    fn values_render_as_text_or_hex() {
        let out = get("a/b", &read(b"hi"));
        assert_eq!(
            out.json,
            json!({"name": "a/b", "value_hex": "6869", "value_text": "hi", "max_size": null})
        );
        assert_eq!(out.human, "hi");
        let out = get("a/b", &read(&[0xff, 0x00]));
        assert_eq!(out.json["value_text"], serde_json::Value::Null);
        assert_eq!(out.human, "0xff00");
        // Valid UTF-8, but a NUL would not show: hex for people, text in JSON.
        let out = get("a/b", &read(&[0x41, 0x00]));
        assert_eq!(out.json["value_text"], "A\u{0}");
        assert_eq!(out.human, "0x4100");
    }
}
