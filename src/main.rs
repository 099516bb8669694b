//! `hallmark`: the command-line entry point. Parses arguments and hands each command to
//! [`cli`], which wires it to the library crates.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    if args.command.prints_for_a_reader() {
        end_quietly_on_a_closed_pipe();
    }
    // A simulated hall in one process logs every probe's registration: keep those runs quiet
    // unless asked, so the progress line and the summary are what the operator sees.
    let quiet = args.quiet || (args.verbose == 0 && args.command.simulates_a_hall());
    cli::init_tracing(args.verbose, quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Restores the default action of SIGPIPE, which Rust's runtime sets to "ignore": a command whose
/// output reader went away (`hallmark runs show RUN | head`) then ends quietly, as other Unix
/// tools do, rather than panicking on "failed printing to stdout". Only for commands that read
/// and print: a probe or a coordinator keeps going whatever happens to its terminal, so that its
/// interlocks and its store are never cut off by a closed pipe.
fn end_quietly_on_a_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_DFL before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
