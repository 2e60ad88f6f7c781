//! `zpm`: see `deploy::cli`.

fn main() {
    std::process::exit(deploy::cli::main_with(std::env::args_os()));
}
