//! The e2e scripts in `e2e/`, run with the built binary and a real kubectl.

use std::process::Command;

fn run_script(name: &str) {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/e2e/{name}"))
        .env("CUTOVER", env!("CARGO_BIN_EXE_cutover"))
        .env_remove("KUBECONFIG")
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{name} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kubectl_verbs_against_cutover_dev() {
    run_script("kubectl_sim.sh");
}

#[test]
fn rollouts_driven_with_kubectl_against_cutover_dev() {
    run_script("rollouts.sh");
}

#[test]
fn migrations_driven_with_kubectl_against_cutover_dev() {
    run_script("migrations.sh");
}

#[test]
fn the_kubectl_plugin_drives_an_example_against_cutover_dev() {
    run_script("plugin.sh");
}
