//! What holds a release on the real control plane — deployment windows, the namespace
//! freeze, a Rollout it requires — driven the way a platform team does it: `kubectl
//! annotate namespace`, `kubectl describe` to see why a release waits.

#[path = "support/testbed.rs"]
mod testbed;

use std::{process::Command, time::Duration};

use cutover::api::{Rollout, RolloutPhase, conditions as cond};
use kube::{Api, api::PostParams};
use serde_json::json;
use testbed::{eventually, set_image};

/// Generous bound for one state change on a loaded 2-core machine; only a failure waits it.
const LIMIT: Duration = Duration::from_secs(120);

fn manifest(name: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut spec = json!({"replicas": 2, "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "app", "image": format!("{name}:1")}]}},
        "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}]}}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": name},
        "spec": spec
    })
}

fn rollout(name: &str, extra: serde_json::Value) -> Rollout {
    serde_json::from_value(manifest(name, extra)).expect("a rollout")
}

async fn status_where(
    api: &Api<Rollout>,
    name: &str,
    what: &str,
    ok: impl Fn(&cutover::api::RolloutStatus) -> bool,
) -> cutover::api::RolloutStatus {
    eventually(&format!("{name}: {what}"), LIMIT, async || {
        let r = api.get(name).await.ok()?;
        let s = r.status?;
        (s.observed_generation == r.metadata.generation && ok(&s)).then_some(s)
    })
    .await
}

#[tokio::test]
async fn a_namespace_freeze_holds_a_release_until_it_is_lifted() {
    let bed = testbed::shared();
    let ns = bed.namespace("freeze").await;
    let op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    api.create(&PostParams::default(), &rollout("web", json!({})))
        .await
        .expect("created");
    let first = status_where(&api, "web", "Healthy", |s| s.phase == RolloutPhase::Healthy).await;
    let stable = first.stable_revision.expect("stable");

    bed.kubectl_ok(&[
        "annotate",
        "namespace",
        &ns.name,
        "cutover.dev/freeze=incident 4711: no changes until it is resolved",
    ]);
    set_image(&api, "web", "web:2").await;
    let held = status_where(&api, "web", "held by the freeze", |s| {
        s.phase == RolloutPhase::Paused
    })
    .await;
    let message = held.message.clone().unwrap_or_default();
    let waiting = message
        .strip_prefix("revision ")
        .and_then(|m| m.split_once(' '))
        .expect("names the waiting revision");
    assert_ne!(waiting.0, stable, "{message}");
    assert_eq!(
        waiting.1,
        "waits for a deployment window: the namespace is frozen: incident 4711: no changes \
         until it is resolved",
        "{}",
        op.log_tail()
    );
    let paused = cond::find(&held.conditions, cond::PAUSED).expect("Paused condition");
    assert_eq!(
        (paused.status.as_str(), paused.reason.as_str()),
        ("True", "OutsideWindow")
    );
    assert_eq!(held.stable_revision.as_deref(), Some(stable.as_str()));
    // No pod of the new revision: only the stable Deployment exists.
    let names = testbed::deployment_names(&client, &ns.name).await;
    assert_eq!(names, vec![format!("web-{stable}")]);
    // What a person sees.
    let described = bed.kubectl_ok(&["-n", &ns.name, "describe", "rollouts.cutover.dev", "web"]);
    assert!(described.contains("WaitingForWindow"), "{described}");
    assert!(described.contains("OutsideWindow"), "{described}");

    // Lifting the freeze wakes the Rollout at once (nothing else changed to wake it).
    bed.kubectl_ok(&["annotate", "namespace", &ns.name, "cutover.dev/freeze-"]);
    let done = status_where(&api, "web", "promoted", |s| {
        s.phase == RolloutPhase::Healthy && s.stable_revision.as_deref() != Some(stable.as_str())
    })
    .await;
    assert_ne!(done.stable_revision, Some(stable));
}

#[tokio::test]
async fn windows_are_accepted_by_the_api_server_and_a_bad_one_is_an_invalid_spec() {
    let bed = testbed::shared();
    let ns = bed.namespace("windows").await;
    let _op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    // Always open: every minute, for a day.
    let open = json!({"windows": [
        {"kind": "Allow", "schedule": "* * * * *", "duration": "24h", "timeZone": "Europe/Berlin"}
    ]});
    api.create(&PostParams::default(), &rollout("open", open))
        .await
        .expect("created");
    set_image(&api, "open", "open:2").await;
    status_where(&api, "open", "promoted in its window", |s| {
        s.phase == RolloutPhase::Healthy && s.stable_revision == s.current_revision
    })
    .await;
    let bad = json!({"windows": [{"kind": "Deny", "schedule": "0 18 * FRI", "duration": "62h"}]});
    api.create(&PostParams::default(), &rollout("bad", bad))
        .await
        .expect("the API server stores it; the operator judges the schedule");
    let invalid = status_where(&api, "bad", "InvalidSpec", |s| {
        cond::is_true(&s.conditions, cond::INVALID_SPEC)
    })
    .await;
    let c = cond::find(&invalid.conditions, cond::INVALID_SPEC).expect("condition");
    assert!(
        c.message
            .contains("spec.windows[0]: invalid schedule \"0 18 * FRI\": expected 5 fields"),
        "{}",
        c.message
    );
    // A duration the API server's schema refuses never reaches the operator.
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(bed.admin_kubeconfig())
        .args(["-n", &ns.name, "apply", "--server-side", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            let manifest = manifest(
                "worse",
                json!({"windows": [{"kind": "Deny", "schedule": "@daily", "duration": "two days"}]}),
            )
            .to_string();
            if let Some(stdin) = child.stdin.as_mut() {
                stdin.write_all(manifest.as_bytes())?;
            }
            child.wait_with_output()
        })
        .expect("kubectl runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("spec.windows[0].duration"), "{stderr}");
}

#[tokio::test]
async fn production_starts_an_image_only_after_it_served_on_staging() {
    let bed = testbed::shared();
    let ns = bed.namespace("promote").await;
    let op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    api.create(&PostParams::default(), &rollout("staging", json!({})))
        .await
        .expect("created");
    let requires =
        json!({"requires": [{"rollout": format!("{}/staging", ns.name), "healthyFor": "3s"}]});
    api.create(&PostParams::default(), &rollout("prod", requires))
        .await
        .expect("created");
    for name in ["staging", "prod"] {
        status_where(&api, name, "Healthy", |s| s.phase == RolloutPhase::Healthy).await;
    }
    // Production is given the new image first: it waits for staging to serve it.
    set_image(&api, "prod", "app:2").await;
    let held = status_where(&api, "prod", "waiting for staging", |s| {
        s.phase == RolloutPhase::Paused
    })
    .await;
    assert!(
        held.message
            .as_deref()
            .is_some_and(|m| m.ends_with(&format!(
                "waits: Rollout {}/staging does not serve app:2 as its stable revision yet",
                ns.name
            ))),
        "{:?}\n{}",
        held.message,
        op.log_tail()
    );
    set_image(&api, "staging", "app:2").await;
    let staged = status_where(&api, "staging", "promoted", |s| {
        s.phase == RolloutPhase::Healthy && s.stable_images == ["app:2"]
    })
    .await;
    let since = staged.stable_since.expect("since").0;
    let promoted = status_where(&api, "prod", "promoted after staging", |s| {
        s.phase == RolloutPhase::Healthy && s.stable_images == ["app:2"]
    })
    .await;
    // Production started no earlier than staging's three seconds.
    let started = promoted.stable_since.expect("since").0;
    assert!(
        started >= since + jiff::SignedDuration::from_secs(3),
        "staging since {since}, production promoted {started}"
    );
    let described = bed.kubectl_ok(&["-n", &ns.name, "describe", "rollouts.cutover.dev", "prod"]);
    assert!(described.contains("WaitingForRequirement"), "{described}");
}

#[tokio::test]
async fn a_freeze_set_mid_release_holds_it_before_its_next_step() {
    let bed = testbed::shared();
    let ns = bed.namespace("midfreeze").await;
    let op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let gate = json!({"strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]}}});
    api.create(&PostParams::default(), &rollout("web", gate))
        .await
        .expect("created");
    status_where(&api, "web", "Healthy", |s| s.phase == RolloutPhase::Healthy).await;
    set_image(&api, "web", "web:2").await;
    status_where(&api, "web", "at the manual gate", |s| {
        s.phase == RolloutPhase::Paused && s.current_step_index == Some(1)
    })
    .await;
    bed.kubectl_ok(&[
        "annotate",
        "namespace",
        &ns.name,
        "cutover.dev/freeze=release freeze",
    ]);
    // The person promotes past the gate: the gate opens, the next step waits.
    bed.kubectl_ok(&[
        "-n",
        &ns.name,
        "annotate",
        "rollouts.cutover.dev",
        "web",
        "cutover.dev/promote=1",
    ]);
    let held = status_where(&api, "web", "step 2 held", |s| {
        s.current_step_index == Some(2)
            && s.message
                .as_deref()
                .is_some_and(|m| m.starts_with("step 2 waits for a deployment window"))
    })
    .await;
    assert_eq!(held.phase, RolloutPhase::Paused, "{}", op.log_tail());
    assert_eq!(held.canary_weight, Some(50), "the weight reached stays");
    bed.kubectl_ok(&["annotate", "namespace", &ns.name, "cutover.dev/freeze-"]);
    let done = status_where(&api, "web", "promoted", |s| {
        s.phase == RolloutPhase::Healthy && s.stable_revision == s.current_revision
    })
    .await;
    assert_eq!(
        done.history.last().map(|r| r.result),
        Some(cutover::api::ReleaseResult::Promoted)
    );
}
