//! Health in the kstatus conventions: `Ready`, `Reconciling` and `Stalled`, derived from
//! each kind's status, so `kubectl wait --for=condition=Ready`, Flux and any kstatus reader
//! can tell done from under way from needing a person.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::conditions::{self as cond, ConditionUpdate};
use super::{
    FeatureFlagStatus, FlagPhase, MigrationJobStatus, MigrationPhase, RolloutPhase, RolloutStatus,
};

/// Condition type: work toward the spec is under way.
pub const RECONCILING: &str = "Reconciling";
/// Condition type: the object cannot go on without a person.
pub const STALLED: &str = "Stalled";

/// Where an object stands, as a GitOps tool or a pipeline needs to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// The current generation is done and healthy.
    Ready {
        /// CamelCase reason.
        reason: &'static str,
        /// What is done.
        message: String,
    },
    /// Under way; it will settle without help.
    Reconciling {
        /// CamelCase reason.
        reason: &'static str,
        /// What it waits for.
        message: String,
    },
    /// It will not go on until a person acts (or the spec changes).
    Stalled {
        /// CamelCase reason.
        reason: &'static str,
        /// What went wrong.
        message: String,
    },
}

impl Health {
    /// Whether the object is done and healthy.
    pub fn is_ready(&self) -> bool {
        matches!(self, Self::Ready { .. })
    }
}

/// Records `health` as the three conditions: `Ready` always, `Reconciling` and `Stalled`
/// only while true (kstatus reads their presence). Returns whether anything changed.
pub fn record(
    conditions: &mut Vec<Condition>,
    health: &Health,
    generation: Option<i64>,
    now: &Time,
) -> bool {
    let (ready, reason, message) = match health {
        Health::Ready { reason, message } => (cond::TRUE, *reason, message),
        Health::Reconciling { reason, message } | Health::Stalled { reason, message } => {
            (cond::FALSE, *reason, message)
        }
    };
    let changed = cond::set(
        conditions,
        ConditionUpdate {
            type_: cond::READY,
            status: ready,
            reason,
            message: message.clone(),
        },
        generation,
        now,
    );
    record_progress(conditions, health, generation, now) || changed
}

/// Records only `Reconciling` and `Stalled`, for a kind whose planner words `Ready` itself.
pub fn record_progress(
    conditions: &mut Vec<Condition>,
    health: &Health,
    generation: Option<i64>,
    now: &Time,
) -> bool {
    let (active, reason, message) = match health {
        Health::Ready { reason, message } => (None, *reason, message),
        Health::Reconciling { reason, message } => (Some(RECONCILING), *reason, message),
        Health::Stalled { reason, message } => (Some(STALLED), *reason, message),
    };
    let mut changed = false;
    for type_ in [RECONCILING, STALLED] {
        if active == Some(type_) {
            changed |= cond::set(
                conditions,
                ConditionUpdate {
                    type_,
                    status: cond::TRUE,
                    reason,
                    message: message.clone(),
                },
                generation,
                now,
            );
        } else {
            changed |= cond::remove(conditions, type_);
        }
    }
    changed
}

fn message_or(message: &Option<String>, default: &str) -> String {
    message.clone().unwrap_or_else(|| default.to_string())
}

fn invalid(conditions: &[Condition]) -> Option<Health> {
    cond::find(conditions, cond::INVALID_SPEC)
        .filter(|c| c.status == cond::TRUE)
        .map(|c| Health::Stalled {
            reason: "InvalidSpec",
            message: c.message.clone(),
        })
}

/// A Rollout's health: Ready once its current revision is fully promoted and available.
pub fn rollout(status: &RolloutStatus) -> Health {
    if let Some(stalled) = invalid(&status.conditions) {
        return stalled;
    }
    let message = &status.message;
    match status.phase {
        RolloutPhase::Healthy => Health::Ready {
            reason: "Healthy",
            message: message_or(message, "fully promoted and available"),
        },
        RolloutPhase::Aborted => Health::Stalled {
            reason: "Aborted",
            message: message_or(message, "aborted: traffic is back on stable"),
        },
        RolloutPhase::Degraded => Health::Stalled {
            reason: "Degraded",
            message: message_or(message, "degraded"),
        },
        RolloutPhase::Paused => Health::Reconciling {
            reason: "Paused",
            message: message_or(message, "paused"),
        },
        RolloutPhase::Progressing => Health::Reconciling {
            reason: "Progressing",
            message: message_or(message, "rolling out"),
        },
        RolloutPhase::Pending => Health::Reconciling {
            reason: "Pending",
            message: message_or(message, "not yet acted on"),
        },
    }
}

/// A MigrationJob's health: Ready once it succeeded for its current spec.
pub fn migration(status: &MigrationJobStatus) -> Health {
    if let Some(stalled) = invalid(&status.conditions) {
        return stalled;
    }
    let message = &status.message;
    match status.phase {
        MigrationPhase::Succeeded => Health::Ready {
            reason: "Succeeded",
            message: message_or(message, "succeeded"),
        },
        MigrationPhase::Failed => Health::Stalled {
            reason: "Failed",
            message: message_or(message, "failed"),
        },
        MigrationPhase::RolledBack => Health::Stalled {
            reason: "RolledBack",
            message: message_or(message, "rolled back"),
        },
        MigrationPhase::Pending => Health::Reconciling {
            reason: "Pending",
            message: message_or(message, "not started"),
        },
        MigrationPhase::Waiting => Health::Reconciling {
            reason: "Waiting",
            message: message_or(message, "waiting for its lock"),
        },
        MigrationPhase::Running => Health::Reconciling {
            reason: "Running",
            message: message_or(message, "running"),
        },
        MigrationPhase::RollingBack => Health::Reconciling {
            reason: "RollingBack",
            message: message_or(message, "rolling back"),
        },
    }
}

/// A FeatureFlag's health: Ready once it is served as its spec says, rollout complete.
pub fn flag(status: &FeatureFlagStatus) -> Health {
    if let Some(stalled) = invalid(&status.conditions) {
        return stalled;
    }
    let message = &status.message;
    if let Some(conflict) =
        cond::find(&status.conditions, cond::CONFLICT).filter(|c| c.status == cond::TRUE)
    {
        return Health::Stalled {
            reason: "Conflict",
            message: conflict.message.clone(),
        };
    }
    match status.phase {
        FlagPhase::Serving | FlagPhase::Disabled => Health::Ready {
            reason: "Rendered",
            message: message_or(message, "served as specified"),
        },
        FlagPhase::RolledBack => Health::Stalled {
            reason: "RolledBack",
            message: message_or(message, "the kill switch fired"),
        },
        FlagPhase::Progressing => Health::Reconciling {
            reason: "Progressing",
            message: message_or(message, "rolling out"),
        },
        FlagPhase::Pending => Health::Reconciling {
            reason: "Pending",
            message: message_or(message, "not yet rendered"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn state(cs: &[Condition]) -> Vec<(String, String, String)> {
        let mut v: Vec<_> = cs
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect();
        v.sort();
        v
    }

    fn t(type_: &str, status: &str, reason: &str) -> (String, String, String) {
        (type_.into(), status.into(), reason.into())
    }

    #[test]
    fn each_health_records_ready_and_at_most_one_of_reconciling_and_stalled() {
        let mut cs = Vec::new();
        let going = Health::Reconciling {
            reason: "Progressing",
            message: "step 1".into(),
        };
        assert!(record(&mut cs, &going, Some(2), &at(1)));
        assert_eq!(
            state(&cs),
            vec![
                t(cond::READY, cond::FALSE, "Progressing"),
                t(RECONCILING, cond::TRUE, "Progressing")
            ]
        );
        assert!(
            !record(&mut cs, &going, Some(2), &at(5)),
            "same health, no change"
        );
        let stuck = Health::Stalled {
            reason: "Aborted",
            message: "x".into(),
        };
        assert!(record(&mut cs, &stuck, Some(2), &at(6)));
        assert_eq!(
            state(&cs),
            vec![
                t(cond::READY, cond::FALSE, "Aborted"),
                t(STALLED, cond::TRUE, "Aborted")
            ]
        );
        let done = Health::Ready {
            reason: "Healthy",
            message: "y".into(),
        };
        assert!(record(&mut cs, &done, Some(3), &at(7)));
        assert_eq!(state(&cs), vec![t(cond::READY, cond::TRUE, "Healthy")]);
        assert!(cs.iter().all(|c| c.observed_generation == Some(3)));
        assert_eq!(cs[0].last_transition_time, at(7));
    }

    #[test]
    fn other_conditions_are_left_alone() {
        let mut cs = Vec::new();
        cond::set(
            &mut cs,
            ConditionUpdate {
                type_: cond::AVAILABLE,
                status: cond::TRUE,
                reason: "MinimumReplicasAvailable",
                message: String::new(),
            },
            Some(1),
            &at(0),
        );
        let done = Health::Ready {
            reason: "Healthy",
            message: String::new(),
        };
        record(&mut cs, &done, Some(1), &at(1));
        assert!(cond::is_true(&cs, cond::AVAILABLE));
    }

    #[test]
    fn rollout_phases() {
        let of = |phase| {
            rollout(&RolloutStatus {
                phase,
                ..Default::default()
            })
        };
        assert!(of(RolloutPhase::Healthy).is_ready());
        for phase in [RolloutPhase::Aborted, RolloutPhase::Degraded] {
            assert!(matches!(of(phase), Health::Stalled { .. }), "{phase:?}");
        }
        for phase in [
            RolloutPhase::Pending,
            RolloutPhase::Progressing,
            RolloutPhase::Paused,
        ] {
            assert!(matches!(of(phase), Health::Reconciling { .. }), "{phase:?}");
        }
    }

    #[test]
    fn an_invalid_spec_stalls_whatever_the_phase() {
        let mut status = RolloutStatus {
            phase: RolloutPhase::Healthy,
            ..Default::default()
        };
        cond::set(
            &mut status.conditions,
            ConditionUpdate {
                type_: cond::INVALID_SPEC,
                status: cond::TRUE,
                reason: "InvalidSpec",
                message: "spec.replicas: must be >= 0".into(),
            },
            Some(1),
            &at(0),
        );
        assert_eq!(
            rollout(&status),
            Health::Stalled {
                reason: "InvalidSpec",
                message: "spec.replicas: must be >= 0".into()
            }
        );
        let mut mj = MigrationJobStatus {
            phase: MigrationPhase::Succeeded,
            ..Default::default()
        };
        mj.conditions = status.conditions.clone();
        assert!(matches!(
            migration(&mj),
            Health::Stalled {
                reason: "InvalidSpec",
                ..
            }
        ));
        let mut ff = FeatureFlagStatus {
            phase: FlagPhase::Serving,
            ..Default::default()
        };
        ff.conditions = status.conditions;
        assert!(matches!(
            flag(&ff),
            Health::Stalled {
                reason: "InvalidSpec",
                ..
            }
        ));
    }

    #[test]
    fn migration_phases() {
        let of = |phase| {
            migration(&MigrationJobStatus {
                phase,
                ..Default::default()
            })
        };
        assert!(of(MigrationPhase::Succeeded).is_ready());
        for phase in [MigrationPhase::Failed, MigrationPhase::RolledBack] {
            assert!(matches!(of(phase), Health::Stalled { .. }), "{phase:?}");
        }
        for phase in [
            MigrationPhase::Pending,
            MigrationPhase::Waiting,
            MigrationPhase::Running,
            MigrationPhase::RollingBack,
        ] {
            assert!(matches!(of(phase), Health::Reconciling { .. }), "{phase:?}");
        }
    }

    #[test]
    fn flag_phases_and_conflict() {
        let of = |phase| {
            flag(&FeatureFlagStatus {
                phase,
                ..Default::default()
            })
        };
        assert!(of(FlagPhase::Serving).is_ready());
        assert!(
            of(FlagPhase::Disabled).is_ready(),
            "DISABLED as specified is done"
        );
        assert!(matches!(of(FlagPhase::RolledBack), Health::Stalled { .. }));
        for phase in [FlagPhase::Pending, FlagPhase::Progressing] {
            assert!(matches!(of(phase), Health::Reconciling { .. }), "{phase:?}");
        }
        let mut status = FeatureFlagStatus {
            phase: FlagPhase::Pending,
            ..Default::default()
        };
        cond::set(
            &mut status.conditions,
            ConditionUpdate {
                type_: cond::CONFLICT,
                status: cond::TRUE,
                reason: "KeyInUse",
                message: "taken".into(),
            },
            Some(1),
            &at(0),
        );
        assert!(matches!(
            flag(&status),
            Health::Stalled {
                reason: "Conflict",
                ..
            }
        ));
    }
}
