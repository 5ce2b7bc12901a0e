//! Discovery documents: `/version`, `/api`, `/apis`, resource lists, and the OpenAPI v3
//! index kubectl reads to decide that the server validates fields.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{error::ApiError, resources::ResourceType, store::Store};

/// Server version reported at `/version`.
pub const GIT_VERSION: &str = "v1.37.2-cutover-sim";

pub(super) fn discovery(store: &Store, path: &str) -> Option<Result<Value, ApiError>> {
    let types = || store.types();
    let resource_list = |group: &str, version: &str| -> Result<Value, ApiError> {
        let served: Vec<Arc<ResourceType>> = types()
            .into_iter()
            .filter(|t| t.group == group && t.version == version)
            .collect();
        if served.is_empty() {
            return Err(ApiError::no_route(path));
        }
        let mut resources: Vec<Value> = Vec::new();
        for t in &served {
            resources.push(t.discovery_entry());
            resources.extend(t.subresource_entries());
        }
        let group_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        Ok(
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
        )
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["version"] => Some(Ok(
            json!({"major": "1", "minor": "37", "gitVersion": GIT_VERSION, "gitCommit": "", "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25", "compiler": "gc", "platform": "linux/amd64"}),
        )),
        ["api"] => Some(Ok(json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}))),
        ["api", "v1"] => Some(resource_list("", "v1")),
        ["apis"] => {
            let mut groups: Vec<(String, String)> = types()
                .iter()
                .filter(|t| !t.group.is_empty())
                .map(|t| (t.group.clone(), t.version.clone()))
                .collect();
            groups.sort();
            groups.dedup();
            let groups: Vec<Value> = groups
                .into_iter()
                .map(|(g, v)| {
                    let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
                    json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
                })
                .collect();
            Some(Ok(
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            ))
        }
        ["apis", group] => {
            let versions: Vec<String> = types()
                .iter()
                .filter(|t| t.group == *group)
                .map(|t| t.version.clone())
                .collect();
            let Some(v) = versions.first() else {
                return Some(Err(ApiError::no_route(path)));
            };
            let gv = json!({"groupVersion": format!("{group}/{v}"), "version": v});
            Some(Ok(
                json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": [gv.clone()], "preferredVersion": gv}),
            ))
        }
        ["apis", group, version] => Some(resource_list(group, version)),
        ["openapi", "v3"] => Some(Ok(openapi_root(&types()))),
        ["openapi", "v3", "api", "v1"] => {
            Some(openapi_doc(&types(), "", "v1").ok_or_else(|| ApiError::no_route(path)))
        }
        ["openapi", "v3", "apis", group, version] => {
            Some(openapi_doc(&types(), group, version).ok_or_else(|| ApiError::no_route(path)))
        }
        ["openapi", ..] => Some(Err(ApiError::no_route(path))),
        _ => None,
    }
}

/// The media type of OpenAPI v2 in protobuf, which kubectl asks for.
const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The OpenAPI v2 document, in the form the client accepts: its media type and body.
///
/// kubectl reads OpenAPI v3 for every group the sim serves and falls back to v2 for a group
/// v3 lacks (an apply of a kind no API serves), so v2 names no paths or definitions; kubectl
/// then reports the kind as unknown, as it does against kube-apiserver.
pub fn openapi_v2(accept: &str) -> (&'static str, Vec<u8>) {
    // The first of the two the client lists, as kube-apiserver chooses.
    let protobuf_first = match (accept.find("protobuf"), accept.find("json")) {
        (Some(p), Some(j)) => p < j,
        (Some(_), None) => true,
        _ => false,
    };
    if protobuf_first {
        // gnostic's openapi_v2.Document: swagger = 1, info = 2 (title = 1, version = 2).
        let field = |number: u8, bytes: &[u8]| {
            let mut out = vec![(number << 3) | 2];
            prost::encoding::encode_varint(bytes.len() as u64, &mut out);
            out.extend_from_slice(bytes);
            out
        };
        let info = [field(1, b"Kubernetes"), field(2, GIT_VERSION.as_bytes())].concat();
        return (
            OPENAPI_V2_PROTOBUF,
            [field(1, b"2.0"), field(2, &info)].concat(),
        );
    }
    let document = json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": GIT_VERSION}, "paths": {}, "definitions": {}});
    (
        "application/json",
        serde_json::to_vec(&document).unwrap_or_default(),
    )
}

/// The OpenAPI v3 index: one document per group version.
fn openapi_root(types: &[Arc<ResourceType>]) -> Value {
    let mut paths = serde_json::Map::new();
    for t in types {
        let key = if t.group.is_empty() {
            format!("api/{}", t.version)
        } else {
            format!("apis/{}/{}", t.group, t.version)
        };
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}")}),
        );
    }
    json!({"paths": paths})
}

/// An OpenAPI v3 document for a group version: the paths with the operations and the
/// `fieldValidation` parameter, which tells kubectl to let the server validate, and each
/// kind's schema, which `kubectl explain` reads.
fn openapi_doc(types: &[Arc<ResourceType>], group: &str, version: &str) -> Option<Value> {
    let served: Vec<&Arc<ResourceType>> = types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if served.is_empty() {
        return None;
    }
    let schemas = super::schemas::components(&served);
    let mut paths = serde_json::Map::new();
    for t in served {
        let prefix = if t.group.is_empty() {
            format!("/api/{}", t.version)
        } else {
            format!("/apis/{}/{}", t.group, t.version)
        };
        let base = if t.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", t.plural)
        } else {
            format!("{prefix}/{}", t.plural)
        };
        let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
        let params = json!([{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}}]);
        let op = |action: &str| json!({"x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": {"200": {"description": "OK"}}});
        paths.insert(base.clone(), json!({"post": op("post"), "get": op("list")}));
        paths.insert(format!("{base}/{{name}}"), json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}));
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": GIT_VERSION}, "paths": paths, "components": {"schemas": schemas}}),
    )
}
