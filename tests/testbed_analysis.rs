//! Analysis on the real control plane, by the operator running with the chart's RBAC:
//! the templates' rules as kube-apiserver runs them, a Rollout measured through a
//! ClusterAnalysisTemplate whose arg comes from a Secret, and web metrics deciding promote
//! and abort against a local HTTP server.

#[path = "support/testbed.rs"]
mod testbed;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use cutover::api::{Rollout, RolloutPhase};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    discovery::ApiResource,
};
use serde_json::{Value, json};
use testbed::{eventually, set_image};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Generous bound for one state change on a loaded 2-core machine; only a failure waits it.
const LIMIT: Duration = Duration::from_secs(120);

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "cutover.dev".into(),
        version: "v1alpha1".into(),
        api_version: "cutover.dev/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// An HTTP server on a port it holds from the start: `answer` gets each request's head and
/// gives the status and JSON body to send back.
async fn serve(answer: impl Fn(&str) -> (u16, String) + Send + Sync + 'static) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let (status, body) = answer(&String::from_utf8_lossy(&request));
                let response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    url
}

/// A Prometheus stand-in: it answers every instant query with `0.01` and keeps the queries
/// it was asked, decoded.
async fn prometheus() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let url = serve(move |text| {
        let target = text.split_whitespace().nth(1).unwrap_or_default();
        let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if k == "query" {
                log.lock().unwrap().push(v.to_string());
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let body = json!({"status": "success", "data": {"resultType": "vector",
            "result": [{"metric": {}, "value": [now, "0.01"]}]}});
        (200, body.to_string())
    })
    .await;
    (url, seen)
}

fn rollout(name: &str, canary: Value) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "labels": {"team": "payments"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": format!("{name}:1")}]}},
            "strategy": {"canary": canary}}
    }))
    .expect("a rollout")
}

/// Creates a Rollout per `(name, canary)`, waits for each to be healthy, then sets its
/// image to `NAME:2`.
async fn roll_each(api: &Api<Rollout>, canaries: &[(&str, Value)]) {
    for (name, canary) in canaries {
        api.create(&PostParams::default(), &rollout(name, canary.clone()))
            .await
            .expect("created");
    }
    for (name, _) in canaries {
        eventually(&format!("{name} healthy"), LIMIT, async || {
            let s = api.get(name).await.ok()?.status?;
            (s.phase == RolloutPhase::Healthy && s.stable_revision.is_some()).then_some(())
        })
        .await;
        set_image(api, name, &format!("{name}:2")).await;
    }
}

/// Creates the AnalysisTemplate `smoke` in `namespace`: a passing smoke test.
async fn smoke_template(client: &kube::Client, namespace: &str) {
    let templates: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &resource("AnalysisTemplate", "analysistemplates"),
    );
    let template: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "smoke"}, "spec": smoke_test(false)}))
    .expect("a template");
    templates
        .create(&PostParams::default(), &template)
        .await
        .expect("created");
}

/// Waits until Rollout `name` promoted its new revision after analysis run `step-1`.
async fn promoted(api: &Api<Rollout>, name: &str) -> Rollout {
    eventually(&format!("{name} promoted"), LIMIT, async || {
        let r = api.get(name).await.ok()?;
        let s = r.status.clone()?;
        (s.phase == RolloutPhase::Healthy
            && s.stable_revision == s.current_revision
            && s.analysis.iter().any(|a| a.name == "step-1"))
        .then_some(r)
    })
    .await
}

/// Waits until Rollout `name` aborted.
async fn aborted(api: &Api<Rollout>, name: &str) -> Rollout {
    eventually(&format!("{name} aborted"), LIMIT, async || {
        let r = api.get(name).await.ok()?;
        (r.status.as_ref()?.phase == RolloutPhase::Aborted).then_some(r)
    })
    .await
}

#[tokio::test]
async fn kube_apiserver_enforces_the_template_rules() {
    let bed = testbed::shared();
    let ns = bed.namespace("tplrules").await;
    let client = bed.admin().await;
    let templates: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns.name,
        &resource("AnalysisTemplate", "analysistemplates"),
    );
    let object = |name: &str, spec: Value| -> DynamicObject {
        serde_json::from_value(
            json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": {"name": name}, "spec": spec}),
        )
        .expect("an object")
    };
    let good = object(
        "errors",
        json!({"args": [{"name": "service"}, {"name": "token", "valueFrom": {"secretKeyRef": {"name": "t", "key": "k"}}}],
            "metrics": [{"name": "errors", "successCondition": "result < 0.05", "prometheus": {"query": "up"}}]}),
    );
    templates
        .create(&PostParams::default(), &good)
        .await
        .expect("a valid template is stored");
    let two_sources = object(
        "two-sources",
        json!({"args": [{"name": "token", "valueFrom": {"secretKeyRef": {"name": "t", "key": "k"}, "podTemplateHashValue": "Stable"}}],
            "metrics": [{"name": "errors", "successCondition": "result < 0.05", "prometheus": {"query": "up"}}]}),
    );
    let err = templates
        .create(&PostParams::default(), &two_sources)
        .await
        .expect_err("two sources for one arg are refused");
    assert!(
        err.to_string()
            .contains("set exactly one of secretKeyRef, fieldRef or podTemplateHashValue"),
        "{err}"
    );
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let empty = rollout(
        "empty",
        json!({"steps": [{"analysis": {"args": [{"name": "a", "value": "b"}]}}]}),
    );
    let err = rollouts
        .create(&PostParams::default(), &empty)
        .await
        .expect_err("an analysis with neither metrics nor templates is refused");
    assert!(
        err.to_string()
            .contains("an analysis needs metrics, templates or both"),
        "{err}"
    );
}

#[tokio::test]
async fn a_rollout_measured_through_a_cluster_template_with_a_secret_arg_promotes() {
    let bed = testbed::shared();
    let ns = bed.namespace("tplsecret").await;
    let (url, queries) = prometheus().await;
    let op = bed.operator(&ns.name, &["--prometheus-url", &url]);
    let client = bed.admin().await;
    // Cluster-scoped and the test bed is shared: named after this test's namespace.
    let template_name = format!("{}-errors", ns.name);
    let cluster_templates: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource("ClusterAnalysisTemplate", "clusteranalysistemplates"),
    );
    let template: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "ClusterAnalysisTemplate",
        "metadata": {"name": template_name},
        "spec": {"args": [{"name": "tenant", "valueFrom": {"secretKeyRef": {"name": "prom-tenant", "key": "id"}}},
                          {"name": "team"}],
            "metrics": [{"name": "errors", "interval": "1s", "count": 2, "successCondition": "result < 0.05",
                "prometheus": {"query": "errors{tenant=\"{{ args.tenant }}\",team=\"{{ args.team }}\",rev=\"{{ rollout.canaryRevision }}\"}"}}]}
    }))
    .expect("a template");
    cluster_templates
        .create(&PostParams::default(), &template)
        .await
        .expect("template created");
    grant_secret_reads(&client, &ns.name).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "prom-tenant"}, "stringData": {"id": "acme-7f3a"}}),
    )
    .expect("a secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret created");
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let r = rollout(
        "web",
        json!({"steps": [{"setWeight": 50}, {"analysis": {
            "templates": [{"templateName": template_name, "clusterScope": true}],
            "args": [{"name": "team", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}}]}}]}),
    );
    api.create(&PostParams::default(), &r)
        .await
        .expect("created");
    let healthy = |want_new: bool| {
        let api = api.clone();
        async move {
            let r = api.get("web").await.ok()?;
            let s = r.status.clone()?;
            let done = s.phase == RolloutPhase::Healthy
                && s.observed_generation == r.metadata.generation
                && s.stable_revision == s.current_revision
                && (!want_new || s.analysis.iter().any(|a| a.name == "step-1"));
            done.then_some(r)
        }
    };
    eventually("first revision healthy", LIMIT, async || {
        healthy(false).await
    })
    .await;
    set_image(&api, "web", "web:2").await;
    let promoted = eventually("promoted through the template", LIMIT, async || {
        healthy(true).await
    })
    .await;
    let status = promoted.status.clone().expect("status");
    let canary = status.current_revision.clone().expect("a revision");
    let run = status
        .analysis
        .iter()
        .find(|a| a.name == "step-1")
        .expect("the step's run");
    assert_eq!(
        (run.metrics[0].name.as_str(), run.metrics[0].successful),
        ("errors", 2),
        "{}",
        op.log_tail()
    );
    let asked = queries.lock().unwrap().clone();
    let expected = format!("errors{{tenant=\"acme-7f3a\",team=\"payments\",rev=\"{canary}\"}}");
    assert!(asked.contains(&expected), "{asked:?}");
    let stored = serde_json::to_string(&promoted).expect("json");
    assert!(!stored.contains("acme-7f3a"), "{stored}");
    cluster_templates
        .delete(&template_name, &Default::default())
        .await
        .expect("template deleted");
}

/// The chart leaves reading Secrets off (rbac.readSecrets); a platform team grants it where
/// templates need it, here for one namespace only.
async fn grant_secret_reads(client: &kube::Client, namespace: &str) {
    let grant = |kind: &str, body: Value| -> DynamicObject {
        let mut o = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
            "metadata": {"name": "cutover-read-secrets"}});
        if let (Some(o), Some(b)) = (o.as_object_mut(), body.as_object()) {
            o.extend(b.clone());
        }
        serde_json::from_value(o).expect("an RBAC object")
    };
    let role = grant(
        "Role",
        json!({"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}),
    );
    let binding = grant(
        "RoleBinding",
        json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cutover-read-secrets"},
            "subjects": [{"kind": "ServiceAccount", "name": "cutover", "namespace": "cutover-system"}]}),
    );
    for (object, kind, plural) in [
        (role, "Role", "roles"),
        (binding, "RoleBinding", "rolebindings"),
    ] {
        let api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            namespace,
            &ApiResource {
                group: "rbac.authorization.k8s.io".into(),
                version: "v1".into(),
                api_version: "rbac.authorization.k8s.io/v1".into(),
                kind: kind.into(),
                plural: plural.into(),
            },
        );
        api.create(&PostParams::default(), &object)
            .await
            .expect("RBAC created");
    }
}

async fn secret(client: &kube::Client, namespace: &str, name: &str, data: Value) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
            .expect("a secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret created");
}

/// A JSON API: `/checks/NAME` answers the error rate `rates` gives NAME, and every request
/// line with its `x-api-key` header is kept.
async fn checks_api(rates: &'static [(&'static str, f64)]) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let url = serve(move |text| {
        let line = text.lines().next().unwrap_or_default().to_string();
        let key = text
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .starts_with("x-api-key:")
                    .then(|| l[10..].trim().to_string())
            })
            .unwrap_or_default();
        log.lock().unwrap().push(format!("{line} key={key}"));
        let name = line
            .split_whitespace()
            .nth(1)
            .and_then(|t| t.strip_prefix("/checks/"))
            .map(|t| t.split('?').next().unwrap_or_default().to_string())
            .unwrap_or_default();
        match rates.iter().find(|(n, _)| *n == name) {
            Some((_, rate)) => (200, json!({"service": name, "errorRate": rate}).to_string()),
            None => (404, "{}".to_string()),
        }
    })
    .await;
    (url, seen)
}

#[tokio::test]
async fn web_metrics_promote_a_healthy_canary_and_abort_a_failing_one() {
    let bed = testbed::shared();
    let ns = bed.namespace("web").await;
    let (url, requests) = checks_api(&[("good", 0.01), ("bad", 0.2)]).await;
    let op = bed.operator(&ns.name, &["--allowed-hosts", "127.0.0.1"]);
    let client = bed.admin().await;
    grant_secret_reads(&client, &ns.name).await;
    secret(&client, &ns.name, "checks-api", json!({"key": "k-93b1"})).await;
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let analysis = json!({
        "args": [{"name": "key", "valueFrom": {"secretKeyRef": {"name": "checks-api", "key": "key"}}}],
        "metrics": [{"name": "error-rate", "interval": "1s", "count": 2,
            "successCondition": "result < 0.05", "failureCondition": "result >= 0.05",
            "web": {"url": format!("{url}/checks/{{{{ rollout.name }}}}?rev={{{{ rollout.canaryRevision }}}}"),
                "headers": [{"key": "X-Api-Key", "value": "{{ args.key }}"}],
                "jsonPath": "$.errorRate", "timeout": "5s"}}]});
    let steps = json!({"steps": [{"setWeight": 50}, {"analysis": analysis}]});
    roll_each(&api, &[("good", steps.clone()), ("bad", steps)]).await;
    let good = promoted(&api, "good").await;
    let bad = aborted(&api, "bad").await;
    let run = |r: &Rollout| {
        r.status
            .as_ref()
            .and_then(|s| s.analysis.iter().find(|a| a.name == "step-1").cloned())
            .expect("the step's run")
    };
    let (good_run, bad_run) = (run(&good), run(&bad));
    assert_eq!(good_run.metrics[0].successful, 2, "{}", op.log_tail());
    assert_eq!(bad_run.metrics[0].failed, 1, "{}", op.log_tail());
    assert_eq!(
        bad_run.metrics[0].measurements[0].value.as_deref(),
        Some("0.2")
    );
    let bad_canary = bad
        .status
        .as_ref()
        .and_then(|s| s.current_revision.clone())
        .expect("revision");
    let seen = requests.lock().unwrap().clone();
    assert!(
        seen.contains(&format!(
            "GET /checks/bad?rev={bad_canary} HTTP/1.1 key=k-93b1"
        )),
        "{seen:?}"
    );
    for r in [&good, &bad] {
        let stored = serde_json::to_string(r).expect("json");
        assert!(!stored.contains("k-93b1"), "{stored}");
    }
}

/// A smoke test as a job metric: the node agent runs the pod, passing for one Rollout and
/// failing for the other, with the log each one wrote.
fn smoke_test(fails: bool) -> Value {
    let mut annotations = json!({"sim.cutover.dev/duration": "1s",
        "sim.cutover.dev/log": if fails { "GET /healthz 503 Service Unavailable" } else { "GET /healthz 200 OK" }});
    if fails {
        annotations["sim.cutover.dev/fail-attempts"] = json!("always");
    }
    json!({"metrics": [{"name": "smoke", "count": 1, "job": {
        "metadata": {"labels": {"purpose": "smoke"}},
        "spec": {"template": {"metadata": {"annotations": annotations},
            "spec": {"containers": [{"name": "smoke", "image": "curlimages/curl:8",
                "args": ["http://{{ rollout.name }}-canary/healthz", "--revision={{ rollout.canaryRevision }}"]}]}}}}}]})
}

#[tokio::test]
async fn job_metrics_promote_a_passing_smoke_test_and_abort_a_failing_one() {
    let bed = testbed::shared();
    let ns = bed.namespace("jobs").await;
    let op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let steps = |fails| json!({"steps": [{"setWeight": 50}, {"analysis": smoke_test(fails)}]});
    roll_each(&api, &[("passes", steps(false)), ("fails", steps(true))]).await;
    let passes = promoted(&api, "passes").await;
    let fails = aborted(&api, "fails").await;
    let measurement = |r: &Rollout| {
        r.status
            .as_ref()
            .and_then(|s| s.analysis.iter().find(|a| a.name == "step-1"))
            .and_then(|a| a.metrics.first())
            .and_then(|m| m.measurements.first().cloned())
            .expect("the smoke test's measurement")
    };
    let (ok, failed) = (measurement(&passes), measurement(&fails));
    let log = op.log_tail();
    assert_eq!(ok.value.as_deref(), Some("Complete"), "{ok:?}\n{log}");
    let ok_message = ok.message.unwrap_or_default();
    assert!(ok_message.contains("GET /healthz 200 OK"), "{ok_message}");
    assert_eq!(failed.value.as_deref(), Some("Failed"), "{failed:?}\n{log}");
    let failed_message = failed.message.unwrap_or_default();
    assert!(
        failed_message.contains("BackoffLimitExceeded")
            && failed_message.contains("GET /healthz 503 Service Unavailable"),
        "{failed_message}"
    );
    // The Jobs: one per measurement, owned by their Rollout (so they go with it), labelled
    // with the run, and their placeholders filled in.
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), &ns.name);
    let listed = jobs
        .list(&kube::api::ListParams::default().labels("cutover.dev/analysis-metric=smoke"))
        .await
        .expect("jobs")
        .items;
    assert_eq!(listed.len(), 2, "one Job per Rollout");
    let canary = passes
        .status
        .as_ref()
        .and_then(|s| s.current_revision.clone())
        .expect("revision");
    let job = listed
        .iter()
        .find(|j| {
            j.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("cutover.dev/analysis-of"))
                .map(String::as_str)
                == Some("passes")
        })
        .expect("the passing Rollout's Job");
    let owner = &job.metadata.owner_references.as_ref().expect("owned")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Rollout", "passes")
    );
    let labels = job.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("cutover.dev/analysis-run").map(String::as_str),
        Some("step-1")
    );
    assert_eq!(labels.get("purpose").map(String::as_str), Some("smoke"));
    let args = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers[0].args.clone())
        .unwrap_or_default();
    assert_eq!(
        args,
        [
            "http://passes-canary/healthz".to_string(),
            format!("--revision={canary}")
        ]
    );
    // What the smoke test is told, as environment variables (no Service: none is named).
    let env: Vec<(String, String)> = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers[0].env.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect();
    for (name, value) in [
        ("CUTOVER_ROLLOUT", "passes".to_string()),
        ("CUTOVER_NAMESPACE", ns.name.clone()),
        ("CUTOVER_REVISION", canary.clone()),
    ] {
        assert!(
            env.contains(&(name.to_string(), value.clone())),
            "{name}={value} in {env:?}"
        );
    }
    assert!(!env.iter().any(|(n, _)| n == "CUTOVER_SERVICE"), "{env:?}");
}

#[tokio::test]
async fn analysis_runs_are_recorded_and_collected_with_the_revision_they_judged() {
    let bed = testbed::shared();
    let ns = bed.namespace("runs").await;
    let op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let mut r = rollout(
        "judged",
        json!({"steps": [{"setWeight": 50}, {"analysis": smoke_test(false)}]}),
    );
    r.spec.revision_history_limit = Some(0);
    api.create(&PostParams::default(), &r)
        .await
        .expect("created");
    let runs: Api<cutover::api::AnalysisRun> = Api::namespaced(client.clone(), &ns.name);
    let mut judged: Vec<(String, String)> = Vec::new();
    for image in ["judged:2", "judged:3"] {
        eventually("healthy", LIMIT, async || {
            let s = api.get("judged").await.ok()?.status?;
            (s.phase == RolloutPhase::Healthy && s.stable_revision == s.current_revision)
                .then_some(())
        })
        .await;
        set_image(&api, "judged", image).await;
        let before: Vec<String> = judged.iter().map(|(r, _)| r.clone()).collect();
        let revision = eventually("promoted after its smoke test", LIMIT, async || {
            let s = api.get("judged").await.ok()?.status?;
            let run = s.analysis.iter().find(|a| a.name == "step-1")?;
            let current = s.current_revision.clone()?;
            (s.phase == RolloutPhase::Healthy
                && s.stable_revision == s.current_revision
                && run.revision == s.current_revision
                && !before.contains(&current))
            .then_some(current)
        })
        .await;
        let record = eventually("its run recorded", LIMIT, async || {
            let listed = runs.list(&Default::default()).await.ok()?.items;
            listed
                .into_iter()
                .find(|a| a.spec.revision.as_deref() == Some(revision.as_str()))
                .filter(|a| {
                    a.status
                        .as_ref()
                        .is_some_and(|s| s.verdict == cutover::api::AnalysisVerdict::Successful)
                })
        })
        .await;
        let kept = record.status.clone().expect("status");
        assert_eq!(kept.metrics[0].measurements.len(), 1, "{}", op.log_tail());
        assert_eq!(
            kept.metrics[0].measurements[0].value.as_deref(),
            Some("Complete")
        );
        let owner = &record.metadata.owner_references.as_ref().expect("owned")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.clone()),
            ("Deployment", format!("judged-{revision}"))
        );
        judged.push((revision, record.metadata.name.clone().expect("name")));
    }
    // With no history kept, the first judged revision's Deployment went when the second
    // was promoted, and the garbage collector took its record with it.
    let (first, second) = (&judged[0].1, &judged[1].1);
    eventually("the first revision's record collected", LIMIT, async || {
        runs.get_opt(first).await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(runs.get_opt(second).await.expect("read").is_some());
    // kubectl lists them with their columns.
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(bed.admin_kubeconfig())
        .args(["-n", &ns.name, "get", "arun"])
        .output()
        .expect("kubectl runs");
    let table = String::from_utf8_lossy(&out.stdout);
    let header = table.lines().next().unwrap_or_default();
    for column in ["NAME", "OF", "RUN", "REVISION", "VERDICT", "AGE"] {
        assert!(header.contains(column), "{table}");
    }
    assert!(
        table.contains(second) && table.contains("Successful") && table.contains("step-1"),
        "{table}"
    );
}

#[tokio::test]
async fn a_missing_template_holds_the_rollout_until_it_is_created() {
    let bed = testbed::shared();
    let ns = bed.namespace("missing").await;
    let _op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    api.create(
        &PostParams::default(),
        &rollout("waits", json!({"steps": [{"setWeight": 50}]})),
    )
    .await
    .expect("created");
    eventually("healthy", LIMIT, async || {
        let s = api.get("waits").await.ok()?.status?;
        (s.phase == RolloutPhase::Healthy && s.stable_revision.is_some()).then_some(())
    })
    .await;
    // A new image with an analysis step naming a template nobody has created yet.
    let edit = json!({"spec": {
        "template": {"spec": {"containers": [{"name": "app", "image": "waits:2"}]}},
        "strategy": {"canary": {"steps": [{"setWeight": 50},
            {"analysis": {"templates": [{"templateName": "smoke"}]}}]}}}});
    api.patch("waits", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .expect("edited");
    let held = eventually("InvalidSpec naming the template", LIMIT, async || {
        let s = api.get("waits").await.ok()?.status?;
        let c = s
            .conditions
            .iter()
            .find(|c| c.type_ == "InvalidSpec")?
            .clone();
        (c.status == "True").then_some((c.message, s))
    })
    .await;
    assert!(
        held.0.contains("AnalysisTemplate \"smoke\" does not exist"),
        "{}",
        held.0
    );
    // Nothing was done with the new revision: no Deployment for it.
    let names = testbed::deployment_names(&client, &ns.name).await;
    assert_eq!(
        names,
        [format!(
            "waits-{}",
            held.1.stable_revision.clone().expect("stable")
        )]
    );
    // The template appears; the Rollout goes on without being touched.
    smoke_template(&client, &ns.name).await;
    let generation = api.get("waits").await.expect("read").metadata.generation;
    eventually("promoted", LIMIT, async || {
        let s = api.get("waits").await.ok()?.status?;
        (s.phase == RolloutPhase::Healthy
            && s.stable_revision == s.current_revision
            && s.stable_revision != held.1.stable_revision)
            .then_some(())
    })
    .await;
    let r = api.get("waits").await.expect("read");
    assert_eq!(r.metadata.generation, generation, "never edited");
    let invalid = r.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "InvalidSpec")
            .cloned()
    });
    assert!(
        invalid.as_ref().is_none_or(|c| c.status == "False"),
        "{invalid:?}"
    );
}

#[tokio::test]
async fn a_flag_rolls_out_under_a_templates_smoke_test_and_its_runs_are_recorded() {
    let bed = testbed::shared();
    let ns = bed.namespace("flagrun").await;
    let op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    smoke_template(&client, &ns.name).await;
    let flags: Api<cutover::api::FeatureFlag> = Api::namespaced(client.clone(), &ns.name);
    let flag: cutover::api::FeatureFlag = serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "FeatureFlag", "metadata": {"name": "banner"},
        "spec": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
            "rollout": {"variant": "on", "steps": [50, 100], "interval": "1s",
                "analysis": {"templates": [{"templateName": "smoke"}]}},
            "output": {"configMap": {"name": "flags"}}}
    }))
    .expect("a flag");
    flags
        .create(&PostParams::default(), &flag)
        .await
        .expect("created");
    eventually("served to everyone", LIMIT, async || {
        let s = flags.get("banner").await.ok()?.status?;
        (s.phase == cutover::api::FlagPhase::Serving && s.percentage == Some(100)).then_some(())
    })
    .await;
    // The step at 50 % waited for its smoke test, though its interval is 1 s: its run was
    // measured before the flag went on to 100 %.
    let runs: Api<cutover::api::AnalysisRun> = Api::namespaced(client.clone(), &ns.name);
    let recorded: Vec<_> = runs
        .list(&Default::default())
        .await
        .expect("runs")
        .items
        .into_iter()
        .filter(|r| r.spec.run == "step-0")
        .collect();
    assert_eq!(recorded.len(), 1, "{}", op.log_tail());
    for run in &recorded {
        assert_eq!(
            (run.spec.of.kind.as_str(), run.spec.of.name.as_str()),
            ("FeatureFlag", "banner")
        );
        let owner = &run.metadata.owner_references.as_ref().expect("owned")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("FeatureFlag", "banner")
        );
        let kept = run.status.clone().expect("status");
        assert_eq!(
            kept.verdict,
            cutover::api::AnalysisVerdict::Successful,
            "{run:?}"
        );
        assert_eq!(
            kept.metrics[0].measurements[0].value.as_deref(),
            Some("Complete")
        );
    }
    // The smoke test ran as a Job owned by the flag.
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), &ns.name);
    let listed = jobs
        .list(&kube::api::ListParams::default().labels("cutover.dev/analysis-of=banner"))
        .await
        .expect("jobs")
        .items;
    assert_eq!(
        listed.len(),
        recorded.len(),
        "one Job per run's measurement"
    );
}

#[tokio::test]
async fn aborting_stops_a_smoke_test_job_still_running() {
    let bed = testbed::shared();
    let ns = bed.namespace("stopjob").await;
    let op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    // The smoke test would run for ten minutes.
    let mut analysis = smoke_test(false);
    analysis["metrics"][0]["job"]["spec"]["template"]["metadata"]["annotations"]["sim.cutover.dev/duration"] =
        json!("10m");
    roll_each(
        &api,
        &[(
            "long",
            json!({"steps": [{"setWeight": 50}, {"analysis": analysis}]}),
        )],
    )
    .await;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), &ns.name);
    let running = kube::api::ListParams::default().labels("cutover.dev/analysis-of=long");
    eventually("the smoke test's Job runs", LIMIT, async || {
        let listed = jobs.list(&running).await.ok()?.items;
        listed
            .iter()
            .any(|j| j.status.as_ref().and_then(|s| s.active) == Some(1))
            .then_some(())
    })
    .await;
    let abort = json!({"metadata": {"annotations": {"cutover.dev/abort": "1"}}});
    api.patch("long", &PatchParams::default(), &Patch::Merge(&abort))
        .await
        .expect("annotated");
    aborted(&api, "long").await;
    eventually("the Job is gone", LIMIT, async || {
        jobs.list(&running)
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    assert!(
        op.log_tail()
            .contains("analysis Job stopped: its run ended"),
        "{}",
        op.log_tail()
    );
}

#[tokio::test]
async fn a_long_run_keeps_ten_measurements_in_status_and_all_in_its_record() {
    let bed = testbed::shared();
    let ns = bed.namespace("longrun").await;
    let (url, _requests) = checks_api(&[("bake", 0.01)]).await;
    let _op = bed.operator(&ns.name, &["--allowed-hosts", "127.0.0.1"]);
    let client = bed.admin().await;
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let analysis = json!({"metrics": [{"name": "error-rate", "interval": "1s", "count": 14,
        "successCondition": "result < 0.05",
        "web": {"url": format!("{url}/checks/bake"), "jsonPath": "$.errorRate"}}]});
    roll_each(
        &api,
        &[(
            "bake",
            json!({"steps": [{"setWeight": 50}, {"analysis": analysis}]}),
        )],
    )
    .await;
    let r = promoted(&api, "bake").await;
    let in_status = r
        .status
        .as_ref()
        .and_then(|s| s.analysis.iter().find(|a| a.name == "step-1").cloned())
        .expect("the step's run");
    assert_eq!(in_status.metrics[0].count, 14);
    assert_eq!(in_status.metrics[0].measurements.len(), 10);
    let runs: Api<cutover::api::AnalysisRun> = Api::namespaced(client.clone(), &ns.name);
    let name = cutover::analysis::history::run_name("bake", &in_status);
    let record = eventually("the record of all fourteen", LIMIT, async || {
        let kept = runs.get(&name).await.ok()?.status?;
        (kept.verdict == cutover::api::AnalysisVerdict::Successful).then_some(kept)
    })
    .await;
    let dues: Vec<_> = record.metrics[0]
        .measurements
        .iter()
        .map(|m| m.due_at.0)
        .collect();
    assert_eq!(dues.len(), 14, "{dues:?}");
    assert!(
        dues.windows(2).all(|w| w[0] < w[1]),
        "each due time once, in order"
    );
}
