//! `snapshot status` and `snapshot restore`.

use crate::output::{self, Format, log_info};
use crate::{EXIT_BAD_ARGS, EXIT_ERROR, Failure};
use cairn_cliout::progress::Progress;
use cairn_server::offline::{self, RestoreOptions};
use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::time::Instant;

/// A snapshot file's hash, revision, key count and size in `format`.
pub fn status(file: &Path, format: Format) -> Result<String, Failure> {
    offline::snapshot_status(file)
        .map(|status| output::snapshot_status(format, &status))
        .map_err(|e| Failure::new(EXIT_ERROR, e))
}

/// Restores a snapshot file into a new member's data dir, logging as etcdutl does and showing
/// progress on stderr.
pub fn restore(opts: &RestoreOptions) -> Result<(), Failure> {
    if opts.mark_compacted != (opts.bump_revision > 0) {
        return Err(Failure::new(
            EXIT_BAD_ARGS,
            offline::OfflineError::BumpWithoutMark,
        ));
    }
    log_info(
        "restoring snapshot",
        &[("path", opts.snapshot.display().to_string())],
    );
    let mut progress = Progress::new("Restoring snapshot", std::io::stderr().is_terminal());
    let restored = offline::restore(opts, &mut |done, total| {
        show(progress.update(done, total, Instant::now()));
    });
    show(progress.finish());
    let r = restored.map_err(|e| Failure::new(EXIT_ERROR, e))?;
    log_info(
        "restored snapshot",
        &[
            ("path", opts.snapshot.display().to_string()),
            ("data-dir", r.data_dir.display().to_string()),
            ("wal-dir", r.wal_dir.display().to_string()),
            ("cluster-id", format!("{:x}", r.cluster_id)),
            ("member-id", format!("{:x}", r.member_id)),
            ("revision", r.revision.to_string()),
            ("compact-revision", r.compact_revision.to_string()),
        ],
    );
    Ok(())
}

/// Writes a progress update to stderr.
pub fn show(text: Option<String>) {
    if let Some(text) = text {
        let mut err = std::io::stderr().lock();
        // Progress that cannot be shown is not worth failing the work for.
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }
}
