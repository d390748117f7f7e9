//! Formatting shared by Cairn's command-line tools (`cairnctl` here, and `cairnutl`): Go's
//! formatting of numbers, sizes, durations and strings ([`gofmt`]) and etcdctl's tables
//! ([`table`]), so that both print exactly what etcdctl and etcdutl print, and the progress
//! display of long tasks ([`progress`]).

pub mod gofmt;
pub mod progress;
pub mod table;
