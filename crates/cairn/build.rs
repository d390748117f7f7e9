//! Puts the commit and the compiler into `cairn --version` (etcd prints its Git SHA and Go
//! version there).

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // The commit changes what HEAD points at (or HEAD itself, detached).
    if let Some(git_dir) = output("git", &["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        if let Some(head_ref) = output("git", &["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={git_dir}/{head_ref}");
        }
    }
    if let Some(sha) = output("git", &["rev-parse", "--short", "HEAD"]) {
        println!("cargo:rustc-env=CAIRN_GIT_SHA={sha}");
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    if let Some(version) = output(&rustc, &["--version"]) {
        // "rustc 1.95.0 (…)": the first two words, as Go prints "go1.19.8".
        let short: Vec<&str> = version.split_whitespace().take(2).collect();
        println!("cargo:rustc-env=CAIRN_RUSTC_VERSION={}", short.join(" "));
    }
}
