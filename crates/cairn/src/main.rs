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
