//! Analysis runs of a Rollout: which measurements fall due (for the shell to take), and
//! how the plan records them and turns a run's verdict into go on, wait, pause or abort.
//!
//! A run is named after what it gates: `step-N` (a canary step), `background`,
//! `prePromotion` / `postPromotion` (blue-green) or `batch-N` (rolling). Its state lives in
//! `status.analysis`, so a restart resumes it: a due time is measured once.

use jiff::Timestamp;

use super::record::Ctx;
use crate::analysis::run as runs;
pub use crate::analysis::run::{Due, Gate, Input, Taken};
use crate::api::{AnalysisSpec, AnalysisVerdict, Rollout, RolloutPhase, RolloutSpec};

/// Name of the background run of a canary.
pub const BACKGROUND: &str = "background";
/// Name of the blue-green pre-promotion run.
pub const PRE_PROMOTION: &str = "prePromotion";
/// Name of the blue-green post-promotion run.
pub const POST_PROMOTION: &str = "postPromotion";
/// Name of the run watching a promoted revision during its bake.
pub const BAKE: &str = "bake";
/// Name of the run of the verify window after the bake.
pub const VERIFY: &str = "verify";

/// The analysis spec a run of this name measures, if the spec still has it.
pub fn spec_for<'a>(spec: &'a RolloutSpec, run: &str) -> Option<&'a AnalysisSpec> {
    let strategy = &spec.strategy;
    if let Some(index) = run.strip_prefix("step-") {
        let i: usize = index.parse().ok()?;
        return strategy.canary.as_ref()?.steps.get(i)?.analysis.as_ref();
    }
    if run.starts_with("batch-") {
        return strategy.rolling.as_ref()?.analysis.as_ref();
    }
    match run {
        BACKGROUND => strategy.canary.as_ref()?.analysis.as_ref().map(|b| &b.spec),
        PRE_PROMOTION => strategy
            .blue_green
            .as_ref()?
            .pre_promotion_analysis
            .as_ref(),
        POST_PROMOTION => strategy
            .blue_green
            .as_ref()?
            .post_promotion_analysis
            .as_ref(),
        BAKE => spec.bake.as_ref()?.analysis.as_ref(),
        VERIFY => spec.bake.as_ref()?.verify.as_ref().map(|v| &v.analysis),
        _ => None,
    }
}

/// The Service through which run `run` reaches the revision it judges, if the strategy has
/// one: the canary's (or the stable Service a canary shares), blue-green's preview before
/// promotion and its active Service after. A smoke test calls it.
pub fn service_for(spec: &RolloutSpec, run: &str) -> Option<String> {
    let strategy = &spec.strategy;
    if let Some(bg) = &strategy.blue_green {
        return match run {
            PRE_PROMOTION => Some(
                bg.preview_service
                    .clone()
                    .unwrap_or_else(|| bg.active_service.clone()),
            ),
            _ => Some(bg.active_service.clone()),
        };
    }
    let canary = strategy.canary.as_ref()?;
    canary
        .canary_service
        .clone()
        .or_else(|| canary.stable_service.clone())
}

/// Measurements due at `now`: each metric of each running run whose next due time has come.
pub fn due(rollout: &Rollout, now: Timestamp) -> Vec<Due<'_>> {
    let Some(status) = &rollout.status else {
        return Vec::new();
    };
    if status.phase == RolloutPhase::Aborted {
        return Vec::new();
    }
    runs::due_in(&status.analysis, |name| spec_for(&rollout.spec, name), now)
}

/// Runs (or goes on with) the analysis `name` of `revision`: records the measurements the
/// shell took for it, updates verdicts and returns what the rollout should do.
pub(super) fn run(ctx: &mut Ctx<'_>, name: &str, spec: &AnalysisSpec, revision: &str) -> Gate {
    let now = ctx.obs.now;
    ctx.keep_run(name);
    let position = ctx
        .status
        .analysis
        .iter()
        .position(|r| r.name == name && r.revision.as_deref() == Some(revision));
    let index = match position {
        Some(i) => i,
        None => {
            ctx.status.analysis.retain(|r| r.name != name);
            ctx.status
                .analysis
                .push(runs::start(name, Some(revision), now));
            ctx.note(
                "AnalysisStarted",
                format!("analysis {name} of {revision} started"),
            );
            ctx.status.analysis.len() - 1
        }
    };
    let taken: Vec<Taken> = ctx
        .obs
        .measurements
        .iter()
        .filter(|t| t.run == name)
        .cloned()
        .collect();
    let run = &mut ctx.status.analysis[index];
    if run.verdict == AnalysisVerdict::Running {
        let wake = runs::advance(run, spec, &taken, now);
        let verdict = run.verdict;
        let message = run.message.clone().unwrap_or_default();
        if let Some(at) = wake {
            ctx.wake_at(at);
        }
        if verdict != AnalysisVerdict::Running {
            let reason = if verdict == AnalysisVerdict::Successful {
                "AnalysisSuccessful"
            } else {
                "AnalysisStopped"
            };
            ctx.note(reason, format!("analysis {name} of {revision}: {message}"));
        }
    }
    runs::gate(spec, &ctx.status.analysis[index])
}

/// A person resumed a blocked run (promote): its inconclusive and error counts start over,
/// so it measures on; its history stays in the kept measurements.
pub(super) fn resume(ctx: &mut Ctx<'_>, name: &str) {
    let now = ctx.obs.now;
    if let Some(run) = ctx.status.analysis.iter_mut().find(|r| r.name == name) {
        for m in &mut run.metrics {
            if matches!(
                m.verdict,
                AnalysisVerdict::Inconclusive | AnalysisVerdict::Error
            ) {
                m.inconclusive = 0;
                m.consecutive_errors = 0;
                m.verdict = AnalysisVerdict::Running;
            }
        }
        if matches!(
            run.verdict,
            AnalysisVerdict::Inconclusive | AnalysisVerdict::Error
        ) {
            run.verdict = AnalysisVerdict::Running;
            run.message = Some("resumed by promote".into());
        }
    }
    ctx.wake_at(now);
}

/// Ends runs the rollout no longer needs (step passed, promoted, aborted): a run still
/// measuring is closed as Successful with a message saying it was ended, as Argo Rollouts
/// terminates runs, and is measured no more.
pub(super) fn end_unneeded(ctx: &mut Ctx<'_>) {
    let keep = ctx.kept_runs().to_vec();
    for run in &mut ctx.status.analysis {
        if run.verdict == AnalysisVerdict::Running && !keep.contains(&run.name) {
            run.verdict = AnalysisVerdict::Successful;
            run.message = Some("ended: no longer needed by the rollout".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(strategy: serde_json::Value) -> RolloutSpec {
        serde_json::from_value(json!({"strategy": strategy})).expect("a spec")
    }

    #[test]
    fn each_run_reaches_the_revision_it_judges_through_its_service() {
        let canary =
            spec(json!({"canary": {"stableService": "web", "canaryService": "web-canary"}}));
        assert_eq!(
            service_for(&canary, "step-2").as_deref(),
            Some("web-canary")
        );
        assert_eq!(service_for(&canary, BAKE).as_deref(), Some("web-canary"));
        let shared = spec(json!({"canary": {"stableService": "web"}}));
        assert_eq!(service_for(&shared, BACKGROUND).as_deref(), Some("web"));
        let bg =
            spec(json!({"blueGreen": {"activeService": "api", "previewService": "api-preview"}}));
        assert_eq!(
            service_for(&bg, PRE_PROMOTION).as_deref(),
            Some("api-preview")
        );
        assert_eq!(service_for(&bg, POST_PROMOTION).as_deref(), Some("api"));
        assert_eq!(service_for(&spec(json!({"rolling": {}})), "batch-1"), None);
    }
}
