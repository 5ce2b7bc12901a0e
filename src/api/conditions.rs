//! Standard conditions: type and reason constants, and the one rule for updating them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition type: the object is moving toward its desired state.
pub const PROGRESSING: &str = "Progressing";
/// Condition type: the workload serves with enough available replicas.
pub const AVAILABLE: &str = "Available";
/// Condition type: the rollout waits for a person or a timer.
pub const PAUSED: &str = "Paused";
/// Condition type: the rollout was aborted and traffic is back on stable.
pub const ABORTED: &str = "Aborted";
/// Condition type: the spec cannot be acted on; nothing is done until it is fixed.
pub const INVALID_SPEC: &str = "InvalidSpec";
/// Condition type: the object reached a state a GitOps tool can call healthy.
pub const READY: &str = "Ready";
/// Condition type: a flag key collides with another flag in the same ConfigMap.
pub const CONFLICT: &str = "Conflict";

/// Condition status `True`.
pub const TRUE: &str = "True";
/// Condition status `False`.
pub const FALSE: &str = "False";
/// Condition status `Unknown`.
pub const UNKNOWN: &str = "Unknown";

/// Returns the condition of `type_` in `conditions`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of `type_` is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == TRUE)
}

/// The desired value of one condition, before timestamps are decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionUpdate<'a> {
    /// Condition type.
    pub type_: &'a str,
    /// `True`, `False` or `Unknown`.
    pub status: &'a str,
    /// CamelCase reason.
    pub reason: &'a str,
    /// Human-readable message.
    pub message: String,
}

/// Sets a condition, keeping `lastTransitionTime` unless the status changed.
///
/// Returns whether anything (status, reason, message or observedGeneration) changed, so a
/// caller can skip writing when nothing did.
pub fn set(
    conditions: &mut Vec<Condition>,
    update: ConditionUpdate<'_>,
    observed_generation: Option<i64>,
    now: &Time,
) -> bool {
    let message = bounded_message(&update.message);
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == update.type_) {
        let changed = existing.status != update.status
            || existing.reason != update.reason
            || existing.message != message
            || existing.observed_generation != observed_generation;
        if existing.status != update.status {
            existing.last_transition_time = now.clone();
        }
        existing.status = update.status.to_string();
        existing.reason = update.reason.to_string();
        existing.message = message;
        existing.observed_generation = observed_generation;
        return changed;
    }
    conditions.push(Condition {
        type_: update.type_.to_string(),
        status: update.status.to_string(),
        reason: update.reason.to_string(),
        message,
        observed_generation,
        last_transition_time: now.clone(),
    });
    true
}

/// Removes the condition of `type_`; returns whether it was present.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    before != conditions.len()
}

/// Longest condition message kept; the API server caps it at 32768 bytes.
pub const MAX_MESSAGE_BYTES: usize = 4096;

fn bounded_message(message: &str) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message.to_string();
    }
    let mut end = MAX_MESSAGE_BYTES - 3;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn update(status: &'static str, reason: &'static str) -> ConditionUpdate<'static> {
        ConditionUpdate {
            type_: PAUSED,
            status,
            reason,
            message: "m".into(),
        }
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let mut cs = Vec::new();
        assert!(set(&mut cs, update(TRUE, "Manual"), Some(1), &at(10)));
        assert!(!set(&mut cs, update(TRUE, "Manual"), Some(1), &at(20)));
        assert_eq!(cs[0].last_transition_time, at(10));
        assert!(set(&mut cs, update(TRUE, "Timer"), Some(1), &at(30)));
        assert_eq!(
            cs[0].last_transition_time,
            at(10),
            "reason change keeps transition time"
        );
        assert!(set(&mut cs, update(FALSE, "Resumed"), Some(1), &at(40)));
        assert_eq!(cs[0].last_transition_time, at(40));
        assert_eq!(cs.len(), 1);
    }

    #[test]
    fn observed_generation_change_counts_as_change() {
        let mut cs = Vec::new();
        set(&mut cs, update(TRUE, "Manual"), Some(1), &at(10));
        assert!(set(&mut cs, update(TRUE, "Manual"), Some(2), &at(10)));
        assert_eq!(cs[0].observed_generation, Some(2));
    }

    #[test]
    fn long_messages_are_bounded_on_a_char_boundary() {
        let mut cs = Vec::new();
        let long = "é".repeat(5000);
        set(
            &mut cs,
            ConditionUpdate {
                type_: READY,
                status: TRUE,
                reason: "R",
                message: long,
            },
            None,
            &at(0),
        );
        assert!(cs[0].message.len() <= MAX_MESSAGE_BYTES);
        assert!(cs[0].message.ends_with("..."));
    }

    #[test]
    fn find_remove_and_is_true() {
        let mut cs = Vec::new();
        set(&mut cs, update(TRUE, "Manual"), None, &at(0));
        assert!(is_true(&cs, PAUSED));
        assert!(!is_true(&cs, ABORTED));
        assert!(remove(&mut cs, PAUSED));
        assert!(!remove(&mut cs, PAUSED));
        assert!(find(&cs, PAUSED).is_none());
    }
}
