//! `zerovm [options] MANIFEST`: runs one WebAssembly program as ZeroVM ran a nexe
//! (spec/zerovm.md §2, §7): the report on stdout, ZeroVM's exit code.
//!
//! Options kept: `-M<file>` (manifest), `-s` (report validation state 2),
//! `-F` (set up, then stop), `-t0` (report on stdout), `-v<n>` (accepted;
//! there is no syslog logging), `-P` and `-Q` (no-ops, for `zvsh`'s
//! `zerovm -PQ`). Refused with a message: `-t1`/`-t2`/`-t3` (syslog, fast
//! and daemon reports) and `-T` (ztrace). A bad command line prints the help
//! on stdout and exits 22, with no report, as ZeroVM did. Details of a
//! failure that the report's one-line exit state cannot hold go to stderr.
//! `ZEROVM_CACHE_DIR`, if set, keeps compiled modules there (a private
//! directory; see engine.rs). ZeroVM's refusal to run as root is not kept:
//! the wasm sandbox, not the uid, is the boundary (workers drop
//! privileges). The session runs in a `zerovm --worker` process (not in
//! the help) that this command starts, as every pool run does
//! (`sandbox::pool`, `sandbox::worker`).

use std::process::ExitCode;

use sandbox::cli::{run_manifest_file, RunOptions};
use sandbox::engine::Outcome;
use sandbox::errno;

const HELP: &str = "ZeroVM tag0 lightweight VM manager (WebAssembly), build zerocloud
Usage: <manifest> [-v#] [-stFPQ]

 -s skip validation (report validator state 2)
 -t <0> report to stdout (the only mode kept)
 -v <0..3> verbosity (accepted; nothing is logged)
 -F quit right before starting the program
 -P disable channel preallocation (no-op: never preallocated)
 -Q disable platform qualification (no-op)
 -M <file> the manifest (obsolete synonym of the positional argument)

Example: zerovm hello.manifest
";

struct Options {
    manifest: String,
    skip_validation: bool,
    prevalidate: bool,
}

enum Parsed {
    Run(Options),
    Usage(String),
    Refused(String),
}

fn parse(args: &[String]) -> Parsed {
    let mut manifest: Option<String> = None;
    let mut skip_validation = false;
    let mut prevalidate = false;
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
                        'v' => {}
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
        }),
        None => Parsed::Usage("no manifest given".into()),
    }
}

fn run(options: &Options) -> Outcome {
    run_manifest_file(
        std::path::Path::new(&options.manifest),
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
    if let Some(detail) = &outcome.detail {
        eprintln!("zerovm: {detail}");
    }
    print!("{}", outcome.report.render());
    ExitCode::from(u8::try_from(outcome.exit_code()).unwrap_or(1))
}
