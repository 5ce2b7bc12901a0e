//! Real requests end to end on the real control plane: a Gateway API implementation
//! (Traefik, built from its Go module) routes by the HTTPRoute cutover writes to pods that
//! answer on their own addresses (the node agent's responders), a real Prometheus scrapes
//! those pods, and a load generator counts which revision answered.
//!
//! Checked: the canary's measured share at weights 5, 20 and 50 %, a header route (all
//! matching requests to the canary, none of the others), and a canary whose pods start
//! failing 8 % of requests aborted by its analysis with all traffic back on stable. The
//! latencies are printed as figures, not asserted.

#[path = "support/gateway.rs"]
mod gateway;
#[path = "support/prometheus.rs"]
#[allow(dead_code)]
mod prometheus;
#[path = "support/testbed.rs"]
mod testbed;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use cutover::api::{Rollout, RolloutPhase, RouteKind};
use gateway::{Answer, Gateway, Load, Proto, Tally};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::{
    Api,
    api::{DynamicObject, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use testbed::{create, eventually};

/// Generous bound for one state change on a loaded 2-core machine; only a failure waits it.
const LIMIT: Duration = Duration::from_secs(120);

/// Requests per measured share: ±2 points is ±20 requests.
const SAMPLE: usize = 1000;

/// Sets `key` on the Rollout to a fresh value, as `kubectl cutover promote` does.
async fn annotate(api: &Api<Rollout>, key: &str) {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos().to_string())
        .unwrap_or_default();
    let patch = json!({"metadata": {"annotations": {key: stamp}}});
    api.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotated");
}

/// Waits until the Rollout pauses at step `index` with the canary at `weight`.
async fn paused_at(api: &Api<Rollout>, index: i32, weight: i32) -> (String, String) {
    eventually(
        &format!("paused at step {index}, weight {weight}"),
        LIMIT,
        async || {
            let r = api.get("web").await.ok()?;
            let s = r.status?;
            (s.phase == RolloutPhase::Paused
                && s.current_step_index == Some(index)
                && s.canary_weight.unwrap_or(0) == weight
                && s.observed_generation == r.metadata.generation)
                .then_some((s.stable_revision?, s.current_revision?))
        },
    )
    .await
}

/// Waits until the gateway serves `percent` to `canary` (a block of 100 within 3 points;
/// the gateway applies a route a moment after it reports it accepted), then measures it
/// over `SAMPLE` requests.
async fn share(load: &Load, canary: &str, percent: f64, headers: &[(&str, &str)]) -> Tally {
    share_as(Proto::Http, load, canary, percent, headers).await
}

/// `share`, over HTTP requests or gRPC calls.
async fn share_as(
    proto: Proto,
    load: &Load,
    canary: &str,
    percent: f64,
    headers: &[(&str, &str)],
) -> Tally {
    let deadline = Instant::now() + LIMIT;
    loop {
        let block = load.tally_as(proto, 100, headers).await;
        if (block.percent(canary) - percent).abs() <= 3.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway never served {percent} % to {canary} ({proto:?}, headers {headers:?}): last 100 gave {block:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    load.tally_as(proto, SAMPLE, headers).await
}

/// Services `<app>-stable` and `<app>-canary` (port `port` to the pods' 8080) and a route
/// `<app>` of `kind` (HTTPRoute or GRPCRoute) on the Gateway `public`, all on stable.
async fn routed_service(
    client: &kube::Client,
    ns: &str,
    app: &str,
    port: u16,
    kind: RouteKind,
) -> Api<DynamicObject> {
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    for role in ["stable", "canary"] {
        create(
            &services,
            json!({"metadata": {"name": format!("{app}-{role}")},
                "spec": {"selector": {"app": app}, "ports": [{"port": port, "targetPort": 8080}]}}),
        )
        .await;
    }
    let resource = cutover::rollout::route::route_resource(kind);
    let routes: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let route: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": kind.kind(),
        "metadata": {"name": app},
        "spec": {"parentRefs": [{"name": "public"}],
            "rules": [{"backendRefs": [
                {"name": format!("{app}-stable"), "port": port, "weight": 100},
                {"name": format!("{app}-canary"), "port": port, "weight": 0}]}]}
    }))
    .expect("a route");
    routes
        .create(&PostParams::default(), &route)
        .await
        .expect("route created");
    routes
}

/// Creates the Rollout `web` of `app` (image `<app>:1`, port 8080) routed by the route
/// `<app>` of `kind` through `steps`, and returns its stable revision once it is Healthy.
async fn healthy_rollout(
    rollouts: &Api<Rollout>,
    app: &str,
    replicas: i32,
    kind: RouteKind,
    steps: Value,
) -> String {
    let key = match kind {
        RouteKind::Http => "httpRoute",
        RouteKind::Grpc => "grpcRoute",
    };
    create(
        rollouts,
        json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                "template": {"metadata": {"labels": {"app": app}},
                    "spec": {"containers": [{"name": "app", "image": format!("{app}:1"),
                        "ports": [{"containerPort": 8080}]}]}},
                "strategy": {"canary": {"stableService": format!("{app}-stable"),
                    "canaryService": format!("{app}-canary"),
                    "trafficRouting": {"gatewayAPI": {key: app}}, "steps": steps}}}}),
    )
    .await;
    eventually(&format!("{app}:1 healthy"), LIMIT, async || {
        let s = rollouts.get("web").await.ok()?.status?;
        (s.phase == RolloutPhase::Healthy).then_some(s.stable_revision?)
    })
    .await
}

/// Releases `image` by a JSON patch of the one field: a merge patch would replace the
/// containers list and drop the port.
async fn release(rollouts: &Api<Rollout>, image: &str) {
    let patch = json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": image}]);
    rollouts
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(patch).expect("a JSON patch")),
        )
        .await
        .expect("new image");
}

/// Writes the running pods of `ns` as Prometheus file-discovery targets, labelled with
/// their namespace, name and revision.
async fn write_targets(client: &kube::Client, ns: &str, path: &std::path::Path) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let targets: Vec<Value> = pods
        .list(&Default::default())
        .await
        .expect("pods")
        .items
        .into_iter()
        .filter_map(|p| {
            let ip = p.status.as_ref()?.pod_ip.clone()?;
            let revision = p
                .metadata
                .labels
                .as_ref()?
                .get("cutover.dev/revision")?
                .clone();
            Some(json!({"targets": [format!("{ip}:8080")],
                "labels": {"namespace": ns, "pod": p.metadata.name?, "revision": revision}}))
        })
        .collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, Value::Array(targets).to_string()).expect("targets written");
    // Renamed into place, so Prometheus never reads half a file.
    std::fs::rename(&tmp, path).expect("targets in place");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_through_a_real_gateway_follow_the_weights_the_header_route_and_the_abort() {
    let bed = testbed::shared();
    let ns = bed.namespace("traffic").await;
    let client = bed.admin().await;
    routed_service(&client, &ns.name, "web", 80, RouteKind::Http).await;
    let gw = Gateway::start(bed, &ns.name).await;
    let load = gw.load();

    // Prometheus scrapes the pods at their addresses. Debian's Prometheus is built without
    // Kubernetes discovery, so the test writes the pods the API server lists into a file
    // Prometheus discovers its targets from.
    let targets = bed.dir.join(format!("targets-{}.json", ns.name));
    let scrape = format!(
        "  - job_name: pods\n    file_sd_configs:\n      - files: ['{}']\n        refresh_interval: 1s\n",
        targets.display()
    );
    let prom = prometheus::start_prometheus_scraping(&scrape, "vector(1)")
        .await
        .expect("Prometheus starts");
    let op = bed.operator(
        &ns.name,
        &["--prometheus-url", &format!("http://{}", prom.addr)],
    );

    let errors = |code: &str| {
        format!(
            "sum(rate(sim_http_requests_total{{namespace=\"{}\",revision=\"{{{{ rollout.canaryRevision }}}}\"{code}}}[2s]))",
            ns.name
        )
    };
    let query = format!("{} / {}", errors(",code=\"500\""), errors(""));
    let steps = json!([
        {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"exact": "1"}}]}},
        {"pause": {}},
        {"setWeight": 5}, {"pause": {}},
        {"setWeight": 20}, {"pause": {}},
        {"setWeight": 50}, {"pause": {}},
        {"analysis": {"metrics": [{"name": "error-rate", "interval": "2s", "count": 60,
            "failureLimit": 0, "successCondition": "result < 0.05",
            // A 2 s rate on a 1 s scrape may find one sample on a loaded machine: no data,
            // not a verdict.
            "inconclusiveLimit": 5,
            "prometheus": {"query": query}}]}}]);
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let stable = healthy_rollout(&rollouts, "web", 4, RouteKind::Http, steps).await;
    let all_stable = share(&load, &stable, 100.0, &[]).await;
    assert_eq!(all_stable.failed, 0, "{all_stable:?}\n{}", gw.log_tail());

    release(&rollouts, "web:2").await;

    // A header route at weight 0: every matching request to the canary, no other.
    let (_, canary) = paused_at(&rollouts, 1, 0).await;
    assert_ne!(canary, stable);
    let matching = share(&load, &canary, 100.0, &[("x-beta", "1")]).await;
    let others = load.tally(SAMPLE, &[("x-beta", "2")]).await;
    println!(
        "header route: matching {:.1} % canary, others {:.1} % canary ({SAMPLE} each)",
        matching.percent(&canary),
        others.percent(&canary)
    );
    assert_eq!(matching.percent(&canary), 100.0, "{matching:?}");
    assert_eq!(others.percent(&canary), 0.0, "{others:?}");

    // The weights, measured.
    for (index, weight) in [(3, 5), (5, 20), (7, 50)] {
        annotate(&rollouts, "cutover.dev/promote").await;
        paused_at(&rollouts, index, weight).await;
        let tally = share(&load, &canary, f64::from(weight), &[]).await;
        println!(
            "weight {weight} %: measured {:.1} % canary over {} requests, {} failed",
            tally.percent(&canary),
            tally.total,
            tally.failed
        );
        assert!(
            (tally.percent(&canary) - f64::from(weight)).abs() <= 2.0,
            "weight {weight}: {tally:?}"
        );
        assert_eq!(tally.failed, 0, "{tally:?}");
        assert_eq!(
            tally.percent(&canary) + tally.percent(&stable),
            100.0,
            "every request answered by one of the two revisions: {tally:?}"
        );
    }

    // The pods at weight 50 stay until the abort: Prometheus scrapes them all.
    write_targets(&client, &ns.name, &targets).await;
    eventually("Prometheus scraping the canary's pods", LIMIT, async || {
        let up = format!("count(up{{revision=\"{canary}\"}} == 1)");
        (prom.query(&up).await? >= 2.0).then_some(())
    })
    .await;
    // Traffic through the analysis: the canary starts failing 8 % of its requests.
    let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let (load, answers, stop) = (load.clone(), answers.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let a = load.one(&[]).await;
                if let Ok(mut all) = answers.lock() {
                    all.push(a);
                }
                // About 250 requests a second: enough for a 4 s rate, little for the machine.
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
        })
    };
    eventually(
        "the canary's request rate in Prometheus",
        LIMIT,
        async || {
            let rate =
                format!("sum(rate(sim_http_requests_total{{revision=\"{canary}\"}}[3s])) > 0");
            prom.query(&rate).await
        },
    )
    .await;
    annotate(&rollouts, "cutover.dev/promote").await;
    // The analysis passes while the canary is healthy: two measurements in.
    eventually("two passing measurements", LIMIT, async || {
        let s = rollouts.get("web").await.ok()?.status?;
        let run = s
            .analysis
            .iter()
            .find(|a| a.revision.as_deref() == Some(canary.as_str()))?;
        (run.metrics.iter().map(|m| m.successful).sum::<u32>() >= 2).then_some(())
    })
    .await;
    let pods = bed.kubectl_ok(&[
        "-n",
        &ns.name,
        "get",
        "pods",
        "-l",
        &format!("cutover.dev/revision={canary}"),
        "-o",
        "name",
    ]);
    let failing_from = Instant::now();
    for pod in pods.lines() {
        bed.kubectl_ok(&[
            "-n",
            &ns.name,
            "annotate",
            pod,
            "sim.cutover.dev/error-rate=8%",
        ]);
    }
    let aborted = eventually("the analysis aborts the canary", LIMIT, async || {
        let s = rollouts.get("web").await.ok()?.status?;
        (s.phase == RolloutPhase::Aborted).then_some(Instant::now())
    })
    .await;
    let message = rollouts
        .get("web")
        .await
        .ok()
        .and_then(|r| r.status?.message)
        .unwrap_or_default();
    assert!(
        message.contains("error-rate"),
        "aborted by the analysis: {message}"
    );
    // All traffic back on stable, as measured through the gateway.
    let after = share(&load, &stable, 100.0, &[]).await;
    stop.store(true, Ordering::SeqCst);
    let _ = background.await;
    assert_eq!(after.percent(&stable), 100.0, "{after:?}");
    assert_eq!(after.failed, 0, "{after:?}");

    let answers = answers.lock().map(|a| a.clone()).unwrap_or_default();
    let first_failure = answers
        .iter()
        .find(|a| a.status == 500 && a.sent >= failing_from)
        .map(|a| a.sent)
        .expect("the canary's pods failed requests");
    let last_canary = answers
        .iter()
        .rev()
        .find(|a| a.revision == canary)
        .map(|a| a.sent)
        .expect("the canary answered requests");
    let failed_on_canary = answers
        .iter()
        .filter(|a| a.status == 500)
        .all(|a| a.revision == canary);
    assert!(failed_on_canary, "only the canary's pods fail");
    assert!(first_failure < aborted && last_canary >= first_failure);
    println!(
        "abort: first failed request to Aborted {:.2} s; to the last request the canary \
         answered (all traffic on stable) {:.2} s; {} requests during the analysis, {} failed",
        (aborted - first_failure).as_secs_f64(),
        (last_canary - first_failure).as_secs_f64(),
        answers.len(),
        answers.iter().filter(|a| a.status == 500).count()
    );
    drop(op);
}

/// Traefik accepts a route with a `RequestMirror` rule but answers that rule's requests with
/// errors; its GatewayClass does not list `HTTPRouteRequestMirror`. cutover reads that and
/// leaves the mirror unwritten, holding its step, so traffic keeps flowing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_the_gateway_cannot_serve_is_held_and_traffic_keeps_flowing() {
    let bed = testbed::shared();
    let ns = bed.namespace("no-mirror").await;
    let client = bed.admin().await;
    let routes = routed_service(&client, &ns.name, "web", 80, RouteKind::Http).await;
    let gw = Gateway::start(bed, &ns.name).await;
    let load = gw.load();
    let _op = bed.operator(&ns.name, &[]);
    let steps = json!([
        {"setMirrorRoute": {"name": "shadow", "percentage": 50}},
        {"setWeight": 20}, {"pause": {}}]);
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let stable = healthy_rollout(&rollouts, "web", 2, RouteKind::Http, steps).await;
    release(&rollouts, "web:2").await;
    let message = eventually("held at the mirror step", LIMIT, async || {
        let s = rollouts.get("web").await.ok()?.status?;
        (s.phase == RolloutPhase::Paused && s.current_step_index == Some(0)).then_some(s.message?)
    })
    .await;
    assert!(
        message.contains("HTTPRouteRequestMirror") && message.contains("\"public\""),
        "{message}"
    );
    let rules = routes.get("web").await.expect("route").data["spec"]["rules"].clone();
    assert_eq!(
        rules.as_array().map(Vec::len),
        Some(1),
        "no mirror rule: {rules}"
    );
    let held = share(&load, &stable, 100.0, &[]).await;
    println!("held at the mirror step: {held:?}");
    assert_eq!((held.failed, held.percent(&stable)), (0, 100.0), "{held:?}");

    // Going on without the mirror: the weight step is served as usual.
    annotate(&rollouts, "cutover.dev/promote").await;
    let (_, canary) = paused_at(&rollouts, 2, 20).await;
    let tally = share(&load, &canary, 20.0, &[]).await;
    assert!((tally.percent(&canary) - 20.0).abs() <= 2.0, "{tally:?}");
    assert_eq!(tally.failed, 0, "{tally:?}");
}

/// A gRPC service behind a GRPCRoute: the header route and the weight shift real gRPC
/// calls through the gateway, the route reads back as written, and promotion restores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_through_a_real_gateway_follow_the_grpc_route() {
    let bed = testbed::shared();
    let ns = bed.namespace("grpc").await;
    let client = bed.admin().await;
    let routes = routed_service(&client, &ns.name, "api", 9000, RouteKind::Grpc).await;
    let gw = Gateway::start(bed, &ns.name).await;
    let load = gw.load();
    let _op = bed.operator(&ns.name, &[]);
    let steps = json!([
        {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"exact": "1"}}]}},
        {"setWeight": 20}, {"pause": {}}]);
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let stable = healthy_rollout(&rollouts, "api", 4, RouteKind::Grpc, steps).await;
    let calls = share_as(Proto::Grpc, &load, &stable, 100.0, &[]).await;
    assert_eq!(calls.failed, 0, "{calls:?}\n{}", gw.log_tail());

    release(&rollouts, "api:2").await;
    let (_, canary) = paused_at(&rollouts, 2, 20).await;
    let matching = share_as(Proto::Grpc, &load, &canary, 100.0, &[("x-beta", "1")]).await;
    let weighted = share_as(Proto::Grpc, &load, &canary, 20.0, &[]).await;
    println!(
        "gRPC: header route {:.1} % canary; weight 20 %: {:.1} % canary ({SAMPLE} calls each)",
        matching.percent(&canary),
        weighted.percent(&canary)
    );
    assert_eq!(matching.percent(&canary), 100.0, "{matching:?}");
    assert!(
        (weighted.percent(&canary) - 20.0).abs() <= 2.0,
        "{weighted:?}"
    );
    assert_eq!(matching.failed + weighted.failed, 0);
    // What the apiserver stores is what cutover wrote: a settled Rollout writes nothing.
    let generation = routes.get("api").await.expect("route").metadata.generation;
    load.tally_as(Proto::Grpc, 200, &[]).await;
    assert_eq!(
        routes.get("api").await.expect("route").metadata.generation,
        generation,
        "a settled Rollout rewrites its route"
    );

    annotate(&rollouts, "cutover.dev/promote").await;
    eventually(
        "promoted, the route as its author wrote it",
        LIMIT,
        async || {
            let s = rollouts.get("web").await.ok()?.status?;
            let route = routes.get("api").await.ok()?;
            let rules = route.data["spec"]["rules"].as_array()?.clone();
            (s.phase == RolloutPhase::Healthy && rules.len() == 1 && rules[0].get("name").is_none())
                .then_some(())
        },
    )
    .await;
    let after = share_as(Proto::Grpc, &load, &canary, 100.0, &[]).await;
    assert_eq!(after.failed, 0, "{after:?}");
}
