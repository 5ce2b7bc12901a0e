//! Reads from watch caches, and a gateway's verdict on a route, on the real control plane:
//! a reconcile that changes nothing makes no request at all (counted by the apiserver's
//! audit log), a weight step counts only once the gateway has taken the route, and a
//! canary scale sizes the canary apart from its weight.

#[path = "support/testbed.rs"]
mod testbed;

use std::time::Duration;

use cutover::api::{FeatureFlag, Rollout, RolloutPhase};
use k8s_openapi::api::core::v1::Service;
use kube::{
    Api,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    core::ApiResource,
};
use serde_json::{Value, json};
use testbed::{create, eventually};

/// Generous bound for one state change on a loaded 2-core machine; only a failure waits it.
const LIMIT: Duration = Duration::from_secs(120);

const OPERATOR: &str = "system:serviceaccount:cutover-system:cutover";

fn routes_kind() -> ApiResource {
    cutover::rollout::route::route_resource(cutover::api::RouteKind::Http)
}

/// The requests the operator made in `ns` since `since`, other than its watches, as the
/// apiserver's audit log has them: "verb resource/name".
fn requests_since(bed: &testbed::Testbed, ns: &str, since: jiff::Timestamp) -> Vec<String> {
    let text = std::fs::read_to_string(bed.dir.join("logs/audit.log")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["stage"] == "ResponseComplete"
                && e["user"]["username"] == OPERATOR
                && e["objectRef"]["namespace"] == ns
                && e["verb"] != "watch"
                && e["requestReceivedTimestamp"]
                    .as_str()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                    .is_some_and(|t| t >= since)
        })
        .map(|e| {
            format!(
                "{} {}/{}",
                e["verb"].as_str().unwrap_or(""),
                e["objectRef"]["resource"].as_str().unwrap_or(""),
                e["objectRef"]["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// The operator's count of finished reconciles of `controller`.
async fn reconciles(op: &testbed::Operator, controller: &str) -> f64 {
    let Some(addr) = op.metrics_addr() else {
        return 0.0;
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return 0.0;
    };
    let mut text = String::new();
    if stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .is_err()
        || stream.read_to_string(&mut text).await.is_err()
    {
        return 0.0;
    }
    let wanted =
        format!("cutover_reconciles_total{{controller=\"{controller}\",result=\"success\"}}");
    text.lines()
        .find_map(|l| l.strip_prefix(&wanted))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Services `shop-stable` and `shop-canary` and the HTTPRoute `shop` splitting between them.
async fn routed_app(client: &kube::Client, ns: &str) {
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    for name in ["shop-stable", "shop-canary"] {
        create(
            &services,
            json!({"metadata": {"name": name},
                "spec": {"selector": {"app": "shop"}, "ports": [{"port": 80}]}}),
        )
        .await;
    }
    let routes: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &routes_kind());
    let route: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "shop"},
        "spec": {"parentRefs": [{"name": "public"}],
            "rules": [{"backendRefs": [
                {"name": "shop-stable", "port": 80, "weight": 100},
                {"name": "shop-canary", "port": 80, "weight": 0}]}]}
    }))
    .expect("a route");
    routes
        .create(&PostParams::default(), &route)
        .await
        .expect("route created");
}

fn shop(image: &str, steps: Value) -> Value {
    json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "shop"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "shop"}},
            "template": {"metadata": {"labels": {"app": "shop"}},
                "spec": {"containers": [{"name": "app", "image": image}]}},
            "strategy": {"canary": {"stableService": "shop-stable", "canaryService": "shop-canary",
                "trafficRouting": {"gatewayAPI": {"httpRoute": "shop"}}, "steps": steps}}}})
}

#[tokio::test]
async fn a_reconcile_that_changes_nothing_makes_no_request() {
    let bed = testbed::shared();
    let ns = bed.namespace("idle").await;
    let op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    routed_app(&client, &ns.name).await;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    create(&rollouts, shop("shop:1", json!([{"setWeight": 50}]))).await;
    let flags: Api<FeatureFlag> = Api::namespaced(client.clone(), &ns.name);
    create(
        &flags,
        json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "FeatureFlag",
            "metadata": {"name": "checkout"},
            "spec": {"state": "ENABLED", "variants": {"on": true, "off": false},
                "defaultVariant": "on", "output": {"configMap": {"name": "flags"}}}}),
    )
    .await;
    eventually("the Rollout is Healthy", LIMIT, async || {
        let s = rollouts.get("shop").await.ok()?.status?;
        (s.phase == RolloutPhase::Healthy && s.available_replicas == Some(2)).then_some(())
    })
    .await;
    eventually("the flag is rendered", LIMIT, async || {
        let f = flags.get("checkout").await.ok()?;
        (f.status?.observed_generation == f.metadata.generation).then_some(())
    })
    .await;
    // Settled: a few seconds with no request in the namespace.
    let quiet = eventually("the operator goes quiet", LIMIT, async || {
        let since = jiff::Timestamp::now();
        tokio::time::sleep(Duration::from_secs(3)).await;
        requests_since(bed, &ns.name, since)
            .is_empty()
            .then_some(())
    })
    .await;
    let () = quiet;

    let since = jiff::Timestamp::now();
    let (rollout_before, flag_before) = (
        reconciles(&op, "rollout").await,
        reconciles(&op, "featureflag").await,
    );
    for touch in 0..3 {
        let note = json!({"metadata": {"annotations": {"example.com/touched": touch.to_string()}}});
        rollouts
            .patch("shop", &PatchParams::default(), &Patch::Merge(&note))
            .await
            .expect("annotated");
        flags
            .patch("checkout", &PatchParams::default(), &Patch::Merge(&note))
            .await
            .expect("annotated");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eventually("each touch is reconciled", LIMIT, async || {
        let rollout = reconciles(&op, "rollout").await - rollout_before;
        let flag = reconciles(&op, "featureflag").await - flag_before;
        (rollout >= 3.0 && flag >= 3.0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let made = requests_since(bed, &ns.name, since);
    assert!(
        made.is_empty(),
        "reconciles that change nothing made requests: {made:?}\n{}",
        op.log_tail()
    );
}

/// Once `shop` is Healthy, its image becomes `shop:2`.
async fn release_shop_2(rollouts: &Api<Rollout>) {
    eventually("the Rollout is Healthy", LIMIT, async || {
        let s = rollouts.get("shop").await.ok()?.status?;
        (s.phase == RolloutPhase::Healthy).then_some(())
    })
    .await;
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "shop:2"}]}}}});
    rollouts
        .patch("shop", &PatchParams::default(), &Patch::Merge(&image))
        .await
        .expect("new image");
}

#[tokio::test]
async fn a_weight_step_counts_once_the_gateway_has_taken_the_route() {
    let bed = testbed::shared();
    let ns = bed.namespace("gateway").await;
    let _op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    routed_app(&client, &ns.name).await;
    let routes: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &routes_kind());
    // This test is the gateway: it reports on the route through its status.
    let report = async |generation: i64, resolved: &str| {
        let cond = |kind: &str, status: &str, reason: &str| {
            json!({"type": kind, "status": status, "reason": reason, "message": "",
                "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"})
        };
        let status = json!({"status": {"parents": [{
            "parentRef": {"name": "public"}, "controllerName": "example.com/gateway",
            "conditions": [cond("Accepted", "True", "Accepted"),
                cond("ResolvedRefs", resolved, if resolved == "True" { "ResolvedRefs" } else { "BackendNotFound" })]}]}});
        routes
            .patch_status("shop", &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("route status reported");
    };
    let generation = |r: &DynamicObject| r.metadata.generation.unwrap_or(0);
    let first = routes.get("shop").await.expect("the route");
    report(generation(&first), "True").await;

    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    create(
        &rollouts,
        shop("shop:1", json!([{"setWeight": 25}, {"pause": {}}])),
    )
    .await;
    release_shop_2(&rollouts).await;
    // The weight is written; the gateway has not seen that generation of the route.
    let written = eventually("the canary weight is written", LIMIT, async || {
        let r = routes.get("shop").await.ok()?;
        let weights: Vec<i64> = r.data["spec"]["rules"][0]["backendRefs"]
            .as_array()?
            .iter()
            .filter_map(|b| b["weight"].as_i64())
            .collect();
        (weights == [75, 25]).then_some(r)
    })
    .await;
    let waiting = eventually("the Rollout waits for the gateway", LIMIT, async || {
        let s = rollouts.get("shop").await.ok()?.status?;
        let progressing = s.conditions.iter().find(|c| c.type_ == "Progressing")?;
        progressing
            .message
            .contains("waiting for the gateway")
            .then_some(s)
    })
    .await;
    assert_eq!(
        waiting.current_step_index,
        Some(0),
        "the weight step is not done while the gateway has not taken it"
    );
    // The gateway takes the route but cannot resolve a backend: still waiting, and why.
    report(generation(&written), "False").await;
    eventually(
        "the Rollout names the unresolved backends",
        LIMIT,
        async || {
            let s = rollouts.get("shop").await.ok()?.status?;
            let progressing = s.conditions.iter().find(|c| c.type_ == "Progressing")?;
            (progressing
                .message
                .contains("ResolvedRefs is not True (BackendNotFound")
                && s.current_step_index == Some(0))
            .then_some(())
        },
    )
    .await;
    // Resolved: the step is done and the Rollout pauses at the next one.
    report(generation(&written), "True").await;
    eventually("the Rollout moves to the pause", LIMIT, async || {
        let s = rollouts.get("shop").await.ok()?.status?;
        (s.current_step_index == Some(1) && s.phase == RolloutPhase::Paused).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_canary_scale_runs_a_small_weight_on_full_capacity() {
    use k8s_openapi::api::apps::v1::Deployment;
    let bed = testbed::shared();
    let ns = bed.namespace("canary-scale").await;
    let _op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    routed_app(&client, &ns.name).await;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let steps = json!([{"setCanaryScale": {"replicas": 2}}, {"setWeight": 10}, {"pause": {}},
        {"setCanaryScale": {"matchTrafficWeight": true}}, {"setWeight": 75}, {"pause": {}}]);
    let mut rollout = shop("shop:1", steps);
    rollout["spec"]["replicas"] = json!(4);
    create(&rollouts, rollout).await;
    release_shop_2(&rollouts).await;
    let routes: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &routes_kind());
    let weights = async || -> Option<Vec<i64>> {
        let r = routes.get("shop").await.ok()?;
        Some(
            r.data["spec"]["rules"][0]["backendRefs"]
                .as_array()?
                .iter()
                .filter_map(|b| b["weight"].as_i64())
                .collect(),
        )
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let canary_ready = async |rollouts: &Api<Rollout>| -> Option<(i32, i32)> {
        let s = rollouts.get("shop").await.ok()?.status?;
        let d = deployments
            .get(&format!("shop-{}", s.current_revision?))
            .await
            .ok()?;
        Some((
            d.spec?.replicas?,
            d.status.and_then(|s| s.ready_replicas).unwrap_or(0),
        ))
    };
    // At step `at`: these route weights, and the canary with this many pods, all ready.
    let reached = async |what: &str, at: i32, route: [i64; 2], pods: i32| {
        eventually(what, LIMIT, async || {
            let s = rollouts.get("shop").await.ok()?.status?;
            (s.current_step_index == Some(at)
                && weights().await? == route
                && canary_ready(&rollouts).await? == (pods, pods))
                .then_some(())
        })
        .await
    };
    reached("10 % of traffic on two ready canary pods", 2, [90, 10], 2).await;
    rollouts
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"cutover.dev/promote": "1"}}})),
        )
        .await
        .expect("promoted");
    reached(
        "75 % of traffic on the three pods it calls for",
        5,
        [25, 75],
        3,
    )
    .await;
}

/// cutover's rules on the route `shop`, by name, and the author's rules.
async fn rules_of(routes: &Api<DynamicObject>) -> Option<(Vec<String>, Vec<Value>)> {
    rules_of_route(routes, "shop").await
}

/// cutover's rule names and the author's rules of route `name`.
async fn rules_of_route(
    routes: &Api<DynamicObject>,
    name: &str,
) -> Option<(Vec<String>, Vec<Value>)> {
    let r = routes.get(name).await.ok()?;
    let rules = r.data["spec"]["rules"].as_array()?.clone();
    let ours = rules
        .iter()
        .filter_map(|r| r["name"].as_str())
        .filter(|n| n.starts_with("cutover-"))
        .map(String::from)
        .collect();
    let authors = rules
        .into_iter()
        .filter(|r| {
            !r["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("cutover-"))
        })
        .collect();
    Some((ours, authors))
}

#[tokio::test]
async fn header_and_mirror_routes_are_written_into_the_route_and_taken_out_again() {
    let bed = testbed::shared();
    let ns = bed.namespace("header-route").await;
    let _op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    routed_app(&client, &ns.name).await;
    let routes: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &routes_kind());
    let (_, authors_before) = rules_of(&routes).await.expect("the route");
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let steps = json!([
        {"setHeaderRoute": {"name": "beta", "match": [
            {"headerName": "x-beta", "headerValue": {"exact": "1"}},
            {"headerName": "Cookie", "headerValue": {"regex": "(^|; )canary=always(;|$)"}}]}},
        {"setMirrorRoute": {"name": "shadow", "percentage": 20}},
        {"pause": {}},
        {"setWeight": 50}, {"pause": {}}]);
    create(&rollouts, shop("shop:1", steps)).await;
    release_shop_2(&rollouts).await;
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), &ns.name);
    eventually(
        "the header and mirror rules, at the gate",
        LIMIT,
        async || {
            let s = rollouts.get("shop").await.ok()?.status?;
            let (ours, _) = rules_of(&routes).await?;
            // At weight 0 the canary still runs a ready pod to answer the header route.
            let canary = deployments
                .get(&format!("shop-{}", s.current_revision?))
                .await
                .ok()?;
            let ready = canary.status.and_then(|st| st.ready_replicas).unwrap_or(0);
            (s.current_step_index == Some(2)
                && ours == ["cutover-header-beta", "cutover-mirror-shadow"]
                && ready == 1)
                .then_some(())
        },
    )
    .await;
    // The apiserver keeps the rules as written: nothing is written again.
    let generation = routes.get("shop").await.expect("route").metadata.generation;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        routes.get("shop").await.expect("route").metadata.generation,
        generation,
        "a settled Rollout rewrites its rules"
    );
    let route = routes.get("shop").await.expect("route");
    let mirror = &route.data["spec"]["rules"][1];
    assert_eq!(mirror["filters"][0]["requestMirror"]["percent"], 20);
    assert_eq!(mirror["backendRefs"][0]["name"], "shop-stable");
    let (_, authors) = rules_of(&routes).await.expect("route");
    assert_eq!(authors, authors_before, "the author's rule as it was");

    rollouts
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"cutover.dev/promote-full": "1"}}})),
        )
        .await
        .expect("promoted");
    eventually("promotion restores the route", LIMIT, async || {
        let s = rollouts.get("shop").await.ok()?.status?;
        let (ours, authors) = rules_of(&routes).await?;
        (s.phase == RolloutPhase::Healthy && ours.is_empty() && authors == authors_before)
            .then_some(())
    })
    .await;

    // Deleted mid-release: the finalizer takes the rules out before the Rollout goes.
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "shop:3"}]}}}});
    rollouts
        .patch("shop", &PatchParams::default(), &Patch::Merge(&image))
        .await
        .expect("new image");
    eventually("the rules are back", LIMIT, async || {
        (rules_of(&routes).await?.0.len() == 2).then_some(())
    })
    .await;
    rollouts
        .delete("shop", &Default::default())
        .await
        .expect("deleted");
    eventually(
        "the Rollout is gone and the route is the author's",
        LIMIT,
        async || {
            let gone = rollouts.get_opt("shop").await.ok()?.is_none();
            let (ours, authors) = rules_of(&routes).await?;
            (gone && ours.is_empty() && authors == authors_before).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn rules_leave_a_route_the_spec_no_longer_names() {
    let bed = testbed::shared();
    let ns = bed.namespace("route-moved").await;
    let _op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    routed_app(&client, &ns.name).await;
    let routes: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &routes_kind());
    // A second route to the same Services, which the Rollout is moved to mid-release.
    let mut other = routes.get("shop").await.expect("route");
    other.metadata = kube::api::ObjectMeta {
        name: Some("shop-b".into()),
        ..Default::default()
    };
    routes
        .create(&PostParams::default(), &other)
        .await
        .expect("second route");
    let (_, authors_before) = rules_of(&routes).await.expect("the route");
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let steps = json!([
        {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"exact": "1"}}]}},
        {"pause": {}}]);
    create(&rollouts, shop("shop:1", steps)).await;
    release_shop_2(&rollouts).await;
    eventually("the header rule in route shop", LIMIT, async || {
        let r = rollouts.get("shop").await.ok()?;
        let named = r
            .metadata
            .annotations?
            .get("cutover.dev/route-rules")
            .cloned();
        (rules_of(&routes).await?.0 == ["cutover-header-beta"]
            && named.as_deref() == Some("HTTPRoute/shop"))
        .then_some(())
    })
    .await;

    let moved = json!({"spec": {"strategy": {"canary": {"trafficRouting": {"gatewayAPI": {"httpRoute": "shop-b"}}}}}});
    rollouts
        .patch("shop", &PatchParams::default(), &Patch::Merge(&moved))
        .await
        .expect("route renamed");
    eventually("the rule out of shop and into shop-b", LIMIT, async || {
        let r = rollouts.get("shop").await.ok()?;
        let named = r
            .metadata
            .annotations?
            .get("cutover.dev/route-rules")
            .cloned();
        let (left, authors) = rules_of(&routes).await?;
        let (moved, _) = rules_of_route(&routes, "shop-b").await?;
        (left.is_empty()
            && authors == authors_before
            && moved == ["cutover-header-beta"]
            && named.as_deref() == Some("HTTPRoute/shop-b"))
        .then_some(())
    })
    .await;
    let events = bed.kubectl_ok(&[
        "-n",
        &ns.name,
        "get",
        "events",
        "--field-selector",
        "reason=RouteRestored",
        "-o",
        "name",
    ]);
    assert!(!events.trim().is_empty(), "a RouteRestored Event");

    // Routing removed with its steps: the rule comes out and the annotation goes.
    let unrouted = json!({"spec": {"strategy": {"canary": {"trafficRouting": null,
        "steps": [{"setWeight": 50}, {"pause": {}}]}}}});
    rollouts
        .patch("shop", &PatchParams::default(), &Patch::Merge(&unrouted))
        .await
        .expect("routing removed");
    eventually("no rule left in shop-b", LIMIT, async || {
        let r = rollouts.get("shop").await.ok()?;
        let named = r
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("cutover.dev/route-rules");
        let (left, _) = rules_of_route(&routes, "shop-b").await?;
        (left.is_empty() && !named).then_some(())
    })
    .await;
}
