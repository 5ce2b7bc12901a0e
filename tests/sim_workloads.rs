//! The workload simulator: Deployments become available, Jobs succeed or fail as annotated,
//! Services get endpoints — on the virtual clock.

use std::time::Duration;

use cutover::{
    controller::Clock,
    sim::{Sim, workload::WorkloadConfig},
};
use k8s_openapi::api::{
    apps::v1::Deployment,
    batch::v1::Job,
    core::v1::{Pod, Service},
    discovery::v1::EndpointSlice,
};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn start() -> (Sim, Client, CancellationToken) {
    let sim = Sim::new(Clock::tokio_at(
        jiff::Timestamp::from_second(1_800_000_000).unwrap(),
    ));
    let shutdown = CancellationToken::new();
    sim.start_workloads(WorkloadConfig::default(), shutdown.clone());
    let client = sim.client();
    (sim, client, shutdown)
}

/// Polls `check` on the virtual clock until it holds or `limit` passes.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check().await
}

fn deployment(name: &str, replicas: i32, annotations: serde_json::Value) -> Deployment {
    serde_json::from_value(
        json!({"metadata": {"name": name}, "spec": {"replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}, "annotations": annotations},
            "spec": {"containers": [{"name": "main", "image": "img:1"}]}}}}),
    )
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn deployments_become_available_after_the_ready_delay() {
    let (_sim, client, _stop) = start();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &deployment("web", 3, json!({"sim.cutover.dev/ready-after": "30s"})),
    )
    .await
    .unwrap();
    let started = tokio::time::Instant::now();
    assert!(
        eventually(Duration::from_secs(5), || async {
            api.get("web")
                .await
                .unwrap()
                .status
                .and_then(|s| s.replicas)
                == Some(3)
        })
        .await
    );
    assert_eq!(
        api.get("web")
            .await
            .unwrap()
            .status
            .unwrap()
            .available_replicas
            .unwrap_or(0),
        0,
        "not ready before 30s"
    );
    assert!(
        eventually(Duration::from_secs(60), || async {
            api.get("web")
                .await
                .unwrap()
                .status
                .and_then(|s| s.available_replicas)
                == Some(3)
        })
        .await
    );
    assert!(started.elapsed() >= Duration::from_secs(30));
    let status = api.get("web").await.unwrap().status.unwrap();
    assert_eq!(status.observed_generation, Some(1));
    let pods: Api<Pod> = Api::namespaced(client, "default");
    assert_eq!(
        pods.list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .len(),
        3
    );

    // Scaling down removes pods; a template change replaces them.
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            pods.list(&ListParams::default().labels("app=web"))
                .await
                .unwrap()
                .items
                .len()
                == 1
        })
        .await
    );
}

#[tokio::test(start_paused = true)]
async fn never_ready_and_crash_looping_pods_never_count_as_available() {
    let (_sim, client, _stop) = start();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &deployment("stuck", 2, json!({"sim.cutover.dev/never-ready": "true"})),
    )
    .await
    .unwrap();
    api.create(
        &PostParams::default(),
        &deployment("crash", 1, json!({"sim.cutover.dev/crash-loop": "true"})),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(600)).await;
    for name in ["stuck", "crash"] {
        let status = api.get(name).await.unwrap().status.unwrap();
        assert_eq!(status.available_replicas.unwrap_or(0), 0, "{name}");
        assert!(status.replicas.unwrap_or(0) > 0, "{name} has pods");
    }
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let crash = pods
        .list(&ListParams::default().labels("app=crash"))
        .await
        .unwrap()
        .items;
    let waiting = crash[0]
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .state
        .as_ref()
        .unwrap()
        .waiting
        .clone();
    assert_eq!(waiting.unwrap().reason.as_deref(), Some("CrashLoopBackOff"));
}

fn job(name: &str, annotations: serde_json::Value, backoff: i32, deadline: Option<i64>) -> Job {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"backoffLimit": backoff, "activeDeadlineSeconds": deadline,
        "template": {"metadata": {"annotations": annotations}, "spec": {"restartPolicy": "Never",
            "containers": [{"name": "migrate", "image": "m:1"}]}}}}))
    .unwrap()
}

async fn job_condition(api: &Api<Job>, name: &str) -> Option<(String, String)> {
    let job = api.get(name).await.ok()?;
    job.status?
        .conditions?
        .into_iter()
        .find(|c| c.type_ == "Complete" || c.type_ == "Failed")
        .map(|c| (c.type_, c.reason.unwrap_or_default()))
}

#[tokio::test(start_paused = true)]
async fn jobs_succeed_fail_retry_and_time_out_as_annotated() {
    let (_sim, client, _stop) = start();
    let api: Api<Job> = Api::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &job("ok", json!({"sim.cutover.dev/duration": "20s"}), 0, None),
    )
    .await
    .unwrap();
    api.create(
        &PostParams::default(),
        &job(
            "flaky",
            json!({"sim.cutover.dev/fail-attempts": "1"}),
            1,
            None,
        ),
    )
    .await
    .unwrap();
    api.create(&PostParams::default(), &job("broken", json!({"sim.cutover.dev/fail-attempts": "always", "sim.cutover.dev/log": "ERROR: column exists"}), 1, None)).await.unwrap();
    api.create(
        &PostParams::default(),
        &job(
            "slow",
            json!({"sim.cutover.dev/duration": "1h"}),
            0,
            Some(60),
        ),
    )
    .await
    .unwrap();

    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        job_condition(&api, "ok").await,
        None,
        "still running at 10s"
    );
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(
        job_condition(&api, "ok").await,
        Some(("Complete".into(), "CompletionsReached".into()))
    );
    assert_eq!(
        job_condition(&api, "flaky").await,
        Some(("Complete".into(), "CompletionsReached".into()))
    );
    assert_eq!(
        api.get("flaky").await.unwrap().status.unwrap().failed,
        Some(1)
    );
    assert_eq!(
        job_condition(&api, "broken").await,
        Some(("Failed".into(), "BackoffLimitExceeded".into()))
    );
    assert_eq!(
        api.get("broken").await.unwrap().status.unwrap().failed,
        Some(2),
        "backoffLimit 1 = two attempts"
    );
    assert_eq!(
        job_condition(&api, "slow").await,
        Some(("Failed".into(), "DeadlineExceeded".into()))
    );

    let pods: Api<Pod> = Api::namespaced(client, "default");
    let broken_pod = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|p| p.metadata.name.as_deref().unwrap().starts_with("broken-"))
        .unwrap();
    let log = pods
        .logs(
            broken_pod.metadata.name.as_deref().unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(log, "ERROR: column exists");
}

#[tokio::test(start_paused = true)]
async fn services_get_endpoints_of_their_ready_pods() {
    let (_sim, client, _stop) = start();
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})).unwrap();
    Api::<Service>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &deployment("web", 2, json!({})))
        .await
        .unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(client, "default");
    assert!(
        eventually(Duration::from_secs(30), || async {
            slices
                .get("web-sim")
                .await
                .map(|s| s.endpoints.len() == 2)
                .unwrap_or(false)
        })
        .await
    );
}

/// A burst of changes larger than the live feed: the simulator falls behind, catches up
/// (from the history, or by looking at everything once the history is too short too) and
/// still brings up the Deployments created and scaled inside the burst.
#[tokio::test(start_paused = true)]
async fn a_burst_the_simulator_falls_behind_on_loses_no_work() {
    for history in [20_000, 100] {
        let sim = Sim::with_history_limit(
            Clock::tokio_at(jiff::Timestamp::from_second(1_800_000_000).unwrap()),
            history,
        );
        let shutdown = CancellationToken::new();
        sim.start_workloads(WorkloadConfig::default(), shutdown.clone());
        let client = sim.client();
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        deployments
            .create(&PostParams::default(), &deployment("early", 1, json!({})))
            .await
            .unwrap();
        assert!(
            eventually(Duration::from_secs(30), || async {
                available(&deployments, "early").await == Some(1)
            })
            .await
        );
        // Written straight to the store without yielding: the simulator sees none of it live.
        let store = sim.store();
        let maps = store.resolve("", "v1", "configmaps").unwrap();
        let apps = store.resolve("apps", "v1", "deployments").unwrap();
        let scaled = json!({"spec": {"replicas": 3}});
        store
            .patch(
                &apps,
                "default",
                "early",
                cutover::sim::store::PatchKind::Merge,
                &scaled,
                cutover::sim::store::Subresource::Main,
                &Default::default(),
            )
            .unwrap();
        for i in 0..6_000 {
            store
                .create(
                    &maps,
                    "default",
                    json!({"metadata": {"name": format!("filler-{i}")}}),
                    &Default::default(),
                )
                .unwrap();
        }
        store
            .create(
                &apps,
                "default",
                serde_json::to_value(deployment("late", 2, json!({}))).unwrap(),
                &Default::default(),
            )
            .unwrap();
        for (name, replicas) in [("early", 3), ("late", 2)] {
            assert!(
                eventually(Duration::from_secs(30), || async {
                    available(&deployments, name).await == Some(replicas)
                })
                .await,
                "history {history}: {name} should have {replicas} available replicas"
            );
        }
        shutdown.cancel();
    }
}

async fn available(api: &Api<Deployment>, name: &str) -> Option<i32> {
    api.get(name).await.ok()?.status?.available_replicas
}
