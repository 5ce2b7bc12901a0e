//! Config that rolls out like code, on the real control plane: a ConfigMap edited with
//! `kubectl` becomes a new revision with its own copy, an abort serves the old copy again,
//! and the copies go with their revisions through Kubernetes' garbage collector.

#[path = "support/testbed.rs"]
mod testbed;

use std::{process::Command, time::Duration};

use cutover::api::{Rollout, RolloutPhase, RolloutStatus};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap};
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use serde_json::json;
use testbed::{Testbed, eventually};

const LIMIT: Duration = Duration::from_secs(120);

fn kubectl(bed: &Testbed, args: &[&str]) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(bed.admin_kubeconfig())
        .args(args)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn status_where(
    api: &Api<Rollout>,
    what: &str,
    ok: impl Fn(&RolloutStatus) -> bool,
) -> RolloutStatus {
    eventually(what, LIMIT, async || {
        let r = api.get("web").await.ok()?;
        let s = r.status?;
        (s.observed_generation == r.metadata.generation && ok(&s)).then_some(s)
    })
    .await
}

/// The ConfigMap the pods of `revision` read, and its LOG_LEVEL.
async fn served_config(
    deploys: &Api<Deployment>,
    maps: &Api<ConfigMap>,
    revision: &str,
) -> (String, String) {
    let d = deploys
        .get(&format!("web-{revision}"))
        .await
        .expect("the revision's Deployment");
    let read = d
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.into_iter().next())
        .and_then(|c| c.env_from)
        .and_then(|e| e.into_iter().next())
        .and_then(|e| e.config_map_ref)
        .map(|r| r.name)
        .expect("the pods read a ConfigMap");
    let cm = maps.get(&read).await.expect("the copy exists");
    let level = cm
        .data
        .and_then(|d| d.get("LOG_LEVEL").cloned())
        .unwrap_or_default();
    (read, level)
}

#[tokio::test]
async fn a_config_change_rolls_out_as_a_revision_and_an_abort_serves_the_old_config() {
    let bed = testbed::shared();
    let ns = bed.namespace("config").await;
    let op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "web-config"}, "data": {"LOG_LEVEL": "info"}}),
    )
    .expect("a ConfigMap");
    maps.create(&PostParams::default(), &cm)
        .await
        .expect("created");
    let r: Rollout = serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "configRollout": true, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "web:1",
                    "envFrom": [{"configMapRef": {"name": "web-config"}}]}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}}
    }))
    .expect("a rollout");
    api.create(&PostParams::default(), &r)
        .await
        .expect("created");
    let first = status_where(&api, "Healthy", |s| s.phase == RolloutPhase::Healthy).await;
    let stable = first.stable_revision.expect("stable");
    assert_eq!(
        served_config(&deploys, &maps, &stable).await,
        (format!("web-config-{stable}"), "info".to_string()),
        "{}",
        op.log_tail()
    );

    // Only the ConfigMap changes, with kubectl: a new revision, through the canary.
    kubectl(
        bed,
        &[
            "-n",
            &ns.name,
            "patch",
            "configmap",
            "web-config",
            "--type=merge",
            "-p",
            r#"{"data":{"LOG_LEVEL":"debug"}}"#,
        ],
    );
    let canary = status_where(&api, "the config's canary at its gate", |s| {
        s.phase == RolloutPhase::Paused && s.current_revision.as_deref() != Some(stable.as_str())
    })
    .await;
    let new = canary.current_revision.expect("current");
    assert_eq!(canary.canary_weight, Some(50));
    assert_eq!(
        served_config(&deploys, &maps, &new).await,
        (format!("web-config-{new}"), "debug".to_string())
    );
    assert_eq!(
        served_config(&deploys, &maps, &stable).await.1,
        "info",
        "the stable pods keep the old config"
    );

    kubectl(
        bed,
        &[
            "-n",
            &ns.name,
            "annotate",
            "rollouts.cutover.dev",
            "web",
            "cutover.dev/abort=1",
        ],
    );
    let aborted = status_where(&api, "Aborted", |s| s.phase == RolloutPhase::Aborted).await;
    assert_eq!(aborted.stable_revision.as_deref(), Some(stable.as_str()));
    eventually("the config's canary scaled away", LIMIT, async || {
        let d = deploys.get(&format!("web-{new}")).await.ok()?;
        (d.spec?.replicas == Some(0)).then_some(())
    })
    .await;
    assert_eq!(served_config(&deploys, &maps, &stable).await.1, "info");

    // Copies go with their revisions: deleting the Rollout deletes its Deployments, and
    // Kubernetes' garbage collector the copies they own; the ConfigMap itself stays.
    api.delete("web", &Default::default())
        .await
        .expect("deleted");
    eventually("the copies collected", LIMIT, async || {
        let list = maps.list(&ListParams::default()).await.ok()?;
        let names: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|m| m.metadata.name)
            .filter(|n| n.starts_with("web-config"))
            .collect();
        (names == ["web-config"]).then_some(())
    })
    .await;
}
