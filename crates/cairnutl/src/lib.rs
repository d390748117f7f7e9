//! etcdutl's offline commands as a library: `cairnutl` runs them from its own command line, and
//! cairnctl runs the same code for what etcdctl still answers offline (`snapshot status|restore`,
//! with 3.5's deprecation note, and `defrag --data-dir`), so both print the same.
//!
//! Owns: running those commands and printing their results and log lines the way etcdutl
//! does. Must not: know how a data dir or a snapshot file is laid out; that is
//! `cairn_server::offline`'s.

pub mod defrag;
pub mod output;
pub mod snapshot;

/// etcdutl's (cobrautl's) exit codes.
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_BAD_FEATURE: u8 = 4;
pub const EXIT_BAD_ARGS: u8 = 128;

/// A command that failed: the exit code and what follows `Error: ` on stderr.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl std::fmt::Display) -> Failure {
        Failure {
            code,
            message: message.to_string(),
        }
    }
}
