//! What a release announces as it starts: which images change, and how long its steps and
//! pauses are expected to take, so the people told can plan around it.

use crate::api::{RolloutSpec, StepAction};

/// How long a release of `spec` is expected to take: timed pauses, analyses that measure a
/// known number of times, rolling batches' pauses; and how many times it waits for a
/// person, which no estimate covers.
pub fn expected(spec: &RolloutSpec) -> (u64, usize) {
    let analysis_secs = |a: &crate::api::AnalysisSpec| {
        a.metrics
            .iter()
            .filter_map(|m| {
                let count = u64::from(m.count?);
                Some(count.saturating_sub(1) * m.interval().as_secs())
            })
            .max()
            .unwrap_or(0)
    };
    let strategy = &spec.strategy;
    let mut secs = 0u64;
    let mut gates = 0usize;
    if let Some(canary) = &strategy.canary {
        for step in &canary.steps {
            match step.action() {
                Some(StepAction::Pause(Some(d))) => secs += d.as_secs(),
                Some(StepAction::Pause(None)) => gates += 1,
                Some(StepAction::Analysis(a)) => secs += analysis_secs(a),
                _ => {}
            }
        }
    }
    if let Some(bg) = &strategy.blue_green {
        secs += bg.pre_promotion_analysis.as_ref().map_or(0, analysis_secs);
        if bg.auto_promotion_enabled == Some(false) {
            gates += 1;
        } else {
            secs += u64::from(bg.auto_promotion_seconds.unwrap_or(0));
        }
    }
    if let Some(rolling) = &strategy.rolling {
        let replicas = spec.replicas().max(1);
        let batch = super::rolling::resolve(rolling.batch_size.as_ref(), replicas, 25, true).max(1);
        let pauses = u64::try_from((replicas + batch - 1) / batch - 1).unwrap_or(0);
        match rolling.pause.as_ref().map(|p| p.duration) {
            Some(Some(d)) => secs += pauses * d.as_secs(),
            Some(None) => gates += pauses as usize,
            None => {}
        }
        secs += pauses * rolling.analysis.as_ref().map_or(0, analysis_secs);
    }
    (secs, gates)
}

/// The sentence a release's start announcement ends with: what changes, and for how long.
pub fn summary(spec: &RolloutSpec, from: &[String], to: &[String]) -> String {
    let (secs, gates) = expected(spec);
    let mut out = String::new();
    if !from.is_empty() && from != to {
        out.push_str(&format!("images {} -> {}; ", from.join(","), to.join(",")));
    }
    out.push_str(&format!(
        "expected to take {}",
        crate::api::Duration::from_secs(secs)
    ));
    if gates > 0 {
        out.push_str(&format!(" plus {gates} manual gate(s)"));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(strategy: serde_json::Value) -> RolloutSpec {
        serde_json::from_value(json!({"replicas": 4, "strategy": strategy})).expect("a spec")
    }

    #[test]
    fn steps_pauses_and_analyses_add_up_and_gates_are_counted() {
        let canary = spec(json!({"canary": {"steps": [
            {"setWeight": 20}, {"pause": {"duration": "10m"}},
            {"analysis": {"metrics": [{"name": "e", "interval": "1m", "count": 5,
                "successCondition": "result < 1", "prometheus": {"query": "q"}}]}},
            {"setWeight": 50}, {"pause": {}}]}}));
        assert_eq!(expected(&canary), (600 + 240, 1));
        assert_eq!(
            summary(&canary, &["web:1".into()], &["web:2".into()]),
            "images web:1 -> web:2; expected to take 14m plus 1 manual gate(s)"
        );
        let rolling = spec(json!({"rolling": {"batchSize": 1, "pause": {"duration": "30s"}}}));
        assert_eq!(
            expected(&rolling),
            (90, 0),
            "three pauses between four batches"
        );
        let bg = spec(json!({"blueGreen": {"activeService": "a", "autoPromotionSeconds": 120}}));
        assert_eq!(expected(&bg), (120, 0));
        let manual =
            spec(json!({"blueGreen": {"activeService": "a", "autoPromotionEnabled": false}}));
        assert_eq!(
            summary(&manual, &[], &["web:2".into()]),
            "expected to take 0s plus 1 manual gate(s)"
        );
    }
}
