//! The built-in kinds an application brings: its manifests, protobuf bodies, defaults
//! and decoding.

use super::*;

/// The objects of `e2e/fixtures/app-bundle.yaml`: an application's manifests.
pub(crate) fn app_bundle() -> Vec<kube::api::DynamicObject> {
    let text = include_str!("../../e2e/fixtures/app-bundle.yaml");
    cutover::yaml::from_multi_str::<kube::api::DynamicObject>(text)
        .unwrap()
        .into_iter()
        .flatten()
        .collect()
}

/// The API of an object's kind, found through discovery as kubectl finds it.
pub(crate) async fn api_for(
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

pub(crate) async fn an_applications_manifests_apply_and_go_with_their_namespace(t: Target) {
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
pub(crate) fn contains(got: &serde_json::Value, wanted: &serde_json::Value) -> bool {
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
pub(crate) fn protobuf_deployment(name: &str) -> Vec<u8> {
    use prost::Message;
    use prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage, Value};
    let pool =
        DescriptorPool::decode(&include_bytes!("../../src/sim/kubernetes.desc")[..]).unwrap();
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

pub(crate) async fn a_protobuf_create_stores_what_the_json_create_would(t: Target) {
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

pub(crate) async fn built_in_kinds_are_defaulted_as_by_the_api_server(t: Target) {
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
    // A replace that leaves the allocated addresses out keeps them (as `kubectl replace`
    // of the manifest the Service was created from).
    let mut replacement: Service = serde_json::from_value(
        json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "e"}, "ports": [{"port": 80}]}}),
    )
    .unwrap();
    replacement.metadata.resource_version = stored.metadata.resource_version.clone();
    let replaced = services
        .replace("web", &PostParams::default(), &replacement)
        .await
        .unwrap();
    let spec = replaced.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some(ip.as_str()));
    assert_eq!(spec.cluster_ips, Some(vec![ip.clone()]));
    assert_eq!(spec.selector.unwrap()["app"], "e");
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

pub(crate) async fn a_built_in_object_with_a_field_of_the_wrong_type_is_a_bad_request(t: Target) {
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
