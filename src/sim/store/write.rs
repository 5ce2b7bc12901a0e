//! The write path: create, update and patch as the API server runs them — names, server-owned
//! metadata, validation, immutability, generation, managed fields, no-op detection — and
//! the one place a write is stored and sent to watchers.

use std::sync::Arc;

use serde_json::{Value, json};

use super::ownership::{record_update, set_managed};
use super::rules::{compose, random_suffix, strip_for_generation, strip_volatile, uid};
use super::{
    EventType, Inner, Key, Packed, PatchKind, Propagation, Store, Subresource, WatchEvent,
    WriteOptions, merge, name_of, resource_name, rules, set,
};
use super::{defaults, validation};
use crate::sim::{error::ApiError, resources::ResourceType};

impl Store {
    /// Creates an object.
    pub fn create(
        &self,
        rt: &Arc<ResourceType>,
        namespace: &str,
        object: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        self.create_locked(&mut inner, rt, namespace, object, opts, "Update")
    }

    fn create_locked(
        &self,
        inner: &mut Inner,
        rt: &Arc<ResourceType>,
        namespace: &str,
        mut object: Value,
        opts: &WriteOptions,
        operation: &str,
    ) -> Result<Value, ApiError> {
        let Some(map) = object.as_object_mut() else {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        };
        map.insert("apiVersion".into(), json!(rt.api_version()));
        map.insert("kind".into(), json!(rt.kind));
        let meta = map.entry("metadata").or_insert_with(|| json!({}));
        if !meta.is_object() {
            return Err(ApiError::bad_request("metadata must be an object"));
        }
        let body_ns = meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let namespace = if rt.namespaced {
            if !namespace.is_empty() && !body_ns.is_empty() && body_ns != namespace {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            if namespace.is_empty() {
                body_ns
            } else {
                namespace.to_string()
            }
        } else {
            String::new()
        };
        if rt.namespaced {
            let ns_key = Key {
                group: String::new(),
                plural: "namespaces".into(),
                namespace: String::new(),
                name: namespace.clone(),
            };
            if !inner.objects.contains_key(&ns_key) {
                return Err(ApiError::not_found("namespaces", &namespace));
            }
            if inner.terminating.contains(&ns_key) {
                return Err(ApiError::forbidden_terminating(&namespace));
            }
        }
        let name = match (
            meta.get("name").and_then(Value::as_str),
            meta.get("generateName").and_then(Value::as_str),
        ) {
            (Some(n), _) if !n.is_empty() => n.to_string(),
            (_, Some(prefix)) => {
                inner.seq += 1;
                format!("{prefix}{}", random_suffix(inner.seq))
            }
            _ => {
                return Err(ApiError::invalid(
                    &rt.kind,
                    "",
                    vec![(
                        "metadata.name".into(),
                        "Required value: name or generateName is required".into(),
                    )],
                ));
            }
        };
        if !crate::cli::lint::is_dns_subdomain(&name) && rt.group != "apiextensions.k8s.io" {
            return Err(ApiError::invalid(
                &rt.kind,
                &name,
                vec![(
                    "metadata.name".into(),
                    format!(
                        "Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"
                    ),
                )],
            ));
        }
        let key = Self::key(rt, &namespace, &name);
        if inner.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&resource_name(rt), &name));
        }
        if rt.status_subresource && !rt.group.is_empty() && rt.kind != "Namespace" {
            map.remove("status");
        }
        inner.seq += 1;
        let uid = uid(inner.seq);
        let meta = map.entry("metadata").or_insert_with(|| json!({}));
        set(meta, "name", json!(name));
        if rt.namespaced {
            set(meta, "namespace", json!(namespace));
        } else if let Some(m) = meta.as_object_mut() {
            m.remove("namespace");
        }
        set(meta, "uid", json!(uid));
        set(meta, "creationTimestamp", json!(self.now()));
        set(meta, "generation", json!(1));
        if let Some(m) = meta.as_object_mut() {
            m.remove("resourceVersion");
            m.remove("deletionTimestamp");
        }
        // An apply owns the fields it applied, write-only ones (`stringData`) included, as a
        // later apply of the same manifest owns them.
        let applied = (operation == "Apply").then(|| merge::fields_of(&object));
        rules::fold_string_data(rt, &mut object);
        rules::drop_empty_metadata(&mut object);
        rules::whole_numbers_as_integers(&mut object);
        defaults::apply(rt, &mut object);
        defaults::allocate_cluster_ip(rt, &mut object, inner.seq);
        self.validate(rt, &mut object, None, opts)?;
        validation::check(rt, &object, None)?;
        validation::decodes(rt, &object)?;
        if let Some(manager) = &opts.field_manager {
            let fields = applied.unwrap_or_else(|| merge::fields_of(&object));
            set_managed(
                &mut object,
                manager,
                operation,
                Subresource::Main,
                &fields,
                &rt.api_version(),
                &self.now(),
            );
        }
        if opts.dry_run {
            if rt.kind == "CustomResourceDefinition" {
                rules::check_crd(&object)?;
            }
            return Ok(object);
        }
        if rt.kind == "CustomResourceDefinition" {
            self.establish_crd(inner, &mut object)?;
        }
        Ok(self.store_locked(inner, rt, key, object, EventType::Added))
    }

    fn validate(
        &self,
        rt: &ResourceType,
        object: &mut Value,
        old: Option<&Value>,
        opts: &WriteOptions,
    ) -> Result<(), ApiError> {
        let Some(schema) = &rt.schema else {
            return Ok(());
        };
        let name = name_of(object);
        let mut errors = schema.validate_update(object, old);
        if !opts.strict {
            let unknown: Vec<_> = errors
                .iter()
                .filter(|e| e.kind == crate::api::openapi::FieldErrorKind::Unknown)
                .cloned()
                .collect();
            if !unknown.is_empty() {
                crate::api::openapi::prune(schema.schema(), object);
                errors = schema.validate_update(object, old);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(
                &rt.kind,
                &name,
                errors.into_iter().map(|e| (e.path, e.message)).collect(),
            ))
        }
    }

    pub(super) fn store_locked(
        &self,
        inner: &mut Inner,
        rt: &ResourceType,
        key: Key,
        mut object: Value,
        kind: EventType,
    ) -> Value {
        inner.rv += 1;
        let rv = inner.rv;
        if let Some(meta) = object.get_mut("metadata") {
            set(meta, "resourceVersion", json!(rv.to_string()));
        }
        let packed = match inner.dictionary(rt) {
            Some(dictionary) => Packed::pack(&object, Some(dictionary)),
            None => {
                let first = Packed::pack(&object, None);
                inner
                    .dictionaries
                    .push((rt.group.clone(), rt.plural.clone(), first.json().into()));
                first
            }
        };
        let old = if kind == EventType::Deleted {
            inner.objects.remove(&key)
        } else {
            inner.objects.insert(key.clone(), packed.clone())
        };
        let new = (kind != EventType::Deleted).then_some(&object);
        inner.reindex(&key, old.is_some(), new);
        let event = Arc::new(WatchEvent {
            rv,
            kind,
            group: rt.group.clone(),
            plural: rt.plural.clone(),
            namespace: key.namespace,
            object: packed,
        });
        inner.history.push_back(event.clone());
        while inner.history.len() > inner.history_limit {
            if let Some(old) = inner.history.pop_front() {
                inner.compacted_rv = old.rv;
                *inner
                    .compacted_by_type
                    .entry((old.group.clone(), old.plural.clone()))
                    .or_default() = old.rv;
            }
        }
        // No receivers is fine: nobody watches yet.
        if let Some(feed) = inner.feeds.get(&(rt.group.clone(), rt.plural.clone())) {
            let _ = feed.send(event.clone());
        }
        let _ = self.events.send(event);
        object
    }

    /// Replaces an object (PUT), or only its status.
    pub fn update(
        &self,
        rt: &Arc<ResourceType>,
        namespace: &str,
        name: &str,
        body: Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let key = Self::key(rt, namespace, name);
        let old = inner
            .objects
            .get(&key)
            .map(Packed::unpack)
            .ok_or_else(|| ApiError::not_found(&resource_name(rt), name))?;
        rules::check_fresh(
            rt,
            name,
            &old,
            body.pointer("/metadata/resourceVersion")
                .and_then(Value::as_str),
        )?;
        if let Some(uid) = body.pointer("/metadata/uid").and_then(Value::as_str)
            && Some(uid) != old.pointer("/metadata/uid").and_then(Value::as_str)
        {
            return Err(ApiError::conflict(
                &resource_name(rt),
                name,
                "Precondition failed: UID in precondition does not match the UID of the object",
            ));
        }
        let new = compose(rt, &old, body, sub);
        self.commit_update(&mut inner, rt, key, old, new, sub, opts, "Update")
    }

    /// Patches an object; server-side apply creates it when missing.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &Arc<ResourceType>,
        namespace: &str,
        name: &str,
        kind: PatchKind,
        patch: &Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let key = Self::key(rt, namespace, name);
        let Some(old) = inner.objects.get(&key).map(Packed::unpack) else {
            if kind == PatchKind::Apply && sub == Subresource::Main {
                let Some(manager) = opts.field_manager.clone() else {
                    return Err(ApiError::bad_request(
                        "PATCH with apply must set fieldManager",
                    ));
                };
                let mut object = patch.clone();
                if let Some(meta) = object.get_mut("metadata") {
                    set(meta, "name", json!(name));
                }
                let opts = WriteOptions {
                    field_manager: Some(manager),
                    ..opts.clone()
                };
                return self.create_locked(&mut inner, rt, namespace, object, &opts, "Apply");
            }
            return Err(ApiError::not_found(&resource_name(rt), name));
        };
        // A resourceVersion in any patch, server-side apply included, is a precondition;
        // it holds even when the patch would change nothing.
        rules::check_fresh(
            rt,
            name,
            &old,
            patch
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str),
        )?;
        let (new, operation) = match kind {
            PatchKind::Merge => {
                let mut new = old.clone();
                json_patch::merge(&mut new, patch);
                (new, "Update")
            }
            PatchKind::Strategic => {
                let mut new = old.clone();
                merge::strategic_merge(&mut new, patch);
                (new, "Update")
            }
            PatchKind::Json => {
                let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                    .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                let mut new = old.clone();
                json_patch::patch(&mut new, &ops).map_err(|e| {
                    ApiError::unprocessable(format!("the JSON patch cannot be applied: {e}"))
                })?;
                (new, "Update")
            }
            PatchKind::Apply => (self.apply(rt, &old, patch, sub, opts)?, "Apply"),
        };
        let new = compose(rt, &old, new, sub);
        self.commit_update(&mut inner, rt, key, old, new, sub, opts, operation)
    }

    #[allow(clippy::too_many_arguments)]
    fn commit_update(
        &self,
        inner: &mut Inner,
        rt: &Arc<ResourceType>,
        key: Key,
        old: Value,
        mut new: Value,
        sub: Subresource,
        opts: &WriteOptions,
        operation: &str,
    ) -> Result<Value, ApiError> {
        // `compose` already kept the server's metadata (deletionTimestamp included).
        rules::fold_string_data(rt, &mut new);
        rules::drop_empty_metadata(&mut new);
        rules::whole_numbers_as_integers(&mut new);
        defaults::apply(rt, &mut new);
        defaults::keep_allocated(rt, &old, &mut new);
        self.validate(rt, &mut new, Some(&old), opts)?;
        validation::check(rt, &new, Some(&old))?;
        validation::decodes(rt, &new)?;
        rules::check_immutable(rt, &old, &new)?;
        if strip_for_generation(rt, &old) != strip_for_generation(rt, &new) {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            if let Some(meta) = new.get_mut("metadata") {
                set(meta, "generation", json!(generation));
            }
        }
        if operation == "Update"
            && let Some(manager) = &opts.field_manager
        {
            record_update(&old, &mut new, manager, sub, &rt.api_version(), &self.now());
        }
        if strip_volatile(&old) == strip_volatile(&new) {
            return Ok(old);
        }
        if opts.dry_run {
            if rt.kind == "CustomResourceDefinition" {
                rules::check_crd(&new)?;
            }
            return Ok(new);
        }
        if rt.kind == "CustomResourceDefinition" {
            self.establish_crd(inner, &mut new)?;
        }
        let deleting = new.pointer("/metadata/deletionTimestamp").is_some();
        let finalizers_left = new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if deleting && !finalizers_left {
            let stored = self.store_locked(inner, rt, key.clone(), new, EventType::Modified);
            return Ok(self.remove_locked(inner, rt, key, stored, Propagation::Background));
        }
        Ok(self.store_locked(inner, rt, key, new, EventType::Modified))
    }
}
