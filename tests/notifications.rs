//! Webhook notifications of a Rollout, delivered to a local HTTP receiver that fails at
//! first: retried with backoff, in both payload formats, filtered by event, and the URL read
//! from a Secret never appears in the operator's logs.

use std::{
    io::Write,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use cutover::{
    api::{Rollout, RolloutPhase},
    controller::{Clock, Config, Context, Metrics},
    sim::{Sim, workload::WorkloadConfig},
};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Default)]
struct Receiver {
    calls: AtomicUsize,
    bodies: Mutex<Vec<(String, Value)>>,
    /// The Idempotency-Key header of every attempt, failed ones included.
    keys: Mutex<Vec<String>>,
}

async fn receiver() -> (Arc<Receiver>, std::net::SocketAddr) {
    let state = Arc::new(Receiver::default());
    let s = state.clone();
    let app = axum::Router::new().route(
        "/hooks/{name}",
        axum::routing::post(
            move |axum::extract::Path(name): axum::extract::Path<String>,
                  headers: axum::http::HeaderMap,
                  body: String| {
                let s = s.clone();
                async move {
                    let key = headers
                        .get("idempotency-key")
                        .and_then(|k| k.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    s.keys.lock().unwrap().push(key.clone());
                    // The endpoint is down for its first two calls.
                    if s.calls.fetch_add(1, Ordering::SeqCst) < 2 {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let mut v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    v["header"] = json!(key);
                    s.bodies.lock().unwrap().push((name, v));
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (state, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_reach_the_webhooks_retried_filtered_and_without_logging_the_url() {
    let logs = Logs::default();
    let writer = logs.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_writer(move || writer.clone())
            .finish(),
    )
    .unwrap();
    let (received, addr) = receiver().await;
    let sim = Sim::new(Clock::System);
    cutover::cli::dev::install_crds(&sim).unwrap();
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    sim.start_workloads(
        WorkloadConfig {
            ready_after: Duration::from_millis(100),
            job_duration: Duration::from_millis(100),
        },
        stop.clone(),
    );
    let client = sim.client();
    let ctx = Arc::new(Context::new(
        client.clone(),
        Config {
            allowed_hosts: vec!["127.0.0.1".into()],
            ..Config::default()
        },
        Clock::System,
        Arc::new(Metrics::new()),
    ));
    for c in cutover::controller::runner::controllers(ctx, stop.clone()) {
        tokio::spawn(c);
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let generic_url = format!("http://{addr}/hooks/generic-planted-path");
    let slack_url = format!("http://{addr}/hooks/slack-planted-path");
    // The same receiver under a name the operator was not allowed to reach.
    let refused_url = format!(
        "http://localhost:{}/hooks/refused-planted-path",
        addr.port()
    );
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "hooks"},
        "stringData": {"generic": generic_url, "slack": slack_url, "refused": refused_url}}))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), "default");
    let r: Rollout = serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
            "notifications": {"webhooks": [
                {"name": "all", "urlFrom": {"name": "hooks", "key": "generic"}},
                {"name": "chat", "urlFrom": {"name": "hooks", "key": "slack"}, "format": "Slack", "events": ["Aborted"],
                 "template": "{{ rollout }} {{ result }} ({{ images }}): {{ message }}"},
                {"name": "elsewhere", "urlFrom": {"name": "hooks", "key": "refused"}, "events": ["Aborted"]}]},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}}
    }))
    .unwrap();
    rollouts.create(&PostParams::default(), &r).await.unwrap();
    let wait = async |what: &str, check: &dyn Fn(&Rollout) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if rollouts.get("web").await.is_ok_and(|r| check(&r)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for {what}");
    };
    let phase = |r: &Rollout| r.status.as_ref().map(|s| s.phase).unwrap_or_default();
    wait("healthy", &|r| phase(r) == RolloutPhase::Healthy).await;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}});
    rollouts
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait("the gate", &|r| phase(r) == RolloutPhase::Paused).await;
    rollouts
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {"cutover.dev/abort": "1"}}})),
        )
        .await
        .unwrap();
    wait("aborted", &|r| phase(r) == RolloutPhase::Aborted).await;
    // Deliveries retry with backoff (0.5 s, 1 s, ...): give them time.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let bodies = received.bodies.lock().unwrap().clone();
        let generic: Vec<String> = bodies
            .iter()
            .filter(|(n, _)| n == "generic-planted-path")
            .map(|(_, b)| b["event"].as_str().unwrap_or_default().to_string())
            .collect();
        let slack: Vec<&Value> = bodies
            .iter()
            .filter(|(n, _)| n == "slack-planted-path")
            .map(|(_, b)| b)
            .collect();
        let all_there = ["Started", "StepCompleted", "Paused", "Aborted"]
            .iter()
            .all(|e| generic.iter().any(|g| g == e));
        // The first two attempts failed: their retries must have arrived, under the same key.
        let attempts = received.keys.lock().unwrap().clone();
        let retried = attempts.len() >= 2
            && attempts[..2]
                .iter()
                .all(|failed| bodies.iter().any(|(_, b)| b["header"] == json!(failed)));
        if all_there && retried && !slack.is_empty() {
            assert_eq!(
                slack.len(),
                1,
                "the chat hook only hears Aborted: {slack:?}"
            );
            let text = slack[0]["text"].as_str().unwrap();
            assert!(text.contains("rollout `default/web`: *Aborted*"), "{text}");
            // The chat hook's own template, filled from the deployment log.
            assert!(
                text.contains("— web Aborted (web:2): aborted by request"),
                "{text}"
            );
            let aborted = bodies
                .iter()
                .find(|(n, b)| n == "generic-planted-path" && b["event"] == "Aborted")
                .unwrap();
            assert!(
                bodies.iter().all(|(n, _)| n != "refused-planted-path"),
                "a host off the allowlist got a request"
            );
            let events: Api<k8s_openapi::api::events::v1::Event> =
                Api::namespaced(client.clone(), "default");
            let refused: Vec<String> = events
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("WebhookRefused"))
                .filter_map(|e| e.note)
                .collect();
            assert_eq!(refused.len(), 1, "{refused:?}");
            assert!(
                refused[0].contains("webhook \"elsewhere\"")
                    && refused[0].contains("\"localhost\"")
                    && refused[0].contains("--allowed-hosts")
                    && !refused[0].contains("planted"),
                "{}",
                refused[0]
            );
            assert_eq!(aborted.1["rollout"], "web");
            assert_eq!(aborted.1["namespace"], "default");
            // Without a template, a release's last word says how long it took and what next,
            // and the payload carries the release.
            let said = aborted.1["message"].as_str().unwrap_or_default();
            assert!(
                said.contains("; next: fix the cause, then `kubectl cutover retry web`"),
                "{said}"
            );
            assert_eq!(aborted.1["release"]["result"], "Aborted");
            assert_eq!(aborted.1["release"]["images"], json!(["web:2"]));
            // Each decision is delivered once, with a key of its own, sent as a header too.
            let generic: Vec<&Value> = bodies
                .iter()
                .filter(|(n, _)| n == "generic-planted-path")
                .map(|(_, b)| b)
                .collect();
            let mut keys: Vec<&str> = generic
                .iter()
                .map(|b| b["idempotencyKey"].as_str().unwrap_or_default())
                .collect();
            for b in &generic {
                assert_eq!(b["header"], b["idempotencyKey"], "{b}");
            }
            let uid = rollouts.get("web").await.unwrap().metadata.uid.unwrap();
            assert!(keys.iter().all(|k| k.starts_with(&uid)), "{keys:?}");
            keys.sort_unstable();
            let delivered = keys.len();
            keys.dedup();
            assert_eq!(
                keys.len(),
                delivered,
                "a decision was delivered twice: {generic:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "not all delivered: {bodies:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        received.calls.load(Ordering::SeqCst) >= 2 + 5,
        "the failures were retried"
    );
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        text.contains("notification failed; retrying"),
        "retries are logged"
    );
    assert!(
        !text.contains("planted-path"),
        "a webhook URL reached the logs"
    );
}
