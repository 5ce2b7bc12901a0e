//! Other shapes of stored objects: the autoscaling/v1 Scale of the scale subresource, and
//! the meta.k8s.io/v1 Tables `kubectl get` prints.

use serde_json::{Value, json};

use super::{resources::ResourceType, store::name_of};

pub(super) fn to_scale(rt: &ResourceType, object: &Value) -> Value {
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

/// `app=web,tier=front` from a label map.
pub(super) fn selector_string(match_labels: &Value) -> String {
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
pub(super) fn to_table(rt: &ResourceType, value: &Value, now: jiff::Timestamp) -> Value {
    let items: Vec<Value> = match value.get("items").and_then(Value::as_array) {
        Some(items) => items.clone(),
        None => vec![value.clone()],
    };
    let rv = value
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(json!(""));
    if let Some(printer) = super::printers::printer(&rt.group, &rt.plural) {
        let columns: Vec<Value> = printer
            .columns
            .iter()
            .map(|c| super::printers::definition(*c))
            .collect();
        let rows: Vec<Value> = items
            .iter()
            .map(|item| json!({"cells": (printer.cells)(item, now), "object": partial(item)}))
            .collect();
        return json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv}, "columnDefinitions": columns, "rows": rows});
    }
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
                let path = c
                    .get("jsonPath")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let cell = first_at(item, path).cloned().unwrap_or(Value::Null);
                let is_date = c.get("type").and_then(Value::as_str) == Some("date");
                cells.push(if is_date { age_cell(&cell, now) } else { cell });
            }
            cells.push(age_cell(
                item.pointer("/metadata/creationTimestamp")
                    .unwrap_or(&Value::Null),
                now,
            ));
            json!({"cells": cells, "object": partial(item)})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv}, "columnDefinitions": columns, "rows": rows})
}

/// A row's object: its metadata alone, as kubectl asks for by default.
fn partial(item: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": item.get("metadata")})
}

/// The first value a printer column's JSONPath finds, as kube-apiserver fills a cell: fields,
/// `[N]`, `[*]` and `[?(@.field=="value")]` filters.
fn first_at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut found = vec![value];
    let mut rest = path.trim_start_matches('{').trim_end_matches('}');
    while !rest.is_empty() {
        if let Some(tail) = rest.strip_prefix('[') {
            let end = tail.find(']')?;
            let index = &tail[..end];
            rest = &tail[end + 1..];
            found = found.into_iter().flat_map(|v| select(v, index)).collect();
        } else if let Some(tail) = rest.strip_prefix('.') {
            let end = tail.find(['.', '[']).unwrap_or(tail.len());
            let field = &tail[..end];
            rest = &tail[end..];
            found = found.into_iter().filter_map(|v| v.get(field)).collect();
        } else {
            return None;
        }
    }
    found.into_iter().next()
}

/// The members of `value` an index selects: a position, every one, or a filter.
fn select<'a>(value: &'a Value, index: &str) -> Vec<&'a Value> {
    let Some(items) = value.as_array() else {
        return Vec::new();
    };
    if index == "*" {
        return items.iter().collect();
    }
    if let Ok(n) = index.parse::<usize>() {
        return items.get(n).into_iter().collect();
    }
    let Some(filter) = index.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) else {
        return Vec::new();
    };
    let Some((field, wanted)) = filter.split_once("==") else {
        return Vec::new();
    };
    let wanted = wanted.trim().trim_matches(['"', '\'']);
    items
        .iter()
        .filter(|item| item.get(field.trim()).and_then(Value::as_str) == Some(wanted))
        .collect()
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

/// Short age as kubectl prints it (apimachinery's `HumanDuration`): `45s`, `3m12s`, `2m`,
/// `5h`, `12d`, `3y`.
pub fn human_age(secs: u64) -> String {
    let (m, h) = (secs / 60, secs / 3600);
    let (d, y) = (h / 24, h / (24 * 365));
    let unless_zero = |n: u64, unit: &str| {
        if n == 0 {
            String::new()
        } else {
            format!("{n}{unit}")
        }
    };
    match secs {
        s if s < 120 => format!("{s}s"),
        s if m < 10 => format!("{m}m{}", unless_zero(s % 60, "s")),
        _ if m < 3 * 60 => format!("{m}m"),
        _ if h < 8 => format!("{h}h{}", unless_zero(m % 60, "m")),
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 => format!("{d}d{}", unless_zero(h % 24, "h")),
        _ if h < 24 * 365 * 2 => format!("{d}d"),
        _ if h < 24 * 365 * 8 => format!("{y}y{}", unless_zero(d % 365, "d")),
        _ => format!("{y}y"),
    }
}
