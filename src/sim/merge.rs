//! Patches and field ownership: JSON merge patch, strategic merge patch (keyed lists of the
//! built-in kinds), and the field sets that server-side apply tracks per manager.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::resources::list_merge_key;

/// Strategic merge patch: maps merge, `null` deletes, keyed lists merge by key (items with
/// `$patch: delete` are removed), other lists are replaced.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    strategic_merge_field(target, patch, "");
}

fn strategic_merge_field(target: &mut Value, patch: &Value, field: &str) {
    match patch {
        Value::Object(patch_map) => {
            if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
                let mut replaced = patch.clone();
                if let Some(m) = replaced.as_object_mut() {
                    m.remove("$patch");
                }
                *target = replaced;
                return;
            }
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let Some(target_map) = target.as_object_mut() else {
                return;
            };
            for (key, value) in patch_map {
                if key.starts_with('$') {
                    continue;
                }
                if value.is_null() {
                    target_map.remove(key);
                    continue;
                }
                let entry = target_map.entry(key.clone()).or_insert(Value::Null);
                strategic_merge_field(entry, value, key);
            }
        }
        Value::Array(items) => match list_merge_key(field) {
            Some(merge_key) if target.is_array() => {
                let Some(list) = target.as_array_mut() else {
                    return;
                };
                for item in items {
                    let key = item.get(merge_key);
                    let position = list
                        .iter()
                        .position(|existing| key.is_some() && existing.get(merge_key) == key);
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    match (position, delete) {
                        (Some(i), true) => {
                            list.remove(i);
                        }
                        (Some(i), false) => strategic_merge_field(&mut list[i], item, ""),
                        (None, true) => {}
                        (None, false) => {
                            let mut fresh = Value::Null;
                            strategic_merge_field(&mut fresh, item, "");
                            list.push(fresh);
                        }
                    }
                }
            }
            _ => *target = strip_directives(patch),
        },
        _ => *target = patch.clone(),
    }
}

fn strip_directives(value: &Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// One step of a field path, in the FieldsV1 spelling: `f:name` for a field, `k:{...}` for
/// the item of a keyed list.
pub type FieldPath = Vec<String>;

/// The set of fields a manager owns.
pub type FieldSet = BTreeSet<FieldPath>;

/// Metadata fields that belong to the server, never to a manager.
const SERVER_FIELDS: [&str; 9] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
];

/// Whether `object` is of a built-in kind, whose Go types mark some fields atomic; custom
/// resources merge granularly unless their schema says otherwise.
fn built_in(object: &Value) -> bool {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match api_version.rsplit_once('/') {
        None => !api_version.is_empty(),
        Some((group, _)) => {
            !group.contains('.')
                || (group.ends_with(".k8s.io") && group != "gateway.networking.k8s.io")
        }
    }
}

/// Fields of built-in kinds that server-side apply treats as one value: label selectors
/// (`+structType=atomic`) and a Service's selector (`+mapType=atomic`).
fn atomic(field: &str) -> bool {
    matches!(
        field,
        "selector" | "podSelector" | "namespaceSelector" | "labelSelector"
    )
}

/// Whether the value at `path` in `object` is owned and applied as one value.
pub fn is_atomic(object: &Value, path: &[String]) -> bool {
    built_in(object)
        && path
            .last()
            .and_then(|step| step.strip_prefix("f:"))
            .is_some_and(atomic)
}

/// The leaf fields set in `object` (what a manager claims by applying it).
pub fn fields_of(object: &Value) -> FieldSet {
    let atomics = built_in(object);
    let mut out = FieldSet::new();
    if let Some(map) = object.as_object() {
        for (key, value) in map {
            match key.as_str() {
                "apiVersion" | "kind" => {}
                "metadata" => {
                    if let Some(meta) = value.as_object() {
                        for (mk, mv) in meta {
                            if !SERVER_FIELDS.contains(&mk.as_str()) {
                                collect(
                                    mv,
                                    mk,
                                    vec!["f:metadata".into(), format!("f:{mk}")],
                                    atomics,
                                    &mut out,
                                );
                            }
                        }
                    }
                }
                _ => collect(value, key, vec![format!("f:{key}")], atomics, &mut out),
            }
        }
    }
    out
}

fn collect(value: &Value, field: &str, prefix: FieldPath, atomics: bool, out: &mut FieldSet) {
    match value {
        Value::Object(map) if !(map.is_empty() || atomics && atomic(field)) => {
            for (k, v) in map {
                let mut path = prefix.clone();
                path.push(format!("f:{k}"));
                collect(v, k, path, atomics, out);
            }
        }
        Value::Array(items) => match keyed(field, items) {
            Some(key) => {
                for item in items {
                    let mut path = prefix.clone();
                    path.push(item_key(key, item));
                    collect_item(item, path, atomics, out);
                }
                if items.is_empty() {
                    out.insert(prefix);
                }
            }
            None => {
                out.insert(prefix);
            }
        },
        _ => {
            out.insert(prefix);
        }
    }
}

fn collect_item(item: &Value, prefix: FieldPath, atomics: bool, out: &mut FieldSet) {
    if let Some(map) = item.as_object() {
        for (k, v) in map {
            let mut path = prefix.clone();
            path.push(format!("f:{k}"));
            collect(v, k, path, atomics, out);
        }
    }
}

fn keyed(field: &str, items: &[Value]) -> Option<&'static str> {
    let key = list_merge_key(field)?;
    items.iter().all(|i| i.get(key).is_some()).then_some(key)
}

fn item_key(key: &str, item: &Value) -> String {
    let mut m = Map::new();
    m.insert(
        key.to_string(),
        item.get(key).cloned().unwrap_or(Value::Null),
    );
    format!("k:{}", Value::Object(m))
}

/// The value at `path` in `object`, if present.
pub fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut current = object;
    for step in path {
        current = if let Some(field) = step.strip_prefix("f:") {
            current.get(field)?
        } else if let Some(key) = step.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(key).ok()?;
            current
                .as_array()?
                .iter()
                .find(|item| key.iter().all(|(k, v)| item.get(k) == Some(v)))?
        } else {
            return None;
        };
    }
    Some(current)
}

/// Removes the value at `path`, if present; empty parents are left in place.
pub fn remove_at(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = object;
    for step in parents {
        let next = if let Some(field) = step.strip_prefix("f:") {
            current.get_mut(field)
        } else if let Some(key) = step.strip_prefix("k:") {
            let Ok(key) = serde_json::from_str::<Map<String, Value>>(key) else {
                return;
            };
            current.as_array_mut().and_then(|a| {
                a.iter_mut()
                    .find(|item| key.iter().all(|(k, v)| item.get(k) == Some(v)))
            })
        } else {
            None
        };
        match next {
            Some(n) => current = n,
            None => return,
        }
    }
    if let Some(field) = last.strip_prefix("f:") {
        if let Some(m) = current.as_object_mut() {
            m.remove(field);
        }
    } else if let Some(key) = last.strip_prefix("k:")
        && let Ok(key) = serde_json::from_str::<Map<String, Value>>(key)
        && let Some(a) = current.as_array_mut()
    {
        a.retain(|item| !key.iter().all(|(k, v)| item.get(k) == Some(v)));
    }
}

/// Merges an applied configuration into the live object: maps recursively, keyed lists by
/// key, everything else replaced.
pub fn apply_merge(live: &mut Value, applied: &Value) {
    let atomics = built_in(applied) || built_in(live);
    apply_merge_field(live, applied, "", atomics);
}

fn apply_merge_field(live: &mut Value, applied: &Value, field: &str, atomics: bool) {
    match applied {
        Value::Object(_) if atomics && atomic(field) => *live = applied.clone(),
        Value::Object(applied_map) => {
            if !live.is_object() {
                *live = Value::Object(Map::new());
            }
            let Some(live_map) = live.as_object_mut() else {
                return;
            };
            for (k, v) in applied_map {
                let entry = live_map.entry(k.clone()).or_insert(Value::Null);
                apply_merge_field(entry, v, k, atomics);
            }
        }
        Value::Array(items) => match (keyed(field, items), live.as_array_mut()) {
            (Some(key), Some(list)) => {
                for item in items {
                    let id = item.get(key);
                    match list.iter_mut().find(|existing| existing.get(key) == id) {
                        Some(existing) => apply_merge_field(existing, item, "", atomics),
                        None => list.push(item.clone()),
                    }
                }
            }
            _ => *live = applied.clone(),
        },
        other => *live = other.clone(),
    }
}

/// Whether two field paths overlap (one is a prefix of the other).
pub fn overlaps(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// Encodes a field set as a FieldsV1 tree (`{"f:spec":{"f:replicas":{}}}`).
pub fn to_fields_v1(fields: &FieldSet) -> Value {
    let mut root = json!({});
    // Longest paths first, so that a path that is also a parent gets its "." marker.
    for path in fields.iter().rev() {
        insert_path(&mut root, path);
    }
    root
}

fn insert_path(node: &mut Value, path: &[String]) {
    let Some(map) = node.as_object_mut() else {
        return;
    };
    match path.split_first() {
        None => {
            if !map.is_empty() {
                map.insert(".".into(), json!({}));
            }
        }
        Some((step, rest)) => {
            insert_path(map.entry(step.clone()).or_insert_with(|| json!({})), rest)
        }
    }
}

/// Decodes a FieldsV1 tree into a field set.
pub fn from_fields_v1(tree: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    walk_fields_v1(tree, Vec::new(), &mut out);
    out
}

fn walk_fields_v1(node: &Value, prefix: FieldPath, out: &mut FieldSet) {
    let Some(map) = node.as_object() else { return };
    let children: Vec<(&String, &Value)> = map.iter().filter(|(k, _)| k.as_str() != ".").collect();
    if (children.is_empty() || map.contains_key(".")) && !prefix.is_empty() {
        out.insert(prefix.clone());
    }
    for (k, v) in children {
        let mut path = prefix.clone();
        path.push(k.clone());
        walk_fields_v1(v, path, out);
    }
}

/// Renders a field path for messages: `.spec.template.spec.containers[name="web"].image`.
pub fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for step in path {
        if let Some(f) = step.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = step.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let inner: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", inner.join(",")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_in_selector_is_one_field_and_a_custom_resources_is_not() {
        let service = json!({"apiVersion": "v1", "kind": "Service",
            "spec": {"selector": {"app": "web", "tier": "front"}}});
        let fields = fields_of(&service);
        let whole = vec!["f:spec".to_string(), "f:selector".to_string()];
        assert_eq!(fields.iter().collect::<Vec<_>>(), vec![&whole]);
        assert!(is_atomic(&service, &whole));
        let mut live = json!({"apiVersion": "v1", "kind": "Service",
            "spec": {"selector": {"app": "web", "tier": "front"}}});
        apply_merge(
            &mut live,
            &json!({"apiVersion": "v1", "kind": "Service",
            "spec": {"selector": {"app": "web"}}}),
        );
        assert_eq!(
            live["spec"]["selector"],
            json!({"app": "web"}),
            "replaced whole"
        );
        let rollout = json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout",
            "spec": {"selector": {"matchLabels": {"app": "web"}}}});
        assert_eq!(fields_of(&rollout).len(), 1);
        assert!(!is_atomic(&rollout, &whole));
        assert!(
            fields_of(&rollout).iter().all(|f| f.len() == 4),
            "down to the label"
        );
    }

    #[test]
    fn strategic_merge_merges_containers_by_name_and_deletes_with_null() {
        let mut live = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "web:1"}, {"name": "sidecar", "image": "s:1"}]}}, "paused": true}});
        let patch = json!({"spec": {"paused": null, "template": {"spec": {"containers": [
            {"name": "web", "image": "web:2"}, {"name": "sidecar", "$patch": "delete"}]}}}});
        strategic_merge(&mut live, &patch);
        assert_eq!(
            live,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}})
        );
    }

    #[test]
    fn strategic_merge_replaces_unkeyed_lists() {
        let mut live = json!({"spec": {"ports": [{"port": 80}, {"port": 443}]}});
        strategic_merge(&mut live, &json!({"spec": {"ports": [{"port": 8080}]}}));
        assert_eq!(live, json!({"spec": {"ports": [{"port": 8080}]}}));
    }

    #[test]
    fn field_sets_round_trip_through_fields_v1() {
        let obj = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a", "labels": {"app": "web"}},
            "spec": {"replicas": 3, "containers": [{"name": "web", "image": "i"}], "ports": [1, 2], "empty": {}}});
        let fields = fields_of(&obj);
        assert!(fields.contains(&vec!["f:spec".to_string(), "f:replicas".into()]));
        assert!(fields.contains(&vec![
            "f:spec".to_string(),
            "f:containers".into(),
            "k:{\"name\":\"web\"}".into(),
            "f:image".into()
        ]));
        assert!(
            fields.contains(&vec!["f:spec".to_string(), "f:ports".into()]),
            "unkeyed lists are atomic"
        );
        assert!(fields.contains(&vec![
            "f:metadata".to_string(),
            "f:labels".into(),
            "f:app".into()
        ]));
        assert!(
            !fields
                .iter()
                .any(|p| p.contains(&"f:name".to_string()) && p.len() == 2)
        );
        assert_eq!(from_fields_v1(&to_fields_v1(&fields)), fields);
    }

    #[test]
    fn value_at_and_remove_at_follow_keyed_items() {
        let mut obj = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}});
        let path: FieldPath = vec![
            "f:spec".into(),
            "f:containers".into(),
            "k:{\"name\":\"b\"}".into(),
            "f:image".into(),
        ];
        assert_eq!(value_at(&obj, &path), Some(&json!("2")));
        remove_at(&mut obj, &path[..3]);
        assert_eq!(
            obj,
            json!({"spec": {"containers": [{"name": "a", "image": "1"}]}})
        );
    }

    #[test]
    fn apply_merge_keeps_fields_it_does_not_mention() {
        let mut live = json!({"spec": {"replicas": 3, "selector": {"app": "x"}, "containers": [{"name": "a", "image": "1", "args": ["x"]}]}});
        apply_merge(
            &mut live,
            &json!({"spec": {"replicas": 5, "containers": [{"name": "a", "image": "2"}]}}),
        );
        assert_eq!(
            live,
            json!({"spec": {"replicas": 5, "selector": {"app": "x"}, "containers": [{"name": "a", "image": "2", "args": ["x"]}]}})
        );
    }
}
