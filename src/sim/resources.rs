//! The resource types the sim serves: the built-in kinds the operator and kubectl touch, and
//! every CRD registered at run time.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::api::openapi::CompiledSchema;

/// Where the scale subresource reads and writes replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalePaths {
    /// Dotted path of the desired replicas, e.g. `spec.replicas`.
    pub spec_replicas: String,
    /// Dotted path of the observed replicas.
    pub status_replicas: String,
    /// Dotted path of the label selector string, if any.
    pub label_selector: Option<String>,
}

/// One served resource type.
#[derive(Clone)]
pub struct ResourceType {
    /// API group (`""` for core).
    pub group: String,
    /// Version served.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Plural resource name used in paths.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Categories for kubectl (`kubectl get all`, `kubectl get cutover`).
    pub categories: Vec<String>,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Whether `/status` is a separate subresource.
    pub status_subresource: bool,
    /// The scale subresource, if served.
    pub scale: Option<ScalePaths>,
    /// Schema objects are validated against (custom resources only).
    pub schema: Option<Arc<CompiledSchema>>,
    /// Printer columns for table output (`kubectl get`), as in a CRD.
    pub printer_columns: Vec<Value>,
    /// Verbs discovery lists.
    pub verbs: Vec<String>,
}

impl std::fmt::Debug for ResourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.api_version_plural())
    }
}

/// What a custom resource serves, as kube-apiserver lists it.
const CUSTOM_RESOURCE_VERBS: [&str; 8] = [
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "create",
    "update",
    "watch",
];

impl ResourceType {
    /// `group/version` (or `version` for core).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    fn api_version_plural(&self) -> String {
        format!("{}/{}", self.api_version(), self.plural)
    }

    /// Builds the served type of a CRD (its first served version).
    pub fn from_crd(crd: &Value) -> Result<Self, String> {
        let spec = crd.get("spec").ok_or("spec is required")?;
        let group = spec
            .get("group")
            .and_then(Value::as_str)
            .ok_or("spec.group is required")?;
        let names = spec.get("names").ok_or("spec.names is required")?;
        let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        let kind = s(names.get("kind")).ok_or("spec.names.kind is required")?;
        let plural = s(names.get("plural")).ok_or("spec.names.plural is required")?;
        let list = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let versions = spec
            .get("versions")
            .and_then(Value::as_array)
            .ok_or("spec.versions is required")?;
        let version = versions
            .iter()
            .find(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
            .ok_or("no served version")?;
        let subresources = version.get("subresources");
        let scale = subresources
            .and_then(|s| s.get("scale"))
            .map(|sc| ScalePaths {
                spec_replicas: s(sc.get("specReplicasPath"))
                    .unwrap_or_default()
                    .trim_start_matches('.')
                    .to_string(),
                status_replicas: s(sc.get("statusReplicasPath"))
                    .unwrap_or_default()
                    .trim_start_matches('.')
                    .to_string(),
                label_selector: s(sc.get("labelSelectorPath"))
                    .map(|p| p.trim_start_matches('.').to_string()),
            });
        let schema = version.pointer("/schema/openAPIV3Schema").cloned();
        Ok(Self {
            group: group.to_string(),
            version: s(version.get("name")).ok_or("version name is required")?,
            singular: s(names.get("singular")).unwrap_or_else(|| kind.to_lowercase()),
            kind,
            plural,
            short_names: list(names.get("shortNames")),
            categories: list(names.get("categories")),
            namespaced: spec.get("scope").and_then(Value::as_str) != Some("Cluster"),
            status_subresource: subresources.and_then(|s| s.get("status")).is_some(),
            scale,
            schema: schema.map(|s| Arc::new(CompiledSchema::new(s))),
            printer_columns: version
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            verbs: CUSTOM_RESOURCE_VERBS.map(String::from).to_vec(),
        })
    }

    /// The entry of this type in an APIResourceList.
    pub fn discovery_entry(&self) -> Value {
        let mut entry = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": self.verbs,
        });
        if !self.short_names.is_empty() {
            entry["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            entry["categories"] = json!(self.categories);
        }
        entry
    }

    /// Entries of this type's subresources in an APIResourceList.
    pub fn subresource_entries(&self) -> Vec<Value> {
        let mut out = Vec::new();
        if self.status_subresource {
            out.push(json!({"name": format!("{}/status", self.plural), "singularName": "", "namespaced": self.namespaced,
                "kind": self.kind, "verbs": ["get", "patch", "update"]}));
        }
        if self.scale.is_some() {
            out.push(json!({"name": format!("{}/scale", self.plural), "singularName": "", "namespaced": self.namespaced,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
        out
    }
}

/// Every built-in resource of the Kubernetes version the test bed runs, as its
/// kube-apiserver publishes them in discovery (`scripts/kube-discovery` regenerates it).
const DISCOVERY: &str = include_str!("kubernetes-discovery.json");

/// One resource in `kubernetes-discovery.json`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Published {
    group: String,
    version: String,
    kind: String,
    plural: String,
    singular: String,
    namespaced: bool,
    verbs: Vec<String>,
    short_names: Vec<String>,
    categories: Vec<String>,
    subresources: Vec<String>,
}

/// The built-in types the sim serves from the start: every resource kube-apiserver stores
/// (those that can be listed; the review APIs only answer a create), with its names, scope,
/// verbs and status and scale subresources as upstream publishes them.
pub fn builtins() -> Vec<ResourceType> {
    static BUILTINS: std::sync::OnceLock<Vec<ResourceType>> = std::sync::OnceLock::new();
    BUILTINS
        .get_or_init(|| {
            let published: Vec<Published> = serde_json::from_str(DISCOVERY).unwrap_or_default();
            published
                .into_iter()
                .filter(|p| p.verbs.iter().any(|v| v == "list"))
                .map(|p| {
                    let has = |sub: &str| p.subresources.iter().any(|s| s == sub);
                    ResourceType {
                        status_subresource: has("status"),
                        scale: has("scale").then(|| ScalePaths {
                            spec_replicas: "spec.replicas".into(),
                            status_replicas: "status.replicas".into(),
                            label_selector: None,
                        }),
                        group: p.group,
                        version: p.version,
                        kind: p.kind,
                        plural: p.plural,
                        singular: p.singular,
                        short_names: p.short_names,
                        categories: p.categories,
                        namespaced: p.namespaced,
                        verbs: p.verbs,
                        schema: None,
                        printer_columns: Vec::new(),
                    }
                })
                .collect()
        })
        .clone()
}

/// Keys of lists that merge by key (strategic merge patch and server-side apply) in the
/// built-in kinds; any other list is replaced whole.
pub fn list_merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        _ => None,
    }
}
