//! The sim against the Kubernetes API conventions, through a real `kube::Client`, and the
//! same cases against the real control plane (the test bed): the differential suite. Every
//! case runs on the sim as a test of its own; `differential_report` runs each on both
//! targets, writes `target/differential-report.md` and fails when a difference is not
//! listed in `src/sim/README.md` (or a case fails on the real control plane too, which
//! means the case itself is wrong). Cases that read the sim's insides run on the sim only.

#[path = "support/testbed.rs"]
mod testbed;

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
    a_built_in_object_with_a_field_of_the_wrong_type_is_a_bad_request;
    differs: a_service_selector_is_applied_as_one_atomic_map,
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

async fn create_sets_server_fields_and_get_returns_them(t: Target) {
    let Target { client, ns, .. } = t;
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    let created = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let meta = &created.metadata;
    assert!(
        meta.uid.is_some() && meta.creation_timestamp.is_some() && meta.resource_version.is_some()
    );
    assert_eq!(meta.namespace.as_deref(), Some(ns.as_str()));
    assert_eq!(api.get("a").await.unwrap().metadata.uid, meta.uid);
    assert_eq!(
        code(
            api.create(&PostParams::default(), &cm("a"))
                .await
                .unwrap_err()
        ),
        409,
        "AlreadyExists"
    );
    assert_eq!(code(api.get("missing").await.unwrap_err()), 404);

    let mut generated = cm("");
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("web-".into());
    let g1 = api
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    let g2 = api
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    let (n1, n2) = (g1.metadata.name.unwrap(), g2.metadata.name.unwrap());
    assert!(n1.starts_with("web-") && n1.len() == 9 && n1 != n2);
}

async fn objects_need_an_existing_namespace(t: Target) {
    let Target { client, ns, .. } = t;
    let nowhere = format!("{ns}-nowhere");
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &nowhere);
    assert_eq!(
        code(
            api.create(&PostParams::default(), &cm("a"))
                .await
                .unwrap_err()
        ),
        404
    );
    let namespaces: Api<Namespace> = Api::all(client);
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": nowhere}})).unwrap();
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("a")).await.unwrap();
}

async fn update_with_a_stale_resource_version_conflicts(t: Target) {
    let Target { client, ns, .. } = t;
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    let first = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let mut fresh = first.clone();
    fresh.data = Some([("k".to_string(), "v2".to_string())].into());
    let updated = api
        .replace("a", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_ne!(
        updated.metadata.resource_version,
        first.metadata.resource_version
    );
    let mut stale = first.clone();
    stale.data = Some([("k".to_string(), "v3".to_string())].into());
    assert_eq!(
        code(
            api.replace("a", &PostParams::default(), &stale)
                .await
                .unwrap_err()
        ),
        409
    );
    assert_eq!(
        api.get("a").await.unwrap().data.unwrap()["k"],
        "v2",
        "the stale write changed nothing"
    );
}

async fn an_update_that_changes_nothing_keeps_the_resource_version(t: Target) {
    let Target { client, ns, .. } = t;
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    let first = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let again = api
        .replace("a", &PostParams::default(), &first)
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        first.metadata.resource_version
    );
}

async fn generation_moves_on_spec_changes_only_and_status_is_a_subresource(t: Target) {
    let Target { client, ns, .. } = t;
    install_crds(&client).await;
    let api: Api<Rollout> = Api::namespaced(client, &ns);
    let created = api
        .create(&PostParams::default(), &rollout("web"))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    let status = json!({"status": {"phase": "Progressing", "canaryWeight": 20}});
    let with_status = api
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(
        with_status.metadata.generation,
        Some(1),
        "a status write does not bump generation"
    );
    assert_eq!(with_status.status.as_ref().unwrap().canary_weight, Some(20));

    let labels = json!({"metadata": {"labels": {"team": "a"}}});
    let relabelled = api
        .patch("web", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap();
    assert_eq!(
        relabelled.metadata.generation,
        Some(1),
        "a metadata change does not bump generation"
    );

    let spec_and_status = json!({"spec": {"replicas": 3}, "status": {"phase": "Healthy"}});
    let changed = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&spec_and_status),
        )
        .await
        .unwrap();
    assert_eq!(changed.metadata.generation, Some(2));
    assert_eq!(
        changed.status.as_ref().unwrap().canary_weight,
        Some(20),
        "status is ignored on the main resource"
    );

    let spec_via_status = json!({"spec": {"replicas": 9}, "status": {"canaryWeight": 40}});
    let status_only = api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&spec_via_status),
        )
        .await
        .unwrap();
    assert_eq!(
        status_only.spec.replicas,
        Some(3),
        "spec is ignored on /status"
    );
    assert_eq!(status_only.metadata.generation, Some(2));
}

async fn custom_resources_are_validated_against_the_crd_schema(t: Target) {
    let Target { client, ns, .. } = t;
    install_crds(&client).await;
    let api: Api<Rollout> = Api::namespaced(client, &ns);
    let mut bad = rollout("web");
    bad.spec.strategy.canary.as_mut().unwrap().steps[0].set_weight = Some(150);
    let err = api.create(&PostParams::default(), &bad).await.unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!()
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status
            .message
            .contains("should be less than or equal to 100"),
        "{}",
        status.message
    );

    let mut no_strategy = rollout("web");
    no_strategy.spec.strategy = Default::default();
    let kube::Error::Api(status) = api
        .create(&PostParams::default(), &no_strategy)
        .await
        .unwrap_err()
    else {
        panic!()
    };
    assert!(
        status.message.contains("exactly one strategy must be set"),
        "CEL rules run: {}",
        status.message
    );
}

async fn list_filters_by_label_and_pages_with_continue(t: Target) {
    let Target { client, ns, .. } = t;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    for i in 0..5 {
        let mut c = cm(&format!("cm-{i}"));
        if i % 2 == 1 {
            c.metadata.labels = Some([("app".to_string(), "api".to_string())].into());
        }
        api.create(&PostParams::default(), &c).await.unwrap();
    }
    let web = api
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(web.items.len(), 3);
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(2);
    loop {
        let page = api.list(&params).await.unwrap();
        assert!(page.items.len() <= 2);
        names.extend(
            page.items
                .into_iter()
                .filter(ours)
                .map(|c| c.metadata.name.unwrap()),
        );
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => {
                params = ListParams::default().limit(2).continue_token(&token)
            }
            _ => break,
        }
    }
    assert_eq!(names, ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4"]);
    // Across namespaces, a page ends in one namespace and the next starts where it ended.
    let next = format!("{ns}-z");
    create_namespace(&client, &next).await;
    Api::<ConfigMap>::namespaced(client.clone(), &next)
        .create(&PostParams::default(), &cm("cm-9"))
        .await
        .unwrap();
    let all: Api<ConfigMap> = Api::all(client);
    let mut seen = Vec::new();
    let mut params = ListParams::default().limit(2);
    loop {
        let page = all.list(&params).await.unwrap();
        seen.extend(
            page.items
                .into_iter()
                .filter(ours)
                .filter(|c| [&ns, &next].contains(&c.metadata.namespace.as_ref().unwrap()))
                .map(|c| {
                    format!(
                        "{}/{}",
                        c.metadata.namespace.unwrap(),
                        c.metadata.name.unwrap()
                    )
                }),
        );
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => {
                params = ListParams::default().limit(2).continue_token(&token)
            }
            _ => break,
        }
    }
    let expected: Vec<String> = (0..5)
        .map(|i| format!("{ns}/cm-{i}"))
        .chain([format!("{next}/cm-9")])
        .collect();
    assert_eq!(seen, expected);
    let by_field = api
        .list(&ListParams::default().fields("metadata.name=cm-3"))
        .await
        .unwrap();
    assert_eq!(by_field.items.len(), 1);
}

async fn a_namespaced_list_reads_that_namespace_alone(t: Target) {
    let Target { client, ns, .. } = t;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    // Names that share a prefix sort next to each other.
    let (team1, team10, team1a) = (
        format!("{ns}-team-1"),
        format!("{ns}-team-10"),
        format!("{ns}-team-1a"),
    );
    for ns in [&team1, &team10, &team1a] {
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        for name in ["a", "b", "c"] {
            api.create(&PostParams::default(), &cm(name)).await.unwrap();
        }
    }
    let names = |list: kube::core::ObjectList<ConfigMap>| {
        list.items
            .into_iter()
            .map(|c| {
                format!(
                    "{}/{}",
                    c.metadata.namespace.unwrap(),
                    c.metadata.name.unwrap()
                )
            })
            .collect::<Vec<_>>()
    };
    let in_team1 = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("{team1}/{n}"))
            .collect::<Vec<_>>()
    };
    let team1_api: Api<ConfigMap> = Api::namespaced(client.clone(), &team1);
    assert_eq!(
        names(team1_api.list(&ListParams::default()).await.unwrap()),
        in_team1(&["a", "b", "c"])
    );
    let page = team1_api
        .list(&ListParams::default().limit(2))
        .await
        .unwrap();
    let token = page.metadata.continue_.clone().unwrap();
    assert_eq!(names(page), in_team1(&["a", "b"]));
    let rest = team1_api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert!(
        rest.metadata
            .continue_
            .as_deref()
            .unwrap_or_default()
            .is_empty()
    );
    assert_eq!(names(rest), in_team1(&["c"]));
    let all = Api::<ConfigMap>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let teams = [&team1, &team10, &team1a];
    let in_teams = all
        .items
        .iter()
        .filter(|c| teams.contains(&c.metadata.namespace.as_ref().unwrap()))
        .count();
    assert_eq!(in_teams, 9);
    // A continue token from another namespace's list reads nothing past this one's end.
    let page = Api::<ConfigMap>::namespaced(client.clone(), &team1a)
        .list(&ListParams::default().limit(1))
        .await
        .unwrap();
    let token = page.metadata.continue_.unwrap();
    assert!(
        team1_api
            .list(&ListParams::default().continue_token(&token))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

async fn watch_resumes_from_a_resource_version(t: Target) {
    let Target { client, ns, .. } = t;
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    let a = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let since = a.metadata.resource_version.clone().unwrap();
    api.create(&PostParams::default(), &cm("b")).await.unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &since)
        .await
        .unwrap()
        .boxed();
    let mut seen = Vec::new();
    while let Some(event) = stream.try_next().await.unwrap() {
        match event {
            // Published into the new namespace by the real controller manager, whenever
            // it gets to it: not one of the case's changes.
            WatchEvent::Added(c) | WatchEvent::Deleted(c) if !ours(&c) => continue,
            WatchEvent::Added(c) => seen.push(format!("ADDED {}", c.metadata.name.unwrap())),
            WatchEvent::Deleted(c) => seen.push(format!("DELETED {}", c.metadata.name.unwrap())),
            other => seen.push(format!("{other:?}")),
        }
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen, ["ADDED b", "DELETED a"]);
}

type Events = futures::stream::BoxStream<'static, kube::Result<WatchEvent<ConfigMap>>>;

/// A ConfigMap watch resuming after the change that made `seen`.
async fn resume_after(api: &Api<ConfigMap>, seen: &ConfigMap) -> Events {
    api.watch(
        &WatchParams::default().timeout(5),
        seen.metadata.resource_version.as_deref().unwrap(),
    )
    .await
    .unwrap()
    .boxed()
}

async fn assert_gone(mut stream: Events) {
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!(e.code, 410),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_from_a_compacted_resource_version_is_gone() {
    let sim = Sim::with_history_limit(Clock::System, 3);
    let api: Api<ConfigMap> = Api::namespaced(sim.client(), "default");
    let first = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    for i in 0..5 {
        api.create(&PostParams::default(), &cm(&format!("x{i}")))
            .await
            .unwrap();
    }
    assert_gone(resume_after(&api, &first).await).await;
}

#[tokio::test]
async fn a_flood_of_other_changes_does_not_expire_a_quiet_types_watch() {
    let sim = Sim::with_history_limit(Clock::System, 3);
    let client = sim.client();
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let first = maps.create(&PostParams::default(), &cm("a")).await.unwrap();
    let second = maps.create(&PostParams::default(), &cm("b")).await.unwrap();
    // Far more changes of another type than the history holds.
    let namespaces: Api<Namespace> = Api::all(client);
    for i in 0..10 {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": format!("team-{i}")}})).unwrap();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    // A watch that last saw the second ConfigMap missed no ConfigMap change: it resumes
    // (only Namespaces left the history since) and sees the next one.
    let mut stream = resume_after(&maps, &second).await;
    let third = maps.create(&PostParams::default(), &cm("c")).await.unwrap();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Added(c)) => {
            assert_eq!(c.metadata.name.as_deref(), Some("c"));
            assert_eq!(c.metadata.resource_version, third.metadata.resource_version);
        }
        other => panic!("expected the third ConfigMap, got {other:?}"),
    }
    // One that last saw the first missed the second, which has left the history: 410 Gone.
    assert_gone(resume_after(&maps, &first).await).await;
}

async fn finalizers_hold_deletion_until_removed(t: Target) {
    let Target { client, ns, .. } = t;
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    let mut c = cm("held");
    c.metadata.finalizers = Some(vec!["cutover.dev/cleanup".into()]);
    api.create(&PostParams::default(), &c).await.unwrap();
    api.delete("held", &DeleteParams::default()).await.unwrap();
    let pending = api.get("held").await.unwrap();
    assert!(pending.metadata.deletion_timestamp.is_some());
    let clear = json!({"metadata": {"finalizers": null}});
    api.patch("held", &PatchParams::default(), &Patch::Merge(&clear))
        .await
        .unwrap();
    assert_eq!(code(api.get("held").await.unwrap_err()), 404);
}

fn owner_refs(
    owners: &[&ConfigMap],
) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    owners
        .iter()
        .map(
            |owner| k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: owner.metadata.name.clone().unwrap(),
                uid: owner.metadata.uid.clone().unwrap(),
                ..Default::default()
            },
        )
        .collect()
}

fn owned_cm(name: &str, owners: &[&ConfigMap]) -> ConfigMap {
    let mut c = cm(name);
    c.metadata.owner_references = Some(owner_refs(owners));
    c
}

async fn deleting_an_owner_deletes_its_dependents_unless_orphaned(t: Target) {
    let Target { client, ns, .. } = t;
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    let owner = api
        .create(&PostParams::default(), &cm("owner"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &owned_cm("child", &[&owner]))
        .await
        .unwrap();
    api.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    assert_eq!(code(api.get("child").await.unwrap_err()), 404);

    let owner = api
        .create(&PostParams::default(), &cm("owner2"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &owned_cm("kept", &[&owner]))
        .await
        .unwrap();
    api.delete("owner2", &DeleteParams::orphan()).await.unwrap();
    let kept = api.get("kept").await.unwrap();
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
}

async fn an_object_released_by_its_owner_outlives_it(t: Target) {
    let Target { client, ns, .. } = t;
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    let first = api
        .create(&PostParams::default(), &cm("first"))
        .await
        .unwrap();
    let second = api
        .create(&PostParams::default(), &cm("second"))
        .await
        .unwrap();
    api.create(
        &PostParams::default(),
        &owned_cm("child", &[&first, &second]),
    )
    .await
    .unwrap();
    // The child now names only `second`: deleting `first` must leave it alone.
    let only_second = owner_refs(&[&second]);
    api.patch(
        "child",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"ownerReferences": only_second}})),
    )
    .await
    .unwrap();
    api.delete("first", &DeleteParams::background())
        .await
        .unwrap();
    assert!(api.get("child").await.is_ok(), "released by first");
    api.delete("second", &DeleteParams::background())
        .await
        .unwrap();
    assert_eq!(code(api.get("child").await.unwrap_err()), 404);
}

#[tokio::test]
async fn the_owner_index_finds_exactly_an_owners_objects() {
    let (sim, client) = sim();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let owner = api
        .create(&PostParams::default(), &cm("owner"))
        .await
        .unwrap();
    let other = api
        .create(&PostParams::default(), &cm("other"))
        .await
        .unwrap();
    for (name, owners) in [
        ("b-child", vec![&owner]),
        ("a-child", vec![&other, &owner]),
        ("not-mine", vec![&other]),
    ] {
        api.create(&PostParams::default(), &owned_cm(name, &owners))
            .await
            .unwrap();
    }
    let mut relabelled = owned_cm("c-relabelled", &[&owner]);
    relabelled.metadata.labels = Some([("app".to_string(), "api".to_string())].into());
    api.create(&PostParams::default(), &relabelled)
        .await
        .unwrap();
    let store = sim.store();
    let rt = store.resolve("", "v1", "configmaps").unwrap();
    let owned = |labels: &str| {
        let filter = cutover::sim::store::Filter {
            namespace: Some("default".into()),
            labels: cutover::sim::selector::LabelSelector::parse(labels).unwrap(),
            ..Default::default()
        };
        store
            .owned(&rt, owner.metadata.uid.as_deref().unwrap(), &filter)
            .iter()
            .map(cutover::sim::store::name_of)
            .collect::<Vec<_>>()
    };
    // Sorted by name, whatever order they were created in; another owner's are not read.
    assert_eq!(owned(""), ["a-child", "b-child", "c-relabelled"]);
    assert_eq!(owned("app=web"), ["a-child", "b-child"]);
    // Released by its owner, an object leaves the index.
    api.patch(
        "b-child",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"ownerReferences": owner_refs(&[&other])}})),
    )
    .await
    .unwrap();
    assert_eq!(owned("app=web"), ["a-child"]);
    api.delete("a-child", &DeleteParams::background())
        .await
        .unwrap();
    assert!(owned("app=web").is_empty());
    let elsewhere = cutover::sim::store::Filter {
        namespace: Some("kube-system".into()),
        ..Default::default()
    };
    assert!(
        store
            .owned(&rt, owner.metadata.uid.as_deref().unwrap(), &elsewhere)
            .is_empty()
    );
}

async fn foreground_deletion_removes_dependents_first(t: Target) {
    let Target { client, ns, .. } = t;
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    let owner = api
        .create(&PostParams::default(), &cm("owner"))
        .await
        .unwrap();
    let mut child = owned_cm("child", &[&owner]);
    child.metadata.finalizers = Some(vec!["x/hold".into()]);
    api.create(&PostParams::default(), &child).await.unwrap();
    api.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    let waiting = api.get("owner").await.unwrap();
    assert!(
        waiting.metadata.deletion_timestamp.is_some(),
        "owner waits for its dependent"
    );
    api.patch(
        "child",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(code(api.get("child").await.unwrap_err()), 404);
    assert_eq!(code(api.get("owner").await.unwrap_err()), 404);
}

async fn server_side_apply_tracks_owners_and_conflicts(t: Target) {
    let Target { client, ns, .. } = t;
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "1", "y": "1"}});
    let created = api
        .patch("a", &PatchParams::apply("alice"), &Patch::Apply(&applied))
        .await
        .unwrap();
    let managers: Vec<_> = created
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|m| (m.manager.unwrap(), m.operation.unwrap()))
        .collect();
    assert_eq!(managers, [("alice".to_string(), "Apply".to_string())]);

    let bob = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "2"}});
    let err = api
        .patch("a", &PatchParams::apply("bob"), &Patch::Apply(&bob))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!()
    };
    assert_eq!(status.code, 409);
    assert!(status.message.contains("alice"), "{}", status.message);

    let same_value = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"y": "1", "z": "3"}});
    api.patch("a", &PatchParams::apply("bob"), &Patch::Apply(&same_value))
        .await
        .unwrap();

    // bob takes x by force, keeping what he applied before (a manager applies its whole intent).
    let bob_all = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "2", "y": "1", "z": "3"}});
    let forced = api
        .patch(
            "a",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(&bob_all),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.as_ref().unwrap()["x"], "2");

    // alice stops applying y: y stays because bob co-owns it; x is bob's now.
    let alice_again =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {}});
    let result = api
        .patch(
            "a",
            &PatchParams::apply("alice"),
            &Patch::Apply(&alice_again),
        )
        .await
        .unwrap();
    let data = result.data.unwrap();
    assert_eq!(
        (data["x"].as_str(), data["y"].as_str(), data["z"].as_str()),
        ("2", "1", "3")
    );

    // bob stops applying z: nobody else owns it, so it is removed.
    let bob_smaller = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "2", "y": "1"}});
    let result = api
        .patch("a", &PatchParams::apply("bob"), &Patch::Apply(&bob_smaller))
        .await
        .unwrap();
    assert!(!result.data.unwrap().contains_key("z"));

    let unchanged = api
        .patch("a", &PatchParams::apply("bob"), &Patch::Apply(&bob_smaller))
        .await
        .unwrap();
    let before = api.get("a").await.unwrap();
    assert_eq!(
        unchanged.metadata.resource_version, before.metadata.resource_version,
        "re-applying the same config writes nothing"
    );
}

fn deployment() -> Deployment {
    serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
            {"name": "web", "image": "web:1"}, {"name": "proxy", "image": "proxy:1"}]}}}}))
    .unwrap()
}

async fn strategic_merge_and_json_patches_on_deployments(t: Target) {
    let Target { client, ns, .. } = t;
    let api: Api<Deployment> = Api::namespaced(client, &ns);
    api.create(&PostParams::default(), &deployment())
        .await
        .unwrap();
    let smp = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}});
    let patched = api
        .patch("web", &PatchParams::default(), &Patch::Strategic(&smp))
        .await
        .unwrap();
    let containers = patched.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(containers.len(), 2, "containers merge by name");
    assert_eq!(containers[0].image.as_deref(), Some("web:2"));
    assert_eq!(patched.metadata.generation, Some(2));

    let ops: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/spec/replicas", "value": 5}]))
            .unwrap();
    let patched = api
        .patch("web", &PatchParams::default(), &Patch::<()>::Json(ops))
        .await
        .unwrap();
    assert_eq!(patched.spec.unwrap().replicas, Some(5));
}

async fn crds_become_served_with_scale_subresources(t: Target) {
    let Target { client, ns, .. } = t;
    install_crds(&client).await;
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    let group = discovery
        .groups()
        .find(|g| g.name() == "cutover.dev")
        .expect("cutover.dev is discovered");
    let kinds: Vec<String> = group
        .recommended_resources()
        .into_iter()
        .map(|(r, _)| r.kind)
        .collect();
    assert!(kinds.contains(&"Rollout".into()) && kinds.contains(&"FeatureFlag".into()));

    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &rollout("web"))
        .await
        .unwrap();
    let scale = api.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(2));
    let patch = json!({"spec": {"replicas": 6}});
    api.patch_scale("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(api.get("web").await.unwrap().spec.replicas, Some(6));
}

/// Sim only: on the shared test bed, deleting a CRD would take every other test's kind.
#[tokio::test]
async fn deleting_a_crd_stops_serving_its_kind() {
    let (_sim, client) = sim();
    install_crds(&client).await;
    let api: Api<Rollout> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &rollout("web"))
        .await
        .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    crds.delete(Rollout::crd_name(), &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        code(api.get("web").await.unwrap_err()),
        404,
        "deleting a CRD stops serving its kind"
    );
}

async fn deleting_a_namespace_deletes_what_is_in_it(t: Target) {
    let Target { client, ns, .. } = t;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let team = format!("{ns}-team");
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": team}})).unwrap();
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, &team);
    api.create(&PostParams::default(), &cm("a")).await.unwrap();
    namespaces
        .delete(&team, &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(code(api.get("a").await.unwrap_err()), 404);
    assert_eq!(code(namespaces.get(&team).await.unwrap_err()), 404);
}

async fn applying_less_removes_what_the_manager_stopped_applying(t: Target) {
    let Target { client, ns, .. } = t;
    let api: Api<Deployment> = Api::namespaced(client, &ns);
    let full = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
            {"name": "web", "image": "web:1", "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}}},
            {"name": "proxy", "image": "proxy:1"}]}}}});
    api.patch("web", &PatchParams::apply("team"), &Patch::Apply(&full))
        .await
        .unwrap();
    let smaller = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
            {"name": "web", "image": "web:2"}]}}}});
    let result = api
        .patch("web", &PatchParams::apply("team"), &Patch::Apply(&smaller))
        .await
        .unwrap();
    let containers = result.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(
        containers.len(),
        1,
        "the proxy container is no longer applied"
    );
    assert_eq!(containers[0].image.as_deref(), Some("web:2"));
    assert!(
        containers[0].readiness_probe.is_none(),
        "the probe and its emptied parents are gone"
    );
}

#[tokio::test(start_paused = true)]
async fn watches_send_bookmarks_and_end_at_their_timeout() {
    let sim = Sim::new(Clock::tokio_at(
        jiff::Timestamp::from_second(1_800_000_000).unwrap(),
    ));
    let api: Api<ConfigMap> = Api::namespaced(sim.client(), "default");
    let list = api.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let started = tokio::time::Instant::now();
    let mut stream = api
        .watch(&WatchParams::default().timeout(150), &rv)
        .await
        .unwrap()
        .boxed();
    let mut bookmarks = 0;
    while let Some(event) = stream.try_next().await.unwrap() {
        if let WatchEvent::Bookmark(b) = event {
            assert_eq!(
                b.metadata.resource_version, rv,
                "a bookmark carries the latest resourceVersion seen"
            );
            bookmarks += 1;
        }
    }
    assert_eq!(bookmarks, 2, "one bookmark a minute over 150 s");
    assert!(
        started.elapsed() >= Duration::from_secs(150),
        "the watch ends at timeoutSeconds"
    );
}

async fn server_side_apply_to_status_removes_fields_no_longer_applied(t: Target) {
    let Target { client, ns, .. } = t;
    install_crds(&client).await;
    let api: Api<Rollout> = Api::namespaced(client, &ns);
    api.create(&PostParams::default(), &rollout("web"))
        .await
        .unwrap();
    let full = json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "status": {"phase": "Paused", "message": "waiting", "currentStepIndex": 1}});
    api.patch_status(
        "web",
        &PatchParams::apply("cutover").force(),
        &Patch::Apply(&full),
    )
    .await
    .unwrap();
    let smaller = json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "status": {"phase": "Healthy"}});
    let result = api
        .patch_status(
            "web",
            &PatchParams::apply("cutover").force(),
            &Patch::Apply(&smaller),
        )
        .await
        .unwrap();
    let status = result.status.unwrap();
    assert_eq!(status.message, None);
    assert_eq!(status.current_step_index, None);
    let again = api
        .patch_status(
            "web",
            &PatchParams::apply("cutover").force(),
            &Patch::Apply(&smaller),
        )
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version, result.metadata.resource_version,
        "re-applying the same status writes nothing"
    );
}

async fn a_status_applied_with_a_stale_resource_version_conflicts(t: Target) {
    let Target { client, ns, .. } = t;
    install_crds(&client).await;
    let api: Api<Rollout> = Api::namespaced(client, &ns);
    let read = api
        .create(&PostParams::default(), &rollout("web"))
        .await
        .unwrap();
    let rv = read.metadata.resource_version.clone().unwrap();
    let status = |phase: &str, rv: &str| {
        json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"resourceVersion": rv}, "status": {"phase": phase}})
    };
    let params = PatchParams::apply("cutover").force();
    let written = api
        .patch_status("web", &params, &Patch::Apply(&status("Progressing", &rv)))
        .await
        .expect("a write conditional on the version read succeeds while it is current");
    assert_ne!(
        written.metadata.resource_version.as_deref(),
        Some(rv.as_str())
    );
    // A second writer that read the same version loses, even with the same status.
    for phase in ["Progressing", "Healthy"] {
        let lost = api
            .patch_status("web", &params, &Patch::Apply(&status(phase, &rv)))
            .await
            .unwrap_err();
        assert_eq!(code(lost), 409, "{phase} from a stale read");
    }
    assert_eq!(
        api.get_status("web").await.unwrap().status.unwrap().phase,
        cutover::api::RolloutPhase::Progressing
    );
}

async fn a_rollout_selector_cannot_change(t: Target) {
    let Target { client, ns, .. } = t;
    install_crds(&client).await;
    let api: Api<Rollout> = Api::namespaced(client, &ns);
    api.create(&PostParams::default(), &rollout("web"))
        .await
        .unwrap();
    let moved = json!({"spec": {"selector": {"matchLabels": {"app": "web2"}},
        "template": {"metadata": {"labels": {"app": "web2"}}}}});
    let refused = api
        .patch("web", &PatchParams::default(), &Patch::Merge(&moved))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = refused else {
        panic!("expected an API error: {refused}");
    };
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains("spec.selector is immutable"),
        "{}",
        status.message
    );
    // Everything else still changes.
    let scaled = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.replicas, Some(3));
}

async fn a_secret_keeps_string_data_only_as_data(t: Target) {
    let Target { client, ns, .. } = t;
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, &ns);
    let secret = serde_json::from_value(json!({"metadata": {"name": "creds"},
        "data": {"kept": "a2VwdA==", "token": "b2xk"}, "stringData": {"token": "new"}}))
    .unwrap();
    api.create(&PostParams::default(), &secret).await.unwrap();
    let read = api.get("creds").await.unwrap();
    assert_eq!(read.string_data, None, "stringData is write-only");
    let data = read.data.unwrap();
    assert_eq!(data["token"].0, b"new", "stringData wins over data");
    assert_eq!(data["kept"].0, b"kept");
}

async fn a_service_selector_is_applied_as_one_atomic_map(t: Target) {
    let Target { client, ns, .. } = t;
    let api: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client, &ns);
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
    api.patch("web", &PatchParams::apply("owner"), &Patch::Apply(&svc))
        .await
        .unwrap();
    // Another manager applying one key of the selector conflicts on the whole map.
    let pin = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"cutover.dev/revision": "abc"}}});
    let err = api
        .patch("web", &PatchParams::apply("pinner"), &Patch::Apply(&pin))
        .await
        .unwrap_err();
    assert_eq!(code(err), 409);
    // Forced, it takes the map whole: the owner's key is gone.
    let forced = api
        .patch(
            "web",
            &PatchParams::apply("pinner").force(),
            &Patch::Apply(&pin),
        )
        .await
        .unwrap();
    let selector = forced.spec.unwrap().selector.unwrap();
    assert_eq!(selector.len(), 1, "{selector:?}");
}

/// `kubectl apply --server-side` of an unchanged manifest after another manager (an
/// operator, `kubectl label`) wrote the object: nothing is stored, so nothing wakes.
async fn an_apply_that_changes_nothing_after_another_manager_writes_nothing(t: Target) {
    let Target { client, ns, .. } = t;
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    let manifest = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
        "data": {"mode": "fast"}});
    api.patch(
        "settings",
        &PatchParams::apply("gitops"),
        &Patch::Apply(&manifest),
    )
    .await
    .unwrap();
    let label = json!({"metadata": {"labels": {"team": "web"}}});
    api.patch("settings", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .unwrap();
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
        "data": {"extra": "1"}});
    let before = api
        .patch(
            "settings",
            &PatchParams::apply("operator"),
            &Patch::Apply(&other),
        )
        .await
        .unwrap();
    let after = api
        .patch(
            "settings",
            &PatchParams::apply("gitops"),
            &Patch::Apply(&manifest),
        )
        .await
        .unwrap();
    assert_eq!(
        after.metadata.resource_version, before.metadata.resource_version,
        "{:#?}",
        after.metadata.managed_fields
    );
}

async fn a_deployment_selector_cannot_change(t: Target) {
    let Target { client, ns, .. } = t;
    let api: Api<Deployment> = Api::namespaced(client, &ns);
    api.create(&PostParams::default(), &deployment())
        .await
        .unwrap();
    let patch = json!({"spec": {"selector": {"matchLabels": {"app": "web", "tier": "x"}},
        "template": {"metadata": {"labels": {"app": "web", "tier": "x"}}}}});
    let err = api
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_err();
    assert_eq!(code(err), 422, "spec.selector is immutable");
}

/// `kubectl get cro -o wide`: the Table's cells come from the CRD's printer columns,
/// condition filters and list indexes included.
async fn a_rollout_table_fills_its_printer_columns(t: Target) {
    let Target { client, ns, .. } = t;
    install_crds(&client).await;
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &rollout("web"))
        .await
        .unwrap();
    let status = json!({"status": {"phase": "Degraded", "message": "spec.replicas: too many",
        "conditions": [
            {"type": "InvalidSpec", "status": "True", "reason": "InvalidSpec", "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    api.patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let request = http::Request::get(format!(
        "/apis/cutover.dev/v1alpha1/namespaces/{ns}/rollouts/web"
    ))
    .header(
        "Accept",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    )
    .body(Vec::new())
    .unwrap();
    let table: serde_json::Value = client.request(request).await.unwrap();
    let names: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let cells = table["rows"][0]["cells"].as_array().unwrap();
    let cell = |name: &str| {
        let i = names.iter().position(|n| *n == name).unwrap();
        cells[i].clone()
    };
    assert_eq!(cell("Phase"), json!("Degraded"));
    assert_eq!(cell("Reason"), json!("InvalidSpec"));
    assert_eq!(cell("Image"), json!("web:1"));
    assert_eq!(cell("Message"), json!("spec.replicas: too many"));
}

/// A Deployment's annotations are copied to its ReplicaSets: changing one is a new
/// generation (and its status is stale until the controller observes it); a label is not.
async fn a_deployment_annotation_is_a_new_generation_and_a_label_is_not(t: Target) {
    let Target { client, ns, .. } = t;
    let api: Api<Deployment> = Api::namespaced(client, &ns);
    let created = api
        .create(&PostParams::default(), &deployment())
        .await
        .unwrap();
    let first = created.metadata.generation.unwrap();
    let labelled = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"role": "stable"}}})),
        )
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(first), "a label");
    let annotated = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {"note": "x"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        annotated.metadata.generation,
        Some(first + 1),
        "an annotation"
    );
}

/// `kubectl diff` and `--dry-run=server`: every verb answers as if it had written, runs
/// validation and immutability, and stores nothing.
async fn a_dry_run_answers_what_would_be_stored_and_writes_nothing(t: Target) {
    let Target { client, ns, .. } = t;
    let dry_post = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let dry_patch = PatchParams::default().dry_run();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);

    let would = cms.create(&dry_post, &cm("dry")).await.unwrap();
    assert_eq!(would.metadata.name.as_deref(), Some("dry"));
    assert_eq!(would.data.unwrap()["k"], "v", "the object as it would be");
    assert_eq!(
        code(cms.get("dry").await.unwrap_err()),
        404,
        "create stored nothing"
    );
    let invalid: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "Not_Valid"}})).unwrap();
    assert_eq!(
        code(cms.create(&dry_post, &invalid).await.unwrap_err()),
        422,
        "names are still checked"
    );

    let stored = cms.create(&PostParams::default(), &cm("a")).await.unwrap();
    let rv = stored.metadata.resource_version.clone();
    let patched = cms
        .patch(
            "a",
            &dry_patch,
            &Patch::Merge(&json!({"data": {"k": "merge"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap()["k"], "merge");
    // The create above named no manager: the server recorded one for it all the same.
    let apply = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "apply"}});
    let err = cms
        .patch(
            "a",
            &PatchParams::apply("dry-manager").dry_run(),
            &Patch::Apply(&apply),
        )
        .await
        .unwrap_err();
    assert_eq!(code(err), 409, "conflicts are still found");
    let applied = cms
        .patch(
            "a",
            &PatchParams::apply("dry-manager").dry_run().force(),
            &Patch::Apply(&apply),
        )
        .await
        .unwrap();
    assert_eq!(applied.data.unwrap()["k"], "apply");
    let mut replaced = stored.clone();
    replaced.data = Some([("k".to_string(), "replace".to_string())].into());
    let put = cms.replace("a", &dry_post, &replaced).await.unwrap();
    assert_eq!(put.data.unwrap()["k"], "replace");
    let dry_delete = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    cms.delete("a", &dry_delete).await.unwrap();
    let after = cms.get("a").await.unwrap();
    assert_eq!(after.data.unwrap()["k"], "v", "no write took");
    assert_eq!(after.metadata.resource_version, rv, "nothing was stored");

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment())
        .await
        .unwrap();
    let moved = json!({"spec": {"selector": {"matchLabels": {"app": "web", "tier": "x"}},
        "template": {"metadata": {"labels": {"app": "web", "tier": "x"}}}}});
    let err = deployments
        .patch("web", &dry_patch, &Patch::Merge(&moved))
        .await
        .unwrap_err();
    assert_eq!(code(err), 422, "immutable fields are still refused");

    install_crds(&client).await;
    let rollouts: Api<Rollout> = Api::namespaced(client, &ns);
    let created = rollouts
        .create(&PostParams::default(), &rollout("web"))
        .await
        .unwrap();
    let status = json!({"status": {"phase": "Degraded"}});
    let would = rollouts
        .patch_status("web", &dry_patch, &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(
        would.status.map(|s| s.phase),
        Some(cutover::api::RolloutPhase::Degraded)
    );
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}});
    rollouts
        .patch("web", &dry_patch, &Patch::Merge(&image))
        .await
        .unwrap();
    let after = rollouts.get("web").await.unwrap();
    assert_eq!(
        after.metadata.resource_version,
        created.metadata.resource_version
    );
    assert_eq!(
        after.metadata.generation,
        Some(1),
        "a dry run moves no generation"
    );
}

/// The operator publishes events.k8s.io/v1 Events; `kubectl describe` and `kubectl get
/// events` read core v1 ones. Both APIs serve the same objects, converted.
async fn events_are_one_set_of_objects_under_both_apis(t: Target) {
    use k8s_openapi::api::{core::v1::Event as CoreEvent, events::v1::Event};
    let Target { client, ns, .. } = t;
    let owner = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &cm("owner"))
        .await
        .unwrap();
    let regarding = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
        "namespace": ns, "uid": owner.metadata.uid});
    let published: Event = serde_json::from_value(json!({
        "metadata": {"name": "owner.1", "namespace": ns},
        "eventTime": "2026-01-01T00:00:00.000000Z", "type": "Normal", "reason": "Promoted",
        "action": "Promoted", "note": "promoted to web:2", "regarding": regarding,
        "reportingController": "cutover.dev/operator", "reportingInstance": "cutover-0"}))
    .unwrap();
    Api::<Event>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &published)
        .await
        .unwrap();

    let core: Api<CoreEvent> = Api::namespaced(client.clone(), &ns);
    let seen = core
        .list(&ListParams::default().fields(&format!(
            "involvedObject.name=owner,involvedObject.kind=ConfigMap,involvedObject.uid={}",
            owner.metadata.uid.clone().unwrap()
        )))
        .await
        .unwrap();
    assert_eq!(seen.items.len(), 1, "describe's query finds the event");
    let event = &seen.items[0];
    assert_eq!(event.message.as_deref(), Some("promoted to web:2"));
    assert_eq!(event.reason.as_deref(), Some("Promoted"));
    assert_eq!(event.involved_object.name.as_deref(), Some("owner"));
    assert_eq!(
        event.reporting_component.as_deref(),
        Some("cutover.dev/operator")
    );
    assert_eq!(core.get("owner.1").await.unwrap().message, event.message);
    let none = core
        .list(&ListParams::default().fields("involvedObject.name=other"))
        .await
        .unwrap();
    assert!(none.items.is_empty(), "the selector filters");

    let legacy: CoreEvent = serde_json::from_value(json!({
        "metadata": {"name": "owner.2", "namespace": ns},
        "involvedObject": regarding, "reason": "Scaled", "message": "scaled to 3",
        "type": "Normal", "source": {"component": "deployment-controller"},
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z", "count": 1}))
    .unwrap();
    core.create(&PostParams::default(), &legacy).await.unwrap();
    let v1 = Api::<Event>::namespaced(client, &ns)
        .get("owner.2")
        .await
        .unwrap();
    assert_eq!(v1.note.as_deref(), Some("scaled to 3"));
    assert_eq!(v1.regarding.and_then(|r| r.name).as_deref(), Some("owner"));
    assert_eq!(v1.deprecated_count, Some(1));
    assert_eq!(
        v1.deprecated_source.and_then(|s| s.component).as_deref(),
        Some("deployment-controller")
    );
}

/// The Table of `path` as `kubectl get` asks for it: column names and each row's cells.
async fn table(client: &Client, path: &str) -> (Vec<String>, Vec<Vec<serde_json::Value>>) {
    let request = http::Request::get(path)
        .header(
            "Accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(Vec::new())
        .unwrap();
    let table: serde_json::Value = client.request(request).await.unwrap();
    let columns = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    let rows = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cells"].as_array().unwrap().clone())
        .collect();
    (columns, rows)
}

/// `kubectl get pods|deploy|jobs|svc|events|cm|secrets|ns|sa` print kube-apiserver's own
/// columns, not only a name and an age.
async fn built_in_kinds_print_the_columns_kubectl_shows(t: Target) {
    let Target { client, ns, .. } = t;
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &cm("c"))
        .await
        .unwrap();
    let service: Service = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"a": "b"}}))
            .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    Api::<Deployment>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &deployment())
        .await
        .unwrap();
    let named = |rows: &[Vec<serde_json::Value>], name: &str| {
        rows.iter()
            .find(|r| r[0] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no row {name} in {rows:?}"))
    };
    let columns = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();

    let (cols, rows) = table(&client, &format!("/api/v1/namespaces/{ns}/configmaps")).await;
    assert_eq!(cols, columns(&["Name", "Data", "Age"]));
    assert_eq!(named(&rows, "c")[1], json!(1));
    let (cols, rows) = table(&client, &format!("/api/v1/namespaces/{ns}/services")).await;
    assert_eq!(
        cols,
        columns(&[
            "Name",
            "Type",
            "Cluster-IP",
            "External-IP",
            "Port(s)",
            "Age",
            "Selector"
        ])
    );
    let web = named(&rows, "web");
    assert_eq!(
        (&web[1], &web[3], &web[4], &web[6]),
        (
            &json!("ClusterIP"),
            &json!("<none>"),
            &json!("80/TCP"),
            &json!("app=web")
        )
    );
    let (cols, rows) = table(&client, &format!("/api/v1/namespaces/{ns}/secrets")).await;
    assert_eq!(cols, columns(&["Name", "Type", "Data", "Age"]));
    assert_eq!(named(&rows, "s")[1..3], [json!("Opaque"), json!(1)]);
    let (cols, rows) = table(
        &client,
        &format!("/apis/apps/v1/namespaces/{ns}/deployments"),
    )
    .await;
    assert_eq!(
        cols,
        columns(&[
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ])
    );
    let web = named(&rows, "web");
    assert!(
        web[1].as_str().unwrap().ends_with("/2"),
        "ready of desired: {web:?}"
    );
    assert_eq!(web[7], json!("app=web"));
    let (cols, _) = table(&client, &format!("/api/v1/namespaces/{ns}/pods")).await;
    assert_eq!(
        cols,
        columns(&[
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ])
    );
    let (cols, _) = table(&client, &format!("/apis/batch/v1/namespaces/{ns}/jobs")).await;
    assert_eq!(
        cols,
        columns(&[
            "Name",
            "Status",
            "Completions",
            "Duration",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ])
    );
    let events = columns(&[
        "Last Seen",
        "Type",
        "Reason",
        "Object",
        "Subobject",
        "Source",
        "Message",
        "First Seen",
        "Count",
        "Name",
    ]);
    for path in [
        format!("/api/v1/namespaces/{ns}/events"),
        format!("/apis/events.k8s.io/v1/namespaces/{ns}/events"),
    ] {
        assert_eq!(table(&client, &path).await.0, events, "{path}");
    }
    let (cols, rows) = table(&client, &format!("/api/v1/namespaces/{ns}")).await;
    assert_eq!(cols, columns(&["Name", "Status", "Age"]));
    assert_eq!(rows[0][1], json!("Active"));
    let (cols, _) = table(&client, &format!("/api/v1/namespaces/{ns}/serviceaccounts")).await;
    assert_eq!(cols, columns(&["Name", "Age"]));
}

/// What kube-apiserver refuses in built-in kinds, a controller meets on a real cluster: a
/// Deployment whose selector does not match its pods, a container without an image, a Job
/// that restarts always, a bad label, a change to an immutable ConfigMap.
async fn built_in_writes_are_refused_as_by_the_api_server(t: Target) {
    use k8s_openapi::api::batch::v1::Job;
    let Target { client, ns, .. } = t;
    let post = PostParams::default();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let mut mismatch = deployment();
    mismatch.spec.as_mut().unwrap().template.metadata =
        Some(serde_json::from_value(json!({"labels": {"app": "other"}})).unwrap());
    assert_eq!(
        code(deployments.create(&post, &mismatch).await.unwrap_err()),
        422,
        "selector must match"
    );
    let mut no_image = serde_json::to_value(deployment()).unwrap();
    no_image["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("image");
    let no_image: Deployment = serde_json::from_value(no_image).unwrap();
    assert_eq!(
        code(deployments.create(&post, &no_image).await.unwrap_err()),
        422,
        "image required"
    );

    let job: Job = serde_json::from_value(
        json!({"metadata": {"name": "m"}, "spec": {"template": {"spec": {
        "restartPolicy": "Always", "containers": [{"name": "m", "image": "m:1"}]}}}}),
    )
    .unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    assert_eq!(
        code(jobs.create(&post, &job).await.unwrap_err()),
        422,
        "a Job never restarts always"
    );

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let bad_label: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "l", "labels": {"app": "-web"}}}))
            .unwrap();
    assert_eq!(
        code(cms.create(&post, &bad_label).await.unwrap_err()),
        422,
        "label syntax"
    );
    let frozen: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "frozen"}, "data": {"k": "v"}, "immutable": true}),
    )
    .unwrap();
    cms.create(&post, &frozen).await.unwrap();
    let change = json!({"data": {"k": "w"}});
    let err = cms
        .patch("frozen", &PatchParams::default(), &Patch::Merge(&change))
        .await
        .unwrap_err();
    assert_eq!(code(err), 422, "an immutable ConfigMap keeps its data");
    let label = json!({"metadata": {"labels": {"tier": "x"}}});
    cms.patch("frozen", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .unwrap();
}

/// The objects of `e2e/fixtures/app-bundle.yaml`: an application's manifests.
fn app_bundle() -> Vec<kube::api::DynamicObject> {
    let text = include_str!("../e2e/fixtures/app-bundle.yaml");
    cutover::yaml::from_multi_str::<kube::api::DynamicObject>(text)
        .unwrap()
        .into_iter()
        .flatten()
        .collect()
}

/// The API of an object's kind, found through discovery as kubectl finds it.
async fn api_for(
    client: &Client,
    object: &kube::api::DynamicObject,
    ns: &str,
) -> Api<kube::api::DynamicObject> {
    let types = object.types.clone().expect("apiVersion and kind");
    let gvk = kube::api::GroupVersionKind::try_from(&types).unwrap();
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("{} is not served: {e}", types.kind));
    match caps.scope {
        kube::discovery::Scope::Namespaced => Api::namespaced_with(client.clone(), ns, &resource),
        kube::discovery::Scope::Cluster => Api::all_with(client.clone(), &resource),
    }
}

async fn an_applications_manifests_apply_and_go_with_their_namespace(t: Target) {
    let Target { client, ns, .. } = t;
    install_crds(&client).await;
    let app = format!("{ns}-app");
    create_namespace(&client, &app).await;
    let apply = PatchParams::apply("conformance");
    let mut applied = Vec::new();
    for object in app_bundle() {
        let api = api_for(&client, &object, &app).await;
        let name = object.metadata.name.clone().unwrap();
        let stored = api
            .patch(&name, &apply, &Patch::Apply(&object))
            .await
            .unwrap_or_else(|e| panic!("apply {name}: {e}"));
        // What the manifest says is what is stored (a real API server adds defaults).
        for (field, value) in object.data.as_object().unwrap() {
            if field == "stringData" {
                continue;
            }
            assert!(
                contains(&stored.data[field], value),
                "{name}: {field} stored as {} from {}",
                stored.data[field],
                value
            );
        }
        let again = api
            .patch(&name, &apply, &Patch::Apply(&object))
            .await
            .unwrap();
        // Controllers of a real cluster write to some of these objects meanwhile (a PVC's
        // protection finalizer), so what must not move is the apply's own record (none for
        // an object that applies nothing but its name, on both).
        let ours = |o: &kube::api::DynamicObject| {
            o.metadata
                .managed_fields
                .iter()
                .flatten()
                .find(|m| m.manager.as_deref() == Some("conformance"))
                .map(|m| serde_json::to_value(m).unwrap())
        };
        assert_eq!(
            ours(&again),
            ours(&stored),
            "{name}: the same apply again changes nothing it owns"
        );
        applied.push((api, name));
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete(&app, &DeleteParams::default())
        .await
        .unwrap();
    for (api, name) in applied {
        let mut gone = false;
        for _ in 0..600 {
            if matches!(api.get(&name).await, Err(kube::Error::Api(s)) if s.code == 404) {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(gone, "{name} outlived its namespace");
    }
}

/// Whether `got` holds everything in `wanted`: objects key by key, lists item by item.
fn contains(got: &serde_json::Value, wanted: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (got, wanted) {
        (Value::Object(g), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| g.get(k).is_some_and(|gv| contains(gv, wv))),
        (Value::Array(g), Value::Array(w)) => {
            g.len() == w.len() && g.iter().zip(w).all(|(a, b)| contains(a, b))
        }
        (g, w) => g == w,
    }
}

/// A Deployment as kubectl's typed clients send it: Kubernetes' protobuf envelope around
/// the object, encoded with the same descriptors the sim decodes with.
fn protobuf_deployment(name: &str) -> Vec<u8> {
    use prost::Message;
    use prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage, Value};
    let pool = DescriptorPool::decode(&include_bytes!("../src/sim/kubernetes.desc")[..]).unwrap();
    let message = |name: &str| DynamicMessage::new(pool.get_message_by_name(name).unwrap());
    let sub = |parent: &DynamicMessage, field: &str| {
        let kind = parent.descriptor().get_field_by_name(field).unwrap().kind();
        DynamicMessage::new(kind.as_message().unwrap().clone())
    };
    let mut deployment = message("k8s.io.api.apps.v1.Deployment");
    let mut meta = sub(&deployment, "metadata");
    meta.set_field_by_name("name", Value::String(name.into()));
    meta.set_field_by_name("generateName", Value::String(String::new()));
    meta.set_field_by_name("generation", Value::I64(0));
    let mut spec = sub(&deployment, "spec");
    // A pointer set to zero stays zero; a zero that is Go's default is left out.
    spec.set_field_by_name("replicas", Value::I32(0));
    spec.set_field_by_name("minReadySeconds", Value::I32(0));
    spec.set_field_by_name("paused", Value::Bool(false));
    let mut selector = sub(&spec, "selector");
    let mut labels = std::collections::HashMap::new();
    labels.insert(
        prost_reflect::MapKey::String("app".into()),
        Value::String(name.into()),
    );
    selector.set_field_by_name("matchLabels", Value::Map(labels.clone()));
    spec.set_field_by_name("selector", Value::Message(selector));
    let mut strategy = sub(&spec, "strategy");
    strategy.set_field_by_name("type", Value::String("RollingUpdate".into()));
    let mut rolling = sub(&strategy, "rollingUpdate");
    let mut surge = sub(&rolling, "maxSurge");
    surge.set_field_by_name("type", Value::I64(1));
    surge.set_field_by_name("strVal", Value::String("50%".into()));
    rolling.set_field_by_name("maxSurge", Value::Message(surge));
    strategy.set_field_by_name("rollingUpdate", Value::Message(rolling));
    spec.set_field_by_name("strategy", Value::Message(strategy));
    let mut template = sub(&spec, "template");
    let mut template_meta = sub(&template, "metadata");
    template_meta.set_field_by_name("labels", Value::Map(labels));
    template.set_field_by_name("metadata", Value::Message(template_meta));
    let mut pod = sub(&template, "spec");
    let container_kind = pod
        .descriptor()
        .get_field_by_name("containers")
        .unwrap()
        .kind();
    let mut container = DynamicMessage::new(container_kind.as_message().unwrap().clone());
    container.set_field_by_name("name", Value::String("app".into()));
    container.set_field_by_name("image", Value::String("registry.example.com/app:1".into()));
    let mut security = sub(&container, "securityContext");
    security.set_field_by_name("runAsUser", Value::I64(0));
    container.set_field_by_name("securityContext", Value::Message(security));
    let volume_kind = pod
        .descriptor()
        .get_field_by_name("volumes")
        .unwrap()
        .kind();
    let mut volume = DynamicMessage::new(volume_kind.as_message().unwrap().clone());
    volume.set_field_by_name("name", Value::String("config".into()));
    let mut source = sub(&volume, "volumeSource");
    let mut config_map = sub(&source, "configMap");
    let mut reference = sub(&config_map, "localObjectReference");
    reference.set_field_by_name("name", Value::String("settings".into()));
    config_map.set_field_by_name("localObjectReference", Value::Message(reference));
    source.set_field_by_name("configMap", Value::Message(config_map));
    volume.set_field_by_name("volumeSource", Value::Message(source));
    pod.set_field_by_name("containers", Value::List(vec![Value::Message(container)]));
    pod.set_field_by_name("volumes", Value::List(vec![Value::Message(volume)]));
    template.set_field_by_name("spec", Value::Message(pod));
    spec.set_field_by_name("template", Value::Message(template));
    deployment.set_field_by_name("metadata", Value::Message(meta));
    deployment.set_field_by_name("spec", Value::Message(spec));
    let unknown_kind = pool
        .get_message_by_name("k8s.io.apimachinery.pkg.runtime.Unknown")
        .unwrap();
    let mut unknown = DynamicMessage::new(unknown_kind);
    let mut type_meta = sub(&unknown, "typeMeta");
    type_meta.set_field_by_name("apiVersion", Value::String("apps/v1".into()));
    type_meta.set_field_by_name("kind", Value::String("Deployment".into()));
    unknown.set_field_by_name("typeMeta", Value::Message(type_meta));
    unknown.set_field_by_name("raw", Value::Bytes(deployment.encode_to_vec().into()));
    [&b"k8s\0"[..], &unknown.encode_to_vec()].concat()
}

async fn a_protobuf_create_stores_what_the_json_create_would(t: Target) {
    let Target { client, ns, .. } = t;
    let request = http::Request::post(format!(
        "/apis/apps/v1/namespaces/{ns}/deployments?fieldManager=conformance"
    ))
    .header("content-type", "application/vnd.kubernetes.protobuf")
    .header("accept", "application/json")
    .body(protobuf_deployment("from-protobuf"))
    .unwrap();
    let created: Deployment = client.request(request).await.unwrap();
    let as_json: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "from-json"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "from-protobuf"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "50%"}},
            "template": {
                "metadata": {"labels": {"app": "from-protobuf"}},
                "spec": {
                    "containers": [{"name": "app", "image": "registry.example.com/app:1",
                                    "securityContext": {"runAsUser": 0}}],
                    "volumes": [{"name": "config", "configMap": {"name": "settings"}}],
                },
            },
        },
    }))
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client, &ns);
    let from_json = deployments
        .create(&PostParams::default(), &as_json)
        .await
        .unwrap();
    let read = deployments.get("from-protobuf").await.unwrap();
    assert_eq!(read.spec, created.spec, "what was answered was stored");
    assert_eq!(
        serde_json::to_value(&read.spec).unwrap(),
        serde_json::to_value(&from_json.spec).unwrap(),
        "protobuf and JSON bodies store the same spec"
    );
    assert_eq!(read.spec.as_ref().and_then(|s| s.replicas), Some(0));
    assert_eq!(read.metadata.generation, Some(1));
}

async fn built_in_kinds_are_defaulted_as_by_the_api_server(t: Target) {
    let Target { client, ns, .. } = t;
    let pod = json!({"containers": [{"name": "c", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]});
    let defaulted_pod = json!({
        "containers": [{"image": "nginx:1.27", "imagePullPolicy": "IfNotPresent", "name": "c",
            "ports": [{"containerPort": 80, "protocol": "TCP"}], "resources": {},
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}],
        "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
        "securityContext": {}, "terminationGracePeriodSeconds": 30});
    let selector = json!({"matchLabels": {"app": "d"}});
    let template = json!({"metadata": {"labels": {"app": "d"}}, "spec": pod});
    let defaulted_template = json!({"metadata": {"labels": {"app": "d"}}, "spec": defaulted_pod});
    // Each manifest and what kube-apiserver 1.37 stores for its spec.
    let cases = [
        (
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                "spec": {"selector": selector, "template": template}}),
            json!({"progressDeadlineSeconds": 600, "replicas": 1, "revisionHistoryLimit": 10, "selector": selector,
                "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}, "type": "RollingUpdate"},
                "template": defaulted_template}),
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
                "spec": {"serviceName": "s", "selector": selector, "template": template}}),
            json!({"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "podManagementPolicy": "OrderedReady", "replicas": 1, "revisionHistoryLimit": 10,
                "selector": selector, "serviceName": "s", "template": defaulted_template,
                "updateStrategy": {"rollingUpdate": {"maxUnavailable": 1, "partition": 0}, "type": "RollingUpdate"}}),
        ),
        (
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "p"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
            json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "volumeMode": "Filesystem"}),
        ),
        (
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "n"},
                "spec": {"podSelector": selector, "ingress": [{"ports": [{"port": 8080}]}]}}),
            json!({"ingress": [{"ports": [{"port": 8080, "protocol": "TCP"}]}], "podSelector": selector, "policyTypes": ["Ingress"]}),
        ),
    ];
    let apply = PatchParams::apply("conformance");
    for (manifest, spec) in cases {
        let object: kube::api::DynamicObject = serde_json::from_value(manifest).unwrap();
        let api = api_for(&client, &object, &ns).await;
        let name = object.metadata.name.clone().unwrap();
        let stored = api
            .patch(&name, &apply, &Patch::Apply(&object))
            .await
            .unwrap();
        assert_eq!(stored.data["spec"], spec, "{name}");
    }
    // A Service gets its type, port protocol and target port, and a cluster IP.
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let svc: Service = serde_json::from_value(
        json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "d"}, "ports": [{"port": 80}]}}),
    )
    .unwrap();
    let stored = services.create(&PostParams::default(), &svc).await.unwrap();
    let mut spec = serde_json::to_value(stored.spec.unwrap()).unwrap();
    let ip = spec["clusterIP"].as_str().unwrap_or_default().to_string();
    assert!(
        ip.parse::<std::net::Ipv4Addr>().is_ok(),
        "a cluster IP: {spec}"
    );
    assert_eq!(spec["clusterIPs"], json!([ip]));
    for allocated in ["clusterIP", "clusterIPs"] {
        spec.as_object_mut().unwrap().remove(allocated);
    }
    assert_eq!(
        spec,
        json!({"internalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], "selector": {"app": "d"},
            "sessionAffinity": "None", "type": "ClusterIP"})
    );
    // A Job gets its backoff, completions and the pull policy of an untagged image.
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client, &ns);
    let job = serde_json::from_value(
        json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}),
    )
    .unwrap();
    let stored =
        serde_json::to_value(jobs.create(&PostParams::default(), &job).await.unwrap()).unwrap();
    for (path, value) in [
        ("/spec/backoffLimit", json!(6)),
        ("/spec/completions", json!(1)),
        ("/spec/parallelism", json!(1)),
        ("/spec/completionMode", json!("NonIndexed")),
        (
            "/spec/template/spec/containers/0/imagePullPolicy",
            json!("Always"),
        ),
        ("/spec/template/spec/dnsPolicy", json!("ClusterFirst")),
    ] {
        assert_eq!(stored.pointer(path), Some(&value), "{path}");
    }
}

async fn a_built_in_object_with_a_field_of_the_wrong_type_is_a_bad_request(t: Target) {
    let Target { client, ns, .. } = t;
    let resource = |group: &str, version: &str, kind: &str, plural: &str| kube::api::ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    };
    let deployments = resource("apps", "v1", "Deployment", "deployments");
    let bad: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad"},
        "spec": {"replicas": "three", "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}))
    .unwrap();
    let api: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &deployments);
    let error = api.create(&PostParams::default(), &bad).await.unwrap_err();
    let kube::Error::Api(status) = error else {
        panic!("expected an API error, got {error}")
    };
    assert_eq!(status.code, 400, "{}", status.message);
    assert!(
        status
            .message
            .starts_with("Deployment in version \"v1\" cannot be handled as a Deployment"),
        "{}",
        status.message
    );
    let config_maps = resource("", "v1", "ConfigMap", "configmaps");
    let bad: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad"}, "data": {"a": 1}}))
    .unwrap();
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client, &ns, &config_maps);
    assert_eq!(
        code(api.create(&PostParams::default(), &bad).await.unwrap_err()),
        400
    );
    assert_eq!(
        code(api.get("bad").await.unwrap_err()),
        404,
        "nothing was stored"
    );
}
