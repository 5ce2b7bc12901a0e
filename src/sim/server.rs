//! The sim's HTTP surface: Kubernetes API paths, discovery, watches and tables, served to an
//! in-process `kube::Client` (a tower Service) or over TCP to `kubectl` and the operator.

use std::{collections::VecDeque, convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{
    error::ApiError,
    prometheus::ScriptedPrometheus,
    resources::ResourceType,
    selector::{FieldSelector, LabelSelector},
    store::{
        Filter, PatchKind, Propagation, Store, Subresource, WatchEvent, WriteOptions, name_of,
    },
};

/// Response body: whole, or a stream of watch events.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Server version reported at `/version`.
pub const GIT_VERSION: &str = "v1.35.0-cutover-sim";

/// Default watch duration when the client sets no timeoutSeconds.
pub const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);
/// Interval between bookmarks on watches that asked for them.
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);

fn full(status: StatusCode, value: &Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    response
}

fn error(e: &ApiError) -> Response<Body> {
    full(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.status(),
    )
}

/// Query parameters of a request.
#[derive(Debug, Default)]
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

/// A parsed resource path.
#[derive(Debug)]
struct Target {
    rt: Arc<ResourceType>,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

/// Handles one request.
pub async fn handle(
    store: Arc<Store>,
    prometheus: Arc<ScriptedPrometheus>,
    request: Request<Bytes>,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().trim_end_matches('/').to_string();
    if let Some(endpoint) = path.strip_prefix("/prometheus/api/v1/") {
        let mut params: Vec<(String, String)> =
            form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        params.extend(form_urlencoded::parse(&body).into_owned());
        let (code, value) = prometheus.answer(endpoint, &params);
        return full(StatusCode::from_u16(code).unwrap_or(StatusCode::OK), &value);
    }
    let query = Query::parse(parts.uri.query());
    let accept = parts
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    match discovery(&store, &path) {
        Some(Ok(v)) => return full(StatusCode::OK, &v),
        Some(Err(e)) => return error(&e),
        None => {}
    }
    let (target, legacy_watch) = match parse_target(&store, &path) {
        Ok(t) => t,
        Err(e) => return error(&e),
    };
    let watch = legacy_watch || query.flag("watch");
    let result = match (parts.method, target.name.is_some()) {
        (Method::GET, _) if watch => {
            return watch_response(&store, &target, &query, wants_table(&accept));
        }
        (Method::GET, true) => get(&store, &target),
        (Method::GET, false) => list(&store, &target, &query),
        (Method::POST, false) => parse_body(&body, &content_type).and_then(|b| {
            store
                .create(
                    &target.rt,
                    target.namespace.as_deref().unwrap_or_default(),
                    b,
                    &write_options(&query),
                )
                .map(|v| (StatusCode::CREATED, v))
        }),
        (Method::PUT, true) => {
            parse_body(&body, &content_type).and_then(|b| update(&store, &target, b, &query))
        }
        (Method::PATCH, true) => parse_body(&body, &content_type)
            .and_then(|b| patch(&store, &target, b, &content_type, &query)),
        (Method::DELETE, true) => delete(&store, &target, &body, &query),
        (Method::DELETE, false) => delete_collection(&store, &target, &query),
        (m, _) => Err(ApiError::method_not_allowed(format!(
            "{m} is not supported on {path}"
        ))),
    };
    match result {
        Ok((status, value)) if value.get("$text").is_some() => {
            text(status, value["$text"].as_str().unwrap_or_default())
        }
        Ok((status, value)) if wants_table(&accept) && parts_is_read(status) => {
            full(status, &to_table(&target.rt, &value, store.clock().now()))
        }
        Ok((status, value)) => full(status, &value),
        Err(e) => error(&e),
    }
}

fn parts_is_read(status: StatusCode) -> bool {
    status == StatusCode::OK
}

fn wants_table(accept: &str) -> bool {
    accept.contains("as=Table")
}

fn write_options(query: &Query) -> WriteOptions {
    WriteOptions {
        field_manager: query.get("fieldManager").map(str::to_string),
        force: query.flag("force"),
        strict: query.get("fieldValidation") == Some("Strict"),
    }
}

fn parse_body(body: &Bytes, content_type: &str) -> Result<Value, ApiError> {
    // Clients fall back to JSON when the server answers 415 to protobuf or CBOR.
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(ApiError::unsupported_media_type(format!(
            "{content_type} is not supported; send JSON"
        )));
    }
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(json_error) if content_type.contains("yaml") => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
            crate::yaml::from_str(text).map_err(|e| {
                ApiError::bad_request(format!("cannot decode the body: {e} ({json_error})"))
            })
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "cannot decode the body as JSON: {e}"
        ))),
    }
}

fn discovery(store: &Store, path: &str) -> Option<Result<Value, ApiError>> {
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
            json!({"major": "1", "minor": "35", "gitVersion": GIT_VERSION, "gitCommit": "", "gitTreeState": "clean",
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
/// `fieldValidation` parameter, which tells kubectl to let the server validate.
fn openapi_doc(types: &[Arc<ResourceType>], group: &str, version: &str) -> Option<Value> {
    let served: Vec<&Arc<ResourceType>> = types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if served.is_empty() {
        return None;
    }
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
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": GIT_VERSION}, "paths": paths, "components": {"schemas": {}}}),
    )
}

fn parse_target(store: &Store, path: &str) -> Result<(Target, bool), ApiError> {
    let segments: Vec<&str> = path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, mut rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest.to_vec()),
        ["apis", group, version, rest @ ..] => (*group, *version, rest.to_vec()),
        _ => return Err(ApiError::no_route(path)),
    };
    let legacy_watch = rest.first() == Some(&"watch");
    if legacy_watch {
        rest.remove(0);
    }
    let resolve = |plural: &str| store.resolve(group, version, plural);
    let target = match rest.as_slice() {
        ["namespaces", ns, plural, tail @ ..] if resolve(plural).is_some_and(|t| t.namespaced) => {
            Target {
                rt: resolve(plural).ok_or_else(|| ApiError::no_route(path))?,
                namespace: Some(ns.to_string()),
                name: tail.first().map(|s| s.to_string()),
                subresource: tail.get(1).map(|s| s.to_string()),
            }
        }
        [plural, tail @ ..] => {
            let rt = resolve(plural).ok_or_else(|| ApiError::no_route(path))?;
            Target {
                rt,
                namespace: None,
                name: tail.first().map(|s| s.to_string()),
                subresource: tail.get(1).map(|s| s.to_string()),
            }
        }
        [] => return Err(ApiError::no_route(path)),
    };
    if target.rt.namespaced && target.namespace.is_none() && target.name.is_some() {
        return Err(ApiError::no_route(path));
    }
    Ok((target, legacy_watch))
}

fn subresource(target: &Target) -> Result<Option<Subresource>, ApiError> {
    match target.subresource.as_deref() {
        None => Ok(Some(Subresource::Main)),
        Some("status") if target.rt.status_subresource => Ok(Some(Subresource::Status)),
        Some("scale") if target.rt.scale.is_some() => Ok(None),
        Some(other) => Err(ApiError::no_route(&format!("{}/{other}", target.rt.plural))),
    }
}

fn ns(target: &Target) -> &str {
    target.namespace.as_deref().unwrap_or_default()
}

fn name(target: &Target) -> &str {
    target.name.as_deref().unwrap_or_default()
}

fn get(store: &Store, target: &Target) -> Result<(StatusCode, Value), ApiError> {
    let object = store.get(&target.rt, ns(target), name(target))?;
    if target.subresource.as_deref() == Some("log") && target.rt.kind == "Pod" {
        let log = object
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(super::workload::LOG))
            .cloned()
            .unwrap_or(json!(""));
        return Ok((StatusCode::OK, json!({"$text": log})));
    }
    match subresource(target)? {
        Some(_) => Ok((StatusCode::OK, object)),
        None => Ok((StatusCode::OK, to_scale(&target.rt, &object))),
    }
}

fn filter(target: &Target, query: &Query) -> Result<Filter, ApiError> {
    Ok(Filter {
        namespace: target.namespace.clone(),
        labels: LabelSelector::parse(query.get("labelSelector").unwrap_or_default())?,
        fields: FieldSelector::parse(query.get("fieldSelector").unwrap_or_default())?,
    })
}

fn list(store: &Store, target: &Target, query: &Query) -> Result<(StatusCode, Value), ApiError> {
    let limit = match query.get("limit") {
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_request("limit must be a number"))?,
        )
        .filter(|l| *l > 0),
        None => None,
    };
    let page = store.list(
        &target.rt,
        &filter(target, query)?,
        limit,
        query.get("continue").filter(|c| !c.is_empty()),
    )?;
    let mut metadata = json!({"resourceVersion": page.rv.to_string()});
    if let Some(token) = page.continue_token {
        metadata["continue"] = json!(token);
    }
    Ok((
        StatusCode::OK,
        json!({"kind": format!("{}List", target.rt.kind), "apiVersion": target.rt.api_version(), "metadata": metadata, "items": page.items}),
    ))
}

fn update(
    store: &Store,
    target: &Target,
    body: Value,
    query: &Query,
) -> Result<(StatusCode, Value), ApiError> {
    let opts = write_options(query);
    match subresource(target)? {
        Some(sub) => store
            .update(&target.rt, ns(target), name(target), body, sub, &opts)
            .map(|v| (StatusCode::OK, v)),
        None => {
            let replicas = body.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
            let scaled = set_replicas(store, target, replicas, &opts)?;
            Ok((StatusCode::OK, to_scale(&target.rt, &scaled)))
        }
    }
}

fn set_replicas(
    store: &Store,
    target: &Target,
    replicas: Value,
    opts: &WriteOptions,
) -> Result<Value, ApiError> {
    let paths = target
        .rt
        .scale
        .clone()
        .ok_or_else(|| ApiError::no_route("scale"))?;
    let mut patch = json!({});
    let mut node = &mut patch;
    let parts: Vec<&str> = paths.spec_replicas.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        node[*part] = if i + 1 == parts.len() {
            replicas.clone()
        } else {
            json!({})
        };
        node = &mut node[*part];
    }
    store.patch(
        &target.rt,
        ns(target),
        name(target),
        PatchKind::Merge,
        &patch,
        Subresource::Main,
        opts,
    )
}

fn patch(
    store: &Store,
    target: &Target,
    body: Value,
    content_type: &str,
    query: &Query,
) -> Result<(StatusCode, Value), ApiError> {
    let kind = if content_type.starts_with("application/merge-patch+json") {
        PatchKind::Merge
    } else if content_type.starts_with("application/json-patch+json") {
        PatchKind::Json
    } else if content_type.starts_with("application/strategic-merge-patch+json") {
        if target.rt.schema.is_some() {
            return Err(ApiError::unsupported_media_type(
                "strategic merge patch is not supported for custom resources",
            ));
        }
        PatchKind::Strategic
    } else if content_type.starts_with("application/apply-patch") {
        PatchKind::Apply
    } else {
        return Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format: {content_type}"
        )));
    };
    let opts = write_options(query);
    match subresource(target)? {
        Some(sub) => {
            let existed = store.get(&target.rt, ns(target), name(target)).is_ok();
            let v = store.patch(
                &target.rt,
                ns(target),
                name(target),
                kind,
                &body,
                sub,
                &opts,
            )?;
            Ok((
                if existed {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                },
                v,
            ))
        }
        None => {
            let current = store.get(&target.rt, ns(target), name(target))?;
            let mut scale = to_scale(&target.rt, &current);
            match kind {
                PatchKind::Json => {
                    let ops: json_patch::Patch = serde_json::from_value(body)
                        .map_err(|e| ApiError::bad_request(e.to_string()))?;
                    json_patch::patch(&mut scale, &ops)
                        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
                }
                _ => json_patch::merge(&mut scale, &body),
            }
            let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
            let scaled = set_replicas(store, target, replicas, &opts)?;
            Ok((StatusCode::OK, to_scale(&target.rt, &scaled)))
        }
    }
}

fn delete(
    store: &Store,
    target: &Target,
    body: &Bytes,
    query: &Query,
) -> Result<(StatusCode, Value), ApiError> {
    let options: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).unwrap_or(json!({}))
    };
    let policy = options
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or(query.get("propagationPolicy"));
    let propagation = match policy {
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some("Background") | None => Propagation::Background,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown propagationPolicy {other:?}"
            )));
        }
    };
    let precondition = options
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str);
    store
        .delete(
            &target.rt,
            ns(target),
            name(target),
            propagation,
            precondition,
        )
        .map(|v| (StatusCode::OK, v))
}

fn delete_collection(
    store: &Store,
    target: &Target,
    query: &Query,
) -> Result<(StatusCode, Value), ApiError> {
    let page = store.list(&target.rt, &filter(target, query)?, None, None)?;
    let mut deleted = Vec::new();
    for item in page.items {
        let namespace = item
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Ok(v) = store.delete(
            &target.rt,
            &namespace,
            &name_of(&item),
            Propagation::Background,
            None,
        ) {
            deleted.push(v);
        }
    }
    Ok((
        StatusCode::OK,
        json!({"kind": format!("{}List", target.rt.kind), "apiVersion": target.rt.api_version(), "metadata": {}, "items": deleted}),
    ))
}

fn to_scale(rt: &ResourceType, object: &Value) -> Value {
    let read = |path: &str| {
        let mut current = Some(object);
        for part in path.split('.').filter(|p| !p.is_empty()) {
            current = current.and_then(|c| c.get(part));
        }
        current.cloned()
    };
    let paths = rt.scale.clone();
    let spec = paths
        .as_ref()
        .and_then(|p| read(&p.spec_replicas))
        .unwrap_or(json!(0));
    let status = paths
        .as_ref()
        .and_then(|p| read(&p.status_replicas))
        .unwrap_or(json!(0));
    let mut status_obj = json!({"replicas": status});
    let selector = paths
        .as_ref()
        .and_then(|p| p.label_selector.as_ref())
        .and_then(|p| read(p))
        .or_else(|| {
            object
                .pointer("/spec/selector/matchLabels")
                .map(|m| json!(selector_string(m)))
        });
    if let Some(sel) = selector {
        status_obj["selector"] = sel;
    }
    let meta = object.get("metadata").cloned().unwrap_or(json!({}));
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"), "creationTimestamp": meta.get("creationTimestamp")},
        "spec": {"replicas": spec},
        "status": status_obj,
    })
}

fn selector_string(match_labels: &Value) -> String {
    match_labels
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// Renders an object or a list as a `meta.k8s.io/v1` Table (what `kubectl get` prints).
fn to_table(rt: &ResourceType, value: &Value, now: jiff::Timestamp) -> Value {
    let items: Vec<Value> = match value.get("items").and_then(Value::as_array) {
        Some(items) => items.clone(),
        None => vec![value.clone()],
    };
    let mut columns = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}),
    ];
    for c in &rt.printer_columns {
        if c.get("name").and_then(Value::as_str) == Some("Age") {
            continue;
        }
        columns.push(json!({"name": c.get("name"), "type": c.get("type"), "format": c.get("format").cloned().unwrap_or(json!("")),
            "description": c.get("description").cloned().unwrap_or(json!("")), "priority": c.get("priority").cloned().unwrap_or(json!(0))}));
    }
    columns.push(
        json!({"name": "Age", "type": "date", "format": "", "description": "Age", "priority": 0}),
    );
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut cells = vec![json!(name_of(item))];
            for c in &rt.printer_columns {
                if c.get("name").and_then(Value::as_str) == Some("Age") {
                    continue;
                }
                let path = c.get("jsonPath").and_then(Value::as_str).unwrap_or_default();
                let mut current = Some(item);
                for part in path.split('.').filter(|p| !p.is_empty()) {
                    current = current.and_then(|x| x.get(part));
                }
                let cell = current.cloned().unwrap_or(Value::Null);
                let is_date = c.get("type").and_then(Value::as_str) == Some("date");
                cells.push(if is_date { age_cell(&cell, now) } else { cell });
            }
            cells.push(age_cell(item.pointer("/metadata/creationTimestamp").unwrap_or(&Value::Null), now));
            json!({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": item.get("metadata")}})
        })
        .collect();
    let rv = value
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(json!(""));
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv}, "columnDefinitions": columns, "rows": rows})
}

/// A timestamp cell as kubectl shows it: the age, e.g. `45s`, `3m12s`, `5h`, `12d`.
fn age_cell(timestamp: &Value, now: jiff::Timestamp) -> Value {
    let Some(then) = timestamp
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    else {
        return json!("<unknown>");
    };
    json!(human_age(now.duration_since(then).as_secs().max(0) as u64))
}

/// Short age in the style of `kubectl get`.
pub fn human_age(secs: u64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{m}m{}s", s % 60),
        s if s < 3 * 3600 => format!("{m}m"),
        s if s < 8 * 3600 => format!("{h}h{}m", (s % 3600) / 60),
        s if s < 48 * 3600 => format!("{h}h"),
        s if s < 8 * 86_400 => format!("{d}d{}h", (s % 86_400) / 3600),
        _ => format!("{d}d"),
    }
}

/// Renders watch events as the client asked: objects, or one-row Tables for `kubectl get -w`
/// (column definitions on the first only, as the API server does).
struct EventFormat {
    table: bool,
    columns_sent: bool,
    store: Arc<Store>,
}

impl EventFormat {
    fn line(&mut self, rt: &ResourceType, event: &WatchEvent) -> Value {
        if !self.table {
            return event_line(event);
        }
        let mut table = to_table(rt, &event.object, self.store.clock().now());
        if self.columns_sent {
            table["columnDefinitions"] = json!([]);
        }
        self.columns_sent = true;
        json!({"type": event.kind.as_str(), "object": table})
    }
}

struct WatchState {
    format: EventFormat,
    pending: VecDeque<Value>,
    receiver: broadcast::Receiver<Arc<WatchEvent>>,
    rt: Arc<ResourceType>,
    filter: Filter,
    deadline: tokio::time::Instant,
    bookmarks: bool,
    last_rv: u64,
    next_bookmark: tokio::time::Instant,
    done: bool,
}

fn event_line(event: &WatchEvent) -> Value {
    json!({"type": event.kind.as_str(), "object": event.object})
}

fn watch_response(
    store: &Arc<Store>,
    target: &Target,
    query: &Query,
    table: bool,
) -> Response<Body> {
    let mut format = EventFormat {
        table,
        columns_sent: false,
        store: store.clone(),
    };
    let filter = match filter(target, query) {
        Ok(f) => f,
        Err(e) => return error(&e),
    };
    let filter = match &target.name {
        Some(n) => {
            let mut f = filter;
            let by_name = FieldSelector::parse(&format!("metadata.name={n}")).unwrap_or_default();
            f.fields = by_name;
            f
        }
        None => filter,
    };
    let since = match query.get("resourceVersion") {
        None | Some("") | Some("0") => None,
        Some(rv) => match rv.parse::<u64>() {
            Ok(v) => Some(v),
            Err(_) => {
                return error(&ApiError::bad_request(format!(
                    "invalid resourceVersion {rv:?}"
                )));
            }
        },
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_WATCH_TIMEOUT);
    let now = tokio::time::Instant::now();
    let current = store.current_rv();
    let mut pending: VecDeque<Value> = VecDeque::new();
    let receiver = match store.watch(&target.rt, &filter, since) {
        Ok((initial, receiver)) => {
            pending.extend(initial.iter().map(|e| format.line(&target.rt, e)));
            Some(receiver)
        }
        Err(e) => {
            pending.push_back(json!({"type": "ERROR", "object": e.status()}));
            None
        }
    };
    let send_initial_end = query.flag("sendInitialEvents");
    if send_initial_end && receiver.is_some() {
        pending.push_back(bookmark(&target.rt, current, true));
    }
    let Some(receiver) = receiver else {
        return stream_response(futures::stream::iter(pending.into_iter().map(line_frame)).boxed());
    };
    let state = WatchState {
        format,
        pending,
        receiver,
        rt: target.rt.clone(),
        filter,
        deadline: now + timeout,
        bookmarks: query.flag("allowWatchBookmarks"),
        last_rv: since.unwrap_or(current).max(current),
        next_bookmark: now + BOOKMARK_INTERVAL,
        done: false,
    };
    let stream = futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(line) = s.pending.pop_front() {
                return Some((line_frame(line), s));
            }
            if s.done {
                return None;
            }
            let wake = if s.bookmarks {
                s.deadline.min(s.next_bookmark)
            } else {
                s.deadline
            };
            tokio::select! {
                received = s.receiver.recv() => match received {
                    Ok(event) => {
                        if event.group == s.rt.group && event.plural == s.rt.plural && s.filter.matches_event(&event) {
                            s.last_rv = event.rv;
                            let line = s.format.line(&s.rt, &event);
                            s.pending.push_back(line);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        s.pending.push_back(json!({"type": "ERROR", "object": ApiError::gone("watch fell behind; relist").status()}));
                        s.done = true;
                    }
                    Err(broadcast::error::RecvError::Closed) => s.done = true,
                },
                _ = tokio::time::sleep_until(wake) => {
                    if tokio::time::Instant::now() >= s.deadline {
                        s.done = true;
                    } else {
                        s.next_bookmark = tokio::time::Instant::now() + BOOKMARK_INTERVAL;
                        s.pending.push_back(bookmark(&s.rt, s.last_rv, false));
                    }
                }
            }
        }
    });
    stream_response(stream.boxed())
}

impl Filter {
    fn matches_event(&self, event: &WatchEvent) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| ns == event.namespace)
            && self
                .labels
                .matches(event.object.pointer("/metadata/labels"))
            && self.fields.matches(&event.object)
    }
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Value {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": metadata}})
}

fn line_frame(line: Value) -> Result<Frame<Bytes>, Infallible> {
    let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
    bytes.push(b'\n');
    Ok(Frame::data(Bytes::from(bytes)))
}

fn stream_response(
    stream: futures::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>,
) -> Response<Body> {
    let mut response = Response::new(StreamBody::new(stream).boxed_unsync());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
