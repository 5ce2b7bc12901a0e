//! A revision whose pods Kubernetes refuses, on the real control plane: a ResourceQuota
//! leaves no room for the canary's pod, the Deployment reports `ReplicaFailure`, and the
//! Rollout says so in its status and a Warning Event at once, naming the quota, instead of
//! waiting for its progress deadline.

#[path = "support/testbed.rs"]
mod testbed;

use std::time::Duration;

use cutover::api::{Rollout, RolloutPhase};
use k8s_openapi::api::{core::v1::ResourceQuota, events::v1::Event};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use testbed::eventually;

/// Generous bound for one state change on a loaded 2-core machine; only a failure waits it.
const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn a_quota_that_blocks_the_canary_is_reported_at_once() {
    let bed = testbed::shared();
    let ns = bed.namespace("quota").await;
    let _op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "small"}, "spec": {"hard": {"pods": "2"}}
    }))
    .expect("a quota");
    Api::<ResourceQuota>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &quota)
        .await
        .expect("quota created");
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let r: Rollout = serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "web:1"}]}},
            // The Rollout's own deadline is far away: the report must not wait for it.
            "progressDeadlineSeconds": 3600,
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}}
    }))
    .expect("a rollout");
    rollouts
        .create(&PostParams::default(), &r)
        .await
        .expect("created");
    eventually("web Healthy on two pods", LIMIT, async || {
        let s = rollouts.get("web").await.ok()?.status?;
        (s.phase == RolloutPhase::Healthy && s.available_replicas == Some(2)).then_some(())
    })
    .await;
    // The canary's pod comes up before the stable shrinks: a third pod, over the quota.
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "web:2"}]}}}});
    rollouts
        .patch("web", &PatchParams::default(), &Patch::Merge(&image))
        .await
        .expect("image changed");
    let message = eventually(
        "ReplicaFailure in the Rollout's status",
        LIMIT,
        async || {
            let s = rollouts.get("web").await.ok()?.status?;
            let c = s
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Progressing" && c.reason == "ReplicaFailure")?;
            Some(c.message)
        },
    )
    .await;
    assert!(
        message.contains("exceeded quota") && message.contains("small"),
        "{message}"
    );
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let warned = eventually("a Warning Event naming the quota", LIMIT, async || {
        events
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("ReplicaFailure"))
    })
    .await;
    assert_eq!(warned.type_.as_deref(), Some("Warning"));
    let r = rollouts.get("web").await.expect("the rollout");
    let status = r.status.expect("status");
    assert_eq!(
        status.phase,
        RolloutPhase::Progressing,
        "not rolled back for it"
    );
    assert_ne!(status.stable_revision, status.current_revision);
}
