//! Deployment windows: when a Rollout, a FeatureFlag's rollout or a MigrationJob may make
//! progress, as a platform team's change calendar says.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Duration;

/// Annotation on a Namespace that freezes every rollout and migration in it; its value
/// says why (`"release freeze until 2 January"`).
pub const ANNOTATION_FREEZE: &str = "cutover.dev/freeze";

/// Most windows one object may list.
pub const MAX_WINDOWS: usize = 16;

/// Whether a window allows changes or denies them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum WindowKind {
    /// Changes may go ahead while it is open; with any allow window, only then.
    #[default]
    Allow,
    /// No change goes ahead while it is open, whatever allows it.
    Deny,
}

/// One window: a cron schedule of its starts, how long each lasts, and in which time zone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentWindow {
    /// Allow or Deny.
    pub kind: WindowKind,
    /// When the window opens: five cron fields (minute hour day-of-month month
    /// day-of-week) or `@daily`, `@weekly`, `@monthly`, `@yearly`, `@hourly`.
    #[schemars(length(min = 1, max = 128))]
    pub schedule: String,
    /// How long it stays open from each start (at most 744h, 31 days).
    pub duration: Duration,
    /// IANA time zone the schedule is read in (default UTC), e.g. `Europe/Berlin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: Option<String>,
}
