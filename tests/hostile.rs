//! Malformed and hostile manifests sent to the API (the sim) with the operator running:
//! each is refused by the API server or the CRD schema with a message, or accepted and then
//! marked InvalidSpec (or held) by the operator without a pod started for it. None stops the
//! operator: a sound Rollout applied after all of them still rolls out.

use std::{sync::Arc, time::Duration};

use cutover::{
    api::{Rollout, RolloutPhase},
    controller::{Clock, Config, Context, Metrics},
    sim::{Sim, prometheus::MetricScript, server::MAX_REQUEST_BYTES},
};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Secret};
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Env {
    sim: Sim,
    rollouts: Api<Rollout>,
    _stop: tokio_util::sync::DropGuard,
}

fn start() -> Env {
    let clock = Clock::tokio_at(jiff::Timestamp::from_second(1_800_000_000).unwrap());
    let sim = Sim::new(clock.clone());
    cutover::cli::dev::install_crds(&sim).unwrap();
    sim.prometheus().set_script(
        MetricScript::parse("metrics:\n  - match: errors\n    value: 0.001\n").unwrap(),
    );
    let stop = CancellationToken::new();
    sim.start_workloads(Default::default(), stop.clone());
    let config = Config {
        prometheus_url: Some("http://prometheus.sim".into()),
        ..Config::default()
    };
    let ctx = Arc::new(
        Context::new(sim.client(), config, clock, Arc::new(Metrics::new()))
            .with_prometheus(sim.prometheus_transport()),
    );
    for c in cutover::controller::runner::controllers(ctx, stop.clone()) {
        tokio::spawn(c);
    }
    Env {
        rollouts: Api::namespaced(sim.client(), "default"),
        sim,
        _stop: stop.drop_guard(),
    }
}

fn rollout(name: &str) -> Value {
    json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "app:1"}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "10s"}}]}}
        }
    })
}

fn with(mut doc: Value, pointer: &str, value: Value) -> Value {
    *doc.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer}")) = value;
    doc
}

fn analysis_step(metric: Value) -> Value {
    json!([{"setWeight": 50}, {"analysis": {"metrics": [metric]}}, {"setWeight": 100}])
}

/// Sends a raw body, as a client that does not go through typed objects would.
async fn post_raw(env: &Env, body: Vec<u8>) -> (u16, String) {
    let request = http::Request::post("/apis/cutover.dev/v1alpha1/namespaces/default/rollouts")
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    match env.sim.client().request_text(request).await {
        Ok(text) => (201, text),
        Err(kube::Error::Api(status)) => (status.code, status.message),
        Err(other) => (0, other.to_string()),
    }
}

async fn create(env: &Env, doc: &Value) -> Result<(), (u16, String)> {
    let post = PostParams::default();
    match serde_json::from_value::<Rollout>(doc.clone()) {
        Ok(r) => env
            .rollouts
            .create(&post, &r)
            .await
            .map(drop)
            .map_err(|e| match e {
                kube::Error::Api(s) => (s.code, s.message),
                other => (0, other.to_string()),
            }),
        // A document the typed client cannot even hold goes as it is.
        Err(_) => match post_raw(env, serde_json::to_vec(doc).unwrap()).await {
            (201, _) => Ok(()),
            refused => Err(refused),
        },
    }
}

fn condition(r: &Rollout, type_: &str) -> Option<String> {
    r.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| c.message.clone())
}

async fn until(env: &Env, name: &str, what: &str, check: impl Fn(&Rollout) -> bool) -> Rollout {
    for _ in 0..2400 {
        if let Ok(r) = env.rollouts.get(name).await
            && check(&r)
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "{name}: timed out waiting for {what}: {:#?}",
        env.rollouts.get(name).await.ok().and_then(|r| r.status)
    );
}

async fn deployments_of(env: &Env, name: &str) -> usize {
    let api: Api<Deployment> = Api::namespaced(env.sim.client(), "default");
    api.list(&ListParams::default().labels(&format!("cutover.dev/rollout={name}")))
        .await
        .map(|l| l.items.len())
        .unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn hostile_manifests_are_refused_or_marked_and_the_operator_carries_on() {
    let env = start();

    // ---- refused by the API server or the CRD schema, with a message ----
    let ten_mb = "x".repeat(10 * 1024 * 1024);
    let limit = format!("limit is {MAX_REQUEST_BYTES}");
    let refused: Vec<(&str, Value, u16, &str)> = vec![
        (
            "a 10 MB annotation",
            with(
                rollout("huge"),
                "/metadata",
                json!({"name": "huge", "annotations": {"note": ten_mb}}),
            ),
            413,
            &limit,
        ),
        (
            "a 10 MB query",
            with(
                rollout("huge-query"),
                "/spec/strategy/canary/steps",
                analysis_step(json!({"name": "e", "successCondition": "result < 1",
                    "prometheus": {"query": "x".repeat(10 * 1024 * 1024)}})),
            ),
            413,
            "Request entity too large",
        ),
        (
            "replicas of the wrong type",
            with(rollout("wrong-type"), "/spec/replicas", json!("three")),
            422,
            "replicas",
        ),
        (
            "a negative replica count",
            with(rollout("negative"), "/spec/replicas", json!(-1)),
            422,
            "replicas",
        ),
        (
            "a replica count past int32",
            with(
                rollout("huge-replicas"),
                "/spec/replicas",
                json!(1_i64 << 40),
            ),
            422,
            "replicas",
        ),
        (
            "a weight over 100",
            with(
                rollout("weight"),
                "/spec/strategy/canary/steps",
                json!([{"setWeight": 150}]),
            ),
            422,
            "setWeight",
        ),
        (
            "a step that is two actions",
            with(
                rollout("two-actions"),
                "/spec/strategy/canary/steps",
                json!([{"setWeight": 10, "pause": {}}]),
            ),
            422,
            "",
        ),
        (
            "no strategy",
            with(rollout("no-strategy"), "/spec/strategy", json!({})),
            422,
            "",
        ),
        (
            "a name that is not DNS",
            with(rollout("x"), "/metadata/name", json!("Not_A_Name")),
            422,
            "metadata.name",
        ),
    ];
    for (what, doc, code, fragment) in &refused {
        let outcome = create(&env, doc).await;
        let Err((got, message)) = outcome else {
            panic!("{what}: accepted");
        };
        assert_eq!(got, *code, "{what}: {message}");
        assert!(!message.is_empty(), "{what}: no message");
        assert!(
            message.contains(fragment),
            "{what}: {message:?} lacks {fragment:?}"
        );
        assert!(
            message.len() < 4096,
            "{what}: the message quotes the input back"
        );
    }

    // Nesting far past any schema: the server's JSON reader refuses it, nothing is stored.
    let depth = 100_000;
    let mut nested = br#"{"apiVersion":"cutover.dev/v1alpha1","kind":"Rollout","metadata":{"name":"deep"},"spec":{"x":"#.to_vec();
    nested.extend(std::iter::repeat_n(b'[', depth));
    nested.extend(std::iter::repeat_n(b']', depth));
    nested.extend(b"}}");
    let (code, message) = post_raw(&env, nested).await;
    assert_eq!(code, 400, "{message}");
    assert!(message.contains("recursion limit"), "{message}");
    assert!(env.rollouts.get_opt("deep").await.unwrap().is_none());

    // ---- accepted by the schema; the operator refuses to act on it ----
    let invalid: Vec<(&str, Value, &str)> = vec![
        (
            "bad-cel",
            with(
                rollout("bad-cel"),
                "/spec/strategy/canary/steps",
                analysis_step(json!({"name": "e", "successCondition": "result <",
                    "prometheus": {"query": "errors"}})),
            ),
            "successCondition",
        ),
        (
            "deep-cel",
            with(
                rollout("deep-cel"),
                "/spec/strategy/canary/steps",
                analysis_step(json!({"name": "e",
                    "successCondition": format!("{}result{} < 1.0", "(".repeat(400), ")".repeat(400)),
                    "prometheus": {"query": "errors"}})),
            ),
            "successCondition",
        ),
        (
            "bad-template",
            with(
                rollout("bad-template"),
                "/spec/strategy/canary/steps",
                analysis_step(json!({"name": "e", "successCondition": "result < 1",
                    "prometheus": {"query": "errors{service=\"{{ args.service }}\"}"}})),
            ),
            "args.service",
        ),
        (
            "unclosed-template",
            with(
                rollout("unclosed-template"),
                "/spec/strategy/canary/steps",
                analysis_step(json!({"name": "e", "successCondition": "result < 1",
                    "prometheus": {"query": "errors{service=\"{{ rollout.name \"}"}})),
            ),
            "prometheus.query",
        ),
    ];
    for (name, doc, _) in &invalid {
        create(&env, doc)
            .await
            .unwrap_or_else(|e| panic!("{name}: refused by the API: {e:?}"));
    }
    for (name, _, fragment) in &invalid {
        let r = until(&env, name, "InvalidSpec", |r| {
            condition(r, "InvalidSpec").is_some()
        })
        .await;
        let message = condition(&r, "InvalidSpec").unwrap();
        assert!(
            message.contains(fragment),
            "{name}: {message:?} lacks {fragment:?}"
        );
        assert!(
            message.len() < 4096,
            "{name}: a message of {} bytes",
            message.len()
        );
        assert_eq!(deployments_of(&env, name).await, 0, "{name}: acted on");
    }

    // A reference to a Secret in another namespace cannot be written: the field does not
    // exist and is pruned, so only the Rollout's own namespace is read — where there is none.
    let secrets: Api<Secret> = Api::namespaced(env.sim.client(), "kube-system");
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "prom"},
        "stringData": {"token": "s3cr3t-elsewhere"}}))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let cross = with(
        rollout("cross-namespace"),
        "/spec/strategy/canary/steps",
        analysis_step(json!({"name": "errors", "successCondition": "result < 1",
            "prometheus": {"query": "errors", "auth": {"bearerToken":
                {"name": "prom", "key": "token", "namespace": "kube-system"}}}})),
    );
    create(&env, &cross).await.unwrap();
    let stored = env.rollouts.get("cross-namespace").await.unwrap();
    let stored = serde_json::to_value(&stored).unwrap();
    assert!(
        !stored.to_string().contains("kube-system"),
        "the namespace field was kept"
    );

    // ---- the operator still works ----
    let good = rollout("good");
    create(&env, &good).await.unwrap();
    until(&env, "good", "Healthy", |r| {
        r.status
            .as_ref()
            .is_some_and(|s| s.phase == RolloutPhase::Healthy)
    })
    .await;
    // The first revision goes straight out; the cross-namespace one then never passes its
    // analysis, because the Secret it could name is not in its namespace.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}});
    env.rollouts
        .patch(
            "cross-namespace",
            &Default::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    let r = until(&env, "cross-namespace", "held at the analysis", |r| {
        r.status.as_ref().is_some_and(|s| {
            s.analysis.iter().any(|a| {
                a.metrics.iter().any(|m| {
                    m.measurements
                        .iter()
                        .any(|x| x.message.as_deref().is_some_and(|t| t.contains("prom")))
                })
            })
        })
    })
    .await;
    let s = r.status.unwrap();
    assert_ne!(
        s.stable_revision, s.current_revision,
        "promoted without its Secret"
    );
}
