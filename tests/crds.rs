//! The checked-in CRDs are exactly what the code generates, and kustomize renders them.

use std::process::Command;

#[test]
fn checked_in_crds_match_the_generated_ones() {
    let root = env!("CARGO_MANIFEST_DIR");
    for crd in cutover::api::crds() {
        let name = cutover::cli::crd::file_name(&crd);
        let path = format!("{root}/crds/{name}");
        let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            on_disk == cutover::cli::crd::render(&crd),
            "{path} is stale: regenerate with `cargo run -- crd --dir crds`"
        );
    }
}

#[test]
fn crd_command_prints_every_crd() {
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .arg("crd")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for name in [
        "rollouts.cutover.dev",
        "migrationjobs.cutover.dev",
        "featureflags.cutover.dev",
        "analysistemplates.cutover.dev",
        "clusteranalysistemplates.cutover.dev",
        "analysisruns.cutover.dev",
    ] {
        assert!(text.contains(&format!("name: {name}")), "{name} missing");
    }
    let expected: String = cutover::api::crds()
        .iter()
        .map(cutover::cli::crd::render)
        .collect();
    assert_eq!(text, expected);
}

#[test]
fn kustomize_renders_config_crd_from_the_generated_files() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("kubectl")
        .args(["kustomize", &format!("{root}/config/crd")])
        .output()
        .expect("kubectl must be installed (the README's test command installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.matches("kind: CustomResourceDefinition").count(),
        cutover::api::crds().len()
    );
    for name in [
        "rollouts.cutover.dev",
        "migrationjobs.cutover.dev",
        "featureflags.cutover.dev",
        "analysistemplates.cutover.dev",
        "clusteranalysistemplates.cutover.dev",
        "analysisruns.cutover.dev",
    ] {
        assert!(text.contains(&format!("name: {name}")), "{name} missing");
    }
}

#[test]
fn crds_fit_in_a_client_side_apply_annotation() {
    // kubectl's client-side apply stores the object in a 256 KiB annotation.
    for crd in cutover::api::crds() {
        let size = serde_json::to_vec(&crd).unwrap().len();
        assert!(size < 262_144, "{:?} is {size} bytes", crd.metadata.name);
    }
}

#[test]
fn rollout_crd_has_names_columns_and_subresources_users_rely_on() {
    let crd = cutover::api::crds().into_iter().next().unwrap();
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["cro".to_string()][..])
    );
    assert_eq!(
        crd.spec.names.categories.as_deref(),
        Some(&["cutover".to_string()][..])
    );
    let version = &crd.spec.versions[0];
    let columns: Vec<&str> = version
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "Strategy", "Phase", "Step", "Weight", "Stable", "Current", "Age", "Reason", "Image",
            "Message"
        ]
    );
    // The last three are for `-o wide` only.
    let wide: Vec<&str> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .filter(|c| c.priority == Some(1))
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(wide, ["Reason", "Image", "Message"]);
    let sub = version.subresources.as_ref().unwrap();
    assert!(sub.status.is_some());
    let scale = sub.scale.as_ref().unwrap();
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );
}
