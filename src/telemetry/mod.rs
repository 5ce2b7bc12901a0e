//! Logs (tracing), and the HTTP endpoints `/metrics`, `/healthz` and `/readyz`.

pub mod server;

pub use server::{Health, serve};

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::controller::config::LogFormat;

/// A log filter that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid log filter {filter:?}: {reason}")]
pub struct LogInitError {
    filter: String,
    reason: String,
}

/// Installs the global tracing subscriber writing to stderr; a second call does nothing.
pub fn init_logging(format: LogFormat, filter: &str) -> Result<(), LogInitError> {
    let filter_layer = EnvFilter::try_new(filter).map_err(|e| LogInitError {
        filter: filter.to_string(),
        reason: e.to_string(),
    })?;
    let registry = tracing_subscriber::registry().with(filter_layer);
    let result = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        // Colour only for a person at a terminal: a file or a log collector gets plain text.
        LogFormat::Pretty => registry
            .with(
                fmt::layer()
                    .compact()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // Already initialised (tests, or `dev` running several parts): keep the first.
    let _ = result;
    Ok(())
}
