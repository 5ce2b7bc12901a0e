use serde_json::json;

use super::*;

fn metric(name: &str, query: &str) -> crate::api::Metric {
    serde_json::from_value(json!({
        "name": name,
        "successCondition": "result < 0.05",
        "prometheus": {"query": query},
    }))
    .unwrap()
}

fn template(args: serde_json::Value, metrics: Vec<crate::api::Metric>) -> AnalysisTemplateSpec {
    AnalysisTemplateSpec {
        args: serde_json::from_value(args).unwrap(),
        metrics,
    }
}

fn analysis(spec: serde_json::Value) -> AnalysisSpec {
    serde_json::from_value(spec).unwrap()
}

fn library() -> Templates {
    let mut t = Templates {
        namespace: "shop".into(),
        ..Default::default()
    };
    t.namespaced.insert(
        "error-rate".into(),
        template(
            json!([{"name": "service"}, {"name": "threshold", "value": "0.05"}]),
            vec![metric(
                "error-rate",
                "errors{service=\"{{ args.service }}\",revision=\"{{ rollout.canaryRevision }}\"}",
            )],
        ),
    );
    t.cluster.insert(
        "latency".into(),
        template(
            json!([{"name": "service"}, {"name": "token", "valueFrom": {"secretKeyRef": {"name": "prom", "key": "token"}}}]),
            vec![metric("p99", "p99{service=\"{{ args.service }}\",t=\"{{ args.token }}\"}")],
        ),
    );
    t
}

fn messages(errors: Vec<FieldError>) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

#[test]
fn templates_and_inline_metrics_merge_with_the_analysis_args_over_the_defaults() {
    let spec = analysis(json!({
        "templates": [{"templateName": "error-rate"}, {"templateName": "latency", "clusterScope": true}],
        "metrics": [{"name": "saturation", "successCondition": "result < 0.9", "prometheus": {"query": "cpu{s=\"{{ args.service }}\"}"}}],
        "args": [{"name": "service", "value": "web"}, {"name": "threshold", "value": "0.01"}],
    }));
    let resolved = resolve(&spec, "spec.analysis", &library(), &json!({})).unwrap();
    let names: Vec<&str> = resolved.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["error-rate", "p99", "saturation"]);
    assert!(resolved.templates.is_empty());
    let arg = |n: &str| resolved.args.iter().find(|a| a.name == n).cloned().unwrap();
    assert_eq!(arg("service").value.as_deref(), Some("web"));
    assert_eq!(
        arg("threshold").value.as_deref(),
        Some("0.01"),
        "the analysis overrides a default"
    );
    assert_eq!(
        arg("token")
            .value_from
            .and_then(|f| f.secret_key_ref)
            .map(|r| r.name),
        Some("prom".to_string()),
        "a Secret arg stays a reference: it is read at each measurement, never stored"
    );
}

#[test]
fn a_missing_template_is_named_with_its_kind_and_namespace() {
    let spec = analysis(json!({
        "templates": [{"templateName": "nope"}, {"templateName": "gone", "clusterScope": true}],
    }));
    let errors = messages(resolve(&spec, "spec.x", &library(), &json!({})).unwrap_err());
    assert_eq!(
        errors,
        [
            "spec.x.templates[0]: AnalysisTemplate \"nope\" does not exist in namespace \"shop\"",
            "spec.x.templates[1]: ClusterAnalysisTemplate \"gone\" does not exist",
        ]
    );
}

#[test]
fn an_arg_a_template_requires_and_nobody_gives_is_named_with_the_template() {
    let spec = analysis(json!({"templates": [{"templateName": "error-rate"}]}));
    let errors = messages(resolve(&spec, "spec.x", &library(), &json!({})).unwrap_err());
    assert_eq!(
        errors,
        [
            "spec.x.templates[0]: arg \"service\" required by AnalysisTemplate \"error-rate\" is not given"
        ]
    );
}

#[test]
fn a_metric_defined_twice_is_a_clash_naming_both_sides() {
    let mut lib = library();
    lib.namespaced.insert(
        "also-errors".into(),
        template(json!([]), vec![metric("error-rate", "x")]),
    );
    let spec = analysis(json!({
        "templates": [{"templateName": "error-rate"}, {"templateName": "also-errors"}],
        "metrics": [metric("error-rate", "y")],
        "args": [{"name": "service", "value": "web"}],
    }));
    let errors = messages(resolve(&spec, "spec.x", &lib, &json!({})).unwrap_err());
    assert_eq!(
        errors,
        [
            "spec.x.templates[1]: metric \"error-rate\" is defined by both AnalysisTemplate \"error-rate\" and AnalysisTemplate \"also-errors\"",
            "spec.x.metrics[0]: metric \"error-rate\" is also defined by AnalysisTemplate \"also-errors\"",
        ]
    );
}

#[test]
fn two_templates_giving_one_arg_different_values_clash() {
    let mut lib = library();
    lib.namespaced.insert(
        "strict".into(),
        template(
            json!([{"name": "threshold", "value": "0.01"}]),
            vec![metric("strict", "x")],
        ),
    );
    let spec = analysis(json!({
        "templates": [{"templateName": "error-rate"}, {"templateName": "strict"}],
        "args": [{"name": "service", "value": "web"}],
    }));
    let errors = messages(resolve(&spec, "spec.x", &lib, &json!({})).unwrap_err());
    assert_eq!(
        errors,
        [
            "spec.x.templates[1]: arg \"threshold\" has different values in AnalysisTemplate \"error-rate\" and AnalysisTemplate \"strict\""
        ]
    );
}

#[test]
fn a_broken_template_is_reported_under_its_own_name() {
    let mut lib = library();
    let mut bad = metric("bad", "up{x=\"{{ args.undeclared }}\"}");
    bad.success_condition = Some("result <".into());
    lib.namespaced
        .insert("bad".into(), template(json!([]), vec![bad]));
    let spec = analysis(json!({"templates": [{"templateName": "bad"}]}));
    let errors = messages(resolve(&spec, "spec.x", &lib, &json!({})).unwrap_err());
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("AnalysisTemplate \"bad\": spec.metrics[0].successCondition: "),
        "{errors:?}"
    );
    assert!(errors[1].starts_with("AnalysisTemplate \"bad\": spec.metrics[0].prometheus.query: placeholder {{ args.undeclared }}"), "{errors:?}");
}

#[test]
fn an_inline_metric_may_use_an_arg_only_a_template_declares_but_not_an_unknown_one() {
    let spec = analysis(json!({
        "templates": [{"templateName": "error-rate"}],
        "metrics": [metric("uses-threshold", "x > {{ args.threshold }}"), metric("unknown", "{{ args.nope }}")],
        "args": [{"name": "service", "value": "web"}],
    }));
    let errors = messages(resolve(&spec, "spec.x", &library(), &json!({})).unwrap_err());
    assert_eq!(
        errors,
        [
            "spec.x.metrics[1].prometheus.query: placeholder {{ args.nope }} has no matching entry in args"
        ]
    );
}

#[test]
fn field_refs_read_the_object_and_a_missing_field_is_named() {
    let object = json!({
        "metadata": {"name": "web", "labels": {"app.kubernetes.io/name": "shop"}},
        "spec": {"replicas": 3, "ports": [{"port": 8080}]},
    });
    let spec = analysis(json!({
        "metrics": [metric("m", "{{ args.app }} {{ args.replicas }} {{ args.port }}")],
        "args": [
            {"name": "app", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app.kubernetes.io/name']"}}},
            {"name": "replicas", "valueFrom": {"fieldRef": {"fieldPath": "spec.replicas"}}},
            {"name": "port", "valueFrom": {"fieldRef": {"fieldPath": "spec.ports[0].port"}}},
        ],
    }));
    let resolved = resolve(&spec, "spec.x", &library(), &object).unwrap();
    let values: Vec<Option<&str>> = resolved.args.iter().map(|a| a.value.as_deref()).collect();
    assert_eq!(values, [Some("shop"), Some("3"), Some("8080")]);
    assert!(resolved.args.iter().all(|a| a.value_from.is_none()));

    let spec = analysis(json!({
        "metrics": [metric("m", "{{ args.team }}")],
        "args": [{"name": "team", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels.team"}}}],
    }));
    let errors = messages(resolve(&spec, "spec.x", &library(), &object).unwrap_err());
    assert_eq!(
        errors,
        [
            "spec.x.args[0].valueFrom.fieldRef: arg \"team\": fieldRef \"metadata.labels.team\" names no field of the object"
        ]
    );
}

#[test]
fn an_analysis_arg_without_a_value_is_refused() {
    let spec = analysis(json!({"metrics": [metric("m", "up")], "args": [{"name": "x"}]}));
    let errors = messages(resolve(&spec, "spec.x", &library(), &json!({})).unwrap_err());
    assert_eq!(
        errors,
        ["spec.x.args[0]: an analysis arg needs value or valueFrom"]
    );
}

#[test]
fn a_template_cannot_read_fields_of_its_users() {
    let t = template(
        json!([{"name": "n", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]),
        vec![metric("m", "{{ args.n }}")],
    );
    let errors = messages(check_template("AnalysisTemplate \"t\"", &t));
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("AnalysisTemplate \"t\": spec.args[0].valueFrom.fieldRef: "));
}

#[test]
fn field_paths_parse_keys_quotes_and_indexes_and_refuse_nonsense() {
    let object = json!({"a": {"b.c": [{"d": true}], "e": {"f": "g"}}});
    assert_eq!(field_value(&object, "a['b.c'][0].d").unwrap(), "true");
    assert_eq!(field_value(&object, "a[\"e\"].f").unwrap(), "g");
    assert_eq!(field_value(&object, "a.e['f']").unwrap(), "g");
    assert!(
        field_value(&object, "a.e")
            .unwrap_err()
            .contains("not a value")
    );
    for bad in ["", "a..b", "a[", "a[x]", "[0", ".a"] {
        assert!(field_value(&object, bad).is_err(), "{bad:?}");
    }
    let deep = vec!["a"; 40].join(".");
    assert!(
        field_value(&object, &deep)
            .unwrap_err()
            .contains("longer than")
    );
}

#[test]
fn templates_cannot_add_up_to_more_metrics_than_the_bound() {
    let mut t = Templates {
        namespace: "shop".into(),
        ..Default::default()
    };
    for k in 0..3 {
        let metrics = (0..20)
            .map(|i| metric(&format!("m{k}-{i}"), "up"))
            .collect();
        t.namespaced
            .insert(format!("t{k}"), template(json!([]), metrics));
    }
    let two = analysis(json!({"templates": [{"templateName": "t0"}, {"templateName": "t1"}]}));
    assert_eq!(
        resolve(&two, "spec.x", &t, &json!({})).map(|s| s.metrics.len()),
        Ok(40)
    );
    let three = analysis(json!({"templates": [
        {"templateName": "t0"}, {"templateName": "t1"}, {"templateName": "t2"}]}));
    let errors = messages(resolve(&three, "spec.x", &t, &json!({})).unwrap_err());
    assert_eq!(
        errors,
        [
            "spec.x: an analysis measures at most 50 metrics; its templates and inline metrics add up to 60"
        ]
    );
}
