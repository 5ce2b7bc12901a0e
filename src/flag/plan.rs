//! The pure decision of the FeatureFlag controller: the flag, whether its key is taken, the
//! measurements of its analysis and the time in; its status (and so its rendered
//! percentage) out.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::analysis::{
    job::JobResult,
    run::{self as runs, Gate, Input, Taken},
};
use crate::api::{
    AnalysisRunStatus, DEFAULT_FLAG_STEP_INTERVAL, FeatureFlag, FeatureFlagStatus, FlagPhase,
    FlagState, conditions as cond,
};

/// Everything the plan looks at.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The flag.
    pub flag: &'a FeatureFlag,
    /// The FeatureFlag already serving this flag's key in the same ConfigMap key, if any.
    pub conflict_with: Option<String>,
    /// Measurements the shell took for the flag's analysis.
    pub measurements: Vec<Taken>,
    /// Why the flag's Namespace is frozen (its `cutover.dev/freeze` annotation).
    pub freeze: Option<String>,
    /// The time of the decision.
    pub now: Timestamp,
}

/// Something worth an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// CamelCase reason.
    pub reason: &'static str,
    /// Message.
    pub message: String,
    /// A warning rather than normal.
    pub warning: bool,
}

/// The decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The status to record (its percentage is what gets rendered).
    pub status: FeatureFlagStatus,
    /// Events.
    pub notes: Vec<Note>,
    /// When to look again if nothing changes.
    pub requeue_at: Option<Timestamp>,
    /// Runs this decision replaced with the next step's, as they ended (the status holds
    /// only the current one): their records are written with their last measurements.
    pub replaced_runs: Vec<AnalysisRunStatus>,
}

/// Name of the analysis run of rollout step `i`.
pub fn run_name(i: usize) -> String {
    format!("step-{i}")
}

struct Ctx<'a> {
    obs: &'a Observed<'a>,
    status: FeatureFlagStatus,
    notes: Vec<Note>,
    requeue_at: Option<Timestamp>,
    replaced_runs: Vec<AnalysisRunStatus>,
}

impl Ctx<'_> {
    /// Makes `run` the current analysis run, keeping the one it replaces for its record.
    fn start_run(&mut self, run: AnalysisRunStatus) {
        if let Some(old) = self.status.analysis.replace(run) {
            self.replaced_runs.push(old);
        }
    }

    fn note(&mut self, reason: &'static str, message: impl Into<String>, warning: bool) {
        self.notes.push(Note {
            reason,
            message: message.into(),
            warning,
        });
    }

    fn condition(
        &mut self,
        type_: &'static str,
        status: &'static str,
        reason: &'static str,
        message: impl Into<String>,
    ) {
        cond::set(
            &mut self.status.conditions,
            cond::ConditionUpdate {
                type_,
                status,
                reason,
                message: message.into(),
            },
            self.obs.flag.metadata.generation,
            &Time(self.obs.now),
        );
    }

    fn wake_at(&mut self, t: Timestamp) {
        self.requeue_at = Some(self.requeue_at.map_or(t, |r| r.min(t)));
    }
}

/// Decides the status of a FeatureFlag whose spec passed validation.
pub fn plan(obs: &Observed<'_>) -> Plan {
    let flag = obs.flag;
    let mut status = flag.status.clone().unwrap_or_default();
    let spec_changed = status.observed_generation != flag.metadata.generation;
    status.observed_generation = flag.metadata.generation;
    cond::remove(&mut status.conditions, cond::INVALID_SPEC);
    let (cm, key) = super::render::output_of(flag);
    status.rendered_to = Some(format!("{cm}/{key}"));
    let mut ctx = Ctx {
        obs,
        status,
        notes: Vec::new(),
        requeue_at: None,
        replaced_runs: Vec::new(),
    };
    decide(&mut ctx, spec_changed);
    let health = crate::api::health::flag(&ctx.status);
    crate::api::health::record(
        &mut ctx.status.conditions,
        &health,
        obs.flag.metadata.generation,
        &Time(obs.now),
    );
    Plan {
        status: ctx.status,
        notes: ctx.notes,
        requeue_at: ctx.requeue_at,
        replaced_runs: ctx.replaced_runs,
    }
}

fn decide(ctx: &mut Ctx<'_>, spec_changed: bool) {
    let flag = ctx.obs.flag;
    let name = flag.metadata.name.clone().unwrap_or_default();
    let key = flag.spec.flag_key(&name).to_string();
    if let Some(holder) = &ctx.obs.conflict_with {
        let message = format!(
            "flag key {key:?} is already served by FeatureFlag {holder} in {}",
            ctx.status.rendered_to.clone().unwrap_or_default()
        );
        if cond::find(&ctx.status.conditions, cond::CONFLICT).is_none() {
            ctx.note("Conflict", message.clone(), true);
        }
        ctx.condition(cond::CONFLICT, cond::TRUE, "KeyInUse", message.clone());
        // Not served: no percentage to report, no step baking, no analysis of traffic it
        // does not get. Served again, it starts over from its first step.
        if let Some(run) = &mut ctx.status.analysis
            && run.verdict == crate::api::AnalysisVerdict::Running
        {
            run.verdict = crate::api::AnalysisVerdict::Successful;
            run.message = Some("ended: the flag is not served while its key is taken".into());
        }
        ctx.status.percentage = None;
        ctx.status.current_step_index = None;
        ctx.status.step_started_at = None;
        ctx.status.phase = FlagPhase::Pending;
        ctx.status.message = Some(message);
        return;
    }
    cond::remove(&mut ctx.status.conditions, cond::CONFLICT);
    let Some(rollout) = flag.spec.rollout.clone() else {
        ctx.status.percentage = None;
        ctx.status.current_step_index = None;
        ctx.status.analysis = None;
        let (phase, message) = match flag.spec.state {
            FlagState::Enabled => (FlagPhase::Serving, format!("serving {key}")),
            FlagState::Disabled => (
                FlagPhase::Disabled,
                format!("{key} is DISABLED: applications use their code default"),
            ),
        };
        ctx.status.phase = phase;
        ctx.status.message = Some(message.clone());
        return;
    };
    if flag.spec.state == FlagState::Disabled {
        let was_live = matches!(
            ctx.status.phase,
            FlagPhase::Progressing | FlagPhase::Serving
        ) && ctx.status.percentage.unwrap_or(0) > 0;
        ctx.status.percentage = Some(0);
        end_analysis(ctx);
        if was_live {
            kill(
                ctx,
                "Disabled",
                format!(
                    "{key} set to DISABLED: variant {} back to 0 %",
                    rollout.variant
                ),
            );
        } else if ctx.status.phase != FlagPhase::RolledBack {
            ctx.status.phase = FlagPhase::Disabled;
            ctx.status.message = Some(format!("{key} is DISABLED"));
        }
        ctx.condition(
            cond::PROGRESSING,
            cond::FALSE,
            "Disabled",
            "the flag is DISABLED",
        );
        return;
    }
    let restart = match ctx.status.phase {
        FlagPhase::Pending | FlagPhase::Disabled => true,
        // After the kill switch the flag stays off until its spec changes.
        FlagPhase::RolledBack => spec_changed,
        FlagPhase::Progressing | FlagPhase::Serving => false,
    };
    let now = ctx.obs.now;
    let window = crate::window::gate(&flag.spec.windows, ctx.obs.freeze.as_deref(), now);
    if restart && let Some(why) = window.message() {
        // Not started: the variant stays at 0 % until a window opens.
        ctx.status.percentage = Some(0);
        ctx.status.current_step_index = None;
        ctx.status.step_started_at = None;
        ctx.status.phase = FlagPhase::Pending;
        let message = format!(
            "rollout of variant {} waits for a deployment window: {why}",
            rollout.variant
        );
        hold(ctx, message, &window);
        return;
    }
    if restart {
        ctx.status.current_step_index = Some(0);
        ctx.status.step_started_at = Some(Time(now));
        ctx.status.analysis = None;
        ctx.status.last_verdict = None;
        ctx.status.phase = FlagPhase::Progressing;
        ctx.note(
            "RolloutStarted",
            format!("rolling out variant {} of {key}", rollout.variant),
            false,
        );
    }
    if ctx.status.phase == FlagPhase::RolledBack {
        ctx.status.percentage = Some(0);
        return;
    }
    let last = rollout.steps.len().saturating_sub(1);
    let mut index = (ctx.status.current_step_index.unwrap_or(0).max(0) as usize).min(last);
    let percent = rollout.steps.get(index).copied().unwrap_or(0);
    ctx.status.percentage = Some(percent);
    ctx.status.current_step_index = Some(index as i32);
    if ctx.status.phase == FlagPhase::Serving {
        return;
    }
    // The analysis of the current step.
    if let Some(spec) = &rollout.analysis {
        let name = run_name(index);
        let fresh = ctx.status.analysis.as_ref().is_none_or(|r| r.name != name);
        if fresh {
            ctx.start_run(runs::start(&name, None, now));
        }
        let taken: Vec<Taken> = ctx.obs.measurements.clone();
        let mut run = ctx.status.analysis.clone().unwrap_or_default();
        if let Some(at) = runs::advance(&mut run, spec, &taken, now) {
            ctx.wake_at(at);
        }
        ctx.status.last_verdict = Some(run.verdict);
        let gate = runs::gate(spec, &run);
        ctx.status.analysis = Some(run);
        match gate {
            Gate::Failed(_, message) => {
                end_analysis(ctx);
                ctx.status.percentage = Some(0);
                kill(
                    ctx,
                    "AnalysisFailed",
                    format!("{message}: variant {} back to 0 %", rollout.variant),
                );
                return;
            }
            Gate::Blocked(reason, message) => {
                ctx.status.message = Some(format!("held at {percent} %: {message}"));
                ctx.condition(cond::PROGRESSING, cond::FALSE, reason, message);
                return;
            }
            Gate::Passed | Gate::Waiting(_) => {}
        }
    }
    let interval = rollout.interval.unwrap_or(DEFAULT_FLAG_STEP_INTERVAL);
    let started = ctx.status.step_started_at.as_ref().map_or(now, |t| t.0);
    let due = started + SignedDuration::try_from(interval.as_std()).unwrap_or(SignedDuration::MAX);
    // A smoke test still running for this step holds it past its interval: the step moves
    // on with its measurement taken, never with it dropped.
    let step_run = run_name(index);
    let in_flight =
        ctx.obs.measurements.iter().any(|t| {
            t.run == step_run && matches!(t.input, Input::Job(Ok(JobResult::Running { .. })))
        });
    let held = in_flight && index < last && now >= due;
    if index < last
        && now >= due
        && !in_flight
        && let Some(why) = window.message()
    {
        // The next step waits for a window; the analysis of this one goes on meanwhile.
        ctx.status.phase = FlagPhase::Progressing;
        let message = format!(
            "held at {percent} %: step {} waits for a deployment window: {why}",
            index + 2
        );
        hold(ctx, message, &window);
        return;
    }
    if index < last && now >= due && !in_flight {
        ctx.note(
            "StepCompleted",
            format!("{key}: {percent} % held for {interval}"),
            false,
        );
        index += 1;
        let next = rollout.steps[index];
        ctx.status.current_step_index = Some(index as i32);
        ctx.status.step_started_at = Some(Time(now));
        ctx.status.percentage = Some(next);
        if rollout.analysis.is_some() {
            ctx.start_run(runs::start(&run_name(index), None, now));
            ctx.wake_at(now);
        }
        if index < last {
            ctx.wake_at(
                now + SignedDuration::try_from(interval.as_std()).unwrap_or(SignedDuration::MAX),
            );
        }
    } else if index < last && !in_flight {
        ctx.wake_at(due);
    }
    let percent = ctx.status.percentage.unwrap_or(0);
    if index >= last {
        ctx.status.phase = FlagPhase::Serving;
        end_analysis(ctx);
        let message = format!("variant {} served to {percent} %", rollout.variant);
        if ctx.status.message.as_deref() != Some(message.as_str()) {
            ctx.note("RolloutCompleted", message.clone(), false);
        }
        ctx.status.message = Some(message.clone());
        ctx.condition(
            cond::PROGRESSING,
            cond::FALSE,
            "RolloutCompleted",
            message.clone(),
        );
    } else {
        ctx.status.phase = FlagPhase::Progressing;
        let mut message = format!(
            "variant {} at {percent} % (step {} of {})",
            rollout.variant,
            index + 1,
            rollout.steps.len()
        );
        if held {
            message.push_str(", held until the step's smoke test finishes");
        }
        ctx.status.message = Some(message.clone());
        ctx.condition(
            cond::PROGRESSING,
            cond::TRUE,
            "StepRunning",
            message.clone(),
        );
    }
}

/// Holds the rollout outside its deployment windows: why, until when, woken then.
fn hold(ctx: &mut Ctx<'_>, message: String, window: &crate::window::Gate) {
    if ctx.status.message.as_deref() != Some(message.as_str()) {
        ctx.note("WaitingForWindow", message.clone(), false);
    }
    ctx.status.message = Some(message.clone());
    ctx.condition(cond::PROGRESSING, cond::FALSE, "OutsideWindow", message);
    if let crate::window::Gate::Closed {
        opens_at: Some(at), ..
    } = window
    {
        ctx.wake_at(*at);
    }
}

fn end_analysis(ctx: &mut Ctx<'_>) {
    if let Some(run) = &mut ctx.status.analysis
        && run.verdict == crate::api::AnalysisVerdict::Running
    {
        run.verdict = crate::api::AnalysisVerdict::Successful;
        run.message = Some("ended: no longer needed by the flag".into());
    }
}

/// The kill switch: the variant goes back to 0 %; the flag stays there until its spec changes.
fn kill(ctx: &mut Ctx<'_>, reason: &'static str, message: String) {
    ctx.status.phase = FlagPhase::RolledBack;
    ctx.status.message = Some(message.clone());
    ctx.condition(cond::PROGRESSING, cond::FALSE, reason, message.clone());
    ctx.note("KillSwitch", message, true);
}

/// Measurements due for a flag's analysis at `now`.
pub fn due(flag: &FeatureFlag, now: Timestamp) -> Vec<runs::Due<'_>> {
    let (Some(status), Some(rollout)) = (&flag.status, &flag.spec.rollout) else {
        return Vec::new();
    };
    if status.phase != FlagPhase::Progressing || flag.spec.state == FlagState::Disabled {
        return Vec::new();
    }
    let Some(spec) = &rollout.analysis else {
        return Vec::new();
    };
    runs::due_in(status.analysis.as_slice(), |_| Some(spec), now)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
