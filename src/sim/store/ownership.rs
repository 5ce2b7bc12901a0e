//! Server-side apply: which manager owns which fields, conflicts, and removal of fields a
//! manager stopped applying.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{ResourceType, Store, Subresource, WriteOptions, set};
use crate::sim::{
    error::ApiError,
    merge::{self, FieldPath, FieldSet},
};

impl Store {
    /// Server-side apply: conflicts with other managers' fields unless forced, removal of
    /// fields this manager stopped applying, merge of the rest.
    pub(super) fn apply(
        &self,
        rt: &ResourceType,
        live: &Value,
        applied: &Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let Some(manager) = opts.field_manager.as_deref() else {
            return Err(ApiError::bad_request(
                "PATCH with apply must set fieldManager",
            ));
        };
        if !applied.is_object() {
            return Err(ApiError::bad_request(
                "the applied configuration must be an object",
            ));
        }
        let mut applied = applied.clone();
        if sub == Subresource::Status {
            // Only the status, but still of its kind: what is atomic depends on it.
            let mut status = Map::new();
            for key in ["apiVersion", "kind"] {
                if let Some(value) = applied.get(key) {
                    status.insert(key.into(), value.clone());
                }
            }
            status.insert(
                "status".into(),
                applied.get("status").cloned().unwrap_or(json!({})),
            );
            applied = Value::Object(status);
        } else if rt.status_subresource
            && !rt.group.is_empty()
            && let Some(m) = applied.as_object_mut()
        {
            m.remove("status");
        }
        let new_fields = merge::fields_of(&applied);
        // An applied empty map claims the map, not its keys: it conflicts with nobody. An
        // atomic map is one value, contested whole.
        let contested: FieldSet = new_fields
            .iter()
            .filter(|f| {
                merge::is_atomic(&applied, f)
                    || !merge::value_at(&applied, f).is_some_and(Value::is_object)
            })
            .cloned()
            .collect();
        let mut managed = managed_sets(live);
        let mut conflicts = Vec::new();
        for entry in managed
            .iter_mut()
            .filter(|e| !(e.manager == manager && e.operation == "Apply"))
        {
            let overlapping: Vec<_> = entry
                .fields
                .iter()
                .filter(|owned| contested.iter().any(|f| merge::overlaps(f, owned)))
                .cloned()
                .collect();
            for owned in overlapping {
                let differs = contested
                    .iter()
                    .filter(|f| merge::overlaps(f, &owned))
                    .any(|f| merge::value_at(live, f) != merge::value_at(&applied, f));
                if !differs {
                    continue;
                }
                if opts.force {
                    entry.fields.remove(&owned);
                } else {
                    conflicts.push((entry.manager.clone(), merge::display_path(&owned)));
                }
            }
        }
        if !conflicts.is_empty() {
            conflicts.sort();
            conflicts.dedup();
            return Err(ApiError::apply_conflict(&conflicts));
        }
        let mut new = live.clone();
        let previous: FieldSet = managed
            .iter()
            .filter(|e| e.manager == manager && e.operation == "Apply")
            .flat_map(|e| e.fields.iter().cloned())
            .collect();
        let others: Vec<&FieldSet> = managed
            .iter()
            .filter(|e| !(e.manager == manager && e.operation == "Apply"))
            .map(|e| &e.fields)
            .collect();
        let dropped: Vec<FieldPath> = previous
            .difference(&new_fields)
            .filter(|d| !others.iter().any(|fields| protects(fields, d, live)))
            .cloned()
            .collect();
        remove_dropped(&mut new, &dropped, &new_fields, &others);
        merge::apply_merge(&mut new, &applied);
        managed.retain(|e| !(e.manager == manager && e.operation == "Apply"));
        managed.push(ManagedEntry {
            manager: manager.to_string(),
            operation: "Apply".into(),
            subresource: sub,
            fields: new_fields,
        });
        write_managed(&mut new, &managed, &rt.api_version(), &self.now());
        Ok(new)
    }
}

pub(super) struct ManagedEntry {
    manager: String,
    operation: String,
    subresource: Subresource,
    fields: FieldSet,
}

pub(super) fn managed_sets(object: &Value) -> Vec<ManagedEntry> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|e| ManagedEntry {
                    manager: e
                        .get("manager")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    operation: e
                        .get("operation")
                        .and_then(Value::as_str)
                        .unwrap_or("Update")
                        .to_string(),
                    subresource: if e.get("subresource").and_then(Value::as_str) == Some("status") {
                        Subresource::Status
                    } else {
                        Subresource::Main
                    },
                    fields: merge::from_fields_v1(e.get("fieldsV1").unwrap_or(&Value::Null)),
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn write_managed(
    object: &mut Value,
    entries: &[ManagedEntry],
    api_version: &str,
    now: &str,
) {
    let previous_times: BTreeMap<(String, String), Value> = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    let key = (
                        e.get("manager")?.as_str()?.to_string(),
                        e.get("operation")?.as_str()?.to_string(),
                    );
                    Some((key, e.get("time").cloned().unwrap_or(Value::Null)))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut entry = Map::new();
            entry.insert("manager".into(), json!(e.manager));
            entry.insert("operation".into(), json!(e.operation));
            entry.insert("apiVersion".into(), json!(api_version));
            let time = previous_times
                .get(&(e.manager.clone(), e.operation.clone()))
                .cloned()
                .unwrap_or_else(|| json!(now));
            entry.insert(
                "time".into(),
                if time.is_null() { json!(now) } else { time },
            );
            entry.insert("fieldsType".into(), json!("FieldsV1"));
            entry.insert("fieldsV1".into(), merge::to_fields_v1(&e.fields));
            if e.subresource == Subresource::Status {
                entry.insert("subresource".into(), json!("status"));
            }
            Value::Object(entry)
        })
        .collect();
    // As kube-apiserver orders them (by operation, time, manager, subresource, version), so
    // that an apply changing nothing leaves the list, and so the object, as it was.
    list.sort_by_cached_key(|e| {
        ["operation", "time", "manager", "subresource", "apiVersion"].map(|k| {
            e.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        })
    });
    if let Some(meta) = object.get_mut("metadata") {
        if list.is_empty() {
            if let Some(m) = meta.as_object_mut() {
                m.remove("managedFields");
            }
        } else {
            set(meta, "managedFields", Value::Array(list));
        }
    }
}

pub(super) fn set_managed(
    object: &mut Value,
    manager: &str,
    operation: &str,
    sub: Subresource,
    fields: &FieldSet,
    api_version: &str,
    now: &str,
) {
    let entries = vec![ManagedEntry {
        manager: manager.into(),
        operation: operation.into(),
        subresource: sub,
        fields: fields.clone(),
    }];
    write_managed(object, &entries, api_version, now);
}

/// A non-apply write by `manager`: it takes ownership of the fields it changed.
pub(super) fn record_update(
    old: &Value,
    new: &mut Value,
    manager: &str,
    sub: Subresource,
    api_version: &str,
    now: &str,
) {
    let old_fields = merge::fields_of(old);
    let new_fields = merge::fields_of(new);
    let changed: FieldSet = new_fields
        .iter()
        .filter(|f| merge::value_at(old, f) != merge::value_at(new, f))
        .chain(
            old_fields
                .iter()
                .filter(|f| merge::value_at(new, f).is_none()),
        )
        .cloned()
        .collect();
    if changed.is_empty() {
        return;
    }
    let mut managed = managed_sets(new);
    for entry in managed.iter_mut() {
        entry
            .fields
            .retain(|f| !changed.iter().any(|c| merge::overlaps(c, f)) || entry.manager == manager);
    }
    let mine: FieldSet = changed
        .into_iter()
        .filter(|f| merge::value_at(new, f).is_some())
        .collect();
    match managed
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == "Update")
    {
        Some(entry) => entry.fields.extend(mine),
        None => managed.push(ManagedEntry {
            manager: manager.into(),
            operation: "Update".into(),
            subresource: sub,
            fields: mine,
        }),
    }
    write_managed(new, &managed, api_version, now);
}

/// Whether another manager's `fields` keep `dropped` alive: owning the field, a child of it,
/// or an atomic parent does; owning a parent map does not.
fn protects(fields: &FieldSet, dropped: &[String], live: &Value) -> bool {
    fields.iter().any(|f| {
        merge::overlaps(f, dropped)
            && (f.len() >= dropped.len() || !merge::value_at(live, f).is_some_and(Value::is_object))
    })
}

/// Removes fields a manager stopped applying: whole keyed-list items it no longer applies
/// (before their key fields go and they can no longer be found), then leaves, then the maps
/// those removals left empty.
fn remove_dropped(
    object: &mut Value,
    dropped: &[FieldPath],
    applied: &FieldSet,
    others: &[&FieldSet],
) {
    let mut items: Vec<FieldPath> = Vec::new();
    for path in dropped {
        for (i, step) in path.iter().enumerate() {
            let prefix = &path[..=i];
            let still_applied = applied.iter().any(|f| f.starts_with(prefix));
            let still_owned = others
                .iter()
                .any(|o| o.iter().any(|f| f.starts_with(prefix)));
            if step.starts_with("k:")
                && !still_applied
                && !still_owned
                && !items.iter().any(|p| prefix.starts_with(p))
            {
                items.push(prefix.to_vec());
            }
        }
    }
    for item in &items {
        merge::remove_at(object, item);
    }
    let mut leaves: Vec<&FieldPath> = dropped
        .iter()
        .filter(|d| !items.iter().any(|i| d.starts_with(i)))
        .collect();
    leaves.sort_by_key(|d| std::cmp::Reverse(d.len()));
    for leaf in leaves {
        merge::remove_at(object, leaf);
        // A map the manager held only through what it stopped applying goes whole, with
        // what nobody owns inside it (the defaults the API server filled in), as
        // kube-apiserver removes it; one still applied or owned by another stays.
        for end in (1..leaf.len()).rev() {
            let parent = &leaf[..end];
            if parent.last().is_some_and(|s| s.starts_with("k:")) {
                break;
            }
            let still_applied = applied.iter().any(|f| f.starts_with(parent));
            let still_owned = others
                .iter()
                .any(|o| o.iter().any(|f| f.starts_with(parent)));
            if still_applied || still_owned {
                break;
            }
            merge::remove_at(object, parent);
        }
    }
}
