//! The install artefacts: the Helm chart and the kustomize config carry the generated CRDs
//! and RBAC, say the same about the operator's Deployment, and match the Dockerfile.

use std::{path::Path, process::Command};

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn docs(text: &str) -> Vec<Value> {
    cutover::yaml::from_multi_str::<Value>(text)
        .unwrap()
        .into_iter()
        .flatten()
        .collect()
}

#[test]
fn the_chart_carries_the_generated_crds() {
    for entry in std::fs::read_dir(root().join("crds")).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with(".cutover.dev.yaml") {
            continue;
        }
        let chart = read(&format!("charts/cutover/crds/{name}"));
        assert_eq!(
            chart,
            std::fs::read_to_string(&path).unwrap(),
            "charts/cutover/crds/{name} differs from crds/{name}: copy it again"
        );
    }
}

#[test]
fn the_rbac_files_are_generated_from_the_code() {
    assert_eq!(
        read("charts/cutover/files/rbac-rules.yaml"),
        cutover::cli::rbac_yaml(false, true),
        "run `cutover rbac --rules-only --no-secrets > charts/cutover/files/rbac-rules.yaml`"
    );
    assert_eq!(
        read("config/rbac/role.yaml"),
        cutover::cli::rbac_yaml(true, false),
        "run `cutover rbac > config/rbac/role.yaml`"
    );
    // The chart adds reading Secrets exactly as the code's rule says.
    let with: Vec<_> = cutover::controller::rbac::rules(true);
    let without: Vec<_> = cutover::controller::rbac::rules(false);
    let extra: Vec<_> = with.iter().filter(|r| !without.contains(r)).collect();
    assert_eq!(extra.len(), 1);
    assert_eq!(
        (
            extra[0].api_groups.clone(),
            extra[0].resources.clone(),
            extra[0].verbs.clone()
        ),
        (vec![""], vec!["secrets"], vec!["get"])
    );
    let helpers = read("charts/cutover/templates/_helpers.tpl");
    assert!(
        helpers.contains("  - secrets\n  verbs:\n  - get"),
        "{helpers}"
    );
}

fn kustomize(dir: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .args(["kustomize", dir])
        .current_dir(root())
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    docs(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn kustomize_renders_the_operator_as_the_chart_installs_it() {
    let objects = kustomize("config/default");
    let of = |kind: &str| -> Vec<&Value> { objects.iter().filter(|o| o["kind"] == kind).collect() };
    assert_eq!(
        of("CustomResourceDefinition").len(),
        cutover::api::crds().len()
    );
    assert_eq!(of("Namespace")[0]["metadata"]["name"], "cutover-system");
    let role = of("ClusterRole")[0];
    assert_eq!(
        role["rules"],
        serde_json::to_value(cutover::controller::rbac::rules(true)).unwrap()
    );
    let deployment = of("Deployment")[0];
    assert_eq!(deployment["metadata"]["namespace"], "cutover-system");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    // The chart's template with its default values gives the same arguments.
    let values: Value = cutover::yaml::from_str(&read("charts/cutover/values.yaml")).unwrap();
    let template = read("charts/cutover/templates/deployment.yaml");
    let expected = [
        "run".to_string(),
        format!("--metrics-addr=0.0.0.0:{}", values["metrics"]["port"]),
        format!("--log-format={}", values["logFormat"].as_str().unwrap()),
        format!("--log-level={}", values["logLevel"].as_str().unwrap()),
        format!("--concurrency={}", values["concurrency"]),
        format!("--kube-qps={}", values["kubeQps"]),
        format!("--kube-burst={}", values["kubeBurst"]),
        "--leader-elect".to_string(),
    ];
    assert_eq!(
        args,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    for flag in [
        "--metrics-addr=",
        "--log-format=",
        "--log-level=",
        "--concurrency=",
        "--kube-qps=",
        "--kube-burst=",
        "--leader-elect",
    ] {
        assert!(template.contains(flag), "the chart passes {flag}");
    }
    assert_eq!(values["replicaCount"], 2);
    assert_eq!(values["leaderElection"]["enabled"], true);
    // Every argument is one the binary accepts.
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for arg in &args[1..] {
        let flag = arg.split('=').next().unwrap();
        assert!(help.contains(flag), "`cutover run` has no {flag}");
    }
    // Security and probes as in the chart.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    for needle in [
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "path: /healthz",
        "path: /readyz",
        "drop: [ALL]",
    ] {
        assert!(
            template.contains(needle),
            "the chart's Deployment has {needle}"
        );
    }
    assert_eq!(of("PodDisruptionBudget").len(), 1);
    assert_eq!(of("Service")[0]["spec"]["ports"][0]["port"], 8080);
}

#[test]
fn the_samples_are_one_of_each_kind_and_pass_lint() {
    let objects = kustomize("config/samples");
    for kind in ["Rollout", "MigrationJob", "FeatureFlag"] {
        assert!(objects.iter().any(|o| o["kind"] == kind), "a sample {kind}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["lint", "config/samples"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_dockerfile_builds_what_the_chart_runs() {
    let dockerfile = read("Dockerfile");
    let values: Value = cutover::yaml::from_str(&read("charts/cutover/values.yaml")).unwrap();
    let template = read("charts/cutover/templates/deployment.yaml");
    // The user the image runs as is the one the chart asks for.
    let user = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    let uid = user.split(':').next().unwrap();
    assert!(
        template.contains(&format!("runAsUser: {uid}")),
        "chart runs as {uid}"
    );
    assert!(template.contains(&format!("runAsGroup: {}", user.split(':').nth(1).unwrap())));
    // The binary is where the entrypoint says, built from this package's binary name.
    assert!(dockerfile.contains("--bin cutover"));
    assert!(
        dockerfile.contains("COPY --from=build /out/usr/local/bin/cutover /usr/local/bin/cutover")
    );
    assert!(dockerfile.contains(r#"ENTRYPOINT ["/usr/local/bin/cutover"]"#));
    // The chart passes `run` first: the entrypoint is the binary, not a shell.
    assert!(template.contains("args:\n            - run\n"));
    assert!(dockerfile.contains(&format!("EXPOSE {}", values["metrics"]["port"])));
    // The chart's default image is the one this Dockerfile builds, at the chart's appVersion.
    let chart: Value = cutover::yaml::from_str(&read("charts/cutover/Chart.yaml")).unwrap();
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(chart["version"], env!("CARGO_PKG_VERSION"));
    assert!(read("CHANGELOG.md").contains(&format!("## [{}]", env!("CARGO_PKG_VERSION"))));
}

#[test]
fn the_argocd_config_carries_each_lua_chunk_as_kept_in_its_file() {
    let cm: Value = cutover::yaml::from_str(&read("config/argocd/argocd-cm.yaml")).unwrap();
    let data = &cm["data"];
    for kind in ["Rollout", "MigrationJob", "FeatureFlag"] {
        let key = format!("resource.customizations.health.cutover.dev_{kind}");
        assert_eq!(
            data[&key].as_str(),
            Some(read(&format!("config/argocd/health-{}.lua", kind.to_lowercase())).as_str()),
            "{key}"
        );
    }
    let actions: Value = cutover::yaml::from_str(
        data["resource.customizations.actions.cutover.dev_Rollout"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        actions["discovery.lua"].as_str(),
        Some(read("config/argocd/actions-rollout-discovery.lua").as_str())
    );
    let names: Vec<&str> = actions["definitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let name = d["name"].as_str().unwrap();
            assert_eq!(
                d["action.lua"].as_str(),
                Some(read(&format!("config/argocd/action-rollout-{name}.lua")).as_str()),
                "{name}"
            );
            name
        })
        .collect();
    assert_eq!(names, ["promote", "promote-full", "abort", "retry"]);
}
