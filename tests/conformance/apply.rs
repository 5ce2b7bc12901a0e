//! Writes that merge: server-side apply, patches, subresources and immutable fields.

use super::*;

pub(crate) async fn server_side_apply_tracks_owners_and_conflicts(t: Target) {
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

pub(crate) fn deployment() -> Deployment {
    serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
            {"name": "web", "image": "web:1"}, {"name": "proxy", "image": "proxy:1"}]}}}}))
    .unwrap()
}

pub(crate) async fn strategic_merge_and_json_patches_on_deployments(t: Target) {
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

pub(crate) async fn crds_become_served_with_scale_subresources(t: Target) {
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

pub(crate) async fn applying_less_removes_what_the_manager_stopped_applying(t: Target) {
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

pub(crate) async fn server_side_apply_to_status_removes_fields_no_longer_applied(t: Target) {
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

pub(crate) async fn a_status_applied_with_a_stale_resource_version_conflicts(t: Target) {
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

pub(crate) async fn a_rollout_selector_cannot_change(t: Target) {
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

pub(crate) async fn a_secret_keeps_string_data_only_as_data(t: Target) {
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

pub(crate) async fn a_service_selector_is_applied_as_one_atomic_map(t: Target) {
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
pub(crate) async fn an_apply_that_changes_nothing_after_another_manager_writes_nothing(t: Target) {
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

pub(crate) async fn a_deployment_selector_cannot_change(t: Target) {
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
