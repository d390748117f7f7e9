//! Authentication: the login behind `--user`/`--password`, and the `auth`, `user` and `role`
//! commands with etcdctl 3.4's argument checks, password prompts, messages and exit codes
//! (plus etcdctl 3.5's `auth status`).

use crate::cli::{PasswdArgs, PermissionArgs, RestArgs, UserAddArgs, UserGetArgs};
use crate::commands::{client_config, dial, emit, os_bytes};
use crate::exit::{Exit, status_message};
use crate::flags::{self, EnvScope, Globals};
use crate::gofmt::to_std;
use cairn_client::AuthChannel;
use cairn_proto::authpb::{Permission, UserAddOptions, permission::Type as PermType};
use cairn_proto::etcdserverpb::auth_client::AuthClient;
use cairn_proto::etcdserverpb::{
    AuthDisableRequest, AuthEnableRequest, AuthRoleAddRequest, AuthRoleDeleteRequest,
    AuthRoleGetRequest, AuthRoleGrantPermissionRequest, AuthRoleListRequest,
    AuthRoleRevokePermissionRequest, AuthStatusRequest, AuthUserAddRequest,
    AuthUserChangePasswordRequest, AuthUserDeleteRequest, AuthUserGetRequest,
    AuthUserGrantRoleRequest, AuthUserListRequest, AuthUserRevokeRoleRequest,
};
use std::future::Future;
use std::io::{BufRead as _, IsTerminal as _};
use tokio::runtime::Runtime;
use tokio::time::Instant;

/// What AuthEnable answers while user root lacks role root; etcdctl 3.4 then creates the role,
/// grants it and tries again.
const ROOT_ROLE_NOT_EXIST: &str = "etcdserver: root user does not have root role";

/// A user name and password to log in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// etcdctl's `authCfgFromCmd`: `--user name:password`; `--user name` with `--password` (the
/// whole `--user` is then the name, ':' and all); `--user name` alone asks for the password.
/// The client logs in only when both the name and the password are non-empty (as clientv3
/// does), so anything else is `None`.
pub fn credentials(user: &str, password: &str) -> Result<Option<Credentials>, Exit> {
    credentials_with(user, password, || ask_password("Password: "))
}

/// etcdctl 3.5's `authDestCfg` for make-mirror's `--dest-user`/`--dest-password`: as
/// [`credentials`], asking with its own prompt.
pub fn dest_credentials(user: &str, password: &str) -> Result<Option<Credentials>, Exit> {
    credentials_with(user, password, || ask_password("Destination Password: "))
}

fn credentials_with(
    user: &str,
    password: &str,
    ask: impl FnOnce() -> Result<String, String>,
) -> Result<Option<Credentials>, Exit> {
    if user.is_empty() {
        return Ok(None);
    }
    let (user, password) = if !password.is_empty() {
        (user.to_string(), password.to_string())
    } else if let Some((name, pw)) = user.split_once(':') {
        (name.to_string(), pw.to_string())
    } else {
        (user.to_string(), ask().map_err(Exit::error)?)
    };
    Ok((!user.is_empty() && !password.is_empty()).then_some(Credentials { user, password }))
}

/// speakeasy's `Ask`, which etcdctl uses: the prompt on stdout, one line from stdin (with the
/// terminal's echo off when stdin is one), a newline on stdout, white space trimmed.
fn ask_password(prompt: &str) -> Result<String, String> {
    emit(prompt.as_bytes());
    let terminal = std::io::stdin().is_terminal();
    if terminal {
        stty("-echo");
    }
    let mut line = Vec::new();
    let read = std::io::stdin().lock().read_until(b'\n', &mut line);
    if terminal {
        stty("echo");
    }
    emit(b"\n");
    read.map_err(|e| format!("failed during password entry: {e}"))?;
    Ok(String::from_utf8_lossy(&line).trim().to_string())
}

/// Turns the terminal's echo off or on, with `stty` as speakeasy does.
fn stty(arg: &str) {
    let _ = std::process::Command::new("stty")
        .arg(arg)
        .stdin(std::process::Stdio::inherit())
        .status();
}

/// Go's `fmt.Scanf("%s", &password)` on stdin, as `--interactive=false` reads a password: the
/// first word of the line (empty when the line or the input is), its delimiter consumed.
fn scan_word() -> String {
    scan_word_from(&mut std::io::stdin().lock())
}

fn scan_word_from(input: &mut impl std::io::BufRead) -> String {
    let mut word = Vec::new();
    while let Ok(&[c, ..]) = input.fill_buf() {
        input.consume(1);
        if c == b'\n' {
            break;
        }
        if c.is_ascii_whitespace() {
            if word.is_empty() {
                continue;
            }
            break;
        }
        word.push(c);
    }
    String::from_utf8_lossy(&word).into_owned()
}

/// etcdctl's `readPasswordInteractive`: the password twice, which must match and not be empty.
fn read_password_interactive(name: &str) -> Result<String, Exit> {
    let ask = |prompt: String| {
        ask_password(&prompt).map_err(|e| Exit::bad_args(format!("failed to ask password: {e}")))
    };
    let first = ask(format!("Password of {name}: "))?;
    if first.is_empty() {
        return Err(Exit::bad_args("empty password"));
    }
    let second = ask(format!("Type password of {name} again for confirmation: "))?;
    if first != second {
        return Err(Exit::bad_args("given passwords are different"));
    }
    Ok(first)
}

fn rpc_error(s: tonic::Status) -> Exit {
    Exit::error(status_message(&s))
}

fn lossy(arg: &std::ffi::OsString) -> String {
    arg.to_string_lossy().into_owned()
}

/// One command's Auth calls over one connection, all within `--command-timeout` (etcdctl's
/// `commandCtx`).
struct Session {
    auth: AuthClient<AuthChannel>,
    deadline: Instant,
}

impl Session {
    async fn open(g: &Globals) -> Result<Session, Exit> {
        let deadline = Instant::now() + to_std(g.command_timeout);
        let client = tokio::time::timeout_at(deadline, dial(&g.endpoints, g.dial_timeout))
            .await
            .unwrap_or_else(|_| Err(Exit::error("context deadline exceeded")))?;
        Ok(Session {
            auth: client.auth(),
            deadline,
        })
    }

    async fn call<T, F, Fut>(&self, call: F) -> Result<T, Exit>
    where
        F: FnOnce(AuthClient<AuthChannel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        match tokio::time::timeout_at(self.deadline, call(self.auth.clone())).await {
            Err(_) => Err(Exit::error("context deadline exceeded")),
            Ok(r) => r.map(tonic::Response::into_inner).map_err(rpc_error),
        }
    }
}

/// Dials and makes one Auth call within the command timeout.
fn auth_call<T, F, Fut>(rt: &Runtime, g: &Globals, call: F) -> Result<T, Exit>
where
    F: FnOnce(AuthClient<AuthChannel>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    rt.block_on(async { Session::open(g).await?.call(call).await })
}

/// `auth enable`: etcdctl 3.4 gives user root the role root when that is what is missing
/// (failing if the role exists but is not granted, as etcdctl does).
pub fn enable(rt: &Runtime, g: &mut Globals, a: &RestArgs) -> Result<(), Exit> {
    if !a.args.is_empty() {
        return Err(Exit::bad_args(
            "auth enable command does not accept any arguments",
        ));
    }
    client_config(g, EnvScope::Global)?;
    rt.block_on(async {
        let s = Session::open(g).await?;
        loop {
            let enabled = s
                .call(|mut c| async move { c.auth_enable(AuthEnableRequest {}).await })
                .await;
            match enabled {
                Ok(_) => return Ok(()),
                Err(e) if e.message.as_deref() == Some(ROOT_ROLE_NOT_EXIST) => {
                    s.call(|mut c| async move {
                        c.role_add(AuthRoleAddRequest {
                            name: "root".into(),
                        })
                        .await
                    })
                    .await?;
                    s.call(|mut c| async move {
                        c.user_grant_role(AuthUserGrantRoleRequest {
                            user: "root".into(),
                            role: "root".into(),
                        })
                        .await
                    })
                    .await?;
                }
                Err(e) => return Err(e),
            }
        }
    })?;
    emit(b"Authentication Enabled\n");
    Ok(())
}

pub fn disable(rt: &Runtime, g: &mut Globals, a: &RestArgs) -> Result<(), Exit> {
    if !a.args.is_empty() {
        return Err(Exit::bad_args(
            "auth disable command does not accept any arguments",
        ));
    }
    client_config(g, EnvScope::Global)?;
    auth_call(rt, g, |mut c| async move {
        c.auth_disable(AuthDisableRequest {}).await
    })?;
    emit(b"Authentication Disabled\n");
    Ok(())
}

pub fn status(rt: &Runtime, g: &mut Globals, a: &RestArgs) -> Result<(), Exit> {
    if !a.args.is_empty() {
        return Err(Exit::bad_args(
            "auth status command does not accept any arguments",
        ));
    }
    let printer = client_config(g, EnvScope::Global)?;
    let resp = auth_call(rt, g, |mut c| async move {
        c.auth_status(AuthStatusRequest {}).await
    })?;
    emit(&printer.auth_status(&resp)?);
    Ok(())
}

/// `user add <name[:password]>`: the password from `--new-user-password`, after the ':', typed
/// twice (`--interactive`, the default) or as the first word of stdin (`--interactive=false`).
pub fn user_add(rt: &Runtime, g: &mut Globals, a: &UserAddArgs) -> Result<(), Exit> {
    let interactive = flags::flag_bool_true(&a.interactive, "interactive").map_err(Exit::error)?;
    let no_password = flags::flag_bool(&a.no_password, "no-password").map_err(Exit::error)?;
    let [arg] = a.args.as_slice() else {
        return Err(Exit::bad_args(
            "user add command requires user name as its argument",
        ));
    };
    let arg = lossy(arg);
    let from_flag = a.new_user_password.clone().unwrap_or_default();
    let (name, password) = if no_password {
        (arg, String::new())
    } else if !from_flag.is_empty() {
        (arg, from_flag)
    } else if let Some((name, password)) = arg.split_once(':') {
        if name.is_empty() {
            return Err(Exit::bad_args("empty user name is not allowed"));
        }
        (name.to_string(), password.to_string())
    } else if interactive {
        let password = read_password_interactive(&arg)?;
        (arg, password)
    } else {
        (arg, scan_word())
    };
    let printer = client_config(g, EnvScope::Global)?;
    let req = AuthUserAddRequest {
        name: name.clone(),
        password,
        options: Some(UserAddOptions { no_password }),
        hashed_password: String::new(),
    };
    let resp = auth_call(rt, g, |mut c| async move { c.user_add(req).await })?;
    let simple = format!("User {name} created\n");
    emit(&printer.auth_changed(&resp.header, &resp, simple.as_bytes())?);
    Ok(())
}

pub fn user_delete(rt: &Runtime, g: &mut Globals, a: &RestArgs) -> Result<(), Exit> {
    let [name] = a.args.as_slice() else {
        return Err(Exit::bad_args(
            "user delete command requires user name as its argument",
        ));
    };
    let name = lossy(name);
    let printer = client_config(g, EnvScope::Global)?;
    let req = AuthUserDeleteRequest { name: name.clone() };
    let resp = auth_call(rt, g, |mut c| async move { c.user_delete(req).await })?;
    let simple = format!("User {name} deleted\n");
    emit(&printer.auth_changed(&resp.header, &resp, simple.as_bytes())?);
    Ok(())
}

/// `user get <name> [--detail]`: with `--detail`, each of the user's roles as `role get` shows
/// it, printed as they arrive (so an unsupported format fails after the first lines).
pub fn user_get(rt: &Runtime, g: &mut Globals, a: &UserGetArgs) -> Result<(), Exit> {
    let detail = flags::flag_bool(&a.detail, "detail").map_err(Exit::error)?;
    let [name] = a.args.as_slice() else {
        return Err(Exit::bad_args(
            "user get command requires user name as its argument",
        ));
    };
    let name = lossy(name);
    let printer = client_config(g, EnvScope::Global)?;
    rt.block_on(async {
        let s = Session::open(g).await?;
        let req = AuthUserGetRequest { name: name.clone() };
        let resp = s.call(|mut c| async move { c.user_get(req).await }).await?;
        if !detail {
            emit(&printer.user_get(&name, &resp)?);
            return Ok(());
        }
        emit(format!("User: {name}\n").as_bytes());
        for role in &resp.roles {
            emit(b"\n");
            let req = AuthRoleGetRequest { role: role.clone() };
            let r = s.call(|mut c| async move { c.role_get(req).await }).await?;
            emit(&printer.role_get(role, &r)?);
        }
        Ok(())
    })
}

pub fn user_list(rt: &Runtime, g: &mut Globals, a: &RestArgs) -> Result<(), Exit> {
    if !a.args.is_empty() {
        return Err(Exit::bad_args("user list command requires no arguments"));
    }
    let printer = client_config(g, EnvScope::Global)?;
    let resp = auth_call(rt, g, |mut c| async move {
        c.user_list(AuthUserListRequest {}).await
    })?;
    emit(&printer.user_list(&resp)?);
    Ok(())
}

pub fn user_passwd(rt: &Runtime, g: &mut Globals, a: &PasswdArgs) -> Result<(), Exit> {
    let interactive = flags::flag_bool_true(&a.interactive, "interactive").map_err(Exit::error)?;
    let [name] = a.args.as_slice() else {
        return Err(Exit::bad_args(
            "user passwd command requires user name as its argument",
        ));
    };
    let name = lossy(name);
    let password = if interactive {
        read_password_interactive(&name)?
    } else {
        scan_word()
    };
    let printer = client_config(g, EnvScope::Global)?;
    let req = AuthUserChangePasswordRequest {
        name,
        password,
        hashed_password: String::new(),
    };
    let resp = auth_call(
        rt,
        g,
        |mut c| async move { c.user_change_password(req).await },
    )?;
    emit(&printer.auth_changed(&resp.header, &resp, b"Password updated\n")?);
    Ok(())
}

pub fn user_grant_role(rt: &Runtime, g: &mut Globals, a: &RestArgs) -> Result<(), Exit> {
    let [user, role] = a.args.as_slice() else {
        return Err(Exit::bad_args(
            "user grant command requires user name and role name as its argument",
        ));
    };
    let (user, role) = (lossy(user), lossy(role));
    let printer = client_config(g, EnvScope::Global)?;
    let req = AuthUserGrantRoleRequest {
        user: user.clone(),
        role: role.clone(),
    };
    let resp = auth_call(rt, g, |mut c| async move { c.user_grant_role(req).await })?;
    let simple = format!("Role {role} is granted to user {user}\n");
    emit(&printer.auth_changed(&resp.header, &resp, simple.as_bytes())?);
    Ok(())
}

pub fn user_revoke_role(rt: &Runtime, g: &mut Globals, a: &RestArgs) -> Result<(), Exit> {
    let [user, role] = a.args.as_slice() else {
        return Err(Exit::bad_args(
            "user revoke-role requires user name and role name as its argument",
        ));
    };
    let (user, role) = (lossy(user), lossy(role));
    let printer = client_config(g, EnvScope::Global)?;
    let req = AuthUserRevokeRoleRequest {
        name: user.clone(),
        role: role.clone(),
    };
    let resp = auth_call(rt, g, |mut c| async move { c.user_revoke_role(req).await })?;
    let simple = format!("Role {role} is revoked from user {user}\n");
    emit(&printer.auth_changed(&resp.header, &resp, simple.as_bytes())?);
    Ok(())
}

pub fn role_add(rt: &Runtime, g: &mut Globals, a: &RestArgs) -> Result<(), Exit> {
    let [name] = a.args.as_slice() else {
        return Err(Exit::bad_args(
            "role add command requires role name as its argument",
        ));
    };
    let name = lossy(name);
    let printer = client_config(g, EnvScope::Global)?;
    let req = AuthRoleAddRequest { name: name.clone() };
    let resp = auth_call(rt, g, |mut c| async move { c.role_add(req).await })?;
    let simple = format!("Role {name} created\n");
    emit(&printer.auth_changed(&resp.header, &resp, simple.as_bytes())?);
    Ok(())
}

pub fn role_delete(rt: &Runtime, g: &mut Globals, a: &RestArgs) -> Result<(), Exit> {
    let [name] = a.args.as_slice() else {
        return Err(Exit::bad_args(
            "role delete command requires role name as its argument",
        ));
    };
    let name = lossy(name);
    let printer = client_config(g, EnvScope::Global)?;
    let req = AuthRoleDeleteRequest { role: name.clone() };
    let resp = auth_call(rt, g, |mut c| async move { c.role_delete(req).await })?;
    let simple = format!("Role {name} deleted\n");
    emit(&printer.auth_changed(&resp.header, &resp, simple.as_bytes())?);
    Ok(())
}

pub fn role_get(rt: &Runtime, g: &mut Globals, a: &RestArgs) -> Result<(), Exit> {
    let [name] = a.args.as_slice() else {
        return Err(Exit::bad_args(
            "role get command requires role name as its argument",
        ));
    };
    let name = lossy(name);
    let printer = client_config(g, EnvScope::Global)?;
    let req = AuthRoleGetRequest { role: name.clone() };
    let resp = auth_call(rt, g, |mut c| async move { c.role_get(req).await })?;
    emit(&printer.role_get(&name, &resp)?);
    Ok(())
}

pub fn role_list(rt: &Runtime, g: &mut Globals, a: &RestArgs) -> Result<(), Exit> {
    if !a.args.is_empty() {
        return Err(Exit::bad_args("role list command requires no arguments"));
    }
    let printer = client_config(g, EnvScope::Global)?;
    let resp = auth_call(rt, g, |mut c| async move {
        c.role_list(AuthRoleListRequest {}).await
    })?;
    emit(&printer.role_list(&resp)?);
    Ok(())
}

/// clientv3's `StrToPermissionType`: read, write or readwrite, in any case.
fn permission_type(s: &str) -> Result<PermType, Exit> {
    PermType::from_str_name(&s.to_uppercase())
        .ok_or_else(|| Exit::bad_args(format!("invalid permission type: {s}")))
}

/// etcdctl's `permRange`: the key and range end a permission covers. An empty key stands for
/// every key (`\0`, with `\0` as the range end for `--prefix` and `--from-key`); otherwise
/// `--prefix` and `--from-key` make the range end and exclude an explicit one.
fn permission_range(args: &[Vec<u8>], prefix: bool, from_key: bool) -> Result<PermRange, Exit> {
    const EXCLUSIVE: &str = "--from-key and --prefix flags are mutually exclusive";
    let Some(key) = args.first() else {
        return Ok(PermRange::default());
    };
    if key.is_empty() {
        if prefix && from_key {
            return Err(Exit::bad_args(EXCLUSIVE));
        }
        let end = if prefix || from_key { vec![0] } else { vec![] };
        return Ok(PermRange { key: vec![0], end });
    }
    let end = match (args.get(1), prefix, from_key) {
        (None, true, true) => return Err(Exit::bad_args(EXCLUSIVE)),
        (None, true, false) => cairn_client::prefix_end(key),
        (None, false, true) => vec![0],
        (None, false, false) => vec![],
        (Some(_), true, _) => {
            return Err(Exit::bad_args(
                "unexpected endkey argument with --prefix flag",
            ));
        }
        (Some(_), false, true) => {
            return Err(Exit::bad_args(
                "unexpected endkey argument with --from-key flag",
            ));
        }
        (Some(end), false, false) => end.clone(),
    };
    Ok(PermRange {
        key: key.clone(),
        end,
    })
}

#[derive(Debug, Default, PartialEq, Eq)]
struct PermRange {
    key: Vec<u8>,
    end: Vec<u8>,
}

fn permission_flags(a: &PermissionArgs) -> Result<(bool, bool), Exit> {
    Ok((
        flags::flag_bool(&a.prefix, "prefix").map_err(Exit::error)?,
        flags::flag_bool(&a.from_key, "from-key").map_err(Exit::error)?,
    ))
}

pub fn role_grant_permission(
    rt: &Runtime,
    g: &mut Globals,
    a: &PermissionArgs,
) -> Result<(), Exit> {
    let (prefix, from_key) = permission_flags(a)?;
    let args = os_bytes(&a.args);
    if args.len() < 3 {
        return Err(Exit::bad_args(
            "role grant command requires role name, permission type, and key [endkey] as its argument",
        ));
    }
    let role = lossy(&a.args[0]);
    let kind = permission_type(&lossy(&a.args[1]))?;
    let range = permission_range(&args[2..], prefix, from_key)?;
    let printer = client_config(g, EnvScope::Global)?;
    let req = AuthRoleGrantPermissionRequest {
        name: role.clone(),
        perm: Some(Permission {
            perm_type: kind as i32,
            key: range.key.into(),
            range_end: range.end.into(),
        }),
    };
    let resp = auth_call(
        rt,
        g,
        |mut c| async move { c.role_grant_permission(req).await },
    )?;
    let simple = format!("Role {role} updated\n");
    emit(&printer.auth_changed(&resp.header, &resp, simple.as_bytes())?);
    Ok(())
}

pub fn role_revoke_permission(
    rt: &Runtime,
    g: &mut Globals,
    a: &PermissionArgs,
) -> Result<(), Exit> {
    let (prefix, from_key) = permission_flags(a)?;
    let args = os_bytes(&a.args);
    if args.len() < 2 {
        return Err(Exit::bad_args(
            "role revoke-permission command requires role name and key [endkey] as its argument",
        ));
    }
    let role = lossy(&a.args[0]);
    let range = permission_range(&args[1..], prefix, from_key)?;
    let printer = client_config(g, EnvScope::Global)?;
    let req = AuthRoleRevokePermissionRequest {
        role: role.clone(),
        key: range.key.into(),
        range_end: range.end.clone().into(),
    };
    let resp = auth_call(
        rt,
        g,
        |mut c| async move { c.role_revoke_permission(req).await },
    )?;
    // etcdctl names the key as given (empty rather than `\0`).
    let mut simple = Vec::new();
    let key = &args[1];
    if range.end.is_empty() {
        simple.extend_from_slice(b"Permission of key ");
        simple.extend_from_slice(key);
    } else {
        simple.extend_from_slice(b"Permission of range [");
        simple.extend_from_slice(key);
        simple.extend_from_slice(b", ");
        if range.end != [0] {
            simple.extend_from_slice(&range.end);
            simple.push(b')');
        } else {
            simple.extend_from_slice(b"<open ended>");
        }
    }
    simple.extend_from_slice(format!(" is revoked from role {role}\n").as_bytes());
    emit(&printer.auth_changed(&resp.header, &resp, &simple)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(user: &str, password: &str) -> Option<Credentials> {
        credentials_with(user, password, || Ok("typed".to_string())).unwrap()
    }

    fn c(user: &str, password: &str) -> Option<Credentials> {
        Some(Credentials {
            user: user.into(),
            password: password.into(),
        })
    }

    #[test]
    fn credentials_follow_etcdctl() {
        assert_eq!(creds("", ""), None);
        assert_eq!(creds("", "pw"), None);
        assert_eq!(creds("root:pw", ""), c("root", "pw"));
        assert_eq!(creds("root:p:w", ""), c("root", "p:w"));
        assert_eq!(creds("root:x", "pw"), c("root:x", "pw"));
        assert_eq!(creds("root", "pw"), c("root", "pw"));
        assert_eq!(creds("root", ""), c("root", "typed"));
        // No login without a name or a password.
        assert_eq!(creds("carol:", ""), None);
        assert_eq!(creds(":pw", ""), None);
        let none = credentials_with("root", "", || Ok(String::new())).unwrap();
        assert_eq!(none, None);
    }

    #[test]
    fn scanf_reads_the_first_word() {
        let scan = |s: &str| scan_word_from(&mut s.as_bytes());
        assert_eq!(scan("pw\n"), "pw");
        assert_eq!(scan("  p w\n"), "p");
        assert_eq!(scan("\npw\n"), "");
        assert_eq!(scan(""), "");
        assert_eq!(scan("last"), "last");
        let mut input: &[u8] = b"one\ntwo\n";
        assert_eq!(scan_word_from(&mut input), "one");
        assert_eq!(input, b"two\n");
    }

    fn range(args: &[&str], prefix: bool, from_key: bool) -> Result<PermRange, String> {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        permission_range(&args, prefix, from_key).map_err(|e| e.message.unwrap_or_default())
    }

    fn r(key: &[u8], end: &[u8]) -> Result<PermRange, String> {
        Ok(PermRange {
            key: key.to_vec(),
            end: end.to_vec(),
        })
    }

    #[test]
    fn permission_ranges_follow_etcdctl() {
        assert_eq!(range(&["/a"], false, false), r(b"/a", b""));
        assert_eq!(range(&["/a"], true, false), r(b"/a", b"/b"));
        assert_eq!(range(&["/a"], false, true), r(b"/a", b"\0"));
        assert_eq!(range(&["/a", "/z", "x"], false, false), r(b"/a", b"/z"));
        assert_eq!(range(&[""], false, false), r(b"\0", b""));
        assert_eq!(range(&["", "/z"], false, false), r(b"\0", b""));
        assert_eq!(range(&[""], true, false), r(b"\0", b"\0"));
        assert_eq!(
            range(&["/a"], true, true),
            Err("--from-key and --prefix flags are mutually exclusive".into())
        );
        assert_eq!(
            range(&["/a", "/b"], true, false),
            Err("unexpected endkey argument with --prefix flag".into())
        );
        assert_eq!(
            range(&["/a", "/b"], false, true),
            Err("unexpected endkey argument with --from-key flag".into())
        );
    }

    #[test]
    fn permission_types() {
        assert_eq!(permission_type("readwrite").ok(), Some(PermType::Readwrite));
        assert_eq!(permission_type("Read").ok(), Some(PermType::Read));
        let e = permission_type("bogus").unwrap_err();
        assert_eq!(e.code, crate::exit::EXIT_BAD_ARGS);
        assert_eq!(e.message.as_deref(), Some("invalid permission type: bogus"));
    }
}
