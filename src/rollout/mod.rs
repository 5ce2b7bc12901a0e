//! The Rollout controller: revisions, canary arithmetic, the pure plan, and the I/O shell.

pub mod analysis;
pub mod announce;
pub mod bake;
pub mod bluegreen;
pub mod canary;
pub mod config;
mod finalize;
pub mod history;
mod observe;
mod observe_route;
pub mod plan;
pub mod reconcile;
mod record;
pub mod requires;
pub mod revision;
pub mod rolling;
pub mod route;
pub mod route_rules;
pub mod watch;
pub mod window;
