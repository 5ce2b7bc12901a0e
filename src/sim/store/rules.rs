//! The API server's rules for what a write stores: server-owned metadata, status as a
//! subresource, generation, no-op detection, CRD registration, names and tokens.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{EventType, Inner, Key, Store, Subresource, name_of};
use crate::sim::{error::ApiError, resources::ResourceType};

impl Store {
    pub(super) fn establish_crd(&self, inner: &mut Inner, crd: &mut Value) -> Result<(), ApiError> {
        let served = check_crd(crd)?;
        let now = self.now();
        crd["status"] = json!({
            "acceptedNames": crd.pointer("/spec/names").cloned().unwrap_or(json!({})),
            "storedVersions": [served.version],
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now}
            ]
        });
        inner
            .types
            .retain(|t| !(t.group == served.group && t.plural == served.plural));
        inner.types.push(Arc::new(served));
        Ok(())
    }

    pub(super) fn unregister_crd(&self, inner: &mut Inner, crd: &Value) {
        let Ok(served) = ResourceType::from_crd(crd) else {
            return;
        };
        let keys: Vec<Key> = inner
            .objects
            .keys()
            .filter(|k| k.group == served.group && k.plural == served.plural)
            .cloned()
            .collect();
        for key in keys {
            if let Some(object) = inner.objects.get(&key).map(super::Packed::unpack) {
                self.store_locked(inner, &served, key, object, EventType::Deleted);
            }
        }
        inner
            .types
            .retain(|t| !(t.group == served.group && t.plural == served.plural));
    }
}

/// The kind a CRD would serve, or why it is invalid.
pub(super) fn check_crd(crd: &Value) -> Result<ResourceType, ApiError> {
    let name = name_of(crd);
    let served = ResourceType::from_crd(crd).map_err(|e| {
        ApiError::invalid("CustomResourceDefinition", &name, vec![("spec".into(), e)])
    })?;
    let expected = format!("{}.{}", served.plural, served.group);
    if name != expected {
        return Err(ApiError::invalid(
            "CustomResourceDefinition",
            &name,
            vec![(
                "metadata.name".into(),
                format!("must be spec.names.plural+\".\"+spec.group: {expected:?}"),
            )],
        ));
    }
    Ok(served)
}

/// A write based on `rv` conflicts when the object has moved on since (an empty or absent
/// resourceVersion writes unconditionally, as the API server allows for most kinds).
pub(super) fn check_fresh(
    rt: &ResourceType,
    name: &str,
    old: &Value,
    rv: Option<&str>,
) -> Result<(), ApiError> {
    match rv {
        Some(rv)
            if !rv.is_empty()
                && Some(rv)
                    != old
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str) =>
        {
            Err(ApiError::conflict(
                &super::resource_name(rt),
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ))
        }
        _ => Ok(()),
    }
}

pub(super) fn encode_continue(namespace: &str, name: &str) -> String {
    let raw = format!("{namespace}/{name}");
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    let bad = || ApiError::bad_request("invalid continue token");
    if !token.len().is_multiple_of(2) || token.len() > 1024 {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect();
    let text = String::from_utf8(bytes.map_err(|_| bad())?).map_err(|_| bad())?;
    let (ns, name) = text.split_once('/').ok_or_else(bad)?;
    Ok((ns.to_string(), name.to_string()))
}

pub(super) fn random_suffix(seq: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    // A cheap mix so consecutive names do not look alike; uniqueness comes from `seq`.
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..5)
        .map(|_| {
            let c = ALPHABET[(x % ALPHABET.len() as u64) as usize] as char;
            x /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

pub(super) fn uid(seq: u64) -> String {
    let hi = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (hi >> 32) as u32,
        (hi >> 16) as u16,
        hi as u16 & 0xfff,
        seq & 0xfff,
        seq
    )
}

/// The object a write produces: the body for the main resource (keeping the stored status
/// when status is a subresource), or the stored object with the body's status.
pub(super) fn compose(rt: &ResourceType, old: &Value, body: Value, sub: Subresource) -> Value {
    let mut new = match sub {
        Subresource::Status => {
            let mut new = old.clone();
            match body.get("status") {
                Some(status) => new["status"] = status.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            // Field ownership recorded by a server-side apply to /status belongs to the object.
            if let Some(managed) = body.pointer("/metadata/managedFields") {
                new["metadata"]["managedFields"] = managed.clone();
            }
            new
        }
        Subresource::Main => {
            let mut new = body;
            if rt.status_subresource && !(rt.kind == "Namespace" && rt.group.is_empty()) {
                match old.get("status") {
                    Some(status) => new["status"] = status.clone(),
                    None => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            new
        }
    };
    new["apiVersion"] = old["apiVersion"].clone();
    new["kind"] = old["kind"].clone();
    if !new.get("metadata").is_some_and(Value::is_object) {
        new["metadata"] = json!({});
    }
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "resourceVersion",
    ] {
        match old.get("metadata").and_then(|m| m.get(field)) {
            Some(v) => new["metadata"][field] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(field);
                }
            }
        }
    }
    if new.pointer("/metadata/managedFields").is_none()
        && let Some(mf) = old.pointer("/metadata/managedFields")
    {
        new["metadata"]["managedFields"] = mf.clone();
    }
    new
}

pub(super) fn strip_for_generation(rt: &ResourceType, object: &Value) -> Value {
    let mut v = object.clone();
    // A Deployment's annotations are copied to its ReplicaSets, so kube-apiserver counts
    // their change as a new generation too.
    let annotations = (rt.group == "apps" && rt.plural == "deployments")
        .then(|| object.pointer("/metadata/annotations").cloned())
        .flatten();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        if let Some(a) = annotations {
            m.insert("annotations".into(), a);
        }
    }
    v
}

pub(super) fn strip_volatile(object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        if let Some(Value::Array(entries)) = meta.get_mut("managedFields") {
            for e in entries.iter_mut() {
                if let Some(e) = e.as_object_mut() {
                    e.remove("time");
                }
            }
        }
    }
    v
}

/// Fields kube-apiserver refuses to change after create, by (group, plural): a change is
/// `422 Invalid` with the field named, as the apiserver answers it.
const IMMUTABLE: &[(&str, &str, &str)] = &[
    ("apps", "deployments", "/spec/selector"),
    ("apps", "replicasets", "/spec/selector"),
    ("apps", "statefulsets", "/spec/selector"),
    ("apps", "daemonsets", "/spec/selector"),
    ("batch", "jobs", "/spec/selector"),
    ("batch", "jobs", "/spec/template"),
    ("", "services", "/spec/clusterIP"),
];

/// Refuses an update that changes a field the apiserver keeps immutable.
pub(super) fn check_immutable(rt: &ResourceType, old: &Value, new: &Value) -> Result<(), ApiError> {
    for (group, plural, pointer) in IMMUTABLE {
        if rt.group != *group || rt.plural != *plural {
            continue;
        }
        let (before, after) = (old.pointer(pointer), new.pointer(pointer));
        // Unset before (not yet defaulted) may be set once.
        if before.is_some() && before != after {
            let field = pointer.trim_start_matches('/').replace('/', ".");
            return Err(ApiError::invalid(
                &rt.kind,
                &name_of(new),
                vec![(field, "field is immutable".into())],
            ));
        }
    }
    Ok(())
}

/// `3600.0` is stored and compared as `3600`, as the API server's decoding and Go's
/// encoding of a float make it; otherwise an apply of the same manifest written with a
/// decimal point would conflict with itself.
pub fn whole_numbers_as_integers(value: &mut Value) {
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9_007_199_254_740_992.0
            {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        Value::Object(map) => map.values_mut().for_each(whole_numbers_as_integers),
        _ => {}
    }
}

/// Empty metadata maps and lists are not kept: the API server's ObjectMeta omits them, so
/// a patch that leaves `annotations: {}` reads back without it.
pub(super) fn drop_empty_metadata(object: &mut Value) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "labels",
            "annotations",
            "finalizers",
            "ownerReferences",
            "managedFields",
        ] {
            let empty = match meta.get(key) {
                Some(Value::Object(m)) => m.is_empty(),
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::Null) => true,
                _ => false,
            };
            if empty {
                meta.remove(key);
            }
        }
    }
}

/// A Secret's `stringData` is write-only, as in the API server: merged into `data`
/// (base64, over keys of the same name) and never stored or returned.
pub(super) fn fold_string_data(rt: &ResourceType, object: &mut Value) {
    use base64::Engine;
    if rt.group.is_empty() && rt.kind == "Secret" {
        let Some(map) = object.as_object_mut() else {
            return;
        };
        let Some(Value::Object(strings)) = map.remove("stringData") else {
            return;
        };
        let data = map
            .entry("data")
            .or_insert_with(|| Value::Object(Default::default()));
        if !data.is_object() {
            *data = Value::Object(Default::default());
        }
        if let Some(data) = data.as_object_mut() {
            for (key, value) in strings {
                let text = value.as_str().unwrap_or_default();
                data.insert(
                    key,
                    Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_lose_their_decimal_point_and_fractions_keep_it() {
        let mut value = json!({"maximum": 3600.0, "ratio": 0.5, "list": [1.0, 2, -7.0], "big": 1e300, "text": "1.0"});
        whole_numbers_as_integers(&mut value);
        assert_eq!(
            value,
            json!({"maximum": 3600, "ratio": 0.5, "list": [1, 2, -7], "big": 1e300, "text": "1.0"})
        );
        assert!(value["maximum"].is_i64());
    }

    #[test]
    fn empty_metadata_is_not_kept() {
        let mut value = json!({"metadata": {"name": "a", "labels": {}, "annotations": {"k": "v"}, "finalizers": []}});
        drop_empty_metadata(&mut value);
        assert_eq!(
            value,
            json!({"metadata": {"name": "a", "annotations": {"k": "v"}}})
        );
    }
}
