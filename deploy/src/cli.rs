//! The `zpm` command line (spec/zerovm.md §12.1). Exit status: 0 done,
//! 1 failed (the reason on stderr, `zpm: ...`), 2 usage error.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{ArgAction, CommandFactory, Parser, Subcommand};

use crate::auth::{self, LoginArgs};
use crate::log::{self, Level};
use crate::{bundle, deploy, execute, project, swift, zappfile::ZappFile};

/// ZeroVM package manager: create, bundle, deploy and run zapps on ZeroCloud.
#[derive(Parser, Debug)]
#[command(
    name = "zpm",
    version,
    disable_version_flag = true,
    disable_help_subcommand = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Print the version
    #[arg(long = "version", action = ArgAction::Version)]
    version: Option<bool>,
    /// Which messages to show on stderr
    #[arg(short = 'l', long = "log-level", global = true, default_value = "warning",
          value_parser = Level::NAMES)]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a project: a commented zapp.yaml (and a web UI with -u)
    New {
        /// Where (created if absent; must be empty)
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Project template
        #[arg(short = 't', long = "template", default_value = "python",
              value_parser = project::TEMPLATES)]
        template: String,
        /// Also write index.html.tmpl, style.css and zerocloud.js
        #[arg(short = 'u', long = "with-ui")]
        with_ui: bool,
    },
    /// Bundle the project around the current directory into <meta.name>.zapp
    Bundle {
        /// Refresh python dependencies (zpm installs none: a no-op)
        #[arg(short = 'r', long = "refresh-deps")]
        refresh_deps: bool,
    },
    /// Upload a zapp, its system map and its web UI to TARGET (container[/path])
    Deploy {
        /// Container, or container/path, to deploy to
        target: String,
        /// The .zapp file
        zapp: PathBuf,
        /// Run the zapp once deployed
        #[arg(long)]
        execute: bool,
        /// With --execute: print a table of the execution on stderr
        #[arg(short = 's', long)]
        summary: bool,
        /// Deploy into a container that already holds objects
        #[arg(short = 'f', long)]
        force: bool,
        /// Render UI templates without credentials (auth version 0.0)
        #[arg(long = "no-ui-auth")]
        no_ui_auth: bool,
        #[command(flatten)]
        login: LoginArgs,
    },
    /// Run a zapp: the local file, or the one deployed in --container
    Execute {
        /// The .zapp file
        zapp: PathBuf,
        /// Run the zapp deployed in this container (or container/path)
        #[arg(long)]
        container: Option<String>,
        /// Print a table of the execution on stderr
        #[arg(short = 's', long)]
        summary: bool,
        #[command(flatten)]
        login: LoginArgs,
        /// Arguments appended to every group's command line (after `--`
        /// when one starts with `-`)
        args: Vec<String>,
    },
    /// Log in and print the token and the storage URL
    Auth {
        #[command(flatten)]
        login: LoginArgs,
    },
    /// Print the version
    Version,
    /// Show help for zpm or one command
    Help {
        /// A command
        command: Option<String>,
    },
}

/// The version line of `zpm version` and `zpm --version`.
pub fn version_line() -> String {
    format!("zpm {}", env!("CARGO_PKG_VERSION"))
}

/// Runs zpm with `args` (the first is the program name); returns the exit
/// status.
pub fn main_with<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Some(level) = Level::parse(&cli.log_level) {
        log::set_level(level);
    }
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("zpm: {e:#}");
            1
        }
    }
}

fn login(args: &LoginArgs) -> Result<(auth::Credentials, swift::Session)> {
    let creds = args.credentials()?;
    let session = auth::login(&swift::client()?, &creds)?;
    log::debug(format!("storage URL {}", session.url));
    Ok((creds, session))
}

fn run(command: Command) -> Result<i32> {
    match command {
        Command::New {
            dir,
            template: _,
            with_ui,
        } => {
            for path in project::create_project(&dir, with_ui)? {
                println!("Created '{}'", path.display());
            }
        }
        Command::Bundle { refresh_deps } => {
            if refresh_deps {
                log::info("no dependencies to refresh: zpm bundles no python packages");
            }
            let cwd = std::env::current_dir().context("cannot read the current directory")?;
            let out = bundle::bundle(&cwd)?;
            let shown = if out.parent() == Some(cwd.as_path()) {
                out.file_name()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| out.clone())
            } else {
                out.clone()
            };
            println!("created {}", shown.display());
        }
        Command::Deploy {
            target,
            zapp,
            execute: run_it,
            summary,
            force,
            no_ui_auth,
            login: login_args,
        } => {
            let file = ZappFile::open(&zapp)?;
            let (creds, session) = login(&login_args)?;
            let opts = auth::auth_opts(&creds, no_ui_auth, &session.url);
            let index = deploy::deploy(&session, &target, &file, &opts, force)?;
            println!(
                "app deployed to\n  {}/{}",
                session.url,
                swift::quote_path(&index)
            );
            if run_it {
                let (target, _) = deploy::split_target(&target)?;
                let out = execute::run_deployed(&session, &target, &[])?;
                execute::report(&out, summary)?;
            }
        }
        Command::Execute {
            zapp,
            container,
            summary,
            login: login_args,
            args,
        } => {
            let (_, session) = login(&login_args)?;
            let out = match container {
                Some(c) => execute::run_deployed(&session, &c, &args)?,
                None => execute::run_local(&session, &zapp, &args)?,
            };
            execute::report(&out, summary)?;
        }
        Command::Auth { login: login_args } => {
            let (_, session) = login(&login_args)?;
            println!("Auth token: {}", session.token.as_deref().unwrap_or(""));
            println!("Storage URL: {}", session.url);
        }
        Command::Version => println!("{}", version_line()),
        Command::Help { command: None } => {
            Cli::command()
                .print_help()
                .context("cannot print the help")?;
        }
        Command::Help {
            command: Some(name),
        } => {
            let known = Cli::command()
                .get_subcommands()
                .any(|c| c.get_name() == name);
            if !known {
                eprintln!("no such command: {name}");
                return Ok(2);
            }
            if let Err(e) = Cli::try_parse_from(["zpm", name.as_str(), "--help"]) {
                e.exit();
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "zpm",
            "execute",
            "a.zapp",
            "--container",
            "c",
            "-s",
            "-A",
            "u",
            "-U",
            "x",
            "-K",
            "k",
            "--",
            "--name",
            "x y",
        ])
        .unwrap();
        match cli.command {
            Command::Execute {
                container,
                summary,
                login,
                args,
                ..
            } => {
                assert_eq!(container.as_deref(), Some("c"));
                assert!(summary);
                assert_eq!(login.auth.as_deref(), Some("u"));
                assert_eq!(args, ["--name", "x y"]);
            }
            c => panic!("{c:?}"),
        }
        let cli = Cli::try_parse_from([
            "zpm",
            "-l",
            "debug",
            "deploy",
            "-f",
            "--no-ui-auth",
            "-V",
            "2.0",
            "t",
            "z.zapp",
        ])
        .unwrap();
        assert_eq!(cli.log_level, "debug");
        assert!(matches!(
            cli.command,
            Command::Deploy {
                force: true,
                no_ui_auth: true,
                ..
            }
        ));
        let e = Cli::try_parse_from(["zpm", "new", "-t", "ruby"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = Cli::try_parse_from(["zpm", "deploy", "t", "z", "-V", "3.0"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }
}
