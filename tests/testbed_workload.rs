//! A Rollout adopting a Deployment (`workloadRef`) on the real control plane: the Rollout
//! serves and the Deployment is scaled to zero; deleting the Rollout scales the Deployment
//! back before the Rollout goes, so deleting it is not an outage.

#[path = "support/testbed.rs"]
mod testbed;

use std::time::Duration;

use cutover::api::{Rollout, RolloutPhase};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};
use serde_json::json;
use testbed::eventually;

/// Generous bound for one state change on a loaded 2-core machine; only a failure waits it.
const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn deleting_an_adopting_rollout_gives_the_deployment_its_replicas_back() {
    let bed = testbed::shared();
    let ns = bed.namespace("adopt").await;
    let _op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let legacy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "legacy"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "legacy"}},
            "template": {"metadata": {"labels": {"app": "legacy"}},
                "spec": {"containers": [{"name": "app", "image": "legacy:1"}]}}}
    }))
    .expect("a deployment");
    deployments
        .create(&PostParams::default(), &legacy)
        .await
        .expect("created");
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let adopter: Rollout = serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "legacy"},
        "spec": {"replicas": 3,
            "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "legacy"},
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}}}
    }))
    .expect("a rollout");
    rollouts
        .create(&PostParams::default(), &adopter)
        .await
        .expect("created");
    let serving = eventually("the Rollout serves", LIMIT, async || {
        let r = rollouts.get("legacy").await.ok()?;
        let s = r.status.clone()?;
        (s.phase == RolloutPhase::Healthy && s.available_replicas == Some(3)).then_some(r)
    })
    .await;
    assert!(
        serving
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == "cutover.dev/workload-ref"),
        "the finalizer is there before the Deployment is scaled down"
    );
    assert_eq!(
        serving.status.and_then(|s| s.selector).as_deref(),
        Some("app=legacy"),
        "the adopted Deployment's selector, for an HPA"
    );
    eventually("the adopted Deployment is scaled to 0", LIMIT, async || {
        let d = deployments.get("legacy").await.ok()?;
        (d.spec?.replicas == Some(0)).then_some(())
    })
    .await;

    rollouts
        .delete("legacy", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("the Rollout is gone", LIMIT, async || {
        rollouts
            .get_opt("legacy")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let d = deployments
        .get("legacy")
        .await
        .expect("the Deployment stays");
    assert_eq!(
        d.spec.and_then(|s| s.replicas),
        Some(3),
        "scaled back before the Rollout went"
    );
    eventually("its pods are ready again", LIMIT, async || {
        let d = deployments.get("legacy").await.ok()?;
        (d.status?.ready_replicas == Some(3)).then_some(())
    })
    .await;
}
