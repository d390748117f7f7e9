//! `cairn`: the server binary. Accepts etcd's flags, `ETCD_*` variables and `--config-file`.

use cairn_server::Config;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cairn: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Err(e) = config.validate() {
        eprintln!("cairn: {e}");
        return std::process::ExitCode::from(2);
    }
    let level = match config.log_level.as_str() {
        "debug" => "debug",
        "warn" => "warn",
        "error" | "dpanic" | "panic" | "fatal" => "error",
        _ => "info",
    };
    let filter = EnvFilter::try_from_env("CAIRN_LOG").unwrap_or_else(|_| {
        // raft-rs is chatty at info; its warnings and errors still come through.
        EnvFilter::new(format!("{level},raft=warn"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
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
