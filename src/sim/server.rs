//! The sim's HTTP surface: Kubernetes API paths, discovery, watches and tables, served to an
//! in-process `kube::Client` (a tower Service) or over TCP to `kubectl` and the operator.

use std::{convert::Infallible, sync::Arc};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use serde_json::{Value, json};

use super::{
    discovery::discovery,
    error::ApiError,
    events,
    prometheus::ScriptedPrometheus,
    resources::ResourceType,
    selector::{FieldSelector, LabelSelector},
    store::{Filter, PatchKind, Propagation, Store, Subresource, WriteOptions, name_of},
    views::{to_scale, to_table},
    watch::watch_response,
};

/// Response body: whole, or a stream of watch events.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

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

pub(super) fn error(e: &ApiError) -> Response<Body> {
    full(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.status(),
    )
}

/// Query parameters of a request, and the client's name for a write without a manager.
#[derive(Debug, Default)]
pub(super) struct Query {
    params: Vec<(String, String)>,
    client: String,
}

impl Query {
    fn parse(query: Option<&str>) -> Self {
        Self {
            params: form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
            client: String::new(),
        }
    }
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn set(&mut self, key: &str, value: String) {
        self.params.retain(|(k, _)| k != key);
        self.params.push((key.to_string(), value));
    }
    pub(super) fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

/// A parsed resource path.
#[derive(Debug)]
pub(super) struct Target {
    pub(super) rt: Arc<ResourceType>,
    pub(super) namespace: Option<String>,
    pub(super) name: Option<String>,
    pub(super) subresource: Option<String>,
}

/// Largest request body accepted, as the API server's 3 MiB.
pub const MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024;

/// Handles one request.
pub async fn handle(
    store: Arc<Store>,
    prometheus: Arc<ScriptedPrometheus>,
    request: Request<Bytes>,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    // The API server's limit: etcd could not store more than this in one object anyway.
    if body.len() > MAX_REQUEST_BYTES {
        return error(&ApiError::too_large(MAX_REQUEST_BYTES));
    }
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
    if let Some(delay) = store.faults().delay() {
        tokio::time::sleep(delay).await;
        store.faults().count_delayed();
    }
    if let Some(code) = store.faults().take(parts.method.as_str(), &path) {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let reason = match code {
            409 => "Conflict",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            _ => "InternalError",
        };
        let mut response = full(
            status,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": format!("injected fault: {code}"), "reason": reason, "code": code}),
        );
        if code == 429 {
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
        }
        return response;
    }
    let mut query = Query::parse(parts.uri.query());
    // A write without a fieldManager is recorded under the User-Agent's product name.
    query.client = parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|name| !name.is_empty())
        .unwrap_or("unknown")
        .to_string();
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
    if path == "/openapi/v2" {
        let (media_type, body) = super::discovery::openapi_v2(&accept);
        let mut response = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(media_type),
        );
        return response;
    }
    match discovery(&store, &path) {
        Some(Ok(v)) => return full(StatusCode::OK, &v),
        Some(Err(e)) => return error(&e),
        None => {}
    }
    let (mut target, legacy_watch) = match parse_target(&store, &path) {
        Ok(t) => t,
        Err(e) => return error(&e),
    };
    // Core v1 Events are served from the events.k8s.io/v1 objects, as one set under two APIs.
    let asked = target.rt.clone();
    let view = match store.resolve("events.k8s.io", "v1", "events") {
        Some(stored) if events::is_core_events(&asked) => {
            target.rt = stored;
            if let Some(selector) = query.get("fieldSelector") {
                let selector = events::field_selector_from_core(selector);
                query.set("fieldSelector", selector);
            }
            Some(asked.clone())
        }
        _ => None,
    };
    let parse_body = |body: &Bytes, content_type: &str| {
        parse_body(body, content_type).map(|b| match view {
            Some(_) => events::from_core(b),
            None => b,
        })
    };
    let watch = legacy_watch || query.flag("watch");
    let result = match (parts.method, target.name.is_some()) {
        (Method::GET, _) if watch => {
            return watch_response(&store, &target, &query, wants_table(&accept), view);
        }
        (Method::GET, true) => get(&store, &target),
        (Method::GET, false) => list(&store, &target, &query),
        (Method::POST, false) => parse_body(&body, &content_type).and_then(|b| {
            store
                .create(
                    &target.rt,
                    target.namespace.as_deref().unwrap_or_default(),
                    b,
                    &write_options(&query, false)?,
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
    let result = match view {
        Some(_) => result.map(|(status, value)| (status, events::to_core(value))),
        None => result,
    };
    match result {
        Ok((status, value)) if value.get("$text").is_some() => {
            text(status, value["$text"].as_str().unwrap_or_default())
        }
        Ok((status, value)) if wants_table(&accept) && parts_is_read(status) => {
            full(status, &to_table(&asked, &value, store.clock().now()))
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

/// The options of a write; only server-side apply must name its manager.
fn write_options(query: &Query, apply: bool) -> Result<WriteOptions, ApiError> {
    let manager = query.get("fieldManager").filter(|m| !m.is_empty());
    Ok(WriteOptions {
        field_manager: match manager {
            Some(m) => Some(m.to_string()),
            None if apply => None,
            None => Some(query.client.clone()),
        },
        force: query.flag("force"),
        strict: query.get("fieldValidation") == Some("Strict"),
        dry_run: dry_run(query.get("dryRun"))?,
    })
}

/// `dryRun`: absent, empty or `All`, as the API server accepts.
fn dry_run(value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "Unsupported value: {other:?}: supported values: \"All\""
        ))),
    }
}

fn parse_body(body: &Bytes, content_type: &str) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    // kubectl's imperative commands and client-go's typed clients write built-in kinds in
    // protobuf; they are stored as the JSON they stand for.
    if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        let mut value =
            super::protobuf::decode(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
        super::store::whole_numbers_as_integers(&mut value);
        return Ok(value);
    }
    // Clients fall back to JSON when the server answers 415 to CBOR.
    if content_type.contains("cbor") {
        return Err(ApiError::unsupported_media_type(format!(
            "{content_type} is not supported; send JSON"
        )));
    }
    let mut value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(json_error) if content_type.contains("yaml") => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
            crate::yaml::from_str(text).map_err(|e| {
                ApiError::bad_request(format!("cannot decode the body: {e} ({json_error})"))
            })?
        }
        Err(e) => {
            return Err(ApiError::bad_request(format!(
                "cannot decode the body as JSON: {e}"
            )));
        }
    };
    super::store::whole_numbers_as_integers(&mut value);
    Ok(value)
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

pub(super) fn filter(target: &Target, query: &Query) -> Result<Filter, ApiError> {
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
    let opts = write_options(query, false)?;
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
    let opts = write_options(query, kind == PatchKind::Apply)?;
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
    if deletes_dry(&options, query)? {
        return store
            .delete_dry_run(&target.rt, ns(target), name(target), precondition)
            .map(|v| (StatusCode::OK, v));
    }
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

/// A delete's dry run is asked in its options body (kubectl) or query.
fn deletes_dry(options: &Value, query: &Query) -> Result<bool, ApiError> {
    let in_body = match options.get("dryRun") {
        None | Some(Value::Null) => false,
        Some(Value::Array(values)) => {
            let mut dry = false;
            for v in values {
                dry |= dry_run(v.as_str())?;
            }
            dry
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun must be a list, not {other}"
            )));
        }
    };
    Ok(in_body || dry_run(query.get("dryRun"))?)
}

fn delete_collection(
    store: &Store,
    target: &Target,
    query: &Query,
) -> Result<(StatusCode, Value), ApiError> {
    let page = store.list(&target.rt, &filter(target, query)?, None, None)?;
    if dry_run(query.get("dryRun"))? {
        return Ok((
            StatusCode::OK,
            json!({"kind": format!("{}List", target.rt.kind), "apiVersion": target.rt.api_version(), "metadata": {}, "items": page.items}),
        ));
    }
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
