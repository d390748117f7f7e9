//! `cairn`: the server binary. Accepts etcd's flags, `ETCD_*` variables and `--config-file`.

use cairn_server::Config;

fn main() -> std::process::ExitCode {
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cairn: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if config.version {
        print!("{}", version_lines());
        return std::process::ExitCode::SUCCESS;
    }
    if let Err(e) = config.validate() {
        eprintln!("cairn: {e}");
        return std::process::ExitCode::from(2);
    }
    if let Err(e) = cairn_server::logging::init(&config) {
        eprintln!("cairn: {e}");
        return std::process::ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cairn: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cairn_server::run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("cairn: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `--version` as etcd prints it, with Cairn's values: tools parse the first line.
fn version_lines() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    };
    format!(
        "etcd Version: {}\nGit SHA: {}\nGo Version: {} (Cairn {})\nGo OS/Arch: {}/{arch}\n",
        cairn_server::ETCD_VERSION,
        option_env!("CAIRN_GIT_SHA").unwrap_or("Not provided"),
        option_env!("CAIRN_RUSTC_VERSION").unwrap_or("rustc"),
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
    )
}
