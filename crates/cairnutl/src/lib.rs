//! etcdutl's offline snapshot commands as a library: `cairnutl snapshot status|restore` runs
//! them from its own command line, and `cairnctl snapshot status|restore` (which etcdctl 3.5
//! still answers, with a deprecation note) runs the same code, so both print the same.
//!
//! Owns: running those commands and printing their results and log lines the way etcdutl
//! does. Must not: know how a data dir or a snapshot file is laid out; that is
//! `cairn_server::offline`'s.

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
