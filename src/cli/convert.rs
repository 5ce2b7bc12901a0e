//! `cutover convert argo`: Argo Rollouts manifests (Rollout, AnalysisTemplate,
//! ClusterAnalysisTemplate) as cutover manifests. Every field is either converted or named,
//! with its path and the reason, so nothing is dropped in silence; other documents pass
//! through unchanged, so a whole application directory converts.

use std::{path::PathBuf, process::ExitCode};

use serde_json::{Map, Value, json};

use crate::{analysis::condition, api};

/// The Argo Rollouts API version converted.
pub const ARGO_API_VERSION: &str = "argoproj.io/v1alpha1";

/// A field that could not be converted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unconverted {
    /// Dotted path in the source document.
    pub path: String,
    /// Why it has no cutover equivalent.
    pub reason: String,
}

/// One converted document: the object (absent when nothing of it could be kept) and what
/// was left behind.
#[derive(Clone, Debug, PartialEq)]
pub struct Converted {
    /// The cutover (or untouched) object.
    pub object: Option<Value>,
    /// Fields not converted.
    pub unconverted: Vec<Unconverted>,
}

/// Collects what could not be converted while converting.
#[derive(Default)]
struct Notes(Vec<Unconverted>);

impl Notes {
    fn skip(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.0.push(Unconverted {
            path: path.into(),
            reason: reason.into(),
        });
    }
}

fn obj(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// Converts one parsed document.
pub fn convert(doc: &Value) -> Converted {
    let api_version = doc.get("apiVersion").and_then(Value::as_str);
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    if api_version != Some(ARGO_API_VERSION) {
        return Converted {
            object: Some(doc.clone()),
            unconverted: Vec::new(),
        };
    }
    let mut notes = Notes::default();
    let spec = doc.get("spec").cloned().unwrap_or(json!({}));
    let converted_spec = match kind {
        "Rollout" => Some(rollout_spec(&spec, &mut notes)),
        "AnalysisTemplate" | "ClusterAnalysisTemplate" => Some(template_spec(&spec, &mut notes)),
        other => {
            notes.skip(
                "kind",
                format!("{other} has no cutover equivalent (Rollout, AnalysisTemplate and ClusterAnalysisTemplate convert)"),
            );
            None
        }
    };
    let object = converted_spec.map(|spec| {
        let mut out = Map::new();
        out.insert(
            "apiVersion".into(),
            json!(format!("{}/{}", api::GROUP, api::VERSION)),
        );
        out.insert("kind".into(), json!(kind));
        out.insert("metadata".into(), metadata(doc.get("metadata"), &mut notes));
        out.insert("spec".into(), spec);
        Value::Object(out)
    });
    for key in obj(doc).keys() {
        if !matches!(
            key.as_str(),
            "apiVersion" | "kind" | "metadata" | "spec" | "status"
        ) {
            notes.skip(key.clone(), "not part of the object a cutover kind has");
        }
    }
    Converted {
        object,
        unconverted: notes.0,
    }
}

/// Name, namespace, labels and annotations; Argo's own annotations are dropped (they
/// steer Argo's controller only).
fn metadata(meta: Option<&Value>, notes: &mut Notes) -> Value {
    let mut out = Map::new();
    for (key, value) in obj(meta.unwrap_or(&Value::Null)) {
        match key.as_str() {
            "name" | "namespace" | "generateName" | "labels" => {
                out.insert(key, value);
            }
            "annotations" => {
                let kept: Map<String, Value> = obj(&value)
                    .into_iter()
                    .filter(|(k, _)| {
                        !k.contains("argoproj.io/")
                            && k != "kubectl.kubernetes.io/last-applied-configuration"
                    })
                    .collect();
                if !kept.is_empty() {
                    out.insert(key, Value::Object(kept));
                }
            }
            // Set by the API server; meaningless in a manifest.
            "uid" | "resourceVersion" | "generation" | "creationTimestamp" | "managedFields" => {}
            other => notes.skip(format!("metadata.{other}"), "not converted"),
        }
    }
    Value::Object(out)
}

/// A duration as cutover writes it: Argo takes integer seconds or a duration string.
fn duration(value: &Value, path: &str, notes: &mut Notes) -> Option<Value> {
    match value {
        Value::Number(n) if n.as_u64().is_some() => Some(json!(format!("{}s", n))),
        Value::String(s) if s.parse::<api::Duration>().is_ok() => Some(json!(s)),
        Value::String(s) if s.parse::<u64>().is_ok() => Some(json!(format!("{s}s"))),
        _ => {
            notes.skip(path, format!("{value} is not a duration cutover reads"));
            None
        }
    }
}

/// A count or limit: Argo takes an int or a string (possibly a placeholder).
fn count(value: &Value, path: &str, notes: &mut Notes) -> Option<Value> {
    match value {
        Value::Number(n) if n.as_u64().is_some() => Some(value.clone()),
        Value::String(s) => match s.parse::<u64>() {
            Ok(n) => Some(json!(n)),
            Err(_) => {
                notes.skip(
                    path,
                    format!("{s:?}: cutover counts and limits are numbers, not placeholders"),
                );
                None
            }
        },
        _ => {
            notes.skip(path, format!("{value} is not a count"));
            None
        }
    }
}

fn rollout_spec(spec: &Value, notes: &mut Notes) -> Value {
    let mut out = Map::new();
    for (key, value) in obj(spec) {
        let path = format!("spec.{key}");
        match key.as_str() {
            "replicas"
            | "selector"
            | "template"
            | "minReadySeconds"
            | "revisionHistoryLimit"
            | "paused"
            | "progressDeadlineSeconds"
            | "progressDeadlineAbort" => {
                out.insert(key, value);
            }
            "workloadRef" => {
                let mut wr = Map::new();
                for (k, v) in obj(&value) {
                    match k.as_str() {
                        "apiVersion" | "kind" | "name" => {
                            wr.insert(k, v);
                        }
                        "scaleDown" => {
                            // cutover scales the referenced Deployment to zero once the
                            // Rollout serves, and gives its replicas back when the Rollout goes.
                            if v.as_str() != Some("onsuccess") {
                                notes.skip(format!("{path}.scaleDown"), format!("{v}: cutover always scales the Deployment down once the Rollout serves (Argo's onsuccess)"));
                            }
                        }
                        other => notes.skip(format!("{path}.{other}"), "not converted"),
                    }
                }
                out.insert(key, Value::Object(wr));
            }
            "strategy" => {
                out.insert(key, strategy(&value, &path, notes));
            }
            "analysis" => notes.skip(
                path,
                "cutover keeps a fixed number of measurements; run history limits do not apply",
            ),
            other => notes.skip(path, format!("{other} has no cutover equivalent")),
        }
    }
    Value::Object(out)
}

fn strategy(value: &Value, path: &str, notes: &mut Notes) -> Value {
    let mut out = Map::new();
    for (key, v) in obj(value) {
        let p = format!("{path}.{key}");
        match key.as_str() {
            "canary" => {
                out.insert(key, canary(&v, &p, notes));
            }
            "blueGreen" => {
                out.insert(key, blue_green(&v, &p, notes));
            }
            other => notes.skip(p, format!("strategy {other} has no cutover equivalent")),
        }
    }
    Value::Object(out)
}

fn canary(value: &Value, path: &str, notes: &mut Notes) -> Value {
    let mut out = Map::new();
    // Without a router the canary's pods are its share of traffic: a scale step would
    // change that share, so it converts only where the routing does.
    let routed = value
        .get("trafficRouting")
        .is_some_and(|t| traffic_routing(t, path, &mut Notes::default()).is_some());
    for (key, v) in obj(value) {
        let p = format!("{path}.{key}");
        match key.as_str() {
            "stableService" | "canaryService" | "abortScaleDownDelaySeconds" => {
                out.insert(key, v);
            }
            "steps" => {
                let steps: Vec<Value> = v
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| step(s, &format!("{p}[{i}]"), routed, notes))
                    .collect();
                out.insert(key, Value::Array(steps));
            }
            "analysis" => {
                let mut background = analysis(&v, &p, notes);
                if let (Some(map), Some(start)) = (background.as_object_mut(), v.get("startingStep")) {
                    map.insert("startingStep".into(), start.clone());
                }
                out.insert(key, background);
            }
            "trafficRouting" => {
                if let Some(routing) = traffic_routing(&v, &p, notes) {
                    out.insert(key, routing);
                }
            }
            "maxSurge" | "maxUnavailable" => notes.skip(p, "cutover sizes the canary from the step's weight and keeps the stable at full size; there is no surge to set"),
            "scaleDownDelaySeconds" => notes.skip(p, "cutover scales the old stable down once traffic has left it (abortScaleDownDelaySeconds covers aborts)"),
            other => notes.skip(p, format!("canary.{other} has no cutover equivalent")),
        }
    }
    Value::Object(out)
}

/// Gateway API through Argo's `argoproj-labs/gatewayAPI` plugin converts; other routers
/// (Istio, NGINX, ALB, SMI, …) do not.
fn traffic_routing(value: &Value, path: &str, notes: &mut Notes) -> Option<Value> {
    let mut found = None;
    for (key, v) in obj(value) {
        let p = format!("{path}.{key}");
        match key.as_str() {
            "plugins" => {
                for (name, config) in obj(&v) {
                    let pp = format!("{p}.{name}");
                    let single = |k: &str| config.get(k).and_then(Value::as_str).map(|r| (k.to_string(), r.to_string()));
                    match (name.as_str(), single("httpRoute").or_else(|| single("grpcRoute"))) {
                        ("argoproj-labs/gatewayAPI", Some((kind, route))) => {
                            if config.get("namespace").is_some() {
                                notes.skip(format!("{pp}.namespace"), "cutover reads the route in the Rollout's own namespace");
                            }
                            found = Some(json!({"gatewayAPI": {kind: route}}));
                        }
                        ("argoproj-labs/gatewayAPI", None) => notes.skip(pp, "only a single httpRoute or grpcRoute converts (httpRoutes and grpcRoutes lists do not)"),
                        _ => notes.skip(pp, "traffic-router plugins other than Gateway API have no cutover equivalent"),
                    }
                }
            }
            other => notes.skip(p, format!("traffic routing through {other} has no cutover equivalent; cutover routes by Gateway API HTTPRoute and GRPCRoute weights")),
        }
    }
    found
}

fn step(value: &Value, path: &str, routed: bool, notes: &mut Notes) -> Option<Value> {
    let map = obj(value);
    let mut out = None;
    for (key, v) in &map {
        let p = format!("{path}.{key}");
        match key.as_str() {
            "setWeight" => out = Some(json!({"setWeight": v})),
            "pause" => {
                let mut pause = Map::new();
                if let Some(d) = v.get("duration")
                    && let Some(d) = duration(d, &format!("{p}.duration"), notes)
                {
                    pause.insert("duration".into(), d);
                }
                out = Some(json!({"pause": pause}));
            }
            "analysis" => out = Some(json!({"analysis": analysis(v, &p, notes)})),
            "experiment" => notes.skip(p, "experiments have no cutover equivalent"),
            "setCanaryScale" | "setHeaderRoute" if !routed => notes.skip(
                p,
                format!("{key} converts only with a Gateway API route: without a router there is no route to set"),
            ),
            // The same shape in both: a name and header matches by exact, prefix or regex.
            "setHeaderRoute" => out = Some(json!({"setHeaderRoute": v})),
            "setCanaryScale" => {
                let mut scale = Map::new();
                for field in ["replicas", "weight", "matchTrafficWeight"] {
                    if let Some(x) = v.get(field) {
                        scale.insert(field.into(), x.clone());
                    }
                }
                out = Some(json!({"setCanaryScale": scale}));
            }
            "setMirrorRoute" => notes.skip(
                p,
                "Argo's mirror matches by method and path; cutover's setMirrorRoute matches headers on the route's own rule: write it by hand",
            ),
            other => notes.skip(p, format!("step {other} has no cutover equivalent")),
        }
    }
    out
}

/// An analysis reference (`templates`, `args`) as cutover writes it.
fn analysis(value: &Value, path: &str, notes: &mut Notes) -> Value {
    let mut out = Map::new();
    for (key, v) in obj(value) {
        let p = format!("{path}.{key}");
        match key.as_str() {
            "templates" => {
                let refs: Vec<Value> = v
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, t)| {
                        let name = t.get("templateName").and_then(Value::as_str);
                        if name.is_none() {
                            notes.skip(
                                format!("{p}[{i}]"),
                                "a template reference needs templateName",
                            );
                        }
                        let mut r = json!({"templateName": name?});
                        if t.get("clusterScope").and_then(Value::as_bool) == Some(true) {
                            r["clusterScope"] = json!(true);
                        }
                        Some(r)
                    })
                    .collect();
                out.insert(key, Value::Array(refs));
            }
            "args" => {
                out.insert(key, args(&v, &p, notes));
            }
            // Handled by the caller for background analysis.
            "startingStep" => {}
            "dryRun" | "measurementRetention" | "analysisRunMetadata" => notes.skip(
                p,
                "set on the template's metrics in cutover (dryRun per metric)",
            ),
            other => notes.skip(p, format!("analysis.{other} has no cutover equivalent")),
        }
    }
    Value::Object(out)
}

fn args(value: &Value, path: &str, notes: &mut Notes) -> Value {
    let list = value.as_array().cloned().unwrap_or_default();
    Value::Array(
        list.iter()
            .enumerate()
            .map(|(i, a)| {
                let mut arg = Map::new();
                for (k, v) in obj(a) {
                    match k.as_str() {
                        "name" | "value" => {
                            arg.insert(k, v);
                        }
                        "valueFrom" => {
                            let known = ["secretKeyRef", "fieldRef", "podTemplateHashValue"];
                            let from = obj(&v);
                            for other in from.keys().filter(|k| !known.contains(&k.as_str())) {
                                notes.skip(
                                    format!("{path}[{i}].valueFrom.{other}"),
                                    "not converted",
                                );
                            }
                            let kept: Map<String, Value> = from
                                .into_iter()
                                .filter(|(k, _)| known.contains(&k.as_str()))
                                .collect();
                            arg.insert(k, Value::Object(kept));
                        }
                        other => notes.skip(format!("{path}[{i}].{other}"), "not converted"),
                    }
                }
                Value::Object(arg)
            })
            .collect(),
    )
}

fn blue_green(value: &Value, path: &str, notes: &mut Notes) -> Value {
    let mut out = Map::new();
    for (key, v) in obj(value) {
        let p = format!("{path}.{key}");
        match key.as_str() {
            "activeService"
            | "previewService"
            | "autoPromotionEnabled"
            | "autoPromotionSeconds"
            | "scaleDownDelaySeconds"
            | "previewReplicaCount" => {
                out.insert(key, v);
            }
            "prePromotionAnalysis" | "postPromotionAnalysis" => {
                out.insert(key, analysis(&v, &p, notes));
            }
            other => notes.skip(p, format!("blueGreen.{other} has no cutover equivalent")),
        }
    }
    Value::Object(out)
}

fn template_spec(spec: &Value, notes: &mut Notes) -> Value {
    let mut out = Map::new();
    // Argo marks dry-run metrics at the template level, by name or `.*`.
    let dry: Vec<String> = spec
        .get("dryRun")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|d| d.get("metricName")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for (key, v) in obj(spec) {
        let p = format!("spec.{key}");
        match key.as_str() {
            "args" => {
                out.insert(key, args(&v, &p, notes));
            }
            "metrics" => {
                let metrics: Vec<Value> = v
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, m)| metric(m, &format!("{p}[{i}]"), &dry, notes))
                    .collect();
                out.insert(key, Value::Array(metrics));
            }
            "dryRun" => {
                for (i, d) in v.as_array().cloned().unwrap_or_default().iter().enumerate() {
                    let name = d
                        .get("metricName")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let known = spec["metrics"]
                        .as_array()
                        .is_some_and(|ms| ms.iter().any(|m| m["name"] == name));
                    if name != ".*" && !known {
                        notes.skip(
                            format!("{p}[{i}]"),
                            format!("{name:?}: only a metric's exact name or .* converts"),
                        );
                    }
                }
            }
            "measurementRetention" => {
                notes.skip(p, "cutover keeps the last 10 measurements of each metric")
            }
            other => notes.skip(p, format!("{other} has no cutover equivalent")),
        }
    }
    Value::Object(out)
}

fn metric(value: &Value, path: &str, dry: &[String], notes: &mut Notes) -> Option<Value> {
    let mut out = Map::new();
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut provided = false;
    let mut broken = false;
    for (key, v) in obj(value) {
        let p = format!("{path}.{key}");
        match key.as_str() {
            "name" => {
                out.insert(key, v);
            }
            "interval" | "initialDelay" => {
                if let Some(d) = duration(&v, &p, notes) {
                    out.insert(key, d);
                }
            }
            "count" | "failureLimit" | "inconclusiveLimit" | "consecutiveErrorLimit" => {
                if let Some(n) = count(&v, &p, notes) {
                    out.insert(key, n);
                }
            }
            "successCondition" | "failureCondition" => match condition_of(&v, &p, notes) {
                Some((c, empty_holds)) => {
                    if empty_holds {
                        let policy = if key == "successCondition" {
                            "pass"
                        } else {
                            "fail"
                        };
                        out.insert("noData".into(), json!(policy));
                    }
                    out.insert(key, json!(c));
                }
                // Without its condition the metric would decide otherwise: left out whole.
                None => broken = true,
            },
            "provider" => {
                provided = provider(&v, &p, &mut out, notes);
            }
            other => notes.skip(p, format!("metric.{other} has no cutover equivalent")),
        }
    }
    if dry.iter().any(|d| d == name || d == ".*") {
        out.insert("dryRun".into(), json!(true));
    }
    // Argo decides a job metric by its Job alone; so does cutover, which rejects conditions.
    if out.contains_key("job") {
        for key in ["successCondition", "failureCondition", "noData"] {
            if out.remove(key).is_some() && key != "noData" {
                notes.skip(
                    format!("{path}.{key}"),
                    "a job metric is decided by its Job (Complete or Failed); Argo Rollouts ignores it too",
                );
            }
        }
    }
    // A metric without a provider it can measure with, or without a condition it had, is
    // left out whole; what stopped it was named above.
    (provided && !broken).then_some(Value::Object(out))
}

/// Argo's expressions (expr-lang) as CEL over cutover's `result`: a one-sample vector is
/// a number in cutover, so `result[0]` is `result`. An empty answer never reaches a
/// cutover condition (the `noData` policy decides), so a `len(result) == 0 ||` clause
/// becomes the policy: `true` when the clause was there.
pub fn condition_text(expr: &str) -> Result<(String, bool), String> {
    let mut c = expr.trim().to_string();
    for (from, to) in [(" and ", " && "), (" or ", " || ")] {
        c = c.replace(from, to);
    }
    let mut empty_holds = false;
    for clause in ["len(result) == 0 || ", " || len(result) == 0"] {
        if c.contains(clause) {
            c = c.replace(clause, "");
            empty_holds = true;
        }
    }
    if c.contains("len(result)") {
        return Err(format!(
            "{expr:?} reads len(result): cutover gives a one-sample answer as a number and an empty one to noData"
        ));
    }
    c = c.replace("result[0]", "result");
    if let Some(rest) = c.strip_prefix("not ") {
        c = format!("!({rest})");
    }
    for unsupported in ["isNaN(", "isInf(", "asInt(", "asFloat(", "default("] {
        if c.contains(unsupported) {
            return Err(format!(
                "{expr:?} uses {}): cutover counts NaN and Inf as no data (noData), and conditions are CEL",
                unsupported.trim_end_matches('(')
            ));
        }
    }
    condition::check(&c).map_err(|e| format!("{expr:?} as CEL {c:?}: {e}"))?;
    Ok((c, empty_holds))
}

fn condition_of(value: &Value, path: &str, notes: &mut Notes) -> Option<(String, bool)> {
    let Some(expr) = value.as_str() else {
        notes.skip(path, "not a string");
        return None;
    };
    match condition_text(expr) {
        Ok(c) => Some(c),
        Err(e) => {
            notes.skip(path, e);
            None
        }
    }
}

/// Converts the provider into `out`; whether one was.
fn provider(value: &Value, path: &str, out: &mut Map<String, Value>, notes: &mut Notes) -> bool {
    let mut provided = false;
    for (key, v) in obj(value) {
        let p = format!("{path}.{key}");
        match key.as_str() {
            "prometheus" => {
                let mut prom = Map::new();
                for (k, x) in obj(&v) {
                    match k.as_str() {
                        "query" | "address" => {
                            prom.insert(k, x);
                        }
                        "timeout" => {
                            if let Some(d) = duration(&x, &format!("{p}.timeout"), notes) {
                                prom.insert(k, d);
                            }
                        }
                        other => notes.skip(format!("{p}.{other}"), "not converted: cutover reads Prometheus credentials from Secrets (auth) and TLS trust from tls"),
                    }
                }
                out.insert("prometheus".into(), Value::Object(prom));
                provided = true;
            }
            "web" => {
                let mut web = Map::new();
                for (k, x) in obj(&v) {
                    match k.as_str() {
                        "url" | "headers" | "jsonPath" => {
                            web.insert(k, x);
                        }
                        "method" => match x.as_str() {
                            Some("GET") | Some("POST") => {
                                web.insert(k, x);
                            }
                            _ => notes.skip(
                                format!("{p}.method"),
                                format!("{x}: cutover sends GET or POST"),
                            ),
                        },
                        "body" => {
                            web.insert(k, x);
                        }
                        "jsonBody" => {
                            web.insert("body".into(), json!(x.to_string()));
                        }
                        "timeoutSeconds" => {
                            if let Some(d) = duration(&x, &format!("{p}.timeoutSeconds"), notes) {
                                web.insert("timeout".into(), d);
                            }
                        }
                        other => notes.skip(
                            format!("{p}.{other}"),
                            "not converted: cutover verifies TLS with the system's roots",
                        ),
                    }
                }
                if web.contains_key("body") && !web.contains_key("method") {
                    web.insert("method".into(), json!("POST"));
                }
                out.insert("web".into(), Value::Object(web));
                provided = true;
            }
            "job" => {
                out.insert("job".into(), job(&v, &p, notes));
                provided = true;
            }
            other => notes.skip(
                p,
                format!(
                    "the {other} provider has no cutover equivalent (prometheus and web convert)"
                ),
            ),
        }
    }
    provided
}

/// An Argo job provider as a cutover job metric: its labels, annotations, pod template,
/// retries, deadline and TTL; any other Job field is named.
fn job(value: &Value, path: &str, notes: &mut Notes) -> Value {
    let mut out = Map::new();
    for (key, v) in obj(value) {
        let p = format!("{path}.{key}");
        match key.as_str() {
            "metadata" => {
                let mut meta = Map::new();
                for (k, x) in obj(&v) {
                    match k.as_str() {
                        "labels" | "annotations" => {
                            meta.insert(k, x);
                        }
                        other => notes.skip(
                            format!("{p}.{other}"),
                            "a job metric's Job takes labels and annotations",
                        ),
                    }
                }
                out.insert("metadata".into(), Value::Object(meta));
            }
            "spec" => {
                let mut spec = Map::new();
                for (k, x) in obj(&v) {
                    match k.as_str() {
                        "template" | "backoffLimit" | "activeDeadlineSeconds"
                        | "ttlSecondsAfterFinished" => {
                            spec.insert(k, x);
                        }
                        other => notes.skip(format!("{p}.{other}"), "a job metric runs one pod at a time: template, backoffLimit, activeDeadlineSeconds and ttlSecondsAfterFinished convert"),
                    }
                }
                out.insert("spec".into(), Value::Object(spec));
            }
            other => notes.skip(p.clone(), format!("job.{other} has no cutover equivalent")),
        }
    }
    Value::Object(out)
}

/// `cutover convert argo PATH…`: prints the converted stream; 1 when anything was left.
pub fn run(paths: &[PathBuf]) -> ExitCode {
    let files = match super::lint::expand(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut left = 0usize;
    let mut out = String::new();
    for file in &files {
        let name = file.display().to_string();
        let text = match if name == "-" {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(file)
        } {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read {name}: {e}");
                return ExitCode::from(2);
            }
        };
        for (i, doc) in super::lint::split_documents(&text).iter().enumerate() {
            let value: Value = match crate::yaml::from_str(doc) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("error: {name} document {}: not valid YAML: {e}", i + 1);
                    return ExitCode::from(2);
                }
            };
            let converted = convert(&value);
            out.push_str("---\n");
            let what = format!(
                "{} {}",
                value.get("kind").and_then(Value::as_str).unwrap_or("?"),
                value
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            );
            for u in &converted.unconverted {
                out.push_str(&format!("# not converted: {}: {}\n", u.path, u.reason));
                eprintln!("{name}: {what}: not converted: {}: {}", u.path, u.reason);
            }
            left += converted.unconverted.len();
            if let Some(object) = &converted.object {
                out.push_str(&crate::yaml::to_string(object));
            }
        }
    }
    print!("{out}");
    if left > 0 {
        eprintln!("cutover convert: {left} field(s) not converted, named above and in the output");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
