//! Analyses that reference AnalysisTemplates and ClusterAnalysisTemplates, through the real
//! controllers against the sim and its scripted Prometheus, on the virtual clock.

use std::{sync::Arc, time::Duration};

use cutover::{
    api::{
        AnalysisVerdict, ClusterAnalysisTemplate, FeatureFlag, FlagPhase, Rollout, RolloutPhase,
    },
    controller::{Clock, Config, Context, Metrics},
    sim::{Sim, prometheus::MetricScript, workload::WorkloadConfig},
};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{DynamicObject, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Env {
    client: kube::Client,
    rollouts: Api<Rollout>,
    _stop: tokio_util::sync::DropGuard,
}

fn start(script: &str) -> Env {
    let clock = Clock::tokio_at(jiff::Timestamp::from_second(1_800_000_000).unwrap());
    let sim = Sim::new(clock.clone());
    cutover::cli::dev::install_crds(&sim).unwrap();
    sim.prometheus()
        .set_script(MetricScript::parse(script).unwrap());
    let stop = CancellationToken::new();
    sim.start_workloads(WorkloadConfig::default(), stop.clone());
    let client = sim.client();
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            Config {
                allowed_hosts: vec!["prometheus.test".into()],
                ..Config::default()
            },
            clock,
            Arc::new(Metrics::new()),
        )
        .with_prometheus(sim.prometheus_transport()),
    );
    tokio::spawn(cutover::rollout::watch::run(ctx.clone(), stop.clone()));
    tokio::spawn(cutover::flag::reconcile::run(ctx, stop.clone()));
    Env {
        rollouts: Api::namespaced(client.clone(), "default"),
        client,
        _stop: stop.drop_guard(),
    }
}

/// A template of `kind` (`AnalysisTemplate` or `ClusterAnalysisTemplate`) named `name`.
fn template(kind: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "cutover.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec})
}

/// A Prometheus metric named `name` with `query`, four measurements 30 s apart.
fn metric(name: &str, query: &str, extra: Value) -> Value {
    let mut m = json!({"name": name, "interval": "30s", "count": 4, "successCondition": "result < 0.05",
        "prometheus": {"query": query, "address": "http://prometheus.test"}});
    if let (Some(o), Some(e)) = (m.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    m
}

impl Env {
    async fn apply(&self, object: Value) {
        let kind = object["kind"].as_str().unwrap().to_string();
        let (plural, namespaced) = match kind.as_str() {
            "AnalysisTemplate" => ("analysistemplates", true),
            "ClusterAnalysisTemplate" => ("clusteranalysistemplates", false),
            other => panic!("no plural for {other}"),
        };
        let resource = kube::discovery::ApiResource {
            group: "cutover.dev".into(),
            version: "v1alpha1".into(),
            api_version: "cutover.dev/v1alpha1".into(),
            kind,
            plural: plural.into(),
        };
        let api: Api<DynamicObject> = if namespaced {
            Api::namespaced_with(self.client.clone(), "default", &resource)
        } else {
            Api::all_with(self.client.clone(), &resource)
        };
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        api.patch(
            &name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap();
    }

    async fn secret(&self, name: &str, data: Value) {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), "default");
        let secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
                .unwrap();
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }

    /// Creates the Rollout on `web:1` with `canary`, waits for it to be healthy, sets `web:2`.
    async fn roll(&self, canary: Value) {
        self.roll_into(canary.clone(), canary).await;
    }

    /// Creates the Rollout on `web:1` with `first`, waits for it to be healthy, then sets
    /// `web:2` and the strategy `then` in one edit.
    async fn roll_into(&self, canary: Value, then: Value) {
        let rollout: Rollout = serde_json::from_value(json!({
            "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "labels": {"team": "payments"}},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
                "strategy": {"canary": canary}}
        }))
        .unwrap();
        self.rollouts
            .create(&PostParams::default(), &rollout)
            .await
            .unwrap();
        self.until("first revision healthy", |r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.phase == RolloutPhase::Healthy)
        })
        .await;
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}},
            "strategy": {"canary": then}}});
        self.rollouts
            .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    async fn until(&self, what: &str, check: impl Fn(&Rollout) -> bool) -> Rollout {
        for _ in 0..4000 {
            let r = self.rollouts.get("web").await.unwrap();
            if check(&r) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!(
            "timed out waiting for {what}: {:#?}",
            self.rollouts.get("web").await.unwrap().status
        );
    }
}

fn promoted(r: &Rollout) -> bool {
    r.status.as_ref().is_some_and(|s| {
        s.phase == RolloutPhase::Healthy
            && s.stable_revision == s.current_revision
            && s.analysis.iter().any(|a| a.name == "step-1")
    })
}

fn stopped(r: &Rollout) -> bool {
    promoted(r)
        || r.status
            .as_ref()
            .is_some_and(|s| matches!(s.phase, RolloutPhase::Aborted | RolloutPhase::Paused))
}

#[tokio::test(start_paused = true)]
async fn a_cluster_template_with_a_secret_arg_promotes_and_the_secret_stays_out_of_status() {
    // Only a query carrying the Secret's tenant and the label read by fieldRef is answered:
    // any other query has no data, which never promotes.
    let env = start(
        "metrics:\n  - match: 'errors\\{tenant=\"acme-7f3a\",team=\"payments\",rev=\"{{canary}}\"\\}'\n    value: 0.01\n",
    );
    env.apply(template(
        "ClusterAnalysisTemplate",
        "error-rate",
        json!({
            "args": [{"name": "tenant", "valueFrom": {"secretKeyRef": {"name": "prom-tenant", "key": "id"}}}, {"name": "team"}],
            "metrics": [metric("error-rate", "errors{tenant=\"{{ args.tenant }}\",team=\"{{ args.team }}\",rev=\"{{ rollout.canaryRevision }}\"}", json!({}))],
        }),
    ))
    .await;
    env.secret("prom-tenant", json!({"id": "acme-7f3a"})).await;
    env.roll(json!({"steps": [{"setWeight": 25}, {"analysis": {
        "templates": [{"templateName": "error-rate", "clusterScope": true}],
        "args": [{"name": "team", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}}],
    }}]}))
    .await;
    let r = env.until("the rollout to stop", stopped).await;
    let s = r.status.clone().unwrap();
    assert!(promoted(&r), "{:?} {:?}", s.phase, s.message);
    let run = s.analysis.iter().find(|a| a.name == "step-1").unwrap();
    assert_eq!(run.verdict, AnalysisVerdict::Successful);
    assert_eq!(
        (run.metrics[0].name.as_str(), run.metrics[0].successful),
        ("error-rate", 4)
    );
    let whole = serde_json::to_string(&r).unwrap();
    assert!(
        !whole.contains("acme-7f3a"),
        "the Secret's value is in the Rollout: {whole}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_missing_template_is_an_invalid_spec_until_it_is_created() {
    let env = start("metrics:\n  - match: 'latency'\n    value: 0.01\n");
    env.roll_into(
        json!({"steps": [{"setWeight": 25}]}),
        json!({"steps": [{"setWeight": 25}, {"analysis": {"templates": [{"templateName": "latency"}]}}]}),
    )
    .await;
    let r = env
        .until("InvalidSpec", |r| {
            r.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "InvalidSpec" && c.status == "True")
            })
        })
        .await;
    let s = r.status.unwrap();
    let invalid = s
        .conditions
        .iter()
        .find(|c| c.type_ == "InvalidSpec")
        .unwrap();
    assert!(
        invalid.message.contains(
            "spec.strategy.canary.steps[1].analysis.templates[0]: AnalysisTemplate \"latency\" does not exist in namespace \"default\""
        ),
        "{}",
        invalid.message
    );
    assert_ne!(
        s.stable_revision.as_deref(),
        Some(""),
        "nothing was promoted"
    );
    assert!(
        s.analysis.iter().all(|a| a.name != "step-1"),
        "nothing was measured"
    );
    // The template's creation wakes the Rollout: no edit of the Rollout is needed.
    env.apply(template(
        "AnalysisTemplate",
        "latency",
        json!({"metrics": [metric("latency", "latency{rev=\"{{ rollout.canaryRevision }}\"}", json!({}))]}),
    ))
    .await;
    let r = env.until("promoted", promoted).await;
    let invalid = r
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "InvalidSpec");
    assert!(
        invalid.as_ref().is_none_or(|c| c.status == "False"),
        "{invalid:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_dry_run_metric_is_recorded_and_decides_nothing() {
    let env = start(
        "metrics:\n  - match: 'errors'\n    value: 0.01\n  - match: 'saturation'\n    value: 0.97\n",
    );
    env.apply(template(
        "AnalysisTemplate",
        "errors",
        json!({"metrics": [metric("errors", "errors{rev=\"{{ rollout.canaryRevision }}\"}", json!({}))]}),
    ))
    .await;
    env.roll(json!({"steps": [{"setWeight": 25}, {"analysis": {
        "templates": [{"templateName": "errors"}],
        "metrics": [metric("saturation", "saturation", json!({"dryRun": true, "count": 2, "successCondition": "result < 0.8"}))],
    }}]}))
    .await;
    let r = env.until("the rollout to stop", stopped).await;
    let s = r.status.clone().unwrap();
    assert!(promoted(&r), "{:?} {:?}", s.phase, s.message);
    let run = s.analysis.iter().find(|a| a.name == "step-1").unwrap();
    assert_eq!(run.verdict, AnalysisVerdict::Successful);
    let dry = run.metrics.iter().find(|m| m.name == "saturation").unwrap();
    assert!(dry.dry_run);
    assert_eq!(
        dry.verdict,
        AnalysisVerdict::Failed,
        "measured and shown as it is"
    );
    assert!(dry.failed >= 1);
}

#[tokio::test(start_paused = true)]
async fn a_clash_between_a_template_and_an_inline_metric_is_an_invalid_spec_naming_both() {
    let env = start("metrics: []\n");
    env.apply(template(
        "ClusterAnalysisTemplate",
        "errors",
        json!({"metrics": [metric("errors", "errors", json!({}))]}),
    ))
    .await;
    env.roll_into(
        json!({"steps": [{"setWeight": 25}]}),
        json!({"steps": [{"setWeight": 25}, {"analysis": {
            "templates": [{"templateName": "errors", "clusterScope": true}],
            "metrics": [metric("errors", "other", json!({}))],
        }}]}),
    )
    .await;
    let r = env
        .until("InvalidSpec", |r| {
            r.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "InvalidSpec" && c.status == "True")
            })
        })
        .await;
    let message = r
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "InvalidSpec")
        .unwrap()
        .message;
    assert!(
        message.contains("metric \"errors\" is also defined by ClusterAnalysisTemplate \"errors\""),
        "{message}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_flag_rollout_measures_a_templates_metrics() {
    let env = start("metrics:\n  - match: 'flag_errors\\{flag=\"checkout\"\\}'\n    value: 0.5\n");
    env.apply(template(
        "AnalysisTemplate",
        "flag-errors",
        json!({"args": [{"name": "flag"}], "metrics": [metric("flag-errors", "flag_errors{flag=\"{{ args.flag }}\"}", json!({"count": 2}))]}),
    ))
    .await;
    let flags: Api<FeatureFlag> = Api::namespaced(env.client.clone(), "default");
    let flag: FeatureFlag = serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "FeatureFlag", "metadata": {"name": "checkout"},
        "spec": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
            "rollout": {"variant": "on", "steps": [10, 50, 100], "interval": "1m",
                "analysis": {"templates": [{"templateName": "flag-errors"}], "args": [{"name": "flag", "value": "checkout"}]}},
            "output": {"configMap": {"name": "flags"}}}
    }))
    .unwrap();
    flags.create(&PostParams::default(), &flag).await.unwrap();
    // The template's metric fails (50 % errors): the kill switch takes the flag back.
    for _ in 0..2000 {
        let f = flags.get("checkout").await.unwrap();
        if let Some(s) = f
            .status
            .as_ref()
            .filter(|s| s.phase == FlagPhase::RolledBack)
        {
            let run = s
                .analysis
                .as_ref()
                .filter(|a| a.verdict == AnalysisVerdict::Failed);
            assert!(
                run.is_some_and(|r| r.metrics[0].name == "flag-errors"),
                "{s:?}"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!(
        "the flag was never aborted: {:?}",
        flags.get("checkout").await.unwrap().status
    );
}

#[test]
fn the_cluster_template_kind_is_cluster_scoped() {
    use kube::Resource;
    assert_eq!(
        ClusterAnalysisTemplate::kind(&()),
        "ClusterAnalysisTemplate"
    );
    let crd = cutover::api::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "ClusterAnalysisTemplate")
        .unwrap();
    assert_eq!(crd.spec.scope, "Cluster");
}

/// The runbook's smoke test as a ClusterAnalysisTemplate: a Job that requests the canary's
/// health endpoint; `annotations` steer how the sim's pod runs.
fn smoke_template(annotations: Value) -> Value {
    template(
        "ClusterAnalysisTemplate",
        "smoke-test",
        json!({
            "args": [{"name": "path", "value": "/healthz"}],
            "metrics": [{"name": "smoke", "count": 1, "job": {"spec": {"backoffLimit": 1,
                "template": {"metadata": {"annotations": annotations},
                    "spec": {"containers": [{"name": "smoke", "image": "curlimages/curl:8",
                        "args": ["-fsS", "http://{{ rollout.name }}-canary{{ args.path }}"]}]}}}}}],
        }),
    )
}

fn smoke_run(r: &Rollout) -> cutover::api::MetricStatus {
    r.status
        .as_ref()
        .and_then(|s| s.analysis.iter().find(|a| a.name == "step-1"))
        .and_then(|a| a.metrics.first().cloned())
        .expect("the smoke test's metric")
}

#[tokio::test(start_paused = true)]
async fn a_smoke_test_job_that_completes_promotes() {
    let env = start("metrics: []\n");
    env.apply(smoke_template(json!({"sim.cutover.dev/duration": "20s",
        "sim.cutover.dev/log": "HTTP/1.1 200 OK"})))
        .await;
    env.roll(json!({"steps": [{"setWeight": 25}, {"analysis": {
        "templates": [{"templateName": "smoke-test", "clusterScope": true}]}}]}))
        .await;
    let r = env.until("the rollout to stop", stopped).await;
    assert!(promoted(&r), "{:#?}", r.status);
    let m = smoke_run(&r);
    assert_eq!((m.count, m.successful), (1, 1));
    let measured = &m.measurements[0];
    assert_eq!(measured.value.as_deref(), Some("Complete"));
    assert!(
        measured
            .message
            .as_deref()
            .is_some_and(|t| t.contains("HTTP/1.1 200 OK")),
        "{measured:?}"
    );
    // The Job ran for its 20 s: the measurement is taken when it finished, not when it began.
    let took = measured.taken_at.0.duration_since(measured.due_at.0);
    assert!(took >= jiff::SignedDuration::from_secs(20), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_smoke_test_job_that_fails_aborts_with_its_log() {
    let env = start("metrics: []\n");
    env.apply(smoke_template(
        json!({"sim.cutover.dev/fail-attempts": "always",
        "sim.cutover.dev/log": "curl: (22) The requested URL returned error: 503"}),
    ))
    .await;
    env.roll(json!({"steps": [{"setWeight": 25}, {"analysis": {
        "templates": [{"templateName": "smoke-test", "clusterScope": true}]}}]}))
        .await;
    let r = env.until("the rollout to stop", stopped).await;
    let s = r.status.clone().unwrap();
    assert_eq!(s.phase, RolloutPhase::Aborted, "{s:#?}");
    let m = smoke_run(&r);
    assert_eq!(m.verdict, AnalysisVerdict::Failed);
    let message = m.measurements[0].message.clone().unwrap_or_default();
    assert!(message.contains("returned error: 503"), "{message}");
    let jobs: Api<k8s_openapi::api::batch::v1::Job> =
        Api::namespaced(env.client.clone(), "default");
    let listed = jobs.list(&Default::default()).await.unwrap().items;
    assert_eq!(listed.len(), 1, "one Job for the one measurement");
    // backoffLimit 1: the pod ran twice before the Job failed.
    let job = listed[0].metadata.name.clone().unwrap();
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(env.client.clone(), "default");
    let runs = pods
        .list(
            &kube::api::ListParams::default()
                .labels(&format!("batch.kubernetes.io/job-name={job}")),
        )
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(runs, 2, "pods of {job}");
}

#[tokio::test(start_paused = true)]
async fn a_job_metric_never_writes_a_secret_arg_into_its_job() {
    let env = start("metrics: []\n");
    env.secret("smoke-token", json!({"token": "s3cr3t-77"}))
        .await;
    env.roll(json!({"steps": [{"setWeight": 25}, {"analysis": {
        "args": [{"name": "token", "valueFrom": {"secretKeyRef": {"name": "smoke-token", "key": "token"}}}],
        "metrics": [{"name": "smoke", "count": 1, "consecutiveErrorLimit": 0, "job": {"spec": {
            "template": {"spec": {"containers": [{"name": "smoke", "image": "curl",
                "args": ["-H", "Authorization: Bearer {{ args.token }}", "http://web-canary/"]}]}}}}}]}}]}))
        .await;
    let r = env.until("the rollout to stop", stopped).await;
    let m = smoke_run(&r);
    let message = m.measurements[0].message.clone().unwrap_or_default();
    assert!(
        message.contains("arg \"token\" comes from a Secret")
            && message.contains("env valueFrom.secretKeyRef"),
        "{message}"
    );
    let jobs: Api<k8s_openapi::api::batch::v1::Job> =
        Api::namespaced(env.client.clone(), "default");
    assert!(
        jobs.list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(!serde_json::to_string(&r).unwrap().contains("s3cr3t-77"));
}

#[tokio::test(start_paused = true)]
async fn each_run_is_recorded_in_an_analysis_run_with_every_measurement() {
    let env = start("metrics:\n  - match: 'errors'\n    value: 0.01\n");
    let mut m = metric("errors", "errors", json!({}));
    m["count"] = json!(15);
    env.roll(json!({"steps": [{"setWeight": 25}, {"analysis": {"metrics": [m]}}]}))
        .await;
    let r = env.until("the rollout to stop", stopped).await;
    assert!(promoted(&r), "{:#?}", r.status);
    let s = r.status.clone().unwrap();
    let in_status = s.analysis.iter().find(|a| a.name == "step-1").unwrap();
    assert_eq!(in_status.metrics[0].count, 15);
    assert_eq!(
        in_status.metrics[0].measurements.len(),
        10,
        "status keeps the last ten"
    );
    let runs: Api<cutover::api::AnalysisRun> = Api::namespaced(env.client.clone(), "default");
    let listed = runs.list(&Default::default()).await.unwrap().items;
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let record = &listed[0];
    assert_eq!(
        record.metadata.name.as_deref(),
        Some(cutover::analysis::history::run_name("web", in_status).as_str())
    );
    assert_eq!(record.spec.of.kind, "Rollout");
    assert_eq!(record.spec.run, "step-1");
    assert_eq!(record.spec.revision, s.current_revision);
    let kept = record.status.clone().unwrap();
    assert_eq!(kept.verdict, AnalysisVerdict::Successful);
    assert_eq!(
        kept.metrics[0].measurements.len(),
        15,
        "the record keeps all"
    );
    // Owned by the revision it judged: it goes when that revision's Deployment goes.
    let owner = &record.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.kind, "Deployment");
    assert_eq!(
        owner.name,
        format!("web-{}", s.current_revision.clone().unwrap())
    );
}

#[tokio::test(start_paused = true)]
async fn aborting_stops_the_smoke_test_job_still_running() {
    let env = start("metrics: []\n");
    // The smoke test would run for ten minutes.
    env.apply(smoke_template(json!({"sim.cutover.dev/duration": "10m"})))
        .await;
    env.roll(json!({"steps": [{"setWeight": 25}, {"analysis": {
        "templates": [{"templateName": "smoke-test", "clusterScope": true}]}}]}))
        .await;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> =
        Api::namespaced(env.client.clone(), "default");
    for _ in 0..400 {
        if !jobs
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(jobs.list(&Default::default()).await.unwrap().items.len(), 1);
    let abort = json!({"metadata": {"annotations": {"cutover.dev/abort": "1"}}});
    env.rollouts
        .patch("web", &PatchParams::default(), &Patch::Merge(&abort))
        .await
        .unwrap();
    env.until("the rollout to abort", |r| {
        r.status
            .as_ref()
            .is_some_and(|s| s.phase == RolloutPhase::Aborted)
    })
    .await;
    let mut left = usize::MAX;
    for _ in 0..400 {
        left = jobs.list(&Default::default()).await.unwrap().items.len();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(left, 0, "the Job of the ended run is stopped");
    // Stopped, not finished: it never measured.
    let r = env.rollouts.get("web").await.unwrap();
    let run = r
        .status
        .unwrap()
        .analysis
        .into_iter()
        .find(|a| a.name == "step-1")
        .unwrap();
    assert_ne!(run.verdict, AnalysisVerdict::Running);
    assert!(run.metrics[0].measurements.is_empty());
}
