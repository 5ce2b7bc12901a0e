use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    cutover::cli::main(cutover::cli::Cli::parse())
}
