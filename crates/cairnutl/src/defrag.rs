//! `defrag --data-dir`: compacts the backend file of a data dir no member is running on.

use crate::snapshot::show;
use cairn_cliout::progress::Progress;
use cairn_server::offline;
use std::io::IsTerminal as _;
use std::path::Path;
use std::time::Instant;

/// Defragments `data_dir`'s backend with its progress on stderr; the file's size before and
/// after.
pub fn run(data_dir: &Path) -> Result<(u64, u64), offline::OfflineError> {
    let mut progress = Progress::percent_only("Defragmenting", std::io::stderr().is_terminal());
    let done = offline::defragment(data_dir, &mut |copied, total| {
        show(progress.update(copied, total, Instant::now()));
    });
    show(progress.finish());
    done
}
