//! Core v1 Events as a second API of the events.k8s.io/v1 Events the store keeps: one set
//! of objects under two APIs, converted field by field as the API server converts them, so
//! `kubectl describe` and `kubectl get events` show what the operator published.

use serde_json::{Map, Value};

use super::resources::ResourceType;

/// Fields named differently by the two APIs: events.k8s.io/v1 first, core v1 second.
const RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// Whether `rt` is core v1 Events, served from the events.k8s.io/v1 objects.
pub(super) fn is_core_events(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.plural == "events"
}

fn rename(object: Map<String, Value>, to_core: bool) -> Map<String, Value> {
    object
        .into_iter()
        .map(|(key, value)| {
            let renamed = RENAMES.iter().find_map(|(v1, core)| {
                let (from, to) = if to_core { (v1, core) } else { (core, v1) };
                (key == *from).then(|| to.to_string())
            });
            (renamed.unwrap_or(key), value)
        })
        .collect()
}

fn with_type(mut object: Map<String, Value>, api_version: &str, kind: &str) -> Value {
    object.insert("apiVersion".into(), Value::from(api_version));
    if object.contains_key("kind") || kind == "Event" {
        object.insert("kind".into(), Value::from(kind));
    }
    Value::Object(object)
}

/// A stored Event, or a list or watch object of them, as core v1 serves it.
pub(super) fn to_core(value: Value) -> Value {
    let Value::Object(mut object) = value else {
        return value;
    };
    if let Some(Value::Array(items)) = object.remove("items") {
        let items = items.into_iter().map(to_core).collect();
        object.insert("items".into(), Value::Array(items));
        return with_type(object, "v1", "EventList");
    }
    if object.get("kind").and_then(Value::as_str) != Some("Event") {
        return Value::Object(object);
    }
    let mut core = rename(object, true);
    // Core v1 always carries these two, empty when the event was published without them.
    core.entry("involvedObject")
        .or_insert_with(|| Value::Object(Map::new()));
    core.entry("source")
        .or_insert_with(|| Value::Object(Map::new()));
    with_type(core, "v1", "Event")
}

/// A core v1 request body (an object, a merge or apply patch, or a JSON patch) in the
/// events.k8s.io/v1 form the store keeps.
pub(super) fn from_core(body: Value) -> Value {
    match body {
        Value::Object(object) => {
            let has_version = object.contains_key("apiVersion");
            let mut v1 = rename(object, false);
            if has_version {
                v1.insert("apiVersion".into(), Value::from("events.k8s.io/v1"));
            }
            Value::Object(v1)
        }
        // JSON patch: the first segment of each path is a field name.
        Value::Array(ops) => Value::Array(
            ops.into_iter()
                .map(|mut op| {
                    for key in ["path", "from"] {
                        if let Some(path) = op.get(key).and_then(Value::as_str) {
                            let renamed = rename_path(path);
                            op[key] = Value::from(renamed);
                        }
                    }
                    op
                })
                .collect(),
        ),
        other => other,
    }
}

fn rename_path(path: &str) -> String {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let (first, tail) = rest
        .split_once('/')
        .map_or((rest, None), |(f, t)| (f, Some(t)));
    let first = RENAMES
        .iter()
        .find(|(_, core)| *core == first)
        .map_or(first, |(v1, _)| v1);
    match tail {
        Some(tail) => format!("/{first}/{tail}"),
        None => format!("/{first}"),
    }
}

/// A core v1 field selector (`involvedObject.name=web,...`) over the stored fields.
pub(super) fn field_selector_from_core(selector: &str) -> String {
    selector
        .split(',')
        .map(|requirement| {
            let first = requirement
                .split(['.', '=', '!'])
                .next()
                .unwrap_or_default();
            match RENAMES.iter().find(|(_, core)| *core == first) {
                Some((v1, _)) => format!("{v1}{}", &requirement[first.len()..]),
                None => requirement.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored() -> Value {
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "demo"},
            "eventTime": "2026-01-01T00:00:00.000000Z", "type": "Normal", "reason": "Promoted",
            "action": "Promoted", "note": "promoted to web:2",
            "regarding": {"kind": "Rollout", "name": "web", "namespace": "demo"},
            "reportingController": "cutover.dev/operator", "reportingInstance": "cutover-0",
            "deprecatedCount": 2})
    }

    #[test]
    fn a_stored_event_reads_as_core_v1() {
        let core = to_core(stored());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["kind"], "Event");
        assert_eq!(core["involvedObject"]["name"], "web");
        assert_eq!(core["message"], "promoted to web:2");
        assert_eq!(core["reportingComponent"], "cutover.dev/operator");
        assert_eq!(core["count"], 2);
        assert_eq!(core["source"], json!({}));
        for v1_only in [
            "regarding",
            "note",
            "reportingController",
            "deprecatedCount",
        ] {
            assert!(core.get(v1_only).is_none(), "{v1_only} left in {core}");
        }
        assert_eq!(
            core["eventTime"],
            stored()["eventTime"],
            "shared fields unchanged"
        );
    }

    #[test]
    fn core_v1_converts_back_to_what_is_stored() {
        let mut core = to_core(stored());
        core.as_object_mut().map(|o| o.remove("source"));
        assert_eq!(from_core(core), stored());
    }

    #[test]
    fn lists_convert_each_item_and_their_kind() {
        let list = json!({"apiVersion": "events.k8s.io/v1", "kind": "EventList", "metadata": {}, "items": [stored()]});
        let core = to_core(list);
        assert_eq!(core["kind"], "EventList");
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["items"][0]["message"], "promoted to web:2");
    }

    #[test]
    fn other_objects_pass_through() {
        let status =
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "m"});
        assert_eq!(to_core(status.clone()), status);
    }

    #[test]
    fn patches_name_the_stored_fields() {
        assert_eq!(
            from_core(json!({"message": "m", "count": 3})),
            json!({"note": "m", "deprecatedCount": 3})
        );
        assert_eq!(
            from_core(
                json!([{"op": "replace", "path": "/involvedObject/name", "value": "x"},
                {"op": "copy", "from": "/message", "path": "/reason"}])
            ),
            json!([{"op": "replace", "path": "/regarding/name", "value": "x"},
                {"op": "copy", "from": "/note", "path": "/reason"}])
        );
    }

    #[test]
    fn field_selectors_name_the_stored_fields() {
        assert_eq!(
            field_selector_from_core(
                "involvedObject.name=web,involvedObject.kind==Rollout,type!=Normal,reason=X"
            ),
            "regarding.name=web,regarding.kind==Rollout,type!=Normal,reason=X"
        );
        assert_eq!(field_selector_from_core("source=x"), "deprecatedSource=x");
    }
}
