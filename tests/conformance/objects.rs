//! Objects, lists and watches: what every client of the API relies on.

use super::*;

pub(crate) async fn create_sets_server_fields_and_get_returns_them(t: Target) {
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

pub(crate) async fn objects_need_an_existing_namespace(t: Target) {
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

pub(crate) async fn update_with_a_stale_resource_version_conflicts(t: Target) {
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

pub(crate) async fn an_update_that_changes_nothing_keeps_the_resource_version(t: Target) {
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

pub(crate) async fn generation_moves_on_spec_changes_only_and_status_is_a_subresource(t: Target) {
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

pub(crate) async fn custom_resources_are_validated_against_the_crd_schema(t: Target) {
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

pub(crate) async fn list_filters_by_label_and_pages_with_continue(t: Target) {
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

pub(crate) async fn a_namespaced_list_reads_that_namespace_alone(t: Target) {
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

pub(crate) async fn watch_resumes_from_a_resource_version(t: Target) {
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

pub(crate) type Events = futures::stream::BoxStream<'static, kube::Result<WatchEvent<ConfigMap>>>;

/// A ConfigMap watch resuming after the change that made `seen`.
pub(crate) async fn resume_after(api: &Api<ConfigMap>, seen: &ConfigMap) -> Events {
    api.watch(
        &WatchParams::default().timeout(5),
        seen.metadata.resource_version.as_deref().unwrap(),
    )
    .await
    .unwrap()
    .boxed()
}

pub(crate) async fn assert_gone(mut stream: Events) {
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!(e.code, 410),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}

#[tokio::test]
pub(crate) async fn watch_from_a_compacted_resource_version_is_gone() {
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
pub(crate) async fn a_flood_of_other_changes_does_not_expire_a_quiet_types_watch() {
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

#[tokio::test(start_paused = true)]
pub(crate) async fn watches_send_bookmarks_and_end_at_their_timeout() {
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
