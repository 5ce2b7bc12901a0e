//! Every CEL rule and schema bound of the CRDs, exercised by a manifest that breaks it.

use cutover::cli::lint::lint_document;
use serde_json::{Value, json};

fn rollout() -> Value {
    json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
            "strategy": {"canary": {"stableService": "web", "steps": [{"setWeight": 10}, {"pause": {}}]}}
        }
    })
}

fn metric() -> Value {
    json!({"name": "errors", "successCondition": "result < 0.05", "prometheus": {"query": "up"}})
}

fn migration() -> Value {
    json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "MigrationJob",
        "metadata": {"name": "m"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "m:1"}]}}}
    })
}

fn flag() -> Value {
    json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "FeatureFlag",
        "metadata": {"name": "f"},
        "spec": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                 "output": {"configMap": {"name": "flags"}}}
    })
}

/// Sets `value` at a JSON pointer, creating objects on the way.
fn set(mut doc: Value, pointer: &str, value: Value) -> Value {
    let mut target = &mut doc;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for part in &parts[..parts.len() - 1] {
        target = match target {
            Value::Array(a) => &mut a[part.parse::<usize>().unwrap()],
            Value::Object(o) => o.entry(part.to_string()).or_insert(json!({})),
            _ => panic!("bad pointer {pointer}"),
        };
    }
    let last = parts[parts.len() - 1];
    match target {
        Value::Array(a) => a[last.parse::<usize>().unwrap()] = value,
        Value::Object(o) => {
            if value.is_null() {
                o.remove(last);
            } else {
                o.insert(last.to_string(), value);
            }
        }
        _ => panic!("bad pointer {pointer}"),
    }
    doc
}

fn messages(doc: &Value) -> Vec<String> {
    lint_document(doc)
        .expect("a cutover kind")
        .iter()
        .map(|e| e.to_string())
        .collect()
}

/// (case, manifest, expected message fragment)
fn cases() -> Vec<(&'static str, Value, &'static str)> {
    let with_metric = |m: Value| {
        set(
            rollout(),
            "/spec/strategy/canary/analysis",
            json!({"metrics": [m]}),
        )
    };
    vec![
        (
            "template and workloadRef",
            set(
                rollout(),
                "/spec/workloadRef",
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}),
            ),
            "exactly one of spec.template or spec.workloadRef must be set",
        ),
        (
            "neither template nor workloadRef",
            set(rollout(), "/spec/template", Value::Null),
            "exactly one of spec.template or spec.workloadRef must be set",
        ),
        (
            "template without selector",
            set(rollout(), "/spec/selector", Value::Null),
            "spec.selector is required with spec.template",
        ),
        (
            "long name",
            set(rollout(), "/metadata/name", json!("a".repeat(53))),
            "a Rollout name may have at most 52 characters",
        ),
        (
            "workloadRef to a StatefulSet",
            set(
                set(rollout(), "/spec/template", Value::Null),
                "/spec/workloadRef",
                json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web"}),
            ),
            "workloadRef must name an apps/v1 Deployment",
        ),
        (
            "no strategy",
            set(rollout(), "/spec/strategy", json!({})),
            "exactly one strategy must be set",
        ),
        (
            "two strategies",
            set(rollout(), "/spec/strategy/rolling", json!({})),
            "exactly one strategy must be set",
        ),
        (
            "routing without canary service",
            set(
                rollout(),
                "/spec/strategy/canary/trafficRouting",
                json!({"gatewayAPI": {"httpRoute": "r"}}),
            ),
            "trafficRouting needs both stableService and canaryService",
        ),
        (
            "same stable and canary service",
            set(
                rollout(),
                "/spec/strategy/canary/canaryService",
                json!("web"),
            ),
            "stableService and canaryService must differ",
        ),
        (
            "step with two actions",
            set(
                rollout(),
                "/spec/strategy/canary/steps/0",
                json!({"setWeight": 10, "pause": {}}),
            ),
            "a step sets exactly one of setWeight, pause, analysis, setCanaryScale, setHeaderRoute or setMirrorRoute",
        ),
        (
            "canary scale without a router",
            set(
                rollout(),
                "/spec/strategy/canary/steps/0",
                json!({"setCanaryScale": {"replicas": 1}}),
            ),
            "setCanaryScale needs trafficRouting: without a router the canary's share of traffic is its share of pods",
        ),
        (
            "canary scale with two sizes",
            set(
                rollout(),
                "/spec/strategy/canary/steps/0",
                json!({"setCanaryScale": {"replicas": 1, "weight": 5}}),
            ),
            "setCanaryScale sets exactly one of replicas, weight or matchTrafficWeight: true",
        ),
        (
            "header route without a router",
            set(
                rollout(),
                "/spec/strategy/canary/steps/0",
                json!({"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x", "headerValue": {"exact": "1"}}]}}),
            ),
            "setHeaderRoute and setMirrorRoute need trafficRouting: they are rules of its route",
        ),
        (
            "both route kinds",
            set(
                set(
                    rollout(),
                    "/spec/strategy/canary/canaryService",
                    json!("web-canary"),
                ),
                "/spec/strategy/canary/trafficRouting",
                json!({"gatewayAPI": {"httpRoute": "web", "grpcRoute": "web"}}),
            ),
            "set httpRoute or grpcRoute, exactly one",
        ),
        (
            "mirror route on a GRPCRoute",
            set(
                set(
                    set(
                        rollout(),
                        "/spec/strategy/canary/canaryService",
                        json!("web-canary"),
                    ),
                    "/spec/strategy/canary/trafficRouting",
                    json!({"gatewayAPI": {"grpcRoute": "web"}}),
                ),
                "/spec/strategy/canary/steps/0",
                json!({"setMirrorRoute": {"name": "m", "percentage": 10}}),
            ),
            "setMirrorRoute needs an httpRoute",
        ),
        (
            "header value matched two ways",
            set(
                rollout(),
                "/spec/strategy/canary/steps/0",
                json!({"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x", "headerValue": {"exact": "1", "regex": "1"}}]}}),
            ),
            "a header value matches by exactly one of exact, prefix or regex",
        ),
        (
            "mirror header value matched no way",
            set(
                rollout(),
                "/spec/strategy/canary/steps/0",
                json!({"setMirrorRoute": {"name": "m", "match": [{"headerName": "x", "headerValue": {}}]}}),
            ),
            "a header value matches by exactly one of exact, prefix or regex",
        ),
        (
            "empty step",
            set(rollout(), "/spec/strategy/canary/steps/0", json!({})),
            "a step sets exactly one of setWeight, pause, analysis, setCanaryScale, setHeaderRoute or setMirrorRoute",
        ),
        (
            "weight over 100",
            set(
                rollout(),
                "/spec/strategy/canary/steps/0/setWeight",
                json!(101),
            ),
            "should be less than or equal to 100",
        ),
        (
            "negative weight",
            set(
                rollout(),
                "/spec/strategy/canary/steps/0/setWeight",
                json!(-1),
            ),
            "should be greater than or equal to 0",
        ),
        (
            "negative replicas",
            set(rollout(), "/spec/replicas", json!(-1)),
            "spec.replicas: Invalid value: -1: should be greater than or equal to 0",
        ),
        (
            "same active and preview",
            set(
                rollout(),
                "/spec/strategy",
                json!({"blueGreen": {"activeService": "a", "previewService": "a"}}),
            ),
            "activeService and previewService must differ",
        ),
        (
            "auto promotion seconds while disabled",
            set(
                rollout(),
                "/spec/strategy",
                json!({"blueGreen": {"activeService": "a", "autoPromotionEnabled": false, "autoPromotionSeconds": 30}}),
            ),
            "autoPromotionSeconds needs autoPromotionEnabled",
        ),
        (
            "metric with two providers",
            with_metric(set(
                metric(),
                "/compare",
                json!({"canaryQuery": "a", "stableQuery": "b"}),
            )),
            "exactly one provider must be set: prometheus, compare, web or job",
        ),
        (
            "analysis without metrics or templates",
            set(
                rollout(),
                "/spec/strategy/canary/analysis",
                json!({"args": [{"name": "a", "value": "b"}]}),
            ),
            "an analysis needs metrics, templates or both",
        ),
        (
            "arg with value and valueFrom",
            set(
                rollout(),
                "/spec/strategy/canary/analysis",
                json!({"templates": [{"templateName": "t"}],
                    "args": [{"name": "a", "value": "b", "valueFrom": {"podTemplateHashValue": "Stable"}}]}),
            ),
            "set value or valueFrom, not both",
        ),
        (
            "arg from two sources",
            set(
                rollout(),
                "/spec/strategy/canary/analysis",
                json!({"templates": [{"templateName": "t"}],
                    "args": [{"name": "a", "valueFrom": {"podTemplateHashValue": "Stable", "fieldRef": {"fieldPath": "metadata.name"}}}]}),
            ),
            "set exactly one of secretKeyRef, fieldRef or podTemplateHashValue",
        ),
        (
            "web body with GET",
            with_metric(set(
                set(metric(), "/prometheus", Value::Null),
                "/web",
                json!({"url": "https://status.example/x", "jsonPath": "$.ok", "body": "{}"}),
            )),
            "body is sent only with method POST",
        ),
        (
            "job metric with a condition",
            with_metric(set(
                set(metric(), "/prometheus", Value::Null),
                "/job",
                json!({"spec": {"template": {"spec": {"containers": [{"name": "smoke", "image": "curl"}]}}}}),
            )),
            "a job metric is decided by its Job (Complete or Failed) and takes no successCondition or failureCondition",
        ),
        (
            "metric without provider",
            with_metric(set(metric(), "/prometheus", Value::Null)),
            "exactly one provider must be set: prometheus, compare, web or job",
        ),
        (
            "prometheus metric without condition",
            with_metric(set(metric(), "/successCondition", Value::Null)),
            "a prometheus or web metric needs successCondition or failureCondition",
        ),
        (
            "address and addressFrom",
            with_metric(set(
                set(metric(), "/prometheus/address", json!("http://p:9090")),
                "/prometheus/addressFrom",
                json!({"name": "s", "key": "k"}),
            )),
            "set address or addressFrom, not both",
        ),
        (
            "address not a URL",
            with_metric(set(metric(), "/prometheus/address", json!("p:9090"))),
            "should match",
        ),
        (
            "bearer and basic auth",
            with_metric(set(
                metric(),
                "/prometheus/auth",
                json!({"bearerToken": {"name": "s", "key": "t"},
            "basicAuth": {"secretName": "s"}}),
            )),
            "set exactly one of bearerToken or basicAuth",
        ),
        (
            "no auth method",
            with_metric(set(metric(), "/prometheus/auth", json!({}))),
            "set exactly one of bearerToken or basicAuth",
        ),
        (
            "two CA sources",
            with_metric(set(
                metric(),
                "/prometheus/tls",
                json!({"caSecret": {"name": "s", "key": "ca"},
            "caConfigMap": {"name": "c", "key": "ca"}}),
            )),
            "set caSecret or caConfigMap, not both",
        ),
        (
            "bad metric name",
            with_metric(set(metric(), "/name", json!("Errors!"))),
            "should match",
        ),
        (
            "bad interval",
            with_metric(set(metric(), "/interval", json!("1 minute"))),
            "should match",
        ),
        (
            "sub-second interval",
            with_metric(set(metric(), "/interval", json!("500ms"))),
            "must be at least 1s",
        ),
        (
            "bad noData",
            with_metric(set(metric(), "/noData", json!("ignore"))),
            "Unsupported value: \"ignore\"",
        ),
        (
            "bad CEL",
            with_metric(set(metric(), "/successCondition", json!("result <"))),
            "invalid CEL expression",
        ),
        (
            "CEL over unknown variable",
            with_metric(set(metric(), "/successCondition", json!("value < 1"))),
            "conditions may only use `result`",
        ),
        (
            "unknown placeholder",
            with_metric(set(
                metric(),
                "/prometheus/query",
                json!("up{x=\"{{ foo }}\"}"),
            )),
            "unknown placeholder",
        ),
        (
            "confidence out of range",
            with_metric(
                json!({"name": "c", "compare": {"canaryQuery": "a", "stableQuery": "b", "confidencePercent": 100}}),
            ),
            "should be less than or equal to 99",
        ),
        (
            "migration listed before and after",
            set(
                rollout(),
                "/spec/migrations",
                json!({"before": ["m"], "after": ["m"]}),
            ),
            "\"m\" is listed in both before and after",
        ),
        (
            "unknown field",
            set(rollout(), "/spec/strategy/canary/weight", json!(5)),
            "spec.strategy.canary.weight: Unknown field",
        ),
        (
            "bad batch size",
            set(
                rollout(),
                "/spec/strategy",
                json!({"rolling": {"batchSize": "0"}}),
            ),
            "must be a count or a percentage",
        ),
        (
            "zero batch size",
            set(
                rollout(),
                "/spec/strategy",
                json!({"rolling": {"batchSize": 0}}),
            ),
            "must be at least 1",
        ),
        (
            "migration restartPolicy Always",
            set(
                migration(),
                "/spec/template/spec/restartPolicy",
                json!("Always"),
            ),
            "a migration's restartPolicy must be Never or OnFailure",
        ),
        (
            "migration without containers",
            set(migration(), "/spec/template/spec/containers", json!([])),
            "at least one container",
        ),
        (
            "migration timeout zero",
            set(migration(), "/spec/timeoutSeconds", json!(0)),
            "should be greater than or equal to 1",
        ),
        (
            "migration bad lock key",
            set(migration(), "/spec/lockKey", json!("orders db")),
            "should match",
        ),
        (
            "flag default not a variant",
            set(flag(), "/spec/defaultVariant", json!("maybe")),
            "defaultVariant must name one of the variants",
        ),
        (
            "flag rollout variant unknown",
            set(
                flag(),
                "/spec/rollout",
                json!({"variant": "blue", "steps": [10]}),
            ),
            "rollout.variant must name one of the variants",
        ),
        (
            "flag rollout of the default",
            set(
                flag(),
                "/spec/rollout",
                json!({"variant": "off", "steps": [10]}),
            ),
            "rollout.variant must differ from defaultVariant",
        ),
        (
            "flag targeting and rollout",
            set(
                set(
                    flag(),
                    "/spec/rollout",
                    json!({"variant": "on", "steps": [10]}),
                ),
                "/spec/targeting",
                json!({"if": []}),
            ),
            "targeting and rollout cannot both be set",
        ),
        (
            "flag steps descending",
            set(
                flag(),
                "/spec/rollout",
                json!({"variant": "on", "steps": [50, 10]}),
            ),
            "steps must be ascending",
        ),
        (
            "flag step over 100",
            set(
                flag(),
                "/spec/rollout",
                json!({"variant": "on", "steps": [10, 120]}),
            ),
            "each step is a percentage from 0 to 100",
        ),
        (
            "flag long variant name",
            set(
                flag(),
                "/spec/variants",
                json!({"off": false, "x".repeat(64): true}),
            ),
            "variant names must be 1 to 63 characters",
        ),
        (
            "flag no variants",
            set(
                set(flag(), "/spec/variants", json!({})),
                "/spec/defaultVariant",
                json!("off"),
            ),
            "should have at least 1 properties",
        ),
        (
            "flag mixed variant types",
            set(flag(), "/spec/variants/on", json!("yes")),
            "all variants must have the same type",
        ),
        (
            "flag bad state",
            set(flag(), "/spec/state", json!("ON")),
            "Unsupported value: \"ON\"",
        ),
        (
            "flag bad configmap name",
            set(flag(), "/spec/output/configMap/name", json!("Flags")),
            "should match",
        ),
        (
            "flag metadata object",
            set(flag(), "/spec/metadata", json!({"owner": {"team": "x"}})),
            "metadata values must be strings, numbers or booleans",
        ),
        (
            "missing name",
            set(flag(), "/metadata/name", Value::Null),
            "metadata.name: Required value",
        ),
        (
            "bad name",
            set(flag(), "/metadata/name", json!("Flag_1")),
            "lowercase RFC 1123 subdomain",
        ),
    ]
}

#[test]
fn valid_base_manifests_pass() {
    for doc in [rollout(), migration(), flag()] {
        assert_eq!(messages(&doc), Vec::<String>::new(), "{doc}");
    }
}

#[test]
fn each_broken_manifest_is_rejected_with_its_message() {
    let mut failures = Vec::new();
    for (case, doc, expected) in cases() {
        let got = messages(&doc);
        if !got.iter().any(|m| m.contains(expected)) {
            failures.push(format!("{case}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// (case, before, after, expected message fragment): rules comparing an update with the
/// object it replaces, which `cutover lint` cannot see.
fn transition_cases() -> Vec<(&'static str, Value, Value, &'static str)> {
    vec![
        (
            "selector changed",
            rollout(),
            set(rollout(), "/spec/selector/matchLabels/app", json!("api")),
            "spec.selector is immutable",
        ),
        (
            "selector expressions added",
            rollout(),
            set(
                rollout(),
                "/spec/selector/matchExpressions",
                json!([{"key": "tier", "operator": "Exists"}]),
            ),
            "spec.selector is immutable",
        ),
    ]
}

#[test]
fn each_transition_is_checked_against_the_object_it_replaces() {
    let crd = cutover::api::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "Rollout")
        .expect("the Rollout CRD");
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("a schema");
    let compiled =
        cutover::api::openapi::CompiledSchema::new(serde_json::to_value(schema).unwrap());
    for (case, before, after, expected) in transition_cases() {
        let got: Vec<String> = compiled
            .validate_update(&after, Some(&before))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            got.iter().any(|m| m.contains(expected)),
            "{case}: expected {expected:?}, got {got:?}"
        );
        assert!(
            compiled.validate(&after).is_empty(),
            "{case}: on create the same object is fine"
        );
        assert!(
            compiled.validate_update(&before, Some(&before)).is_empty(),
            "{case}: an update that keeps it passes"
        );
    }
}

#[test]
fn every_cel_rule_in_the_crds_has_a_case() {
    let expected: Vec<&str> = cases()
        .iter()
        .map(|(_, _, e)| *e)
        .chain(transition_cases().iter().map(|(_, _, _, e)| *e))
        .collect();
    let mut missing = Vec::new();
    let mut found = 0;
    for crd in cutover::api::crds() {
        let text = serde_json::to_string(&crd).unwrap();
        for part in text.split("\"message\":\"").skip(1) {
            let message = part
                .split('"')
                .next()
                .unwrap()
                .replace("\\u003c", "<")
                .replace("\\u003e", ">");
            found += 1;
            if !expected
                .iter()
                .any(|e| message.contains(e) || e.contains(&message))
            {
                missing.push(message);
            }
        }
    }
    assert!(
        found >= 20,
        "only {found} rule messages found: is the scan broken?"
    );
    assert!(
        missing.is_empty(),
        "CEL rules without a test case: {missing:?}"
    );
}
