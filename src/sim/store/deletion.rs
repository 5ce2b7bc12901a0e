//! Deletion: finalizers, namespaces, foreground and background garbage collection.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{EventType, Inner, Key, Propagation, ResourceType, Store, resource_name, set};
use crate::sim::error::ApiError;

impl Store {
    /// Deletes an object: at once, or (with finalizers) by marking it for deletion.
    pub fn delete(
        &self,
        rt: &Arc<ResourceType>,
        namespace: &str,
        name: &str,
        propagation: Propagation,
        precondition_rv: Option<&str>,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let (key, old) = to_delete(&inner, rt, namespace, name, precondition_rv)?;
        Ok(self.delete_locked(&mut inner, rt, key, old, propagation))
    }

    /// What a delete would answer, deleting nothing (`dryRun=All`).
    pub fn delete_dry_run(
        &self,
        rt: &Arc<ResourceType>,
        namespace: &str,
        name: &str,
        precondition_rv: Option<&str>,
    ) -> Result<Value, ApiError> {
        let inner = self.lock();
        let (_, mut object) = to_delete(&inner, rt, namespace, name, precondition_rv)?;
        let held = object
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if held && object.pointer("/metadata/deletionTimestamp").is_none() {
            let now = self.now();
            if let Some(meta) = object.get_mut("metadata") {
                set(meta, "deletionTimestamp", json!(now));
                set(meta, "deletionGracePeriodSeconds", json!(0));
            }
        }
        Ok(object)
    }

    pub(super) fn delete_locked(
        &self,
        inner: &mut Inner,
        rt: &ResourceType,
        key: Key,
        old: Value,
        propagation: Propagation,
    ) -> Value {
        let mut finalizers: Vec<Value> = old
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let dependents = dependents_of(inner, &old);
        if propagation == Propagation::Foreground
            && !dependents.is_empty()
            && !finalizers.contains(&json!("foregroundDeletion"))
        {
            finalizers.push(json!("foregroundDeletion"));
        }
        let is_namespace = rt.kind == "Namespace" && rt.group.is_empty();
        let namespace_busy = is_namespace && inner.populated(&key.name);
        if finalizers.is_empty() && !namespace_busy {
            return self.remove_locked(inner, rt, key, old, propagation);
        }
        let mut marked = old.clone();
        if marked.pointer("/metadata/deletionTimestamp").is_none() {
            let now = self.now();
            if let Some(meta) = marked.get_mut("metadata") {
                set(meta, "deletionTimestamp", json!(now));
                set(meta, "deletionGracePeriodSeconds", json!(0));
                set(meta, "finalizers", json!(finalizers));
            }
            if is_namespace {
                marked["status"] = json!({"phase": "Terminating"});
            }
            marked = self.store_locked(inner, rt, key.clone(), marked, EventType::Modified);
        }
        if propagation == Propagation::Foreground || is_namespace {
            let targets = if is_namespace {
                objects_in_namespace(inner, &key.name)
            } else {
                dependents
            };
            for (dep_type, dep_key, dep) in targets {
                self.delete_locked(inner, &dep_type, dep_key, dep, Propagation::Background);
            }
            self.finish_pending(inner);
        }
        inner
            .objects
            .get(&key)
            .map(super::Packed::unpack)
            .unwrap_or(marked)
    }

    pub(super) fn remove_locked(
        &self,
        inner: &mut Inner,
        rt: &ResourceType,
        key: Key,
        object: Value,
        propagation: Propagation,
    ) -> Value {
        let removed = self.store_locked(inner, rt, key.clone(), object, EventType::Deleted);
        if rt.kind == "CustomResourceDefinition" {
            self.unregister_crd(inner, &removed);
        }
        let uid = removed
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        for (dep_type, dep_key, dep) in dependents_of(inner, &removed) {
            if propagation == Propagation::Orphan {
                let mut orphan = dep.clone();
                if let Some(refs) = orphan
                    .pointer_mut("/metadata/ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid.as_str()));
                }
                self.store_locked(inner, &dep_type, dep_key, orphan, EventType::Modified);
            } else {
                self.delete_locked(inner, &dep_type, dep_key, dep, Propagation::Background);
            }
        }
        self.finish_pending(inner);
        removed
    }

    /// Removes owners waiting on foreground deletion and namespaces waiting to be empty.
    pub(super) fn finish_pending(&self, inner: &mut Inner) {
        loop {
            let ready: Option<(Arc<ResourceType>, Key, Value)> =
                inner.terminating.iter().find_map(|k| {
                    let o = inner.objects.get(k)?.unpack();
                    let finalizers = o
                        .pointer("/metadata/finalizers")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let is_ns = k.group.is_empty() && k.plural == "namespaces";
                    let only_foreground = finalizers.iter().all(|f| f == "foregroundDeletion");
                    let waiting_done = if is_ns {
                        finalizers.is_empty() && !inner.populated(&k.name)
                    } else {
                        !finalizers.is_empty()
                            && only_foreground
                            && inner.dependents.get(uid_of(&o)).is_none_or(Vec::is_empty)
                    };
                    if !waiting_done {
                        return None;
                    }
                    let rt = inner.type_of(k)?;
                    Some((rt, k.clone(), o))
                });
            let Some((rt, key, object)) = ready else {
                break;
            };
            self.remove_locked(inner, &rt, key, object, Propagation::Background);
        }
    }
}

/// The object a delete names, if it exists and its resourceVersion precondition holds.
fn to_delete(
    inner: &Inner,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    precondition_rv: Option<&str>,
) -> Result<(Key, Value), ApiError> {
    let key = Store::key(rt, namespace, name);
    let object = inner
        .objects
        .get(&key)
        .map(super::Packed::unpack)
        .ok_or_else(|| ApiError::not_found(&resource_name(rt), name))?;
    if let Some(rv) = precondition_rv
        && Some(rv)
            != object
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
    {
        return Err(ApiError::conflict(
            &resource_name(rt),
            name,
            "Precondition failed: the resourceVersion does not match",
        ));
    }
    Ok((key, object))
}

pub(super) fn dependents_of(inner: &Inner, owner: &Value) -> Vec<(Arc<ResourceType>, Key, Value)> {
    let uid = uid_of(owner);
    let Some(keys) = inner.dependents.get(uid).filter(|_| !uid.is_empty()) else {
        return Vec::new();
    };
    keys.iter()
        .filter_map(|k| {
            let o = inner.objects.get(k)?.unpack();
            let rt = inner.type_of(k)?;
            Some((rt, k.clone(), o))
        })
        .collect()
}

fn uid_of(object: &Value) -> &str {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

pub(super) fn objects_in_namespace(
    inner: &Inner,
    namespace: &str,
) -> Vec<(Arc<ResourceType>, Key, Value)> {
    inner
        .objects
        .iter()
        .filter(|(k, _)| k.namespace == namespace && !inner.terminating.contains(k))
        .filter_map(|(k, o)| {
            let rt = inner.type_of(k)?;
            Some((rt, k.clone(), o.unpack()))
        })
        .collect()
}
