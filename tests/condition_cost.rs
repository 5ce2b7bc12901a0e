//! Conditions a Rollout author writes are untrusted: one whose evaluation would take
//! forever is refused by its estimated cost, by `cutover lint` and by the operator
//! (InvalidSpec), and never stalls the operator for anyone else.

#[path = "support/testbed.rs"]
mod testbed;

use std::{io::Read, time::Duration};

use cutover::{
    analysis::condition::{QueryResult, check, test},
    api::{Rollout, RolloutPhase},
};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

/// `result >= 0 || true` inside `depth` nested `.all()` over ten-element lists: 10^depth
/// steps in a few hundred bytes.
fn nested_all(depth: usize) -> String {
    let mut e = "result >= 0.0 || true".to_string();
    for i in 0..depth {
        e = format!("[0,1,2,3,4,5,6,7,8,9].all(v{i}, {e})");
    }
    e
}

fn costly() -> Vec<(&'static str, String)> {
    vec![
        ("twelve nested all", nested_all(12)),
        ("seven nested all", nested_all(7)),
        (
            "nested map and filter",
            "[0,1,2,3,4,5,6,7,8,9].map(a, [0,1,2,3,4,5,6,7,8,9].map(b, [0,1,2,3,4,5,6,7,8,9].filter(c, [0,1,2,3,4,5,6,7,8,9].exists(d, [0,1,2,3,4,5,6,7,8,9].all(e, [0,1,2,3,4,5,6,7,8,9].all(f, a+b+c+d+e+f > 0)))))).size() > 0".into(),
        ),
        (
            "the result against itself, three deep",
            "result.all(x, result.all(y, result.all(z, x + y + z >= 0.0)))".into(),
        ),
        (
            "strings built in a loop",
            format!(
                "[{}].map(a, [{}].map(b, 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' + string(a) + string(b))).all(l, l.all(s, s.contains('yy') || true))",
                (0..60).map(|i| i.to_string()).collect::<Vec<_>>().join(","),
                (0..60).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
            ),
        ),
        (
            "a large literal list iterated by the result",
            format!(
                "result.all(x, [{}].all(y, x >= y || true))",
                (0..200).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
            ),
        ),
    ]
}

#[test]
fn costly_conditions_are_refused_with_the_budget_named() {
    for (what, expression) in costly() {
        let err = check(&expression).expect_err(what);
        assert!(err.0.contains("over the budget"), "{what}: {err}");
        // Refused before it runs: testing it is the same error, never a long evaluation.
        let tested = test(&expression, &QueryResult::Number(1.0)).expect_err(what);
        assert!(tested.0.contains("over the budget"), "{what}: {tested}");
    }
    for ok in [
        "result < 0.05",
        "result.all(x, x < 1.0)",
        "result.map(x, x * 100.0).filter(y, y > 5.0).size() == 0",
        &nested_all(3),
    ] {
        check(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn a_result_with_more_samples_than_a_condition_reads_is_an_error() {
    let many = QueryResult::Numbers(vec![0.0; cutover::analysis::cost::MAX_RESULT_SAMPLES + 1]);
    let err = test("result.all(x, x < 1.0)", &many).expect_err("too many samples");
    assert!(err.0.contains("aggregate"), "{err}");
}

fn rollout(name: &str, condition: &str) -> Value {
    json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": format!("{name}:1")}]}},
            "strategy": {"canary": {"steps": [
                {"setWeight": 50},
                {"analysis": {"metrics": [{"name": "errors", "successCondition": condition,
                    "prometheus": {"address": "http://127.0.0.1:9090", "query": "up"}}]}}]}}}
    })
}

#[test]
fn lint_refuses_each_costly_condition() {
    let dir = std::env::temp_dir().join(format!("cutover-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (i, (what, expression)) in costly().into_iter().enumerate() {
        let file = dir.join(format!("costly-{i}.yaml"));
        let doc = serde_json::to_string(&rollout("web", &expression)).expect("json");
        std::fs::write(&file, doc).expect("manifest written");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
            .arg("lint")
            .arg(&file)
            .output()
            .expect("cutover lint runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {text}");
        assert!(text.contains("over the budget"), "{what}: {text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn healthz(addr: std::net::SocketAddr) -> bool {
    use std::io::Write;
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_costly_rollout_in_one_namespace_stalls_nothing_in_another() {
    let bed = testbed::shared();
    let evil = bed.namespace("evil").await;
    let good = bed.namespace("good").await;
    let op = bed.operator(&format!("{},{}", evil.name, good.name), &[]);
    let client = bed.admin().await;
    let addr = testbed::eventually(
        "the operator serves /healthz",
        Duration::from_secs(60),
        async || op.metrics_addr(),
    )
    .await;

    let evil_api: Api<Rollout> = Api::namespaced(client.clone(), &evil.name);
    let bad: Rollout = serde_json::from_value(rollout("web", &nested_all(12))).expect("rollout");
    evil_api
        .create(&PostParams::default(), &bad)
        .await
        .expect("accepted by the schema");

    let good_api: Api<Rollout> = Api::namespaced(client.clone(), &good.name);
    let mut sound: Rollout =
        serde_json::from_value(rollout("web", "result >= 0.0")).expect("rollout");
    sound.spec.strategy = serde_json::from_value(json!({"canary": {"steps": [{"setWeight": 50}]}}))
        .expect("strategy");
    good_api
        .create(&PostParams::default(), &sound)
        .await
        .expect("created");

    let marked = testbed::eventually(
        "the costly Rollout is InvalidSpec",
        Duration::from_secs(120),
        async || {
            assert!(
                healthz(addr),
                "/healthz must answer throughout\n{}",
                op.log_tail()
            );
            let r = evil_api.get("web").await.ok()?;
            let c = r
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "InvalidSpec" && c.status == "True")?;
            Some(c.message)
        },
    )
    .await;
    assert!(marked.contains("over the budget"), "{marked}");

    testbed::eventually(
        "the sound Rollout is Healthy",
        Duration::from_secs(120),
        async || {
            assert!(
                healthz(addr),
                "/healthz must answer throughout\n{}",
                op.log_tail()
            );
            let s = good_api.get("web").await.ok()?.status?;
            (s.phase == RolloutPhase::Healthy).then_some(())
        },
    )
    .await;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "web:2"}]}}}});
    good_api
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("image changed");
    testbed::eventually(
        "the sound Rollout is promoted",
        Duration::from_secs(120),
        async || {
            assert!(
                healthz(addr),
                "/healthz must answer throughout\n{}",
                op.log_tail()
            );
            let r = good_api.get("web").await.ok()?;
            let s = r.status?;
            (s.phase == RolloutPhase::Healthy
                && s.observed_generation == Some(2)
                && s.stable_revision == s.current_revision)
                .then_some(())
        },
    )
    .await;
}
