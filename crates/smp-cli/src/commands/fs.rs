//! `smp fs ...`: file system management (group 8).

use serde_json::json;
use smp_client::messages::fs::{HashOutput, HashRequest, HashResponse, StatusRequest};
use smp_client::{FileTransferOptions, FileTransferSummary, HashAlgorithm};

use super::{Ctx, path_text, read_file};
use crate::cli::FsCommand;
use crate::error::CliError;
use crate::output::{self, Outcome, hex};
use crate::progress::Transfer;

/// Runs an `fs` command.
pub(super) async fn run(command: &FsCommand, ctx: &Ctx<'_>) -> Result<Outcome, CliError> {
    match command {
        FsCommand::Upload {
            local,
            remote,
            window,
        } => {
            let data = read_file(local)?;
            let client = ctx.client().await?;
            let transfer = Transfer::start("upload", Some(data.len() as u64));
            let options = FileTransferOptions::default().with_window(*window);
            let summary = client
                .upload_file(remote, &data, &options, |p| {
                    transfer.update(p);
                })
                .await?;
            let elapsed = transfer.finish();
            Ok(transfer_outcome(
                "uploaded", local, remote, &summary, elapsed,
            ))
        }
        FsCommand::Download {
            remote,
            local,
            window,
        } => {
            let client = ctx.client().await?;
            let transfer = Transfer::start("download", None);
            let options = FileTransferOptions::default().with_window(*window);
            let (data, summary) = client
                .download_file(remote, &options, |p| {
                    transfer.update(p);
                })
                .await?;
            let elapsed = transfer.finish();
            std::fs::write(local, &data).map_err(|e| CliError::write(local, e))?;
            Ok(transfer_outcome(
                "downloaded",
                local,
                remote,
                &summary,
                elapsed,
            ))
        }
        FsCommand::Stat { remote } => {
            let client = ctx.client().await?;
            let reply = client
                .request(&StatusRequest {
                    name: remote.clone(),
                })
                .await?;
            Ok(Outcome::new(
                json!({ "name": remote, "size": reply.len }),
                format!("{remote}: {}", output::size(reply.len)),
            ))
        }
        FsCommand::Hash { remote, kind } => {
            let client = ctx.client().await?;
            let reply = client
                .request(&HashRequest {
                    name: remote.clone(),
                    r#type: kind.map(|k| k.wire_name().to_owned()),
                    ..HashRequest::default()
                })
                .await?;
            Ok(hash_outcome(remote, &reply))
        }
    }
}

/// The line that says how the device checked a transferred file.
/// The answer of a file transfer, either way.
fn transfer_outcome(
    done: &str,
    local: &std::path::Path,
    remote: &str,
    summary: &FileTransferSummary,
    elapsed: std::time::Duration,
) -> Outcome {
    let json = json!({
        "local": path_text(local), "remote": remote, "size": summary.len,
        "chunks": summary.chunks, "max_in_flight": summary.max_in_flight,
        "verified_with": summary.verified_with.map(HashAlgorithm::as_str),
        "elapsed_s": output::seconds(elapsed),
        "bytes_per_second": output::bytes_per_second(summary.len, elapsed),
    });
    let human = format!(
        "{}\n{}",
        output::transfer_summary(done, summary.len, elapsed),
        verified(summary.verified_with.map(HashAlgorithm::as_str))
    );
    Outcome::new(json, human)
}

fn verified(with: Option<&str>) -> String {
    match with {
        Some(kind) => format!("verified: the device's {kind} matches"),
        None => "not verified: the device computes no SHA-256 or CRC32".to_owned(),
    }
}

/// The answer of `fs hash`: hashes as hex, a CRC32 as 8 hex digits.
fn hash_outcome(name: &str, reply: &HashResponse) -> Outcome {
    let output = match &reply.output {
        HashOutput::Bytes(bytes) => hex(bytes),
        HashOutput::Int(n) => format!("{n:08x}"),
    };
    let offset = reply.off.unwrap_or(0);
    let json = json!({
        "name": name, "type": reply.r#type, "offset": offset, "size": reply.len,
        "output": output,
    });
    let human = format!(
        "{output}  {name} ({}, {})",
        reply.r#type,
        output::size(reply.len)
    );
    Outcome::new(json, human)
}

#[cfg(test)]
mod tests {
    use super::*;
    use smp_client::messages::build;

    #[test]
    fn hashes_render_as_hex() {
        let reply = build(|v: &mut HashResponse| {
            v.len = 4;
            v.off = None;
            v.r#type = "crc32".into();
            v.output = HashOutput::Int(0xbeef);
        });
        let out = hash_outcome("/a", &reply);
        assert_eq!(
            out.json,
            json!({"name": "/a", "type": "crc32", "offset": 0, "size": 4, "output": "0000beef"})
        );
        assert_eq!(out.human, "0000beef  /a (crc32, 4 B)");
        let reply = build(|v: &mut HashResponse| {
            v.len = 4;
            v.off = Some(0);
            v.r#type = "sha256".into();
            v.output = HashOutput::Bytes(vec![0xab; 32]);
        });
        assert_eq!(hash_outcome("/a", &reply).json["output"], "ab".repeat(32));
        assert!(verified(None).starts_with("not verified"));
        assert_eq!(
            verified(Some("sha256")),
            "verified: the device's sha256 matches"
        );
    }
}
