//! A tenant's Rollouts on the real control plane: a metric aimed at a host the operator was
//! not allowed to reach is refused before anything runs, and canaries whose operator is
//! killed at each step boundary announce every decision at most once, with the real
//! apiserver's watch caches and resourceVersion preconditions.

#[path = "support/testbed.rs"]
mod testbed;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use cutover::api::{Rollout, RolloutPhase};
use k8s_openapi::api::{apps::v1::Deployment, events::v1::Event};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use testbed::eventually;

/// Generous bound for one state change on a loaded 2-core machine; only a failure waits it.
const LIMIT: Duration = Duration::from_secs(120);

fn rollout(name: &str, steps: Value) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "app:1"}]}},
            "strategy": {"canary": {"steps": steps}}}
    }))
    .expect("a rollout")
}

#[tokio::test]
async fn a_metric_aimed_at_a_host_not_allowed_is_refused_before_anything_runs() {
    let bed = testbed::shared();
    let ns = bed.namespace("egress").await;
    let _op = bed.operator(
        &ns.name,
        &[
            "--prometheus-url",
            "http://prometheus.monitoring.svc:9090",
            "--allowed-hosts",
            "*.thanos.internal",
        ],
    );
    let client = bed.admin().await;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let aimed = rollout(
        "web",
        json!([{"setWeight": 50}, {"analysis": {"metrics": [{"name": "errors",
            "successCondition": "result < 0.01",
            "prometheus": {"query": "up", "address": "http://169.254.169.254/latest"}}]}}]),
    );
    rollouts
        .create(&PostParams::default(), &aimed)
        .await
        .expect("accepted by the schema");
    let message = eventually(
        "InvalidSpec naming the host and the setting",
        LIMIT,
        async || {
            let s = rollouts.get("web").await.ok()?.status?;
            s.conditions
                .into_iter()
                .find(|c| c.type_ == "InvalidSpec" && c.status == "True")
                .map(|c| c.message)
        },
    )
    .await;
    assert!(
        message.contains("\"169.254.169.254\"")
            && message.contains("--allowed-hosts")
            && message.contains("prometheus.monitoring.svc")
            && message.contains("*.thanos.internal"),
        "{message}"
    );
    let deployments: Api<Deployment> = Api::namespaced(client, &ns.name);
    let made = deployments
        .list(&ListParams::default().labels("cutover.dev/rollout=web"))
        .await
        .expect("listed");
    assert!(made.items.is_empty(), "nothing ran: {:?}", made.items);
}

/// Rollouts released together: enough that the operator's caches lag its own writes.
const RELEASED: usize = 30;

#[tokio::test]
async fn canaries_whose_operator_is_killed_at_each_step_announce_each_decision_once() {
    let bed = testbed::shared();
    let ns = bed.namespace("once").await;
    let mut op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let steps = json!([{"setWeight": 25}, {"pause": {"duration": "2s"}}, {"setWeight": 75},
        {"pause": {"duration": "2s"}}]);
    for i in 0..RELEASED {
        rollouts
            .create(
                &PostParams::default(),
                &rollout(&format!("web-{i}"), steps.clone()),
            )
            .await
            .expect("created");
    }
    // Each Rollout's step and phase, and whether it is promoted to `image`.
    type Steps = Vec<(String, Option<i32>, RolloutPhase, bool)>;
    let all_settled = async |image: &str| -> Option<Steps> {
        let list = rollouts.list(&ListParams::default()).await.ok()?;
        let promoted = |r: &Rollout| {
            let running = r
                .spec
                .template
                .as_ref()
                .and_then(|t| t.spec.as_ref())
                .and_then(|s| s.containers[0].image.clone());
            r.status.as_ref().is_some_and(|s| {
                running.as_deref() == Some(image)
                    && s.phase == RolloutPhase::Healthy
                    && s.stable_revision.is_some()
                    && s.stable_revision == s.current_revision
                    && s.observed_generation == r.metadata.generation
            })
        };
        let done = list.items.len() == RELEASED && list.items.iter().all(promoted);
        let steps = list
            .items
            .iter()
            .map(|r| {
                let s = r.status.clone().unwrap_or_default();
                let name = r.metadata.name.clone().unwrap_or_default();
                (name, s.current_step_index, s.phase, promoted(r))
            })
            .collect();
        (!done).then_some(steps)
    };
    let promoted_in = |steps: &Steps| -> BTreeSet<String> {
        steps.iter().filter(|s| s.3).map(|s| s.0.clone()).collect()
    };
    eventually("the first revisions stable", LIMIT, async || {
        all_settled("app:1").await.is_none().then_some(())
    })
    .await;
    for i in 0..RELEASED {
        let name = format!("web-{i}");
        let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}});
        rollouts
            .patch(&name, &PatchParams::default(), &Patch::Merge(&image))
            .await
            .expect("image changed");
    }
    // SIGKILL whenever a step moved, then a fresh operator with nothing in memory.
    let mut last: Option<Steps> = None;
    let mut kills = 0;
    // A kill between a promotion's status write and its Event loses that Event: the
    // operator reconciles many Rollouts at once, so one kill may lose several, and a write
    // sent just before the kill may land after the next look. Those are the Rollouts seen
    // newly promoted in the look that killed or in the two after it.
    let mut excused: BTreeSet<String> = BTreeSet::new();
    let mut looks_since_kill = u32::MAX;
    eventually(
        "the new revisions stable through the kills",
        LIMIT,
        async || {
            let before = last.as_ref().map(promoted_in).unwrap_or_default();
            let Some(steps) = all_settled("app:2").await else {
                if looks_since_kill < 2 {
                    let all: BTreeSet<String> = (0..RELEASED).map(|i| format!("web-{i}")).collect();
                    excused.extend(all.difference(&before).cloned());
                }
                return Some(());
            };
            let newly: Vec<String> = promoted_in(&steps).difference(&before).cloned().collect();
            if looks_since_kill < 2 {
                excused.extend(newly.iter().cloned());
            }
            looks_since_kill = looks_since_kill.saturating_add(1);
            if last.is_some() && last.as_ref() != Some(&steps) {
                op.kill();
                kills += 1;
                op = bed.operator(&ns.name, &[]);
                excused.extend(newly);
                looks_since_kill = 0;
            }
            last = Some(steps);
            None
        },
    )
    .await;
    assert!(kills >= 3, "killed at the step boundaries: {kills}");
    let events: Api<Event> = Api::namespaced(client, &ns.name);
    let mut groups: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for e in events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
    {
        let Some(regarding) = e.regarding.filter(|r| r.kind.as_deref() == Some("Rollout")) else {
            continue;
        };
        *groups
            .entry((
                regarding.name.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            ))
            .or_default() += 1;
    }
    let repeated: Vec<_> = groups.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "{} of {} groups announced twice after {kills} kills: {repeated:?}",
        repeated.len(),
        groups.len()
    );
    // A kill may lose an Event, never repeat it; a promotion no kill interrupted is announced.
    let announced: BTreeSet<String> = groups
        .keys()
        .filter(|(_, reason, _)| reason == "Promoted")
        .map(|(name, _, _)| name.clone())
        .collect();
    let missing: Vec<String> = (0..RELEASED)
        .map(|i| format!("web-{i}"))
        .filter(|name| !announced.contains(name) && !excused.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "promotions no kill interrupted went unannounced: {missing:?} ({} announced, {} excused by {kills} kills)",
        announced.len(),
        excused.len()
    );
}
