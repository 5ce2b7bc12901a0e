//! The sim against the Kubernetes API conventions, through a real `kube::Client`, and the
//! same cases against the real control plane (the test bed): the differential suite. Every
//! case runs on the sim as a test of its own; `differential_report` runs each on both
//! targets, writes `target/differential-report.md` and fails when a difference is not
//! listed in `src/sim/README.md` (or a case fails on the real control plane too, which
//! means the case itself is wrong). Cases that read the sim's insides run on the sim only.

#[path = "support/testbed.rs"]
mod testbed;

#[path = "conformance/apply.rs"]
mod apply;
#[path = "conformance/deletion.rs"]
mod deletion;
#[path = "conformance/kinds.rs"]
mod kinds;
#[path = "conformance/kubectl.rs"]
mod kubectl;
#[path = "conformance/objects.rs"]
mod objects;

use apply::*;
use deletion::*;
use kinds::*;
use kubectl::*;
use objects::*;

use cutover::{api::Rollout, controller::Clock, sim::Sim};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Namespace, Secret, Service},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, CustomResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
};
use serde_json::json;
use std::time::Duration;

fn sim() -> (Sim, Client) {
    let sim = Sim::new(Clock::System);
    let client = sim.client();
    (sim, client)
}

/// Where a case runs: a client and a namespace of its own (the sim's `default`, or a fresh
/// namespace on the real control plane).
struct Target {
    client: Client,
    ns: String,
    _sim: Option<Sim>,
    _namespace: Option<testbed::TestNamespace>,
}

impl Target {
    fn sim() -> Self {
        let (sim, client) = sim();
        Self {
            client,
            ns: "default".into(),
            _sim: Some(sim),
            _namespace: None,
        }
    }

    async fn real() -> Self {
        let bed = testbed::shared();
        let namespace = bed.namespace("conformance").await;
        Self {
            client: bed.admin().await,
            ns: namespace.name.clone(),
            _sim: None,
            _namespace: Some(namespace),
        }
    }
}

type Case = fn(Target) -> futures::future::BoxFuture<'static, ()>;

/// Declares each case as a test on the sim and lists them for the differential report;
/// the cases after `differs:` are listed differences (src/sim/README.md) whose sim result
/// is wrong, so they run in the report only.
macro_rules! differential {
    ($($case:ident),* $(,)? ; differs: $($known:ident),* $(,)?) => {
        $(
            #[allow(non_snake_case)]
            mod $case {
                #[tokio::test]
                async fn on_the_sim() {
                    super::$case(super::Target::sim()).await
                }
            }
        )*
        const CASES: &[(&str, Case)] = &[
            $((stringify!($case), |t| Box::pin($case(t))),)*
            $((stringify!($known), |t| Box::pin($known(t))),)*
        ];
    };
}

differential!(
    create_sets_server_fields_and_get_returns_them,
    objects_need_an_existing_namespace,
    update_with_a_stale_resource_version_conflicts,
    an_update_that_changes_nothing_keeps_the_resource_version,
    generation_moves_on_spec_changes_only_and_status_is_a_subresource,
    custom_resources_are_validated_against_the_crd_schema,
    list_filters_by_label_and_pages_with_continue,
    a_namespaced_list_reads_that_namespace_alone,
    watch_resumes_from_a_resource_version,
    finalizers_hold_deletion_until_removed,
    deleting_an_owner_deletes_its_dependents_unless_orphaned,
    an_object_released_by_its_owner_outlives_it,
    foreground_deletion_removes_dependents_first,
    server_side_apply_tracks_owners_and_conflicts,
    strategic_merge_and_json_patches_on_deployments,
    crds_become_served_with_scale_subresources,
    deleting_a_namespace_deletes_what_is_in_it,
    applying_less_removes_what_the_manager_stopped_applying,
    server_side_apply_to_status_removes_fields_no_longer_applied,
    a_deployment_selector_cannot_change,
    a_status_applied_with_a_stale_resource_version_conflicts,
    a_rollout_selector_cannot_change,
    a_secret_keeps_string_data_only_as_data,
    an_apply_that_changes_nothing_after_another_manager_writes_nothing,
    a_rollout_table_fills_its_printer_columns,
    a_deployment_annotation_is_a_new_generation_and_a_label_is_not,
    a_dry_run_answers_what_would_be_stored_and_writes_nothing,
    events_are_one_set_of_objects_under_both_apis,
    built_in_kinds_print_the_columns_kubectl_shows,
    built_in_writes_are_refused_as_by_the_api_server,
    an_applications_manifests_apply_and_go_with_their_namespace,
    a_protobuf_create_stores_what_the_json_create_would,
    built_in_kinds_are_defaulted_as_by_the_api_server,
    a_built_in_object_with_a_field_of_the_wrong_type_is_a_bad_request,
    a_service_selector_is_applied_as_one_atomic_map;
    differs:
);

/// Runs a case on its own task and says how it ended.
async fn outcome(case: Case, target: Target) -> Result<(), String> {
    match tokio::spawn(case(target)).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_panic() => {
            let panic = e.into_panic();
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into());
            Err(message.split_whitespace().collect::<Vec<_>>().join(" "))
        }
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_report() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/sim/README.md"))
        .expect("src/sim/README.md");
    let mut report = String::from(
        "# Differential conformance: the sim against the real control plane\n\n| case | sim | real | listed |\n| --- | --- | --- | --- |\n",
    );
    let mut unexplained = Vec::new();
    for (name, case) in CASES {
        let on_sim = outcome(*case, Target::sim()).await;
        let on_real = outcome(*case, Target::real().await).await;
        let listed = readme.contains(&format!("`{name}`"));
        let show = |r: &Result<(), String>| match r {
            Ok(()) => "pass".to_string(),
            Err(m) => format!("FAIL: {}", m.chars().take(160).collect::<String>()),
        };
        report.push_str(&format!(
            "| {name} | {} | {} | {} |\n",
            show(&on_sim),
            show(&on_real),
            if listed { "yes" } else { "" }
        ));
        match (&on_sim, &on_real) {
            (Ok(()), Ok(())) => {}
            (_, Err(real)) if on_sim.is_err() => {
                unexplained.push(format!("{name} fails on both targets: {real}"))
            }
            _ if listed => {}
            (_, Err(real)) => unexplained.push(format!("{name}: real control plane: {real}")),
            (Err(sim), _) => unexplained.push(format!("{name}: sim: {sim}")),
        }
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/target/differential-report.md");
    let _ = std::fs::write(path, &report);
    println!("{report}");
    assert!(
        unexplained.is_empty(),
        "differences not listed in src/sim/README.md:\n{}",
        unexplained.join("\n")
    );
}

fn code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other}"),
    }
}

async fn create_namespace(client: &Client, name: &str) {
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
}

/// Whether a ConfigMap is one the case made: a real control plane publishes
/// `kube-root-ca.crt` into every namespace (a difference listed in src/sim/README.md).
fn ours(c: &ConfigMap) -> bool {
    c.metadata.name.as_deref() != Some("kube-root-ca.crt")
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"app": "web"}}, "data": {"k": "v"}}),
    )
    .unwrap()
}

/// Installs the CRDs where they are missing (the test bed has them already).
async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in cutover::api::crds() {
        match crds.create(&PostParams::default(), &crd).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("CRD not installed: {e}"),
        }
    }
}

fn rollout(name: &str) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
                 "strategy": {"canary": {"steps": [{"setWeight": 20}]}}}
    }))
    .unwrap()
}
