//! Shared controller runtime: configuration, context, clock, errors, backoff, metrics and
//! the wiring that runs the controllers until shutdown.
//!
//! Nothing here decides what a Rollout, MigrationJob or FeatureFlag should do; that lives in
//! each controller's pure plan.

pub mod backoff;
pub mod cache;
pub mod clock;
pub mod config;
pub mod context;
pub mod egress;
pub mod error;
pub mod fair;
pub mod freeze;
pub mod leader;
pub mod metrics;
pub mod ratelimit;
pub mod rbac;
pub mod reconcile;
pub mod rollout_metrics;
pub mod runner;
pub mod runs;
pub mod shell;
pub mod templates;

pub use backoff::Backoff;
pub use clock::Clock;
pub use config::Config;
pub use context::Context;
pub use error::{Error, ErrorCategory};
pub use metrics::Metrics;
