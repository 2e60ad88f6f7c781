//! `zerovm [options] MANIFEST`: runs one WebAssembly program as ZeroVM ran a nexe
//! (spec/zerovm.md §2, §7): the report on stdout, ZeroVM's exit code.
//!
//! Options kept: `-M<file>` (manifest), `-s` (report validation state 2),
//! `-F` (set up, then stop), `-t0` (report on stdout), `-v<n>` (no syslog
//! logging; 1 or more shows a timeout's detail), `-P` and `-Q` (no-ops, for `zvsh`'s
//! `zerovm -PQ`). Refused with a message: `-t1`/`-t2`/`-t3` (syslog, fast
//! and daemon reports) and `-T` (ztrace). A bad command line prints the help
//! on stdout and exits 22, with no report, as ZeroVM did; `--help`/`-h`
//! print a longer help and `--version` the version, exit 0. Details of a
//! failure that the report's one-line exit state cannot hold go to stderr
//! (a timeout: one line, `timed out after N s` and how to raise it).
//! `ZEROVM_CACHE_DIR`, if set, keeps compiled modules there (a private
//! directory; see engine.rs). ZeroVM's refusal to run as root is not kept:
//! the wasm sandbox, not the uid, is the boundary (workers drop
//! privileges). The session runs in a `zerovm --worker` process (not in
//! the help) that this command starts, as every pool run does
//! (`sandbox::pool`, `sandbox::worker`).

use std::process::ExitCode;

use std::path::Path;

use sandbox::cli::{self, run_manifest_file, RunOptions};
use sandbox::engine::Outcome;
use sandbox::errno;
use sandbox::manifest::Manifest;
use sandbox::report::Ending;

const HELP: &str = "ZeroVM tag0 lightweight VM manager (WebAssembly), build zerocloud
Usage: <manifest> [-v#] [-stFPQ]
       zerovm --help | -h | --version

 -s skip validation (report validator state 2)
 -t <0> report to stdout (the only mode kept)
 -v <0..3> verbosity (1 or more: a timeout's detail too)
 -F quit right before starting the program
 -P disable channel preallocation (no-op: never preallocated)
 -Q disable platform qualification (no-op)
 -M <file> the manifest (obsolete synonym of the positional argument)

Example: zerovm hello.manifest
";

/// `--help`: [`HELP`], then what the manifest decides and the environment.
fn long_help() -> String {
    format!(
        "{HELP}
The manifest gives the program, its channels and its limits: Timeout (seconds
of wall clock; past it the report says \"session timeout\" and zerovm exits 4)
and Memory (bytes). zvsh writes them for you, with Timeout = 50 and
Memory = 4294967296 (4 GiB) by default (see zvsh --help and zvsh.cfg).
A manifest saved by `zvsh --zvm-save-dir DIR python3 ...` replays the Python
run: its Program is a module of the installed Python image (`zerocloud image
install python`; zvsh finds it in ${images_env}, else {images_dir}).

Environment: ZEROVM_CACHE_DIR keeps compiled modules across runs (a private
directory; default: a temporary one per run).
Exit code: 0 when the session ran (the program's own code is report line 3),
else ZeroVM's error number (4: timeout or trap, 8: invalid module, 22: bad
command line, ...).
",
        images_env = sandbox::image::IMAGES_ENV,
        images_dir = sandbox::cli::DEFAULT_IMAGES_DIR,
    )
}

struct Options {
    manifest: String,
    skip_validation: bool,
    prevalidate: bool,
    verbosity: u32,
}

enum Parsed {
    Run(Options),
    Help,
    Version,
    Usage(String),
    Refused(String),
}

fn parse(args: &[String]) -> Parsed {
    match args.first().map(String::as_str) {
        Some("--help" | "-h") => return Parsed::Help,
        Some("--version") => return Parsed::Version,
        _ => {}
    }
    let mut manifest: Option<String> = None;
    let mut skip_validation = false;
    let mut prevalidate = false;
    let mut verbosity = 0;
    let mut set_manifest = |m: String| -> Result<(), String> {
        if manifest.is_some() {
            return Err("2nd manifest encountered".into());
        }
        manifest = Some(m);
        Ok(())
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            if let Err(e) = set_manifest(arg.clone()) {
                return Parsed::Usage(e);
            }
            continue;
        };
        for (at, flag) in flags.char_indices() {
            match flag {
                's' => skip_validation = true,
                'F' => prevalidate = true,
                'P' | 'Q' => {}
                't' | 'v' | 'M' | 'T' => {
                    let rest = &flags[at + 1..];
                    let value = if !rest.is_empty() {
                        rest.to_string()
                    } else if let Some(next) = args.get(i) {
                        i += 1;
                        next.clone()
                    } else {
                        return Parsed::Usage(format!("option -{flag} needs a value"));
                    };
                    match flag {
                        't' if value.trim() == "0" => {}
                        't' => {
                            return Parsed::Refused(format!(
                                "report mode -t{value} is not supported: reports go to stdout (-t0) only"
                            ))
                        }
                        'v' => verbosity = value.trim().parse().unwrap_or(1),
                        'M' => {
                            if let Err(e) = set_manifest(value) {
                                return Parsed::Usage(e);
                            }
                        }
                        _ => return Parsed::Refused("ztrace (-T) is not supported".into()),
                    }
                    break;
                }
                other => return Parsed::Usage(format!("unknown option -{other}")),
            }
        }
    }
    match manifest {
        Some(manifest) => Parsed::Run(Options {
            manifest,
            skip_validation,
            prevalidate,
            verbosity,
        }),
        None => Parsed::Usage("no manifest given".into()),
    }
}

fn run(options: &Options) -> Outcome {
    run_manifest_file(
        Path::new(&options.manifest),
        RunOptions {
            skip_validation: options.skip_validation,
            prevalidate: options.prevalidate,
            ..RunOptions::default()
        },
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Hidden: a worker process of `sandbox::pool` (see sandbox::worker).
    if args.first().map(String::as_str) == Some("--worker") {
        return sandbox::worker::main(&args[1..]);
    }
    let options = match parse(&args) {
        Parsed::Run(o) => o,
        Parsed::Help => {
            print!("{}", long_help());
            return ExitCode::SUCCESS;
        }
        Parsed::Version => {
            println!("zerovm (zerocloud sandbox) {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Parsed::Usage(why) => {
            eprintln!("zerovm: {why}");
            print!("{HELP}");
            return ExitCode::from(errno::EINVAL as u8);
        }
        Parsed::Refused(why) => {
            eprintln!("zerovm: {why}");
            return ExitCode::from(errno::EINVAL as u8);
        }
    };
    let outcome = run(&options);
    if outcome.ending == Ending::Timeout && options.verbosity == 0 {
        // One line, not the guest's backtrace.
        let seconds = Manifest::load(Path::new(&options.manifest)).map_or(0, |m| m.timeout);
        eprintln!(
            "zerovm: {}",
            cli::timed_out(seconds, cli::RAISE_IN_MANIFEST)
        );
    } else if let Some(detail) = &outcome.detail {
        eprintln!("zerovm: {detail}");
    }
    print!("{}", outcome.report.render());
    ExitCode::from(u8::try_from(outcome.exit_code()).unwrap_or(1))
}
