//! Output shared by Cairn's command-line tools, `cairnctl` and `cairnutl`: Go's formatting of
//! numbers, sizes, durations and strings ([`gofmt`]) and etcdctl's tables ([`table`]), so that
//! both print exactly what etcdctl and etcdutl print, and the progress display of long tasks
//! ([`progress`]).
//!
//! Owns: formatting only. Must not: talk to a server, read files, or know a command: the tools
//! decide what to print, this crate how it looks.

pub mod gofmt;
pub mod progress;
pub mod table;
