use serde_json::json;

use super::*;

#[test]
fn conditions_become_cel_over_cutovers_result() {
    let ok = |e: &str| condition_text(e).unwrap();
    assert_eq!(ok("result[0] >= 0.95"), ("result >= 0.95".into(), false));
    assert_eq!(
        ok("result[0] < 0.05 and result[0] > 0"),
        ("result < 0.05 && result > 0".into(), false)
    );
    assert_eq!(ok("result == true"), ("result == true".into(), false));
    assert_eq!(
        ok("len(result) == 0 || result[0] < 0.01"),
        ("result < 0.01".into(), true)
    );
    assert_eq!(
        ok("result[0] < 0.01 or len(result) == 0"),
        ("result < 0.01".into(), true)
    );
    assert_eq!(ok("not result[0] > 1"), ("!(result > 1)".into(), false));
    for bad in [
        "isNaN(result[0])",
        "len(result) > 2",
        "asInt(result) > 5",
        "result[0] <",
        "default(result, 0) < 1",
    ] {
        assert!(condition_text(bad).is_err(), "{bad}");
    }
}

#[test]
fn an_empty_answer_that_passed_in_argo_passes_by_no_data() {
    let doc = json!({"apiVersion": ARGO_API_VERSION, "kind": "AnalysisTemplate", "metadata": {"name": "t"},
        "spec": {"metrics": [{"name": "m", "successCondition": "len(result) == 0 || result[0] < 0.01",
            "provider": {"prometheus": {"query": "x"}}}]}});
    let c = convert(&doc);
    assert!(c.unconverted.is_empty(), "{:?}", c.unconverted);
    let m = &c.object.unwrap()["spec"]["metrics"][0];
    assert_eq!(m["noData"], "pass");
    assert_eq!(m["successCondition"], "result < 0.01");
}

#[test]
fn other_documents_pass_through_and_unknown_argo_kinds_are_named() {
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}});
    assert_eq!(
        convert(&svc),
        Converted {
            object: Some(svc.clone()),
            unconverted: vec![]
        }
    );
    let exp = json!({"apiVersion": ARGO_API_VERSION, "kind": "Experiment", "metadata": {"name": "e"}, "spec": {}});
    let c = convert(&exp);
    assert_eq!(c.object, None);
    assert_eq!(c.unconverted[0].path, "kind");
}

#[test]
fn every_field_is_converted_or_named() {
    let doc = json!({"apiVersion": ARGO_API_VERSION, "kind": "Rollout",
        "metadata": {"name": "r", "annotations": {"rollout.argoproj.io/revision": "2", "team": "x"}},
        "spec": {"replicas": 2, "restartAt": "2026-01-01T00:00:00Z",
            "strategy": {"canary": {"dynamicStableScale": true,
                "steps": [{"setWeight": 10}, {"pause": {"duration": 30}}, {"pause": {"duration": "bogus"}}]}}}});
    let c = convert(&doc);
    let paths: Vec<&str> = c.unconverted.iter().map(|u| u.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.restartAt",
            "spec.strategy.canary.dynamicStableScale",
            "spec.strategy.canary.steps[2].pause.duration"
        ]
    );
    let out = c.object.unwrap();
    assert_eq!(out["apiVersion"], "cutover.dev/v1alpha1");
    assert_eq!(out["metadata"]["annotations"], json!({"team": "x"}));
    assert_eq!(
        out["spec"]["strategy"]["canary"]["steps"][1],
        json!({"pause": {"duration": "30s"}})
    );
    assert_eq!(
        out["spec"]["strategy"]["canary"]["steps"][2],
        json!({"pause": {}})
    );
}
