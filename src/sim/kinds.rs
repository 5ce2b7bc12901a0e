//! The built-in kinds `k8s-openapi` has a type for: how to describe each for `kubectl
//! explain`, and how to tell a body kube-apiserver's decoder would refuse (a string where
//! the type has a number) from one it decodes. Kinds newer than its Kubernetes version and
//! the Gateway API kinds are served without one.

use k8s_openapi::{api, apiextensions_apiserver, kube_aggregator};
use serde_json::{Map, Value};

/// A kind's schema and the schemas it refers to, in OpenAPI 3 form.
pub(super) type Described = (Value, Map<String, Value>);

/// One built-in kind with a `k8s-openapi` type.
pub(super) struct Typed {
    group: &'static str,
    kind: &'static str,
    /// Its schema and what it refers to.
    pub(super) describe: fn() -> Described,
    /// Why a body does not decode as the kind, if it does not.
    pub(super) decode: fn(&Value) -> Result<(), String>,
}

/// Whether `value` decodes as `T` as Go's decoder would: a value of the wrong type fails,
/// a missing field does not (validation, not decoding, requires fields).
fn decodes<T: serde::de::DeserializeOwned>(value: &Value) -> Result<(), String> {
    match T::deserialize(value) {
        Ok(_) => Ok(()),
        Err(e) => {
            let message = e.to_string();
            if message.starts_with("missing field") {
                Ok(())
            } else {
                Err(message)
            }
        }
    }
}

macro_rules! typed {
    ($group:literal, $kind:literal, $t:ty) => {
        Typed {
            group: $group,
            kind: $kind,
            describe: super::schemas::builtin::<$t>,
            decode: decodes::<$t>,
        }
    };
}

static KINDS: &[Typed] = &[
    typed!("", "ComponentStatus", api::core::v1::ComponentStatus),
    typed!("", "ConfigMap", api::core::v1::ConfigMap),
    typed!("", "Endpoints", api::core::v1::Endpoints),
    typed!("", "Event", api::core::v1::Event),
    typed!("", "LimitRange", api::core::v1::LimitRange),
    typed!("", "Namespace", api::core::v1::Namespace),
    typed!("", "Node", api::core::v1::Node),
    typed!(
        "",
        "PersistentVolumeClaim",
        api::core::v1::PersistentVolumeClaim
    ),
    typed!("", "PersistentVolume", api::core::v1::PersistentVolume),
    typed!("", "Pod", api::core::v1::Pod),
    typed!("", "PodTemplate", api::core::v1::PodTemplate),
    typed!(
        "",
        "ReplicationController",
        api::core::v1::ReplicationController
    ),
    typed!("", "ResourceQuota", api::core::v1::ResourceQuota),
    typed!("", "Secret", api::core::v1::Secret),
    typed!("", "ServiceAccount", api::core::v1::ServiceAccount),
    typed!("", "Service", api::core::v1::Service),
    typed!(
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        api::admissionregistration::v1::MutatingWebhookConfiguration
    ),
    typed!(
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicy",
        api::admissionregistration::v1::ValidatingAdmissionPolicy
    ),
    typed!(
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
        api::admissionregistration::v1::ValidatingAdmissionPolicyBinding
    ),
    typed!(
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        api::admissionregistration::v1::ValidatingWebhookConfiguration
    ),
    typed!(
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition
    ),
    typed!(
        "apiregistration.k8s.io",
        "APIService",
        kube_aggregator::pkg::apis::apiregistration::v1::APIService
    ),
    typed!(
        "apps",
        "ControllerRevision",
        api::apps::v1::ControllerRevision
    ),
    typed!("apps", "DaemonSet", api::apps::v1::DaemonSet),
    typed!("apps", "Deployment", api::apps::v1::Deployment),
    typed!("apps", "ReplicaSet", api::apps::v1::ReplicaSet),
    typed!("apps", "StatefulSet", api::apps::v1::StatefulSet),
    typed!(
        "autoscaling",
        "HorizontalPodAutoscaler",
        api::autoscaling::v2::HorizontalPodAutoscaler
    ),
    typed!("batch", "CronJob", api::batch::v1::CronJob),
    typed!("batch", "Job", api::batch::v1::Job),
    typed!(
        "certificates.k8s.io",
        "CertificateSigningRequest",
        api::certificates::v1::CertificateSigningRequest
    ),
    typed!("coordination.k8s.io", "Lease", api::coordination::v1::Lease),
    typed!(
        "discovery.k8s.io",
        "EndpointSlice",
        api::discovery::v1::EndpointSlice
    ),
    typed!("events.k8s.io", "Event", api::events::v1::Event),
    typed!(
        "flowcontrol.apiserver.k8s.io",
        "FlowSchema",
        api::flowcontrol::v1::FlowSchema
    ),
    typed!(
        "flowcontrol.apiserver.k8s.io",
        "PriorityLevelConfiguration",
        api::flowcontrol::v1::PriorityLevelConfiguration
    ),
    typed!(
        "networking.k8s.io",
        "IngressClass",
        api::networking::v1::IngressClass
    ),
    typed!("networking.k8s.io", "Ingress", api::networking::v1::Ingress),
    typed!(
        "networking.k8s.io",
        "IPAddress",
        api::networking::v1::IPAddress
    ),
    typed!(
        "networking.k8s.io",
        "NetworkPolicy",
        api::networking::v1::NetworkPolicy
    ),
    typed!(
        "networking.k8s.io",
        "ServiceCIDR",
        api::networking::v1::ServiceCIDR
    ),
    typed!("node.k8s.io", "RuntimeClass", api::node::v1::RuntimeClass),
    typed!(
        "policy",
        "PodDisruptionBudget",
        api::policy::v1::PodDisruptionBudget
    ),
    typed!(
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        api::rbac::v1::ClusterRoleBinding
    ),
    typed!(
        "rbac.authorization.k8s.io",
        "ClusterRole",
        api::rbac::v1::ClusterRole
    ),
    typed!(
        "rbac.authorization.k8s.io",
        "RoleBinding",
        api::rbac::v1::RoleBinding
    ),
    typed!("rbac.authorization.k8s.io", "Role", api::rbac::v1::Role),
    typed!(
        "resource.k8s.io",
        "DeviceClass",
        api::resource::v1::DeviceClass
    ),
    typed!(
        "resource.k8s.io",
        "ResourceClaim",
        api::resource::v1::ResourceClaim
    ),
    typed!(
        "resource.k8s.io",
        "ResourceClaimTemplate",
        api::resource::v1::ResourceClaimTemplate
    ),
    typed!(
        "resource.k8s.io",
        "ResourceSlice",
        api::resource::v1::ResourceSlice
    ),
    typed!(
        "scheduling.k8s.io",
        "PriorityClass",
        api::scheduling::v1::PriorityClass
    ),
    typed!("storage.k8s.io", "CSIDriver", api::storage::v1::CSIDriver),
    typed!("storage.k8s.io", "CSINode", api::storage::v1::CSINode),
    typed!(
        "storage.k8s.io",
        "CSIStorageCapacity",
        api::storage::v1::CSIStorageCapacity
    ),
    typed!(
        "storage.k8s.io",
        "StorageClass",
        api::storage::v1::StorageClass
    ),
    typed!(
        "storage.k8s.io",
        "VolumeAttachment",
        api::storage::v1::VolumeAttachment
    ),
    typed!(
        "storage.k8s.io",
        "VolumeAttributesClass",
        api::storage::v1::VolumeAttributesClass
    ),
];

/// The typed description of a built-in kind, if `k8s-openapi` has one.
pub(super) fn typed(group: &str, kind: &str) -> Option<&'static Typed> {
    KINDS.iter().find(|t| t.group == group && t.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_value_of_the_wrong_type_does_not_decode_and_a_missing_field_does() {
        let deployment = typed("apps", "Deployment").unwrap();
        let wrong = json!({"spec": {"replicas": "three"}});
        let error = (deployment.decode)(&wrong).unwrap_err();
        assert!(error.contains("three"), "{error}");
        // No selector or template: validation refuses it, the decoder does not.
        assert!((deployment.decode)(&json!({"spec": {"replicas": 2}})).is_ok());
        let config_map = typed("", "ConfigMap").unwrap();
        assert!((config_map.decode)(&json!({"data": {"a": 1}})).is_err());
        assert!((config_map.decode)(&json!({"data": {"a": "1"}})).is_ok());
        // Quantities decode from numbers, as in Go.
        let claim = typed("", "PersistentVolumeClaim").unwrap();
        assert!(
            (claim.decode)(&json!({"spec": {"resources": {"requests": {"storage": 1}}}})).is_ok()
        );
        assert!(typed("example.com", "Widget").is_none());
    }
}
