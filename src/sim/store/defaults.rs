//! The defaults kube-apiserver fills into the built-in kinds on every write, so what the
//! operator and kubectl read back from the sim is what a real cluster hands them: a
//! Deployment's replicas and strategy, a Job's backoff and completions, a Service's type
//! and port protocol, a pod template's restart and pull policies. Values are those of
//! Kubernetes 1.37's `SetDefaults_*` functions.

use serde_json::{Map, Value, json};

use crate::sim::resources::ResourceType;

/// Sets `key` to `value` where the object has no such field.
fn default(object: &mut Map<String, Value>, key: &str, value: Value) {
    object.entry(key).or_insert(value);
}

/// The object under `key`, created empty where missing.
fn object_at<'a>(
    object: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    object
        .entry(key)
        .or_insert_with(|| json!({}))
        .as_object_mut()
}

fn each_object(list: Option<&mut Value>, mut f: impl FnMut(&mut Map<String, Value>)) {
    if let Some(items) = list.and_then(Value::as_array_mut) {
        items
            .iter_mut()
            .filter_map(Value::as_object_mut)
            .for_each(&mut f);
    }
}

/// `Always` for an image with no tag or `:latest` (and no digest), else `IfNotPresent`.
fn pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        None => "Always",
        Some((_, "latest")) => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn probe(probe: Option<&mut Value>) {
    let Some(probe) = probe.and_then(Value::as_object_mut) else {
        return;
    };
    default(probe, "timeoutSeconds", json!(1));
    default(probe, "periodSeconds", json!(10));
    default(probe, "successThreshold", json!(1));
    default(probe, "failureThreshold", json!(3));
    if let Some(get) = probe.get_mut("httpGet").and_then(Value::as_object_mut) {
        default(get, "path", json!("/"));
        default(get, "scheme", json!("HTTP"));
    }
}

fn container(c: &mut Map<String, Value>) {
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    default(c, "imagePullPolicy", json!(pull_policy(&image)));
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    default(c, "resources", json!({}));
    each_object(c.get_mut("ports"), |p| default(p, "protocol", json!("TCP")));
    each_object(c.get_mut("env"), |e| {
        if let Some(field) = e
            .get_mut("valueFrom")
            .and_then(|v| v.get_mut("fieldRef"))
            .and_then(Value::as_object_mut)
        {
            default(field, "apiVersion", json!("v1"));
        }
    });
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        probe(c.get_mut(key));
    }
}

/// A pod spec's defaults.
fn pod_spec(spec: &mut Map<String, Value>) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "securityContext", json!({}));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    for key in ["containers", "initContainers"] {
        each_object(spec.get_mut(key), container);
    }
    each_object(spec.get_mut("volumes"), |v| {
        for source in ["configMap", "secret"] {
            if let Some(s) = v.get_mut(source).and_then(Value::as_object_mut) {
                default(s, "defaultMode", json!(420));
            }
        }
    });
}

fn template(spec: &mut Map<String, Value>) {
    if let Some(template) = spec.get_mut("template").and_then(Value::as_object_mut)
        && let Some(pod) = object_at(template, "spec")
    {
        pod_spec(pod);
    }
}

fn job_spec(spec: &mut Map<String, Value>) {
    default(spec, "backoffLimit", json!(6));
    default(spec, "completionMode", json!("NonIndexed"));
    default(spec, "completions", json!(1));
    default(spec, "parallelism", json!(1));
    default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    default(spec, "suspend", json!(false));
    // `restartPolicy` defaults to `Always` here too, which a Job's validation then refuses.
    template(spec);
}

/// A `RollingUpdate` strategy (the default type) under `key`, with its parameters' defaults.
fn rolling_update(spec: &mut Map<String, Value>, key: &str, parameters: &[(&str, Value)]) {
    let Some(strategy) = object_at(spec, key) else {
        return;
    };
    default(strategy, "type", json!("RollingUpdate"));
    if strategy.get("type") == Some(&json!("RollingUpdate"))
        && let Some(rolling) = object_at(strategy, "rollingUpdate")
    {
        for (name, value) in parameters {
            default(rolling, name, value.clone());
        }
    }
}

fn claim_spec(spec: &mut Map<String, Value>) {
    default(spec, "volumeMode", json!("Filesystem"));
}

/// Fills in what kube-apiserver defaults in a built-in object (custom resources are
/// defaulted from their schema elsewhere).
pub(super) fn apply(rt: &ResourceType, object: &mut Value) {
    if rt.schema.is_some() {
        return;
    }
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("apps", "Deployment") => {
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            rolling_update(
                spec,
                "strategy",
                &[("maxSurge", json!("25%")), ("maxUnavailable", json!("25%"))],
            );
            template(spec);
        }
        ("apps", "ReplicaSet") | ("", "ReplicationController") => {
            default(spec, "replicas", json!(1));
            template(spec);
        }
        ("apps", "StatefulSet") => {
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "podManagementPolicy", json!("OrderedReady"));
            if let Some(policy) = object_at(spec, "persistentVolumeClaimRetentionPolicy") {
                default(policy, "whenDeleted", json!("Retain"));
                default(policy, "whenScaled", json!("Retain"));
            }
            rolling_update(
                spec,
                "updateStrategy",
                &[("partition", json!(0)), ("maxUnavailable", json!(1))],
            );
            each_object(spec.get_mut("volumeClaimTemplates"), |claim| {
                default(claim, "apiVersion", json!("v1"));
                default(claim, "kind", json!("PersistentVolumeClaim"));
                if let Some(claim_spec_map) = object_at(claim, "spec") {
                    claim_spec(claim_spec_map);
                }
                default(claim, "status", json!({"phase": "Pending"}));
            });
            template(spec);
        }
        ("apps", "DaemonSet") => {
            default(spec, "revisionHistoryLimit", json!(10));
            rolling_update(
                spec,
                "updateStrategy",
                &[("maxUnavailable", json!(1)), ("maxSurge", json!(0))],
            );
            template(spec);
        }
        ("batch", "Job") => job_spec(spec),
        ("batch", "CronJob") => {
            default(spec, "concurrencyPolicy", json!("Allow"));
            default(spec, "suspend", json!(false));
            default(spec, "successfulJobsHistoryLimit", json!(3));
            default(spec, "failedJobsHistoryLimit", json!(1));
            if let Some(job) = object_at(spec, "jobTemplate") {
                default(job, "metadata", json!({}));
                if let Some(job_spec_map) = object_at(job, "spec")
                    && let Some(t) = object_at(job_spec_map, "template")
                {
                    default(t, "metadata", json!({}));
                    if let Some(pod) = object_at(t, "spec") {
                        pod_spec(pod);
                    }
                }
            }
        }
        ("", "Pod") => pod_spec(spec),
        ("", "PodTemplate") => {}
        ("", "Service") => {
            default(spec, "type", json!("ClusterIP"));
            default(spec, "sessionAffinity", json!("None"));
            let external = spec.get("type") != Some(&json!("ExternalName"));
            if external {
                default(spec, "internalTrafficPolicy", json!("Cluster"));
            }
            each_object(spec.get_mut("ports"), |p| {
                default(p, "protocol", json!("TCP"));
                if let Some(port) = p.get("port").cloned() {
                    default(p, "targetPort", port);
                }
            });
        }
        ("", "PersistentVolumeClaim") => claim_spec(spec),
        ("networking.k8s.io", "NetworkPolicy") => {
            let egress = spec
                .get("egress")
                .and_then(Value::as_array)
                .is_some_and(|rules| !rules.is_empty());
            let types = if egress {
                json!(["Ingress", "Egress"])
            } else {
                json!(["Ingress"])
            };
            default(spec, "policyTypes", types);
            for direction in ["ingress", "egress"] {
                each_object(spec.get_mut(direction), |rule| {
                    each_object(rule.get_mut("ports"), |p| {
                        default(p, "protocol", json!("TCP"))
                    });
                });
            }
        }
        _ => {}
    }
}

/// Gives a new Service its cluster IP (from 10.96.0.0/12, one per object created), as the
/// API server allocates one; a headless Service keeps `None`.
pub(super) fn allocate_cluster_ip(rt: &ResourceType, object: &mut Value, seq: u64) {
    if !(rt.group.is_empty() && rt.kind == "Service") {
        return;
    }
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("type") == Some(&json!("ExternalName")) {
        return;
    }
    let ip = match spec.get("clusterIP").and_then(Value::as_str) {
        Some(ip) if !ip.is_empty() => ip.to_string(),
        _ => {
            let n = seq % (1 << 20);
            format!("10.{}.{}.{}", 96 + (n >> 16), (n >> 8) & 0xff, n & 0xff)
        }
    };
    spec.insert("clusterIP".into(), json!(ip));
    default(spec, "clusterIPs", json!([ip]));
    default(spec, "ipFamilies", json!(["IPv4"]));
    default(spec, "ipFamilyPolicy", json!("SingleStack"));
}

/// An update that leaves out a Service's allocated addresses keeps them, as the API server
/// carries them over from the stored object.
pub(super) fn keep_allocated(rt: &ResourceType, old: &Value, new: &mut Value) {
    if !(rt.group.is_empty() && rt.kind == "Service") {
        return;
    }
    let (Some(before), Some(after)) = (
        old.get("spec").and_then(Value::as_object),
        new.get_mut("spec").and_then(Value::as_object_mut),
    ) else {
        return;
    };
    for key in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        let missing = after
            .get(key)
            .is_none_or(|v| v.as_str() == Some("") || v.is_null());
        if missing && let Some(value) = before.get(key) {
            after.insert(key.into(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::resources::builtins;

    fn defaulted(kind: &str, mut object: Value) -> Value {
        let rt = builtins().into_iter().find(|t| t.kind == kind).unwrap();
        apply(&rt, &mut object);
        object
    }

    #[test]
    fn a_deployment_gets_the_api_servers_replicas_strategy_and_pod_defaults() {
        let d = defaulted(
            "Deployment",
            json!({"spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {
                "metadata": {"labels": {"app": "d"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}}}),
        );
        // Read off kube-apiserver 1.37 for the same manifest.
        assert_eq!(
            d["spec"],
            json!({"progressDeadlineSeconds": 600, "replicas": 1, "revisionHistoryLimit": 10,
                "selector": {"matchLabels": {"app": "d"}},
                "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}, "type": "RollingUpdate"},
                "template": {"metadata": {"labels": {"app": "d"}}, "spec": {
                    "containers": [{"image": "nginx:1.27", "imagePullPolicy": "IfNotPresent", "name": "c",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}], "resources": {},
                        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}],
                    "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                    "securityContext": {}, "terminationGracePeriodSeconds": 30}}})
        );
    }

    #[test]
    fn what_the_manifest_sets_is_kept() {
        let d = defaulted(
            "Deployment",
            json!({"spec": {"replicas": 0, "strategy": {"type": "Recreate"}, "template": {"spec": {
                "restartPolicy": "Always", "containers": [{"name": "c", "image": "x", "imagePullPolicy": "Never"}]}}}}),
        );
        assert_eq!(d["spec"]["replicas"], 0);
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Never"
        );
    }

    #[test]
    fn an_untagged_or_latest_image_is_always_pulled() {
        assert_eq!(pull_policy("busybox"), "Always");
        assert_eq!(pull_policy("busybox:latest"), "Always");
        assert_eq!(pull_policy("registry:5000/team/app"), "Always");
        assert_eq!(pull_policy("registry:5000/team/app:1.2"), "IfNotPresent");
        assert_eq!(pull_policy("app@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn jobs_services_and_claims_get_theirs() {
        let job = defaulted(
            "Job",
            json!({"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}),
        );
        assert_eq!(job["spec"]["backoffLimit"], 6);
        assert_eq!(job["spec"]["completions"], 1);
        assert_eq!(
            job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
        let svc = defaulted("Service", json!({"spec": {"ports": [{"port": 80}]}}));
        assert_eq!(
            svc["spec"],
            json!({"internalTrafficPolicy": "Cluster", "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                "sessionAffinity": "None", "type": "ClusterIP"})
        );
        let pvc = defaulted(
            "PersistentVolumeClaim",
            json!({"spec": {"accessModes": ["ReadWriteOnce"]}}),
        );
        assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
    }

    #[test]
    fn a_service_gets_a_cluster_ip_that_an_update_without_one_keeps() {
        let rt = builtins()
            .into_iter()
            .find(|t| t.kind == "Service")
            .unwrap();
        let mut svc = json!({"spec": {"ports": [{"port": 80}]}});
        allocate_cluster_ip(&rt, &mut svc, 7);
        assert_eq!(svc["spec"]["clusterIP"], "10.96.0.7");
        assert_eq!(svc["spec"]["clusterIPs"], json!(["10.96.0.7"]));
        let mut headless = json!({"spec": {"clusterIP": "None"}});
        allocate_cluster_ip(&rt, &mut headless, 8);
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
        let mut replaced = json!({"spec": {"ports": [{"port": 81}]}});
        keep_allocated(&rt, &svc, &mut replaced);
        assert_eq!(replaced["spec"]["clusterIP"], "10.96.0.7");
        assert_eq!(replaced["spec"]["ipFamilyPolicy"], "SingleStack");
    }

    #[test]
    fn custom_resources_are_left_alone() {
        let mut rt = builtins()
            .into_iter()
            .find(|t| t.kind == "Deployment")
            .unwrap();
        rt.schema = Some(std::sync::Arc::new(
            crate::api::openapi::CompiledSchema::new(json!({})),
        ));
        let mut object = json!({"spec": {}});
        apply(&rt, &mut object);
        assert_eq!(object, json!({"spec": {}}));
    }
}
