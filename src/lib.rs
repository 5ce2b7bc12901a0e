//! cutover: a Kubernetes operator that carries out progressive delivery — canary, blue-green
//! and rolling rollouts, database migrations as Jobs, feature flags by percentage, and
//! Prometheus analysis that decides promote or abort.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod analysis;
pub mod api;
pub mod cli;
pub mod controller;
pub mod flag;
pub mod migration;
pub mod notify;
pub mod rollout;
pub mod sim;
pub mod simulate;
pub mod telemetry;
pub mod window;
pub mod yaml;
