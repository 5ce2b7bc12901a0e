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
pub(super) fn builtin<T: schemars::JsonSchema>() -> Described {
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

use super::kinds::Described;

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
    let described = (super::kinds::typed(&rt.group, &rt.kind)?.describe)();
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
