//! `zvapp`: run a system map or a zapp locally (see `zerocloud::zvapp`).

use std::io::IsTerminal;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Hidden: a sandbox worker of the private store's pool; this binary is
    // its own worker program, as `zerocloud` is.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--worker") {
        return sandbox::worker::main(&args[1..]);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let args = zerocloud::zvapp::Args::parse();
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(zerocloud::zvapp::run(args)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zvapp: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
