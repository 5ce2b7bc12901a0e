//! `cutover simulate SCENARIO`: prints the timeline of a scenario run and exits non-zero
//! naming the first expectation that did not hold.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, ValueEnum};

use crate::simulate::{self, plot};

/// How the timeline is printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// One readable line per entry.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Arguments of `cutover simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The scenario file (format: docs/simulate.md).
    pub scenario: PathBuf,
    /// Also draw the run as an SVG picture into this file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Timeline format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Runs `cutover simulate`.
pub fn run(args: &SimulateArgs) -> ExitCode {
    let scenario = match simulate::scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match simulate::run(&scenario) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for entry in &report.timeline {
        match args.output {
            Output::Text => println!("{}", entry.render()),
            Output::Json => println!(
                "{}",
                serde_json::to_string(entry).unwrap_or_else(|_| "{}".into())
            ),
        }
    }
    if let Some(path) = &args.plot {
        let written = plot::svg(&report).and_then(|svg| {
            std::fs::write(path, svg).map_err(|e| format!("{}: {e}", path.display()))
        });
        if let Err(e) = written {
            eprintln!("error: cannot draw the plot: {e}");
            return ExitCode::from(2);
        }
    }
    let file = args.scenario.display();
    match report.violations.first() {
        None => {
            eprintln!(
                "{}: {} expectation(s) held over {}",
                report.name,
                report.expectations,
                simulate::clock(report.duration)
            );
            ExitCode::SUCCESS
        }
        Some((index, line, message)) => {
            for (i, l, m) in &report.violations {
                eprintln!("{file}:{l}: expectation {i} failed: {m}");
            }
            eprintln!(
                "{}: expectation {index} (line {line}) failed first: {message}",
                report.name
            );
            ExitCode::FAILURE
        }
    }
}
