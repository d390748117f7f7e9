//! etcdutl's output formats for the few things cairnutl prints, and its log lines.

use cairn_cliout::{gofmt, table};
use cairn_server::offline::SnapshotStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Simple,
    Table,
    Json,
    Fields,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, String> {
        match s {
            "simple" => Ok(Format::Simple),
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "fields" => Ok(Format::Fields),
            "protobuf" => Err("protobuf not supported as output format".into()),
            other => Err(format!("unknown output format {other:?}")),
        }
    }
}

pub fn snapshot_status(format: Format, s: &SnapshotStatus) -> String {
    match format {
        Format::Simple => format!(
            "{:x}, {}, {}, {}\n",
            s.hash,
            s.revision,
            s.total_keys,
            gofmt::humanize_bytes(s.total_size)
        ),
        Format::Table => table::render(
            &["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"],
            &[vec![
                format!("{:x}", s.hash),
                s.revision.to_string(),
                s.total_keys.to_string(),
                gofmt::humanize_bytes(s.total_size),
            ]],
        ),
        Format::Json => format!(
            "{}\n",
            serde_json::json!({
                "hash": s.hash,
                "revision": s.revision,
                "totalKey": s.total_keys,
                "totalSize": s.total_size,
            })
        ),
        Format::Fields => format!(
            "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}\n",
            s.hash, s.revision, s.total_keys, s.total_size
        ),
    }
}

pub fn hashkv(format: Format, hash: u32, hash_revision: i64, compact_revision: i64) -> String {
    match format {
        Format::Simple => format!("{hash}, {hash_revision}, {compact_revision}\n"),
        Format::Table => table::render(
            &["HASH", "HASH REVISION", "COMPACT REVISION"],
            &[vec![
                hash.to_string(),
                hash_revision.to_string(),
                compact_revision.to_string(),
            ]],
        ),
        Format::Json => format!(
            "{}\n",
            serde_json::json!({
                "hash": hash,
                "hashRevision": hash_revision,
                "compactRevision": compact_revision,
            })
        ),
        Format::Fields => format!(
            "\"Hash\" : {hash}\n\"Hash revision\" : {hash_revision}\n\"Compact revision\" : {compact_revision}\n"
        ),
    }
}

/// A log line on stderr in the shape etcdutl's logger writes (one JSON object per line).
pub fn log_info(msg: &str, fields: &[(&str, String)]) {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut line = serde_json::Map::new();
    line.insert("level".into(), "info".into());
    line.insert("ts".into(), ts.into());
    line.insert("msg".into(), msg.into());
    for (k, v) in fields {
        line.insert((*k).into(), v.clone().into());
    }
    eprintln!("{}", serde_json::Value::Object(line));
}
