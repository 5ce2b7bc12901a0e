//! The FeatureFlag controller through the real controllers and kube::Client against the
//! sim and its scripted Prometheus, on the virtual clock.

use std::{sync::Arc, time::Duration};

use cutover::{
    api::{FeatureFlag, FlagPhase, Rollout, RolloutPhase},
    controller::{Clock, Config, Context, Metrics},
    sim::{Sim, prometheus::MetricScript, workload::WorkloadConfig},
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Env {
    flags: Api<FeatureFlag>,
    maps: Api<ConfigMap>,
    rollouts: Api<Rollout>,
    _stop: tokio_util::sync::DropGuard,
}

fn start(script: &str) -> Env {
    let clock = Clock::tokio_at(jiff::Timestamp::from_second(1_800_000_000).unwrap());
    let sim = Sim::new(clock.clone());
    cutover::cli::dev::install_crds(&sim).unwrap();
    sim.prometheus()
        .set_script(MetricScript::parse(script).unwrap());
    let stop = CancellationToken::new();
    sim.start_workloads(WorkloadConfig::default(), stop.clone());
    let client = sim.client();
    let config = Config {
        prometheus_url: Some("http://prometheus.test".into()),
        ..Config::default()
    };
    let ctx = Arc::new(
        Context::new(client.clone(), config, clock, Arc::new(Metrics::new()))
            .with_prometheus(sim.prometheus_transport()),
    );
    for c in cutover::controller::runner::controllers(ctx, stop.clone()) {
        tokio::spawn(c);
    }
    Env {
        flags: Api::namespaced(client.clone(), "default"),
        maps: Api::namespaced(client.clone(), "default"),
        rollouts: Api::namespaced(client, "default"),
        _stop: stop.drop_guard(),
    }
}

fn flag(name: &str, extra: Value) -> FeatureFlag {
    let mut spec = json!({"state": "ENABLED", "variants": {"on": true, "off": false},
        "defaultVariant": "off", "output": {"configMap": {"name": "flags"}}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(
        json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "FeatureFlag",
        "metadata": {"name": name}, "spec": spec}),
    )
    .unwrap()
}

impl Env {
    /// The rendered definition of `key`, if the ConfigMap holds it.
    async fn rendered(&self, key: &str) -> Option<Value> {
        let cm = self.maps.get_opt("flags").await.ok()??;
        let text = cm.data?.get("flags.flagd.json")?.clone();
        let doc: Value = serde_json::from_str(&text).ok()?;
        doc["flags"].get(key).cloned()
    }

    async fn until<T>(&self, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
        for _ in 0..2400 {
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("timed out waiting for {what}");
    }

    async fn status(&self, name: &str) -> cutover::api::FeatureFlagStatus {
        self.flags
            .get(name)
            .await
            .unwrap()
            .status
            .unwrap_or_default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_rollout_steps_the_rendered_percentage_up_every_interval() {
    let env = start("metrics: []\n");
    let f = flag(
        "new-checkout",
        json!({"rollout": {"variant": "on", "steps": [10, 50, 100], "interval": "1m"}}),
    );
    env.flags.create(&PostParams::default(), &f).await.unwrap();
    let ten = env
        .until("10 %", async || {
            env.rendered("new-checkout")
                .await
                .filter(|d| d["targeting"]["fractional"][0] == json!(["on", 10]))
        })
        .await;
    assert_eq!(ten["state"], "ENABLED");
    env.until("50 %", async || {
        env.rendered("new-checkout")
            .await
            .filter(|d| d["targeting"]["fractional"][0] == json!(["on", 50]))
    })
    .await;
    let full = env
        .until("100 %", async || {
            env.rendered("new-checkout")
                .await
                .filter(|d| d["defaultVariant"] == "on")
        })
        .await;
    assert!(full.get("targeting").is_none());
    let s = env.status("new-checkout").await;
    assert_eq!((s.phase, s.percentage), (FlagPhase::Serving, Some(100)));
    assert_eq!(s.rendered_to.as_deref(), Some("flags/flags.flagd.json"));
}

#[tokio::test(start_paused = true)]
async fn a_failing_analysis_and_disabled_state_both_take_the_variant_to_zero() {
    let env = start(
        "metrics:\n  - match: checkout_errors\n    values:\n      - {at: 0s, value: 0.001}\n      - {at: 3m, value: 0.2}\n",
    );
    let f = flag(
        "new-checkout",
        json!({"rollout": {"variant": "on", "steps": [10, 50, 100], "interval": "2m",
            "analysis": {"metrics": [{"name": "errors", "interval": "30s", "successCondition": "result < 0.01",
                "prometheus": {"query": "checkout_errors"}}]}}}),
    );
    env.flags.create(&PostParams::default(), &f).await.unwrap();
    env.until("50 %", async || {
        (env.status("new-checkout").await.percentage == Some(50)).then_some(())
    })
    .await;
    let s = env
        .until("the kill switch", async || {
            let s = env.status("new-checkout").await;
            (s.phase == FlagPhase::RolledBack).then_some(s)
        })
        .await;
    assert_eq!(s.percentage, Some(0));
    let rendered = env.rendered("new-checkout").await.unwrap();
    assert!(rendered.get("targeting").is_none(), "{rendered}");
    assert_eq!(rendered["defaultVariant"], "off");
    // The plain kill switch: kubectl sets the state.
    let other = flag(
        "fast-path",
        json!({"rollout": {"variant": "on", "steps": [30, 100], "interval": "1h"}}),
    );
    env.flags
        .create(&PostParams::default(), &other)
        .await
        .unwrap();
    env.until("30 %", async || {
        (env.status("fast-path").await.percentage == Some(30)).then_some(())
    })
    .await;
    env.flags
        .patch(
            "fast-path",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"state": "DISABLED"}})),
        )
        .await
        .unwrap();
    let rendered = env
        .until("DISABLED rendered", async || {
            env.rendered("fast-path")
                .await
                .filter(|d| d["state"] == "DISABLED")
        })
        .await;
    assert!(rendered.get("targeting").is_none());
    let s = env.status("fast-path").await;
    assert_eq!((s.phase, s.percentage), (FlagPhase::RolledBack, Some(0)));
}

#[tokio::test(start_paused = true)]
async fn the_later_flag_with_a_taken_key_is_in_conflict_and_the_earlier_keeps_serving() {
    let env = start("metrics: []\n");
    let first = flag(
        "checkout-a",
        json!({"key": "checkout", "defaultVariant": "on"}),
    );
    env.flags
        .create(&PostParams::default(), &first)
        .await
        .unwrap();
    env.until("rendered", async || env.rendered("checkout").await)
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = flag("checkout-b", json!({"key": "checkout"}));
    env.flags
        .create(&PostParams::default(), &second)
        .await
        .unwrap();
    let s = env
        .until("conflict", async || {
            let s = env.status("checkout-b").await;
            s.conditions
                .iter()
                .any(|c| c.type_ == "Conflict" && c.status == "True")
                .then_some(s)
        })
        .await;
    assert!(s.message.unwrap().contains("checkout-a"));
    assert_eq!(
        env.rendered("checkout").await.unwrap()["defaultVariant"],
        "on"
    );
    // The earlier goes; the later takes over, and the deleted one leaves the file.
    env.flags
        .delete("checkout-a", &DeleteParams::default())
        .await
        .unwrap();
    env.until("the later serves", async || {
        env.rendered("checkout")
            .await
            .filter(|d| d["defaultVariant"] == "off")
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_rollout_enables_its_flags_when_promoted_and_disables_them_when_aborted() {
    let env = start("metrics: []\n");
    let f = flag("new-checkout", json!({"state": "DISABLED"}));
    env.flags.create(&PostParams::default(), &f).await.unwrap();
    let r: Rollout = serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
            "flags": {"enableOnPromotion": ["new-checkout"], "disableOnAbort": ["new-checkout"]},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}}
    }))
    .unwrap();
    env.rollouts
        .create(&PostParams::default(), &r)
        .await
        .unwrap();
    env.until("enabled on promotion", async || {
        env.rendered("new-checkout")
            .await
            .filter(|d| d["state"] == "ENABLED")
    })
    .await;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}});
    env.rollouts
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    env.until("paused at the gate", async || {
        let s = env.rollouts.get("web").await.ok()?.status?;
        (s.phase == RolloutPhase::Paused).then_some(())
    })
    .await;
    env.rollouts
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {"cutover.dev/abort": "1"}}})),
        )
        .await
        .unwrap();
    env.until("disabled on abort", async || {
        env.rendered("new-checkout")
            .await
            .filter(|d| d["state"] == "DISABLED")
    })
    .await;
}
