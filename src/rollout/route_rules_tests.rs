use serde_json::json;

use super::*;

fn canary(steps: Value) -> CanaryStrategy {
    serde_json::from_value(json!({"steps": steps})).unwrap()
}

fn header(name: &str, value: &str) -> Value {
    json!({"headerName": name, "headerValue": {"exact": value}})
}

/// An author's route: a path rule to stable and canary, and an unrelated rule.
fn route() -> Value {
    json!({"spec": {"rules": [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
         "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-env", "value": "prod"}]}}],
         "backendRefs": [
            {"group": "", "kind": "Service", "name": "web-stable", "port": 8080, "weight": 100},
            {"group": "", "kind": "Service", "name": "web-canary", "port": 8080, "weight": 0}]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/static"}}],
         "backendRefs": [{"group": "", "kind": "Service", "name": "cdn", "port": 80, "weight": 1}]}
    ]}})
}

fn apply(route: &Value, ops: Vec<Value>) -> Value {
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops)).unwrap();
    let mut out = route.clone();
    json_patch::patch(&mut out, &patch).unwrap();
    out
}

#[test]
fn the_routes_in_force_follow_the_steps_by_name() {
    let c = canary(json!([
        {"setHeaderRoute": {"name": "beta", "match": [header("x-beta", "1")]}},
        {"setMirrorRoute": {"name": "shadow", "percentage": 10}},
        {"setWeight": 10},
        {"setHeaderRoute": {"name": "beta", "match": [header("x-beta", "2")]}},
        {"setHeaderRoute": {"name": "qa", "match": [header("x-qa", "1")]}},
        {"setMirrorRoute": {"name": "shadow"}},
        {"setHeaderRoute": {"name": "beta"}},
    ]));
    let names = |through| -> Vec<String> {
        routes_through(&c, through)
            .iter()
            .map(ManagedRoute::rule_name)
            .collect()
    };
    assert!(names(0).is_empty());
    assert_eq!(names(1), ["cutover-header-beta"]);
    assert_eq!(
        names(2),
        ["cutover-header-beta", "cutover-mirror-shadow"],
        "header routes first"
    );
    assert_eq!(
        names(5),
        [
            "cutover-header-beta",
            "cutover-header-qa",
            "cutover-mirror-shadow"
        ]
    );
    match &routes_through(&c, 4)[0] {
        ManagedRoute::Header { matches, .. } => {
            assert_eq!(
                matches[0].header_value.exact.as_deref(),
                Some("2"),
                "replaced by name"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        names(6),
        ["cutover-header-beta", "cutover-header-qa"],
        "a name alone removes"
    );
    assert_eq!(names(7), ["cutover-header-qa"]);
    assert_eq!(names(99), ["cutover-header-qa"]);
}

#[test]
fn a_mirror_without_a_percentage_mirrors_all_it_matches() {
    let c = canary(json!([{"setMirrorRoute": {"name": "m", "match": [header("x-a", "1")]}}]));
    assert!(matches!(
        &routes_through(&c, 1)[0],
        ManagedRoute::Mirror { percent: 100, .. }
    ));
}

#[test]
fn a_header_route_copies_the_authors_paths_and_filters_and_adds_the_headers() {
    let route = route();
    let base = base_rule(&route, "web-stable").unwrap();
    let routes = [ManagedRoute::Header {
        name: "beta".into(),
        matches: serde_json::from_value(json!([
            header("x-beta", "1"),
            {"headerName": "Cookie", "headerValue": {"regex": "(^|; )canary=always(;|$)"}},
            {"headerName": "x-tier", "headerValue": {"prefix": "gold."}}
        ]))
        .unwrap(),
    }];
    let rules = rules_for(RouteKind::Http, base, "web-stable", "web-canary", &routes);
    assert_eq!(
        rules,
        [json!({"name": "cutover-header-beta",
            "matches": [{"path": {"type": "PathPrefix", "value": "/api"}, "headers": [
                {"type": "Exact", "name": "x-beta", "value": "1"},
                {"type": "RegularExpression", "name": "Cookie", "value": "(^|; )canary=always(;|$)"},
                {"type": "RegularExpression", "name": "x-tier", "value": "^gold\\..*"}]}],
            "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-env", "value": "prod"}]}}],
            "backendRefs": [{"group": "", "kind": "Service", "name": "web-canary", "port": 8080, "weight": 1}]})]
    );
}

#[test]
fn a_mirror_serves_from_stable_and_copies_a_share_to_the_canary() {
    let route = route();
    let base = base_rule(&route, "web-stable").unwrap();
    let routes = [ManagedRoute::Mirror {
        name: "shadow".into(),
        percent: 25,
        matches: Vec::new(),
    }];
    let rule = &rules_for(RouteKind::Http, base, "web-stable", "web-canary", &routes)[0];
    assert_eq!(rule["name"], "cutover-mirror-shadow");
    assert_eq!(
        rule["matches"],
        json!([{"path": {"type": "PathPrefix", "value": "/api"}}])
    );
    assert_eq!(
        rule["backendRefs"],
        json!([{"group": "", "kind": "Service", "name": "web-stable", "port": 8080, "weight": 1}])
    );
    assert_eq!(
        rule["filters"][1],
        json!({"type": "RequestMirror", "requestMirror": {
            "backendRef": {"group": "", "kind": "Service", "name": "web-canary", "port": 8080},
            "percent": 25}})
    );
}

#[test]
fn a_rule_without_matches_is_read_as_every_path() {
    let base = json!({"backendRefs": [{"name": "s", "port": 80}]});
    let rules = rules_for(
        RouteKind::Http,
        &base,
        "s",
        "c",
        &[ManagedRoute::Header {
            name: "h".into(),
            matches: serde_json::from_value(json!([header("x", "1")])).unwrap(),
        }],
    );
    assert_eq!(
        rules[0]["matches"],
        json!([{"path": {"type": "PathPrefix", "value": "/"},
            "headers": [{"type": "Exact", "name": "x", "value": "1"}]}])
    );
    assert_eq!(
        rules[0]["backendRefs"][0]["port"], 80,
        "the stable's port when the canary has none"
    );
}

#[test]
fn the_patch_puts_ours_first_leaves_the_authors_rules_and_is_idempotent() {
    let original = route();
    let base = base_rule(&original, "web-stable").unwrap().clone();
    let routes = vec![
        ManagedRoute::Header {
            name: "beta".into(),
            matches: serde_json::from_value(json!([header("x-beta", "1")])).unwrap(),
        },
        ManagedRoute::Mirror {
            name: "shadow".into(),
            percent: 10,
            matches: Vec::new(),
        },
    ];
    let wanted = rules_for(RouteKind::Http, &base, "web-stable", "web-canary", &routes);
    let ops = rules_patch(&original, &wanted).unwrap();
    let patched = apply(&original, ops);
    assert_eq!(managed_rules(&patched), wanted);
    assert_eq!(patched["spec"]["rules"][0]["name"], "cutover-header-beta");
    let authors: Vec<&Value> = rules(&patched).iter().filter(|r| !is_managed(r)).collect();
    assert_eq!(
        authors,
        rules(&original).iter().collect::<Vec<_>>(),
        "the author's rules as written"
    );
    assert_eq!(
        rules_patch(&patched, &wanted),
        None,
        "nothing to write once in place"
    );

    // One removed: the other stays, and the test guards each removal.
    let fewer = &wanted[1..];
    let ops = rules_patch(&patched, fewer).unwrap();
    assert!(
        ops.iter()
            .any(|o| o["op"] == "test" && o["value"] == "cutover-header-beta")
    );
    let patched = apply(&patched, ops);
    assert_eq!(managed_rules(&patched), fewer);
    // All removed: the route is the author's again, exactly.
    let restored = apply(&patched, rules_patch(&patched, &[]).unwrap());
    assert_eq!(restored, original);
}

#[test]
fn a_removal_fails_when_the_route_was_reordered_meanwhile() {
    let original = route();
    let base = base_rule(&original, "web-stable").unwrap().clone();
    let wanted = rules_for(
        RouteKind::Http,
        &base,
        "web-stable",
        "web-canary",
        &[ManagedRoute::Mirror {
            name: "m".into(),
            percent: 5,
            matches: Vec::new(),
        }],
    );
    let patched = apply(&original, rules_patch(&original, &wanted).unwrap());
    let ops = rules_patch(&patched, &[]).unwrap();
    // Someone moved the author's first rule to the front meanwhile.
    let mut moved = patched.clone();
    let rules = moved["spec"]["rules"].as_array_mut().unwrap();
    let first = rules.remove(1);
    rules.insert(0, first);
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops)).unwrap();
    assert!(
        json_patch::patch(&mut moved.clone(), &patch).is_err(),
        "the test op refuses"
    );
}

#[test]
fn the_base_is_the_authors_rule_to_stable() {
    let mut r = route();
    r["spec"]["rules"].as_array_mut().unwrap().insert(
        0,
        json!({"name": "cutover-header-x", "backendRefs": [{"name": "web-stable"}]}),
    );
    let base = base_rule(&r, "web-stable").unwrap();
    assert!(!is_managed(base));
    assert_eq!(base["matches"][0]["path"]["value"], "/api");
    assert!(base_rule(&r, "nobody").is_none());
}

#[test]
fn only_a_step_that_sets_a_mirror_asks_whether_the_gateway_can_mirror() {
    let removing = canary(json!([{"setMirrorRoute": {"name": "shadow"}}, {"setWeight": 10}]));
    assert!(!sets_mirror(&removing));
    let headers =
        canary(json!([{"setHeaderRoute": {"name": "beta", "match": [header("x-beta", "1")]}}]));
    assert!(!sets_mirror(&headers));
    assert!(sets_mirror(&canary(
        json!([{"setMirrorRoute": {"name": "m", "percentage": 5}}])
    )));
    assert!(sets_mirror(&canary(
        json!([{"setMirrorRoute": {"name": "m", "match": [header("x-a", "1")]}}])
    )));
    assert!(is_mirror(&json!({"name": "cutover-mirror-shadow"})));
    assert!(!is_mirror(&json!({"name": "cutover-header-shadow"})));
    assert!(!is_mirror(&json!({"name": "mirror"})));
}

#[test]
fn a_grpc_header_route_keeps_the_authors_methods_and_adds_no_path() {
    let headers: Vec<HeaderMatch> = serde_json::from_value(json!([header("x-beta", "1")])).unwrap();
    let routes = [ManagedRoute::Header {
        name: "beta".into(),
        matches: headers,
    }];
    // A rule without matches matches every method: the header is its only match.
    let everything = json!({"backendRefs": [
        {"group": "", "kind": "Service", "name": "api-stable", "port": 9000, "weight": 100},
        {"group": "", "kind": "Service", "name": "api-canary", "port": 9000, "weight": 0}]});
    assert_eq!(
        rules_for(
            RouteKind::Grpc,
            &everything,
            "api-stable",
            "api-canary",
            &routes
        ),
        [json!({"name": "cutover-header-beta",
            "matches": [{"headers": [{"type": "Exact", "name": "x-beta", "value": "1"}]}],
            "backendRefs": [{"group": "", "kind": "Service", "name": "api-canary", "port": 9000, "weight": 1}]})]
    );
    let mut one_service = everything.clone();
    one_service["matches"] =
        json!([{"method": {"type": "Exact", "service": "shop.Cart", "method": "Add"}}]);
    assert_eq!(
        rules_for(
            RouteKind::Grpc,
            &one_service,
            "api-stable",
            "api-canary",
            &routes
        )[0]["matches"],
        json!([{"method": {"type": "Exact", "service": "shop.Cart", "method": "Add"},
            "headers": [{"type": "Exact", "name": "x-beta", "value": "1"}]}])
    );
}
