//! Selectors on the real control plane: a Rollout selecting with `matchExpressions` rolls
//! out, its revisions' Deployments and the scale subresource carry the whole selector, and
//! a selector cannot change (the revisions' Deployments could not follow).

#[path = "support/testbed.rs"]
mod testbed;

use std::time::Duration;

use cutover::api::{Rollout, RolloutPhase};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use testbed::eventually;

/// Generous bound for one state change on a loaded 2-core machine; only a failure waits it.
const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn match_expressions_are_carried_to_the_deployments_and_the_scale_subresource() {
    let bed = testbed::shared();
    let ns = bed.namespace("selectors").await;
    let _op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let r: Rollout = serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 2,
            "selector": {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend", "edge"]}]},
            "template": {"metadata": {"labels": {"app": "web", "tier": "frontend"}},
                "spec": {"containers": [{"name": "app", "image": "web:1"}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}}}
    }))
    .expect("a rollout");
    api.create(&PostParams::default(), &r)
        .await
        .expect("created");
    let healthy = eventually("web Healthy", LIMIT, async || {
        let r = api.get("web").await.ok()?;
        let s = r.status.clone()?;
        (s.phase == RolloutPhase::Healthy && s.observed_generation == r.metadata.generation)
            .then_some(r)
    })
    .await;
    let status = healthy.status.expect("status");
    let selector = "app=web,tier in (edge,frontend)";
    assert_eq!(status.selector.as_deref(), Some(selector));
    let stable = status.stable_revision.expect("a stable revision");
    let deployment = Api::<Deployment>::namespaced(client.clone(), &ns.name)
        .get(&format!("web-{stable}"))
        .await
        .expect("the stable Deployment");
    let expressions = deployment
        .spec
        .expect("spec")
        .selector
        .match_expressions
        .unwrap_or_default();
    assert_eq!(expressions.len(), 1, "{expressions:?}");
    assert_eq!(expressions[0].key, "tier");
    // What an HPA reads: the scale subresource, served by kube-apiserver from the CRD.
    let scale = api.get_scale("web").await.expect("the scale subresource");
    assert_eq!(
        scale.status.and_then(|s| s.selector).as_deref(),
        Some(selector)
    );

    // A selector change is refused at admission, saying what to do instead.
    let moved = json!({"spec": {"selector": {"matchExpressions": null}}});
    let refused = api
        .patch("web", &PatchParams::default(), &Patch::Merge(&moved))
        .await
        .expect_err("the selector is immutable");
    assert!(
        refused.to_string().contains("create a new Rollout"),
        "{refused}"
    );
}
