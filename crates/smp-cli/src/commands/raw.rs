//! `smp raw GROUP COMMAND [--write] [JSON-BODY]`: any request, its body written as JSON
//! and its reply shown as JSON.
//!
//! JSON and CBOR differ in two ways that matter here: CBOR has byte strings and JSON has
//! none, and CBOR map keys may be anything. A byte string is written
//! `{"$bytes": "HEX"}` both ways, so that a reply can be sent back as a body; a map key
//! that is not text prints as its JSON text (`1` as `"1"`).

use serde_json::{Map, Value, json};
use smp_client::header::Op;
use smp_client::messages::Value as Cbor;
use smp_client::{ClientError, ReplyError};

use super::Ctx;
use crate::cli::RawArgs;
use crate::error::CliError;
use crate::output::{self, Outcome, hex};

/// The key of the one-entry object that stands for a byte string.
const BYTES: &str = "$bytes";

/// Runs `raw`.
pub(super) async fn run(args: &RawArgs, ctx: &Ctx<'_>) -> Result<Outcome, CliError> {
    // The body is checked before anything is sent: bad JSON is a usage error.
    let body: Value = match &args.body {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| CliError::Usage(format!("JSON-BODY is not JSON: {e}")))?,
        None => json!({}),
    };
    if !body.is_object() {
        return Err(CliError::Usage(
            "JSON-BODY must be a JSON object: an SMP request's body is a map".to_owned(),
        ));
    }
    let payload = smp_client::minicbor::to_vec(json_to_cbor(&body).map_err(CliError::Usage)?)
        .map_err(|e| CliError::Internal(format!("cannot encode the request: {e}")))?;
    let op = if args.write { Op::Write } else { Op::Read };

    let client = ctx.client().await?;
    let reply = client
        .request_raw(op, args.group, args.command, &payload, ctx.global.timeout)
        .await?;
    let reply: Cbor = smp_client::minicbor::decode(&reply).map_err(|e| ClientError::Decode {
        group: args.group,
        command: args.command,
        source: ReplyError::Cbor(e),
    })?;
    let reply = cbor_to_json(&reply);
    let human = serde_json::to_string_pretty(&reply).unwrap_or_else(|_| reply.to_string());
    Ok(Outcome::new(
        json!({
            "group": args.group,
            "command": args.command,
            "op": if args.write { "write" } else { "read" },
            "request": body,
            "reply": reply,
        }),
        human,
    ))
}

/// A JSON value as CBOR: `{"$bytes": "HEX"}` is a byte string; integers stay integers.
fn json_to_cbor(value: &Value) -> Result<Cbor, String> {
    Ok(match value {
        Value::Null => Cbor::Null,
        Value::Bool(b) => Cbor::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Cbor::Int(i.into()),
            (None, Some(u), _) => Cbor::Int(u.into()),
            (None, None, Some(f)) => Cbor::Float(f),
            _ => return Err(format!("JSON-BODY: the number {n} has no CBOR form")),
        },
        Value::String(s) => Cbor::Text(s.clone()),
        Value::Array(items) => {
            Cbor::Array(items.iter().map(json_to_cbor).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => match bytes_of(map) {
            // No digits: an empty byte string.
            Some("") => Cbor::Bytes(Vec::new()),
            Some(hex) => Cbor::Bytes(
                output::parse_hex(hex)
                    .map_err(|e| format!("JSON-BODY: {{\"{BYTES}\": \"{hex}\"}}: {e}"))?,
            ),
            None => Cbor::Map(
                map.iter()
                    .map(|(k, v)| Ok((Cbor::Text(k.clone()), json_to_cbor(v)?)))
                    .collect::<Result<_, String>>()?,
            ),
        },
    })
}

/// The hex of an object that stands for a byte string: `{"$bytes": "HEX"}`.
fn bytes_of(map: &Map<String, Value>) -> Option<&str> {
    match (map.len(), map.get(BYTES)) {
        (1, Some(Value::String(hex))) => Some(hex),
        _ => None,
    }
}

/// A CBOR value from the device as JSON, byte strings as `{"$bytes": "HEX"}`.
/// Undefined prints as null, a tag as `{"$tag": N, "value": ...}`, another simple value
/// as `{"$simple": N}`, an integer beyond JSON's 64 bits as a decimal string, a float
/// that is not finite as null.
fn cbor_to_json(value: &Cbor) -> Value {
    match value {
        Cbor::Bytes(b) => json!({ BYTES: hex(b) }),
        Cbor::Array(items) => Value::Array(items.iter().map(cbor_to_json).collect()),
        Cbor::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Cbor::Text(t) => t.clone(),
                        other => cbor_to_json(other).to_string(),
                    };
                    (key, cbor_to_json(v))
                })
                .collect(),
        ),
        Cbor::Tag(tag, inner) => json!({ "$tag": tag, "value": cbor_to_json(inner) }),
        Cbor::Simple(n) => json!({ "$simple": n }),
        scalar => output::cbor_to_json(scalar),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_become_cbor_maps() {
        let body = json!({"d": "hi", "n": -3, "big": u64::MAX, "f": 1.5, "ok": true,
                          "none": null, "list": [1, "a"], "data": {"$bytes": "00ff"},
                          "nested": {"$bytes": "00", "x": 1}});
        let cbor = json_to_cbor(&body).expect("converts");
        let Cbor::Map(entries) = &cbor else {
            panic!("a map: {cbor:?}")
        };
        let get = |key: &str| {
            entries
                .iter()
                .find(|(k, _)| k == &Cbor::Text(key.into()))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("d"), Some(Cbor::Text("hi".into())));
        assert_eq!(get("n"), Some(Cbor::Int(-3)));
        assert_eq!(get("big"), Some(Cbor::Int(u64::MAX.into())));
        assert_eq!(get("f"), Some(Cbor::Float(1.5)));
        assert_eq!(get("none"), Some(Cbor::Null));
        assert_eq!(get("data"), Some(Cbor::Bytes(vec![0, 0xff])));
        // Another key beside "$bytes": an ordinary map.
        assert!(matches!(get("nested"), Some(Cbor::Map(m)) if m.len() == 2));
        // Keys in the order given (serde_json keeps it).
        assert_eq!(entries[0].0, Cbor::Text("d".into()));
        assert_eq!(
            json_to_cbor(&json!({"$bytes": ""})),
            Ok(Cbor::Bytes(vec![]))
        );
        assert!(json_to_cbor(&json!({"$bytes": "0g"})).is_err());
    }

    #[test]
    fn replies_print_as_json_that_can_be_sent_back() {
        let reply = Cbor::Map(vec![
            (Cbor::Text("hash".into()), Cbor::Bytes(vec![0xab, 0x01])),
            (
                Cbor::Int(1),
                Cbor::Array(vec![Cbor::Bool(true), Cbor::Undefined]),
            ),
            (Cbor::Text("t".into()), Cbor::Tag(2, Box::new(Cbor::Int(5)))),
            (Cbor::Text("s".into()), Cbor::Simple(32)),
        ]);
        let json = cbor_to_json(&reply);
        assert_eq!(
            json,
            json!({"hash": {"$bytes": "ab01"}, "1": [true, null],
                   "t": {"$tag": 2, "value": 5}, "s": {"$simple": 32}})
        );
        let back = json_to_cbor(&json!({"hash": json["hash"].clone()})).expect("converts");
        assert_eq!(
            back,
            Cbor::Map(vec![(
                Cbor::Text("hash".into()),
                Cbor::Bytes(vec![0xab, 0x01])
            )])
        );
    }
}
