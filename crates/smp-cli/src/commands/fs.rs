//! `smp fs ...`: file system management (group 8).

use std::io::Read as _;

use serde_json::{Value, json};
use smp_client::messages::fs::{
    CloseRequest, HashOutput, HashRequest, HashResponse, StatusRequest, SupportedHashTypesRequest,
    SupportedHashTypesResponse,
};
use smp_client::{FileTransferOptions, FileTransferSummary, HashAlgorithm};

use super::{Ctx, path_text, read_file};
use crate::cli::{FsCommand, is_std_stream};
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
            let data = if is_std_stream(local) {
                read_stdin()?
            } else {
                read_file(local)?
            };
            let client = ctx.client().await?;
            let transfer = Transfer::start("upload", Some(data.len() as u64), &ctx.progress);
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
            let transfer = Transfer::start("download", None, &ctx.progress);
            let options = FileTransferOptions::default().with_window(*window);
            let (data, summary) = client
                .download_file(remote, &options, |p| {
                    transfer.update(p);
                })
                .await?;
            let elapsed = transfer.finish();
            if is_std_stream(local) {
                output::write_data(&data).map_err(|e| CliError::write(local, e))?;
            } else {
                std::fs::write(local, &data).map_err(|e| CliError::write(local, e))?;
            }
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
        FsCommand::SupportedChecksums => {
            let client = ctx.client().await?;
            Ok(supported_outcome(
                &client.request(&SupportedHashTypesRequest).await?,
            ))
        }
        FsCommand::Close => {
            let client = ctx.client().await?;
            client.request(&CloseRequest).await?;
            Ok(Outcome::new(
                json!({ "ok": true }),
                "the device's open files closed",
            ))
        }
    }
}

/// The answer of `fs supported-checksums`: one row per type, by name.
fn supported_outcome(reply: &SupportedHashTypesResponse) -> Outcome {
    // Format 0 is a number (a checksum such as CRC32), 1 a byte string (a hash).
    let output = |format: u8| match format {
        0 => Some("number"),
        1 => Some("bytes"),
        _ => None,
    };
    let types: Vec<Value> = reply
        .types
        .iter()
        .map(|(name, info)| {
            json!({ "name": name, "size": info.size, "format": info.format,
                    "output": output(info.format) })
        })
        .collect();
    let rows: Vec<Vec<String>> = reply
        .types
        .iter()
        .map(|(name, info)| {
            vec![
                name.clone(),
                format!("{} B", info.size),
                output(info.format)
                    .map_or_else(|| format!("format {}", info.format), str::to_owned),
            ]
        })
        .collect();
    let human = if rows.is_empty() {
        "the device computes no hash or checksum".to_owned()
    } else {
        output::table(&["NAME", "SIZE", "OUTPUT"], &rows)
    };
    Outcome::new(json!({ "types": types }), human)
}

/// Reads standard input to its end (`fs upload - REMOTE`).
fn read_stdin() -> Result<Vec<u8>, CliError> {
    let mut data = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut data)
        .map_err(|e| CliError::read(std::path::Path::new("-"), e))?;
    Ok(data)
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
    fn supported_types_render_by_name() {
        use smp_client::messages::fs::HashTypeInfo;
        let info = |size, format| {
            build(|v: &mut HashTypeInfo| {
                v.size = size;
                v.format = format;
            })
        };
        let reply = build(|v: &mut SupportedHashTypesResponse| {
            v.types = [
                ("crc32".to_owned(), info(4, 0)),
                ("sha256".to_owned(), info(32, 1)),
                ("new".to_owned(), info(8, 7)),
            ]
            .into();
        });
        let out = supported_outcome(&reply);
        assert_eq!(
            out.json,
            json!({"types": [
                {"name": "crc32", "size": 4, "format": 0, "output": "number"},
                {"name": "new", "size": 8, "format": 7, "output": null},
                {"name": "sha256", "size": 32, "format": 1, "output": "bytes"}]})
        );
        assert_eq!(
            out.human,
            "NAME    SIZE  OUTPUT\ncrc32   4 B   number\nnew     8 B   format 7\nsha256  32 B  bytes\n"
        );
        let none = supported_outcome(&SupportedHashTypesResponse::default());
        assert_eq!(none.human, "the device computes no hash or checksum");
    }

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
