//! How a command ends: etcdctl's exit codes and its "Error: ..." line on stderr.

use std::fmt::Display;

/// A server or connection error.
pub const EXIT_ERROR: i32 = 1;
/// A failed call where etcdctl blames the connection (`lease timetolive`, `list`, `keep-alive`).
pub const EXIT_BAD_CONNECTION: i32 = 2;
/// Malformed `txn` input.
pub const EXIT_INVALID_INPUT: i32 = 3;
/// An unsupported output format or option value.
pub const EXIT_BAD_FEATURE: i32 = 4;
/// A watch the server ended.
pub const EXIT_INTERRUPTED: i32 = 5;
/// Wrong positional arguments or conflicting options.
pub const EXIT_BAD_ARGS: i32 = 128;

/// Ends the process with `code`, printing `Error: <message>` to stderr when there is a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
    pub message: Option<String>,
}

impl Exit {
    pub fn new(code: i32, message: impl Display) -> Exit {
        Exit {
            code,
            message: Some(message.to_string()),
        }
    }

    /// Exits with `code` after the command already reported what went wrong.
    pub fn silent(code: i32) -> Exit {
        Exit {
            code,
            message: None,
        }
    }

    pub fn error(message: impl Display) -> Exit {
        Exit::new(EXIT_ERROR, message)
    }

    pub fn bad_args(message: impl Display) -> Exit {
        Exit::new(EXIT_BAD_ARGS, message)
    }

    pub fn bad_feature(message: impl Display) -> Exit {
        Exit::new(EXIT_BAD_FEATURE, message)
    }

    pub fn invalid_input(message: impl Display) -> Exit {
        Exit::new(EXIT_INVALID_INPUT, message)
    }
}

/// The message etcdctl shows for a gRPC error: etcd's own errors (all "etcdserver: ...") bare,
/// anything else in grpc-go's `rpc error: code = X desc = Y` form.
pub fn status_message(status: &tonic::Status) -> String {
    let msg = status.message();
    if msg.starts_with("etcdserver: ") {
        return msg.to_string();
    }
    format!(
        "rpc error: code = {} desc = {msg}",
        grpc_code_name(status.code())
    )
}

/// grpc-go's `codes.Code.String()`.
fn grpc_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_errors_are_bare_others_wrapped() {
        let s =
            tonic::Status::out_of_range("etcdserver: mvcc: required revision is a future revision");
        assert_eq!(
            status_message(&s),
            "etcdserver: mvcc: required revision is a future revision"
        );
        let s = tonic::Status::unimplemented("cairn: x is not implemented yet");
        assert_eq!(
            status_message(&s),
            "rpc error: code = Unimplemented desc = cairn: x is not implemented yet"
        );
    }
}
