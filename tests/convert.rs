//! `cutover convert argo` on Argo Rollouts manifests written from that project's
//! documentation: what converts passes `cutover lint`, and what cannot is named with its
//! path, in the output and on stderr, with exit status 1.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/argo")
        .join(name)
}

fn convert(file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["convert", "argo"])
        .arg(file)
        .output()
        .expect("cutover runs")
}

/// `cutover lint -` over `yaml`: its exit status and report.
fn lint(yaml: &[u8]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["lint", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cutover lint runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml)
        .expect("written");
    let out = child.wait_with_output().expect("lint ends");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn documented_argo_manifests_convert_to_manifests_lint_accepts() {
    for (name, documents) in [
        ("canary.yaml", 2),
        ("analysis.yaml", 3),
        ("web.yaml", 1),
        ("job.yaml", 2),
        ("bluegreen.yaml", 2),
    ] {
        let out = convert(&fixture(name));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("argoproj.io"), "{name}: {text}");
        assert_eq!(
            text.matches("\n---\n").count() + 1,
            documents,
            "{name}: {text}"
        );
        let (ok, report) = lint(&out.stdout);
        assert!(ok, "{name}: {report}\n{text}");
    }
}

#[test]
fn what_cannot_be_converted_is_named_with_its_path_and_the_rest_still_lints() {
    let out = convert(&fixture("unsupported.yaml"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = String::from_utf8_lossy(&out.stdout);
    for path in [
        "spec.strategy.canary.maxSurge",
        "spec.strategy.canary.trafficRouting.istio",
        "spec.strategy.canary.steps[0].setCanaryScale",
        "spec.strategy.canary.steps[1].setHeaderRoute",
        "spec.strategy.canary.steps[2].experiment",
        "spec.metrics[0].provider.job.spec.parallelism",
        "spec.metrics[1].provider.datadog",
        "spec.metrics[2].successCondition",
    ] {
        assert!(
            stderr.contains(&format!("not converted: {path}: ")),
            "{path}: {stderr}"
        );
        assert!(
            text.contains(&format!("# not converted: {path}: ")),
            "{path}: {text}"
        );
    }
    assert!(stderr.contains("Rollout istio-canary"), "{stderr}");
    // The steps and the metric that convert are kept; the lint accepts them.
    assert!(text.contains("setWeight: 50"), "{text}");
    assert!(text.contains("name: kept"), "{text}");
    assert!(
        !text.contains("name: nan-check"),
        "a metric without its condition is left out: {text}"
    );
    let (ok, report) = lint(&out.stdout);
    assert!(ok, "{report}\n{text}");
}

#[test]
fn a_job_metric_converts_with_its_pod_template_and_limits() {
    let out = convert(&fixture("job.yaml"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let docs: Vec<serde_json::Value> = text
        .split("\n---\n")
        .map(|d| cutover::yaml::from_str(d.trim_start_matches("---\n")).expect("yaml"))
        .collect();
    let job = &docs[0]["spec"]["metrics"][0]["job"];
    assert_eq!(job["metadata"]["labels"]["foo"], "bar", "{text}");
    assert_eq!(job["spec"]["backoffLimit"], 1);
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 300);
    let command = &job["spec"]["template"]["spec"]["containers"][0]["command"];
    assert_eq!(
        command[1],
        "my-service-{{args.canary-hash}}.default.svc.cluster.local"
    );
    assert_eq!(docs[0]["spec"]["metrics"][0]["count"], 2);
}

#[test]
fn a_gateway_api_plugin_route_becomes_cutovers_route() {
    let out = convert(&fixture("gateway.yaml"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("gatewayAPI:\n          httpRoute: argo-rollouts-http-route"),
        "{text}"
    );
    // With the route, a canary scale and a header route mean the same in cutover.
    assert!(text.contains("- setHeaderRoute:"), "{text}");
    assert!(text.contains("headerName: X-Beta"), "{text}");
    assert!(
        text.contains("- setCanaryScale:\n          replicas: 2"),
        "{text}"
    );
    // The plugin's namespace field has no place in cutover: it is named.
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("argoproj-labs/gatewayAPI.namespace"));
    assert!(lint(&out.stdout).0);
}

#[test]
fn a_directory_converts_as_one_stream_and_resolves_its_templates() {
    let out = convert(&fixture(""));
    assert_eq!(out.status.code(), Some(1), "unsupported.yaml is among them");
    // Templates and the Rollouts naming them are in one stream: lint resolves the
    // references (a missing arg would be reported).
    let (ok, report) = lint(&out.stdout);
    assert!(ok, "{report}");
}

#[test]
fn a_gateway_api_plugin_grpc_route_becomes_cutovers_grpc_route() {
    let out = convert(&fixture("grpc-gateway.yaml"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("gatewayAPI:\n          grpcRoute: cart"),
        "{text}"
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(lint(&out.stdout).0);
}
