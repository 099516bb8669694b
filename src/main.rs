//! `hallmark`: the command-line entry point. Parses arguments and hands each command to
//! [`cli`], which wires it to the library crates.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
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
