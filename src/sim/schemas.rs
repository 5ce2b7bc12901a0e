//! OpenAPI v3 component schemas for `kubectl explain`: custom resources from their CRD's
//! schema, built-in kinds from the `k8s-openapi` types, each marked with the group, version
//! and kind it describes as kube-apiserver marks them.

use serde_json::{Map, Value, json};

use super::resources::ResourceType;

/// The schema's name as kube-apiserver publishes it: `dev.cutover.v1alpha1.Rollout`,
/// `io.k8s.api.apps.v1.Deployment`.
fn component_name(rt: &ResourceType) -> String {
    if rt.schema.is_none() {
        let group = match rt.group.as_str() {
            "" => "core",
            g => g.split('.').next().unwrap_or(g),
        };
        return format!("io.k8s.api.{group}.{}.{}", rt.version, rt.kind);
    }
    let reversed: Vec<&str> = rt.group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), rt.version, rt.kind)
}

fn marked(mut schema: Value, rt: &ResourceType) -> Value {
    if let Some(map) = schema.as_object_mut() {
        map.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": rt.group, "version": rt.version, "kind": rt.kind}]),
        );
    }
    schema
}

/// A built-in kind's schema and the schemas it refers to, in OpenAPI 3 form.
fn builtin<T: schemars::JsonSchema>() -> Described {
    let generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let mut root = generator.into_root_schema_for::<T>().to_value();
    let definitions = root
        .as_object_mut()
        .and_then(|m| m.remove("components"))
        .and_then(|mut c| c.get_mut("schemas").map(Value::take))
        .and_then(|s| match s {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default();
    if let Some(map) = root.as_object_mut() {
        map.remove("$schema");
    }
    (root, definitions)
}

/// A built-in kind's schema, with what it refers to.
type Described = (Value, Map<String, Value>);

/// How to describe one built-in kind.
type Describe = fn() -> Described;

/// The built-in kinds `k8s-openapi` has a type for, each with how to describe it. Kinds
/// newer than its Kubernetes version and the Gateway API kinds are served without one.
fn builtin_kinds() -> &'static [(&'static str, &'static str, Describe)] {
    use k8s_openapi::{api, apiextensions_apiserver, kube_aggregator};
    &[
        (
            "",
            "ComponentStatus",
            builtin::<api::core::v1::ComponentStatus>,
        ),
        ("", "ConfigMap", builtin::<api::core::v1::ConfigMap>),
        ("", "Endpoints", builtin::<api::core::v1::Endpoints>),
        ("", "Event", builtin::<api::core::v1::Event>),
        ("", "LimitRange", builtin::<api::core::v1::LimitRange>),
        ("", "Namespace", builtin::<api::core::v1::Namespace>),
        ("", "Node", builtin::<api::core::v1::Node>),
        (
            "",
            "PersistentVolumeClaim",
            builtin::<api::core::v1::PersistentVolumeClaim>,
        ),
        (
            "",
            "PersistentVolume",
            builtin::<api::core::v1::PersistentVolume>,
        ),
        ("", "Pod", builtin::<api::core::v1::Pod>),
        ("", "PodTemplate", builtin::<api::core::v1::PodTemplate>),
        (
            "",
            "ReplicationController",
            builtin::<api::core::v1::ReplicationController>,
        ),
        ("", "ResourceQuota", builtin::<api::core::v1::ResourceQuota>),
        ("", "Secret", builtin::<api::core::v1::Secret>),
        (
            "",
            "ServiceAccount",
            builtin::<api::core::v1::ServiceAccount>,
        ),
        ("", "Service", builtin::<api::core::v1::Service>),
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration",
            builtin::<api::admissionregistration::v1::MutatingWebhookConfiguration>,
        ),
        (
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicy",
            builtin::<api::admissionregistration::v1::ValidatingAdmissionPolicy>,
        ),
        (
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicyBinding",
            builtin::<api::admissionregistration::v1::ValidatingAdmissionPolicyBinding>,
        ),
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration",
            builtin::<api::admissionregistration::v1::ValidatingWebhookConfiguration>,
        ),
        (
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            builtin::<
                apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
            >,
        ),
        (
            "apiregistration.k8s.io",
            "APIService",
            builtin::<kube_aggregator::pkg::apis::apiregistration::v1::APIService>,
        ),
        (
            "apps",
            "ControllerRevision",
            builtin::<api::apps::v1::ControllerRevision>,
        ),
        ("apps", "DaemonSet", builtin::<api::apps::v1::DaemonSet>),
        ("apps", "Deployment", builtin::<api::apps::v1::Deployment>),
        ("apps", "ReplicaSet", builtin::<api::apps::v1::ReplicaSet>),
        ("apps", "StatefulSet", builtin::<api::apps::v1::StatefulSet>),
        (
            "autoscaling",
            "HorizontalPodAutoscaler",
            builtin::<api::autoscaling::v2::HorizontalPodAutoscaler>,
        ),
        ("batch", "CronJob", builtin::<api::batch::v1::CronJob>),
        ("batch", "Job", builtin::<api::batch::v1::Job>),
        (
            "certificates.k8s.io",
            "CertificateSigningRequest",
            builtin::<api::certificates::v1::CertificateSigningRequest>,
        ),
        (
            "coordination.k8s.io",
            "Lease",
            builtin::<api::coordination::v1::Lease>,
        ),
        (
            "discovery.k8s.io",
            "EndpointSlice",
            builtin::<api::discovery::v1::EndpointSlice>,
        ),
        ("events.k8s.io", "Event", builtin::<api::events::v1::Event>),
        (
            "flowcontrol.apiserver.k8s.io",
            "FlowSchema",
            builtin::<api::flowcontrol::v1::FlowSchema>,
        ),
        (
            "flowcontrol.apiserver.k8s.io",
            "PriorityLevelConfiguration",
            builtin::<api::flowcontrol::v1::PriorityLevelConfiguration>,
        ),
        (
            "networking.k8s.io",
            "IngressClass",
            builtin::<api::networking::v1::IngressClass>,
        ),
        (
            "networking.k8s.io",
            "Ingress",
            builtin::<api::networking::v1::Ingress>,
        ),
        (
            "networking.k8s.io",
            "IPAddress",
            builtin::<api::networking::v1::IPAddress>,
        ),
        (
            "networking.k8s.io",
            "NetworkPolicy",
            builtin::<api::networking::v1::NetworkPolicy>,
        ),
        (
            "networking.k8s.io",
            "ServiceCIDR",
            builtin::<api::networking::v1::ServiceCIDR>,
        ),
        (
            "node.k8s.io",
            "RuntimeClass",
            builtin::<api::node::v1::RuntimeClass>,
        ),
        (
            "policy",
            "PodDisruptionBudget",
            builtin::<api::policy::v1::PodDisruptionBudget>,
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            builtin::<api::rbac::v1::ClusterRoleBinding>,
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRole",
            builtin::<api::rbac::v1::ClusterRole>,
        ),
        (
            "rbac.authorization.k8s.io",
            "RoleBinding",
            builtin::<api::rbac::v1::RoleBinding>,
        ),
        (
            "rbac.authorization.k8s.io",
            "Role",
            builtin::<api::rbac::v1::Role>,
        ),
        (
            "resource.k8s.io",
            "DeviceClass",
            builtin::<api::resource::v1::DeviceClass>,
        ),
        (
            "resource.k8s.io",
            "ResourceClaim",
            builtin::<api::resource::v1::ResourceClaim>,
        ),
        (
            "resource.k8s.io",
            "ResourceClaimTemplate",
            builtin::<api::resource::v1::ResourceClaimTemplate>,
        ),
        (
            "resource.k8s.io",
            "ResourceSlice",
            builtin::<api::resource::v1::ResourceSlice>,
        ),
        (
            "scheduling.k8s.io",
            "PriorityClass",
            builtin::<api::scheduling::v1::PriorityClass>,
        ),
        (
            "storage.k8s.io",
            "CSIDriver",
            builtin::<api::storage::v1::CSIDriver>,
        ),
        (
            "storage.k8s.io",
            "CSINode",
            builtin::<api::storage::v1::CSINode>,
        ),
        (
            "storage.k8s.io",
            "CSIStorageCapacity",
            builtin::<api::storage::v1::CSIStorageCapacity>,
        ),
        (
            "storage.k8s.io",
            "StorageClass",
            builtin::<api::storage::v1::StorageClass>,
        ),
        (
            "storage.k8s.io",
            "VolumeAttachment",
            builtin::<api::storage::v1::VolumeAttachment>,
        ),
        (
            "storage.k8s.io",
            "VolumeAttributesClass",
            builtin::<api::storage::v1::VolumeAttributesClass>,
        ),
    ]
}

/// A built-in kind's schema, generated when first asked for: kubectl reads a group
/// version's document on every apply, and generating every kind up front costs each start.
fn builtin_schema(rt: &ResourceType) -> Option<Described> {
    type Cache = std::sync::Mutex<std::collections::HashMap<(String, String), Described>>;
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    let key = (rt.group.clone(), rt.kind.clone());
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Some(found);
    }
    let (_, _, describe) = builtin_kinds()
        .iter()
        .find(|(group, kind, _)| *group == rt.group && *kind == rt.kind)?;
    let described = describe();
    if let Ok(mut c) = cache.lock() {
        c.insert(key, described.clone());
    }
    Some(described)
}

/// The `components.schemas` of a group version's document.
pub(super) fn components(served: &[&std::sync::Arc<ResourceType>]) -> Map<String, Value> {
    let mut schemas = Map::new();
    for rt in served {
        let (schema, definitions) = match &rt.schema {
            Some(compiled) => (compiled.schema().clone(), Map::new()),
            None => match builtin_schema(rt) {
                Some(found) => found,
                None => continue,
            },
        };
        for (name, definition) in definitions {
            schemas.entry(name).or_insert(definition);
        }
        schemas.insert(component_name(rt), marked(schema, rt));
    }
    schemas
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::resources::builtins;

    fn served(group: &str) -> Vec<std::sync::Arc<ResourceType>> {
        builtins()
            .into_iter()
            .filter(|t| t.group == group)
            .map(std::sync::Arc::new)
            .collect()
    }

    #[test]
    fn a_built_in_kind_is_described_field_by_field_and_marked_with_its_kind() {
        let apps = served("apps");
        let schemas = components(&apps.iter().collect::<Vec<_>>());
        let deployment = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
        );
        let text = serde_json::to_string(&schemas).unwrap();
        assert!(!text.contains("#/$defs/"), "refs point into components");
        assert!(text.contains("replicas"), "the spec's fields are there");
        assert!(deployment["properties"]["spec"].is_object());
    }

    #[test]
    fn every_served_built_in_kind_is_described_but_those_newer_than_k8s_openapi() {
        // GA after the Kubernetes version `k8s-openapi` describes, or from Gateway API.
        let newer = [
            "MutatingAdmissionPolicy",
            "MutatingAdmissionPolicyBinding",
            "ClusterTrustBundle",
            "PodCertificateRequest",
            "DeviceTaintRule",
            "StorageVersionMigration",
        ];
        let undescribed: Vec<String> = builtins()
            .iter()
            .filter(|t| t.group != "gateway.networking.k8s.io" && !newer.contains(&t.kind.as_str()))
            .filter(|t| builtin_schema(t).is_none())
            .map(|t| format!("{}/{}", t.group, t.kind))
            .collect();
        assert!(undescribed.is_empty(), "no schema for {undescribed:?}");
        let sts = builtins()
            .into_iter()
            .find(|t| t.kind == "StatefulSet")
            .unwrap();
        let (schema, _) = builtin_schema(&sts).unwrap();
        assert!(schema["properties"]["spec"].is_object());
    }

    #[test]
    fn core_kinds_are_named_as_the_api_server_names_them() {
        let core = served("");
        let schemas = components(&core.iter().collect::<Vec<_>>());
        for name in [
            "io.k8s.api.core.v1.Pod",
            "io.k8s.api.core.v1.ConfigMap",
            "io.k8s.api.core.v1.Event",
        ] {
            assert!(
                schemas.contains_key(name),
                "{name} in {:?}",
                schemas.keys().take(5).collect::<Vec<_>>()
            );
        }
    }
}
