//! A Rollout adopting a Deployment (`workloadRef`) on the real control plane: the Rollout
//! serves and the Deployment is scaled to zero; deleting the Rollout scales the Deployment
//! back before the Rollout goes, so deleting it is not an outage. And a Rollout taking a
//! Service over from pods another controller left (a move from Argo Rollouts) never leaves
//! it without ready endpoints.

#[path = "support/testbed.rs"]
mod testbed;

use std::time::Duration;

use cutover::api::{Rollout, RolloutPhase};
use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet},
    core::v1::Service,
    discovery::v1::EndpointSlice,
};
use kube::{
    Api,
    api::{DeleteParams, ListParams, PostParams},
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

/// Ready endpoints of Service `name`, summed over its EndpointSlices.
async fn ready_endpoints(slices: &Api<EndpointSlice>, name: &str) -> Option<usize> {
    let params = ListParams::default().labels(&format!("kubernetes.io/service-name={name}"));
    let list = slices.list(&params).await.ok()?;
    Some(
        list.items
            .iter()
            .flat_map(|s| &s.endpoints)
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .count(),
    )
}

#[tokio::test]
async fn taking_a_service_over_from_pods_left_by_another_controller_keeps_it_serving() {
    let bed = testbed::shared();
    let ns = bed.namespace("takeover").await;
    let client = bed.admin().await;
    // What Argo Rollouts leaves after `kubectl delete --cascade=orphan`: a ReplicaSet of
    // ready pods, and a Service whose selector (rollouts-pod-template-hash removed) picks
    // them by the app's label.
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns.name);
    let left: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "shop-6d4b8c", "labels": {"app": "shop", "rollouts-pod-template-hash": "6d4b8c"}},
        "spec": {"replicas": 3,
            "selector": {"matchLabels": {"app": "shop", "rollouts-pod-template-hash": "6d4b8c"}},
            "template": {"metadata": {"labels": {"app": "shop", "rollouts-pod-template-hash": "6d4b8c"}},
                "spec": {"containers": [{"name": "app", "image": "shop:1"}]}}}
    }))
    .expect("a replicaset");
    sets.create(&PostParams::default(), &left)
        .await
        .expect("created");
    let services: Api<Service> = Api::namespaced(client.clone(), &ns.name);
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "shop"},
        "spec": {"selector": {"app": "shop"}, "ports": [{"port": 80}]}
    }))
    .expect("a service");
    services
        .create(&PostParams::default(), &service)
        .await
        .expect("created");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns.name);
    eventually("the old pods serve", LIMIT, async || {
        (ready_endpoints(&slices, "shop").await? == 3).then_some(())
    })
    .await;
    // From here on the Service is watched: it must never be without a ready endpoint.
    let (tx, mut rx) = tokio::sync::watch::channel((usize::MAX, 0usize));
    let watcher = {
        let slices = slices.clone();
        tokio::spawn(async move {
            loop {
                if let Some(n) = ready_endpoints(&slices, "shop").await {
                    tx.send_modify(|(least, samples)| {
                        *least = (*least).min(n);
                        *samples += 1;
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let _op = bed.operator(&ns.name, &[]);
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    // The new pods take 4 s to become ready: a Service pinned to them at once would have no
    // ready endpoint for that long.
    let rollout: Rollout = serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "shop"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "shop"}},
            "template": {"metadata": {"labels": {"app": "shop"},
                    "annotations": {"sim.cutover.dev/ready-after": "4s"}},
                "spec": {"containers": [{"name": "app", "image": "shop:1"}]}},
            "strategy": {"blueGreen": {"activeService": "shop"}}}
    }))
    .expect("a rollout");
    rollouts
        .create(&PostParams::default(), &rollout)
        .await
        .expect("created");
    let revision = eventually("the Rollout serves", LIMIT, async || {
        let s = rollouts.get("shop").await.ok()?.status?;
        (s.phase == RolloutPhase::Healthy && s.available_replicas == Some(3))
            .then_some(s.stable_revision?)
    })
    .await;
    let pinned = eventually("the Service is pinned", LIMIT, async || {
        let selector = services.get("shop").await.ok()?.spec?.selector?;
        (selector.get("cutover.dev/revision") == Some(&revision)).then_some(selector)
    })
    .await;
    assert_eq!(
        pinned.get("app").map(String::as_str),
        Some("shop"),
        "the user's key stays"
    );
    // Only the new pods are selected now: the old ReplicaSet can go.
    eventually(
        "the Service selects the three new pods",
        LIMIT,
        async || (ready_endpoints(&slices, "shop").await? == 3).then_some(()),
    )
    .await;
    sets.delete("shop-6d4b8c", &DeleteParams::default())
        .await
        .expect("deleted");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &ns.name);
    eventually("the old pods are gone", LIMIT, async || {
        let old = pods
            .list(&ListParams::default().labels("rollouts-pod-template-hash"))
            .await
            .ok()?;
        old.items.is_empty().then_some(())
    })
    .await;
    // One more look after they went, then the watch ends.
    let seen = rx.borrow_and_update().1;
    eventually("a sample after the old pods went", LIMIT, async || {
        (rx.borrow_and_update().1 > seen).then_some(())
    })
    .await;
    watcher.abort();
    let (least, samples) = *rx.borrow_and_update();
    assert!(samples > 20, "{samples} samples");
    assert!(
        least >= 1,
        "the Service had {least} ready endpoints at some moment of the takeover"
    );
}
