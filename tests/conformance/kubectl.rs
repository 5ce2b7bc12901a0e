//! What kubectl shows and does: tables, generations, dry runs, Events, refusals.

use super::*;

/// `kubectl get cro -o wide`: the Table's cells come from the CRD's printer columns,
/// condition filters and list indexes included.
pub(crate) async fn a_rollout_table_fills_its_printer_columns(t: Target) {
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
pub(crate) async fn a_deployment_annotation_is_a_new_generation_and_a_label_is_not(t: Target) {
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
pub(crate) async fn a_dry_run_answers_what_would_be_stored_and_writes_nothing(t: Target) {
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
pub(crate) async fn events_are_one_set_of_objects_under_both_apis(t: Target) {
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
pub(crate) async fn table(
    client: &Client,
    path: &str,
) -> (Vec<String>, Vec<Vec<serde_json::Value>>) {
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
pub(crate) async fn built_in_kinds_print_the_columns_kubectl_shows(t: Target) {
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
pub(crate) async fn built_in_writes_are_refused_as_by_the_api_server(t: Target) {
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
