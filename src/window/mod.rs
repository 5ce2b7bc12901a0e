//! Deployment windows decided: whether changes may go ahead at an instant, and if not, why
//! and when they next may. Pure: the windows, the Namespace's freeze and the time in.

pub mod cron;

use jiff::{SignedDuration, Timestamp, tz::TimeZone};

use crate::api::window::{DeploymentWindow, MAX_WINDOWS, WindowKind};
use cron::Cron;

/// Longest a window may last: a month's freeze.
pub const MAX_WINDOW_SECS: u64 = 744 * 3600;

/// How many window edges the search for the next opening crosses before it gives up (a
/// deny window that starts again before it ends, every minute, never opens).
const MAX_EDGES: usize = 64;

/// Whether changes may go ahead now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// They may.
    Open,
    /// They may not.
    Closed {
        /// Why, for status, Events and the plugin.
        reason: String,
        /// When they next may, if that is known: not while a freeze stands, nor beyond the
        /// search's reach.
        opens_at: Option<Timestamp>,
    },
}

impl Gate {
    /// Whether changes may go ahead.
    pub fn is_open(&self) -> bool {
        matches!(self, Gate::Open)
    }

    /// The status message of a change held by this gate: why, and until when.
    pub fn message(&self) -> Option<String> {
        match self {
            Gate::Open => None,
            Gate::Closed {
                reason,
                opens_at: Some(at),
            } => Some(format!("{reason}; the next window opens at {at}")),
            Gate::Closed { reason, .. } => Some(reason.clone()),
        }
    }
}

/// One window ready to be matched.
struct Compiled {
    kind: WindowKind,
    cron: Cron,
    duration: SignedDuration,
    tz: TimeZone,
    text: String,
}

impl Compiled {
    /// When the start in force at `at` ends, if one is.
    fn open_until(&self, at: Timestamp) -> Option<Timestamp> {
        let start = self.cron.prev(at, &self.tz)?;
        let end = start.checked_add(self.duration).ok()?;
        (end > at).then_some(end)
    }
}

/// What is wrong with the windows at `path`, as (field path, message), for InvalidSpec and
/// lint; empty when all are sound.
pub fn problems(windows: &[DeploymentWindow], path: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if windows.len() > MAX_WINDOWS {
        out.push((
            path.to_string(),
            format!("{} windows; at most {MAX_WINDOWS}", windows.len()),
        ));
    }
    for (i, w) in windows.iter().enumerate() {
        if let Err(e) = compile(w) {
            out.push((format!("{path}[{i}]"), e));
        }
    }
    out
}

fn compile(w: &DeploymentWindow) -> Result<Compiled, String> {
    let cron: Cron = w
        .schedule
        .parse()
        .map_err(|e: cron::CronError| e.to_string())?;
    let secs = w.duration.as_secs();
    if !(60..=MAX_WINDOW_SECS).contains(&secs) {
        return Err(format!(
            "duration {} must be between 1m and 744h",
            humanize(secs)
        ));
    }
    let zone = w.time_zone.as_deref().unwrap_or("UTC");
    let tz = TimeZone::get(zone).map_err(|_| format!("unknown time zone {zone:?}"))?;
    let duration = SignedDuration::from_secs(i64::try_from(secs).unwrap_or(i64::MAX));
    Ok(Compiled {
        kind: w.kind,
        cron,
        duration,
        tz,
        text: format!(
            "{} window {:?} ({}, {zone})",
            match w.kind {
                WindowKind::Allow => "allow",
                WindowKind::Deny => "deny",
            },
            w.schedule,
            humanize(secs)
        ),
    })
}

fn humanize(secs: u64) -> String {
    crate::api::Duration::from_secs(secs).to_string()
}

/// Whether changes may go ahead at `now`, under `windows` and the Namespace's `freeze`.
pub fn gate(windows: &[DeploymentWindow], freeze: Option<&str>, now: Timestamp) -> Gate {
    if let Some(why) = freeze {
        let why: String = why.chars().take(200).collect();
        return Gate::Closed {
            reason: format!("the namespace is frozen: {why}"),
            opens_at: None,
        };
    }
    if windows.is_empty() {
        return Gate::Open;
    }
    let mut compiled = Vec::new();
    for w in windows {
        match compile(w) {
            Ok(c) => compiled.push(c),
            // Validation refuses these first; never go ahead on a window not understood.
            Err(e) => {
                return Gate::Closed {
                    reason: format!("invalid window: {e}"),
                    opens_at: None,
                };
            }
        }
    }
    let reason = match closed_by(&compiled, now) {
        None => return Gate::Open,
        Some(reason) => reason,
    };
    Gate::Closed {
        reason,
        opens_at: next_opening(&compiled, now),
    }
}

/// Why changes may not go ahead at `at`, if they may not.
fn closed_by(windows: &[Compiled], at: Timestamp) -> Option<String> {
    if let Some(deny) = windows
        .iter()
        .find(|w| w.kind == WindowKind::Deny && w.open_until(at).is_some())
    {
        return Some(format!("{} is open", deny.text));
    }
    let allows: Vec<&Compiled> = windows
        .iter()
        .filter(|w| w.kind == WindowKind::Allow)
        .collect();
    if allows.is_empty() || allows.iter().any(|w| w.open_until(at).is_some()) {
        return None;
    }
    Some("outside every allow window".to_string())
}

/// The first instant after `from` at which changes may go ahead, crossing at most
/// `MAX_EDGES` window edges.
fn next_opening(windows: &[Compiled], from: Timestamp) -> Option<Timestamp> {
    let mut at = from;
    for _ in 0..MAX_EDGES {
        let deny_end = windows
            .iter()
            .filter(|w| w.kind == WindowKind::Deny)
            .filter_map(|w| w.open_until(at))
            .max();
        if let Some(end) = deny_end {
            at = end;
            continue;
        }
        let allows: Vec<&Compiled> = windows
            .iter()
            .filter(|w| w.kind == WindowKind::Allow)
            .collect();
        if allows.is_empty() || allows.iter().any(|w| w.open_until(at).is_some()) {
            return Some(at);
        }
        at = allows.iter().filter_map(|w| w.cron.next(at, &w.tz)).min()?;
    }
    None
}

#[cfg(test)]
mod tests;
