//! `smp os ...`: OS management (group 0).

use std::fmt::Write as _;

use serde_json::{Map, Value, json};
use smp_client::messages::os::{
    BootloaderInfoRequest, BootloaderInfoResponse, DateTimeRequest, InfoRequest,
    McumgrParamsRequest, MpStatRequest, MpStatResponse, ResetRequest, SetDateTimeRequest,
    TaskStatRequest, TaskStatResponse,
};

use super::Ctx;
use crate::cli::OsCommand;
use crate::error::CliError;
use crate::output::{self, Outcome, cell, table};

/// Runs an `os` command.
pub(super) async fn run(command: &OsCommand, ctx: &Ctx<'_>) -> Result<Outcome, CliError> {
    let client = ctx.client().await?;
    Ok(match command {
        OsCommand::Echo { text } => {
            // Checked: a damaged echo is sent again rather than printed.
            let reply = client.echo(text).await?;
            Outcome::new(json!({ "text": reply }), reply)
        }
        OsCommand::Reset { force, boot_mode } => {
            client
                .request(&ResetRequest {
                    force: force.then_some(1),
                    boot_mode: *boot_mode,
                })
                .await?;
            Outcome::new(
                json!({ "ok": true, "force": force, "boot_mode": boot_mode }),
                "reset requested",
            )
        }
        OsCommand::Params => {
            // The client read them on connect; asked again only when the device did not
            // answer them then, which brings its error to the user.
            let p = match client.params() {
                Some(p) => p,
                None => client.request(&McumgrParamsRequest).await?,
            };
            Outcome::new(
                json!({ "buf_size": p.buf_size, "buf_count": p.buf_count }),
                format!("buf_size: {}\nbuf_count: {}", p.buf_size, p.buf_count),
            )
        }
        OsCommand::Info { format } => {
            let reply = client
                .request(&InfoRequest {
                    format: format.clone(),
                })
                .await?;
            Outcome::new(
                json!({ "format": format, "output": reply.output }),
                reply.output,
            )
        }
        OsCommand::Datetime { set: None } => {
            let reply = client.request(&DateTimeRequest).await?;
            Outcome::new(
                json!({ "datetime": reply.datetime, "set": false }),
                reply.datetime,
            )
        }
        OsCommand::Datetime {
            set: Some(datetime),
        } => {
            client
                .request(&SetDateTimeRequest {
                    datetime: datetime.clone(),
                })
                .await?;
            Outcome::new(
                json!({ "datetime": datetime, "set": true }),
                format!("date and time set to {datetime}"),
            )
        }
        OsCommand::Tasks => tasks(&client.request(&TaskStatRequest).await?),
        OsCommand::Mempools => mempools(&client.request(&MpStatRequest).await?),
        OsCommand::Bootloader { query } => {
            let reply = client
                .request(&BootloaderInfoRequest {
                    query: query.clone(),
                })
                .await?;
            bootloader(query.as_deref(), &reply)
        }
    })
}

/// The answer of `os tasks`.
fn tasks(reply: &TaskStatResponse) -> Outcome {
    let json_tasks: Vec<Value> = reply
        .tasks
        .iter()
        .map(|(name, t)| {
            json!({
                "name": name, "prio": t.prio, "tid": t.tid, "state": t.state,
                "stkuse": t.stkuse, "stksiz": t.stksiz, "cswcnt": t.cswcnt,
                "runtime": t.runtime, "last_checkin": t.last_checkin,
                "next_checkin": t.next_checkin,
            })
        })
        .collect();
    let rows: Vec<Vec<String>> = reply
        .tasks
        .iter()
        .map(|(name, t)| {
            vec![
                name.clone(),
                t.prio.to_string(),
                t.tid.to_string(),
                t.state.to_string(),
                cell(t.stkuse),
                cell(t.stksiz),
                cell(t.cswcnt),
                cell(t.runtime),
            ]
        })
        .collect();
    let human = table(
        &[
            "NAME", "PRIO", "TID", "STATE", "STKUSE", "STKSIZ", "CSWCNT", "RUNTIME",
        ],
        &rows,
    );
    Outcome::new(json!({ "tasks": json_tasks }), human)
}

/// The answer of `os mempools`.
fn mempools(reply: &MpStatResponse) -> Outcome {
    let json_pools: Vec<Value> = reply
        .pools
        .iter()
        .map(|(name, p)| {
            json!({ "name": name, "blksize": p.blksize, "nblks": p.nblks,
                    "nfree": p.nfree, "min": p.min })
        })
        .collect();
    let rows: Vec<Vec<String>> = reply
        .pools
        .iter()
        .map(|(name, p)| {
            vec![
                name.clone(),
                p.blksize.to_string(),
                p.nblks.to_string(),
                p.nfree.to_string(),
                p.min.to_string(),
            ]
        })
        .collect();
    let human = table(&["NAME", "BLKSIZE", "NBLKS", "NFREE", "MIN"], &rows);
    Outcome::new(json!({ "pools": json_pools }), human)
}

/// MCUboot's name of a mode number (`os bootloader mode`).
pub(crate) fn mode_name(mode: i64) -> Option<&'static str> {
    Some(match mode {
        -1 => "unknown",
        0 => "single application",
        1 => "swap using scratch",
        2 => "overwrite only",
        3 => "swap without scratch",
        4 => "direct XIP without revert",
        5 => "direct XIP with revert",
        6 => "RAM loader",
        _ => return None,
    })
}

/// The answer of `os bootloader`.
fn bootloader(query: Option<&str>, reply: &BootloaderInfoResponse) -> Outcome {
    let mode_name = reply.mode.and_then(mode_name);
    let other: Map<String, Value> = reply
        .other
        .iter()
        .map(|(k, v)| (k.clone(), output::cbor_to_json(v)))
        .collect();
    let json = json!({
        "query": query, "bootloader": reply.bootloader, "mode": reply.mode,
        "mode_name": mode_name, "no_downgrade": reply.no_downgrade, "other": other,
    });
    let mut human = String::new();
    if let Some(name) = &reply.bootloader {
        let _ = writeln!(human, "bootloader: {name}");
    }
    if let Some(mode) = reply.mode {
        let _ = match mode_name {
            Some(name) => writeln!(human, "mode: {mode} ({name})"),
            None => writeln!(human, "mode: {mode}"),
        };
    }
    if let Some(no_downgrade) = reply.no_downgrade {
        let _ = writeln!(human, "no-downgrade: {}", output::yes_no(no_downgrade));
    }
    for (key, value) in &reply.other {
        let _ = writeln!(human, "{key}: {}", output::cbor_text(value));
    }
    if human.is_empty() {
        human.push_str("(no answer)");
    }
    Outcome::new(json, human)
}

#[cfg(test)]
mod tests {
    use smp_client::messages::build;
    use std::collections::BTreeMap;

    use smp_client::messages::Value as Cbor;
    use smp_client::messages::os::{PoolInfo, TaskInfo};

    use super::*;

    #[test]
    fn tasks_render() {
        let mut tasks = BTreeMap::new();
        tasks.insert(
            "main".to_owned(),
            build(|v: &mut TaskInfo| {
                v.tid = 1;
                v.prio = -1;
                v.state = 8;
                v.stkuse = Some(100);
                v.stksiz = Some(256);
            }),
        );
        let out = tasks_outcome(tasks);
        assert_eq!(
            out.json,
            json!({"tasks": [{"name": "main", "prio": -1, "tid": 1, "state": 8,
                "stkuse": 100, "stksiz": 256, "cswcnt": null, "runtime": null,
                "last_checkin": null, "next_checkin": null}]})
        );
        assert_eq!(
            out.human,
            "NAME  PRIO  TID  STATE  STKUSE  STKSIZ  CSWCNT  RUNTIME\n\
             main  -1    1    8      100     256     -       -\n"
        );
    }

    fn tasks_outcome(tasks: BTreeMap<String, TaskInfo>) -> Outcome {
        super::tasks(&build(|v: &mut TaskStatResponse| {
            v.tasks = tasks;
        }))
    }

    #[test]
    fn pools_render() {
        let mut pools = BTreeMap::new();
        pools.insert(
            "pool0".to_owned(),
            build(|v: &mut PoolInfo| {
                v.min = 1;
                v.nblks = 8;
                v.nfree = 3;
                v.blksize = 32;
            }),
        );
        let out = mempools(&build(|v: &mut MpStatResponse| {
            v.pools = pools;
        }));
        assert_eq!(out.json["pools"][0]["blksize"], 32);
        assert!(out.human.contains("pool0  32"), "{}", out.human);
    }

    #[test]
    fn bootloader_renders() {
        let mut reply = build(|v: &mut BootloaderInfoResponse| {
            v.mode = Some(1);
            v.no_downgrade = Some(false);
        });
        reply
            .other
            .insert("extra".to_owned(), Cbor::Bytes(vec![0xab]));
        let out = bootloader(Some("mode"), &reply);
        assert_eq!(
            out.json,
            json!({"query": "mode", "bootloader": null, "mode": 1,
                   "mode_name": "swap using scratch", "no_downgrade": false,
                   "other": {"extra": "ab"}})
        );
        assert_eq!(
            out.human,
            "mode: 1 (swap using scratch)\nno-downgrade: no\nextra: ab\n"
        );
        let out = bootloader(None, &BootloaderInfoResponse::default());
        assert_eq!(out.human, "(no answer)");
        assert_eq!(mode_name(42), None);
    }
}
