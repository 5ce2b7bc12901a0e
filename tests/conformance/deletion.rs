//! Deletion: finalizers, owners and their dependents, namespaces and CRDs.

use super::*;

pub(crate) async fn finalizers_hold_deletion_until_removed(t: Target) {
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

pub(crate) fn owner_refs(
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

pub(crate) fn owned_cm(name: &str, owners: &[&ConfigMap]) -> ConfigMap {
    let mut c = cm(name);
    c.metadata.owner_references = Some(owner_refs(owners));
    c
}

pub(crate) async fn deleting_an_owner_deletes_its_dependents_unless_orphaned(t: Target) {
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

pub(crate) async fn an_object_released_by_its_owner_outlives_it(t: Target) {
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
pub(crate) async fn the_owner_index_finds_exactly_an_owners_objects() {
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

pub(crate) async fn foreground_deletion_removes_dependents_first(t: Target) {
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

/// Sim only: on the shared test bed, deleting a CRD would take every other test's kind.
#[tokio::test]
pub(crate) async fn deleting_a_crd_stops_serving_its_kind() {
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

pub(crate) async fn deleting_a_namespace_deletes_what_is_in_it(t: Target) {
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
