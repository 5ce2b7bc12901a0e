//! The e2e scripts in `e2e/`, run with the built binary and a real kubectl, each against
//! `cutover dev` (the sim) and against the real control plane (the test bed), where the
//! operator runs as the chart's ServiceAccount.

#[path = "support/testbed.rs"]
mod testbed;

use std::process::Command;

fn run_script(name: &str, testbed: Option<&testbed::Testbed>) {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut command = Command::new("bash");
    command
        .arg(format!("{root}/e2e/{name}"))
        .env("CUTOVER", env!("CARGO_BIN_EXE_cutover"))
        .env_remove("KUBECONFIG")
        .env_remove("E2E_KUBECONFIG")
        .env_remove("E2E_TESTBED");
    if let Some(bed) = testbed {
        command.env("E2E_TESTBED", &bed.dir);
    }
    let out = command.output().expect("bash runs");
    assert!(
        out.status.success(),
        "{name} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kubectl_verbs_against_cutover_dev() {
    run_script("kubectl_sim.sh", None);
}

#[test]
fn kubectl_verbs_against_the_real_control_plane() {
    run_script("kubectl_sim.sh", Some(testbed::shared()));
}

#[test]
fn rollouts_driven_with_kubectl_against_cutover_dev() {
    run_script("rollouts.sh", None);
}

#[test]
fn rollouts_driven_with_kubectl_against_the_real_control_plane() {
    run_script("rollouts.sh", Some(testbed::shared()));
}

#[test]
fn migrations_driven_with_kubectl_against_cutover_dev() {
    run_script("migrations.sh", None);
}

#[test]
fn migrations_driven_with_kubectl_against_the_real_control_plane() {
    run_script("migrations.sh", Some(testbed::shared()));
}

#[test]
fn the_kubectl_plugin_drives_an_example_against_cutover_dev() {
    run_script("plugin.sh", None);
}

#[test]
fn the_kubectl_plugin_drives_an_example_against_the_real_control_plane() {
    run_script("plugin.sh", Some(testbed::shared()));
}

#[test]
fn the_dashboard_in_a_browser_against_cutover_dev() {
    run_script("dashboard.sh", None);
}

#[test]
fn the_dashboard_in_a_browser_against_the_real_control_plane() {
    run_script("dashboard.sh", Some(testbed::shared()));
}

#[test]
fn helm_and_an_applications_manifests_install_on_cutover_dev() {
    run_script("apps.sh", None);
}

#[test]
fn helm_and_an_applications_manifests_install_on_the_real_control_plane() {
    run_script("apps.sh", Some(testbed::shared()));
}
