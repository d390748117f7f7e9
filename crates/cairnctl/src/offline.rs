//! `snapshot status`, `snapshot restore` and `defrag --data-dir`: files, not members. etcdctl 3.5 still answers them,
//! after a deprecation note on stderr, by running etcdutl's code; cairnctl runs cairnutl's, so
//! both tools print the same. No endpoint is dialed and no `ETCDCTL_*` variable is read, as in
//! etcdctl, where these commands never build a client.

use crate::cli::{RestArgs, SnapshotRestoreArgs};
use crate::commands::{emit, emit_err};
use crate::exit::Exit;
use crate::flags::{self, Globals};
use cairn_server::offline::RestoreOptions;
use cairnutl::output::Format;
use std::path::PathBuf;

fn deprecated(command: &str) {
    emit_err(format!("Deprecated: Use `etcdutl {command}` instead.\n\n").as_bytes());
}

fn failed(f: cairnutl::Failure) -> Exit {
    Exit::new(i32::from(f.code), f.message)
}

pub fn snapshot_status(g: &Globals, a: &RestArgs) -> Result<(), Exit> {
    deprecated("snapshot status");
    let [file] = a.args.as_slice() else {
        return Err(Exit::bad_args(
            "snapshot status requires exactly one argument",
        ));
    };
    let format = Format::parse(&g.write_out).map_err(Exit::bad_feature)?;
    let text = cairnutl::snapshot::status(&PathBuf::from(file), format).map_err(failed)?;
    emit(text.as_bytes());
    Ok(())
}

pub fn snapshot_restore(a: &SnapshotRestoreArgs) -> Result<(), Exit> {
    deprecated("snapshot restore");
    let [file] = a.args.as_slice() else {
        return Err(Exit::bad_args(
            "snapshot restore requires exactly one argument",
        ));
    };
    let skip_hash_check =
        flags::flag_bool(&a.skip_hash_check, "skip-hash-check").map_err(Exit::error)?;
    let or = |v: &Option<String>, default: &str| v.clone().unwrap_or_else(|| default.to_string());
    let opts = RestoreOptions {
        snapshot: PathBuf::from(file),
        name: or(&a.name, "default"),
        // Empty: `<name>.etcd`, as etcdctl.
        data_dir: PathBuf::from(or(&a.data_dir, "")),
        wal_dir: a
            .wal_dir
            .as_deref()
            .filter(|d| !d.is_empty())
            .map(PathBuf::from),
        initial_cluster: or(&a.initial_cluster, "default=http://localhost:2380"),
        initial_cluster_token: or(&a.initial_cluster_token, "etcd-cluster"),
        initial_advertise_peer_urls: or(&a.initial_advertise_peer_urls, "http://localhost:2380"),
        skip_hash_check,
        bump_revision: 0,
        mark_compacted: false,
    };
    cairnutl::snapshot::restore(&opts).map_err(failed)
}

/// etcdctl 3.5's note before it defragments a data dir with etcdutl's code (Go's typo kept).
const DEFRAG_DATA_DIR_NOTE: &str =
    "Use `etcdutl defrag` instead. The --data-dir is going to be decomissioned in v3.6.\n\n";

/// `defrag --data-dir <dir>`: the backend of a stopped member, defragmented in place, as etcdctl
/// 3.5 does it: its note, then silent on success, and etcdctl's `Error:` line with exit code 1
/// on failure. (etcd waits for a running member to let go of the file; Cairn refuses at once.)
pub fn defrag(data_dir: &str) -> Result<(), Exit> {
    emit_err(DEFRAG_DATA_DIR_NOTE.as_bytes());
    cairnutl::defrag::run(std::path::Path::new(data_dir))
        .map(|_| ())
        .map_err(|e| Exit::new(crate::exit::EXIT_ERROR, e))
}
