//! The sim's object store: every object as JSON, one resourceVersion counter, an event
//! history for watches, and the API server's write rules (optimistic concurrency,
//! generation, status subresource, finalizers, garbage collection, server-side apply).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{
    error::ApiError,
    merge,
    resources::{self, ResourceType},
    selector::{FieldSelector, LabelSelector},
};
use crate::controller::Clock;

mod defaults;
mod deletion;
mod ownership;
mod packed;
mod rules;
mod validation;
mod write;

pub use packed::Packed;
pub use rules::whole_numbers_as_integers;

use rules::{decode_continue, encode_continue};

/// Events kept for watches that resume from an older resourceVersion.
pub const HISTORY_LIMIT: usize = 10_000;

/// Type of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// The object was created.
    Added,
    /// The object changed.
    Modified,
    /// The object was removed.
    Deleted,
}

impl EventType {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as watchers see it.
#[derive(Clone, Debug)]
pub struct WatchEvent {
    /// resourceVersion of the change.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// API group of the object.
    pub group: String,
    /// Plural resource name.
    pub plural: String,
    /// Namespace (empty for cluster-scoped).
    pub namespace: String,
    /// The object after the change (before it, for deletions).
    pub object: Packed,
}

impl WatchEvent {
    /// The object, parsed.
    pub fn object(&self) -> Value {
        self.object.unpack()
    }
}

/// Events replayed to a new watch, and the receiver of the ones to come.
pub type WatchStart = (
    Vec<Arc<WatchEvent>>,
    broadcast::Receiver<Arc<WatchEvent>>,
    u64,
);

/// Which part of an object a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subresource {
    /// The object itself (status is kept as stored when the type has a status subresource).
    Main,
    /// Only `.status`.
    Status,
}

/// How a patch body is to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    /// RFC 7386 JSON merge patch.
    Merge,
    /// RFC 6902 JSON patch.
    Json,
    /// Strategic merge patch (keyed lists of built-in kinds).
    Strategic,
    /// Server-side apply.
    Apply,
}

/// Options of a write.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// `fieldManager` query parameter.
    pub field_manager: Option<String>,
    /// `force` for server-side apply.
    pub force: bool,
    /// `fieldValidation=Strict`: unknown fields are an error instead of being dropped.
    pub strict: bool,
    /// `dryRun=All`: everything a write does but store it.
    pub dry_run: bool,
}

/// How dependents are treated when their owner is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    /// Delete the owner now, its dependents right after.
    #[default]
    Background,
    /// Delete the dependents first; the owner goes when they are gone.
    Foreground,
    /// Leave the dependents, removing their owner reference.
    Orphan,
}

/// A page of a list.
#[derive(Clone, Debug)]
pub struct ListPage {
    /// The objects.
    pub items: Vec<Value>,
    /// resourceVersion of the list.
    pub rv: u64,
    /// Token for the next page, if any.
    pub continue_token: Option<String>,
}

/// Filters of list and watch.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Namespace, or all when `None`.
    pub namespace: Option<String>,
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
}

impl Filter {
    fn matches(&self, namespace: &str, object: &Value) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
            && self.labels.matches(object.pointer("/metadata/labels"))
            && self.fields.matches(object)
    }

    /// Whether a packed object matches, parsing only as much of it as the selectors read.
    pub fn matches_packed(&self, namespace: &str, object: &Packed) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
            && self.selects_packed(namespace, object)
    }

    /// Whether a packed object's labels and fields match, its namespace aside.
    fn selects_packed(&self, namespace: &str, object: &Packed) -> bool {
        if !self.fields.is_empty() {
            return self.matches(namespace, &object.unpack());
        }
        self.labels.is_empty() || self.labels.matches_by(|k| object.label(k))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    group: String,
    plural: String,
    namespace: String,
    name: String,
}

struct Inner {
    rv: u64,
    seq: u64,
    types: Vec<Arc<ResourceType>>,
    objects: BTreeMap<Key, Packed>,
    history: VecDeque<Arc<WatchEvent>>,
    history_limit: usize,
    /// Newest resourceVersion dropped from the history, of any type.
    compacted_rv: u64,
    /// Per type (group, plural): newest resourceVersion of its own dropped from the history.
    /// A watch is resumable while none of its type's events after it were dropped, as with
    /// the API server's watch cache per resource: a flood of Events does not expire a quiet
    /// type's watches.
    compacted_by_type: HashMap<(String, String), u64>,
    /// Owner uid → keys of the objects naming it in ownerReferences (garbage collection).
    /// Kept as sorted vectors: a B-tree set allocates room for eleven keys even for the one
    /// or two dependents an owner usually has.
    dependents: HashMap<Box<str>, Vec<Key>>,
    /// Key → owner uids of its ownerReferences (the reverse of `dependents`), sorted.
    owned_by: HashMap<Key, Box<[Box<str>]>>,
    /// Keys of objects with a deletionTimestamp, waiting on finalizers or dependents.
    terminating: BTreeSet<Key>,
    /// Namespace → how many objects live in it (a namespace is deleted once empty).
    population: HashMap<String, usize>,
    /// Per type (group, plural): the JSON its objects are compressed against, the first
    /// object of the type stored.
    dictionaries: Vec<(String, String, Arc<[u8]>)>,
    /// Per type (group, plural): the live feed of its watches, so a change wakes only the
    /// watches of its own type, as the API server's watch cache per resource does.
    feeds: HashMap<(String, String), broadcast::Sender<Arc<WatchEvent>>>,
}

impl Inner {
    /// Keeps the garbage-collection indexes in step with one object's change, so deletion
    /// never scans the whole store.
    fn reindex(&mut self, key: &Key, existed: bool, new: Option<&Value>) {
        let after: BTreeSet<&str> = new
            .and_then(|o| o.pointer("/metadata/ownerReferences"))
            .and_then(Value::as_array)
            .map(|refs| {
                refs.iter()
                    .filter_map(|r| r.get("uid").and_then(Value::as_str))
                    .filter(|uid| !uid.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let before = self.owned_by.remove(key).unwrap_or_default();
        for uid in before.iter().filter(|u| !after.contains(&***u)) {
            if let Some(keys) = self.dependents.get_mut(uid) {
                if let Ok(i) = keys.binary_search(key) {
                    keys.remove(i);
                }
                if keys.is_empty() {
                    self.dependents.remove(uid);
                }
            }
        }
        for uid in after.iter().filter(|u| !before.iter().any(|b| &**b == **u)) {
            let keys = self.dependents.entry((*uid).into()).or_default();
            if let Err(i) = keys.binary_search(key) {
                keys.insert(i, key.clone());
            }
        }
        if !after.is_empty() {
            self.owned_by
                .insert(key.clone(), after.into_iter().map(Box::from).collect());
        }
        let terminating = new.is_some_and(|o| o.pointer("/metadata/deletionTimestamp").is_some());
        if terminating {
            self.terminating.insert(key.clone());
        } else {
            self.terminating.remove(key);
        }
        if !key.namespace.is_empty() {
            match (existed, new.is_some()) {
                (false, true) => *self.population.entry(key.namespace.clone()).or_default() += 1,
                (true, false) => {
                    if let Some(n) = self.population.get_mut(&key.namespace) {
                        *n = n.saturating_sub(1);
                        if *n == 0 {
                            self.population.remove(&key.namespace);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// The JSON objects of `rt` are compressed against, once one was stored.
    fn dictionary(&self, rt: &ResourceType) -> Option<&Arc<[u8]>> {
        self.dictionaries
            .iter()
            .find(|(g, p, _)| *g == rt.group && *p == rt.plural)
            .map(|(_, _, d)| d)
    }

    /// Whether any object lives in `namespace`.
    fn populated(&self, namespace: &str) -> bool {
        self.population.get(namespace).is_some_and(|n| *n > 0)
    }

    /// The served type an object key belongs to.
    fn type_of(&self, key: &Key) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.group == key.group && t.plural == key.plural)
            .cloned()
    }
}

/// What a store holds, for sizing.
#[derive(Clone, Debug, Default)]
pub struct Footprint {
    /// Per resource: name, object count, bytes of JSON, bytes as stored (compressed).
    pub kinds: Vec<(String, usize, usize, usize)>,
    /// Events kept for resuming watches.
    pub history_events: usize,
    /// Bytes, as stored, of the past versions only the history keeps.
    pub history_only_bytes: usize,
}

/// The in-memory object store.
pub struct Store {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Arc<WatchEvent>>,
    clock: Clock,
    faults: super::faults::Faults,
}

const DEFAULT_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

impl Store {
    /// A store serving the built-in types, with the default namespaces.
    pub fn new(clock: Clock) -> Arc<Self> {
        Self::with_history_limit(clock, HISTORY_LIMIT)
    }

    /// A store keeping only `history_limit` events for resuming watches.
    pub fn with_history_limit(clock: Clock, history_limit: usize) -> Arc<Self> {
        // The live feed keeps only recent events (each slot holds an object until overwritten);
        // a watcher that falls further behind catches up from the history.
        let (events, _) = broadcast::channel(1 << 12);
        let store = Arc::new(Self {
            inner: Mutex::new(Inner {
                rv: 0,
                seq: 0,
                types: resources::builtins().into_iter().map(Arc::new).collect(),
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                history_limit: history_limit.max(1),
                compacted_rv: 0,
                compacted_by_type: HashMap::new(),
                dependents: HashMap::new(),
                owned_by: HashMap::new(),
                terminating: BTreeSet::new(),
                population: HashMap::new(),
                dictionaries: Vec::new(),
                feeds: HashMap::new(),
            }),
            events,
            clock,
            faults: Default::default(),
        });
        if let Some(ns_type) = store.resolve("", "v1", "namespaces") {
            for ns in DEFAULT_NAMESPACES {
                let _ = store.create(
                    &ns_type,
                    "",
                    json!({"metadata": {"name": ns}}),
                    &WriteOptions::default(),
                );
            }
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The faults injected into this store's API.
    pub fn faults(&self) -> &super::faults::Faults {
        &self.faults
    }

    /// Forgets the history of changes: a watch resuming from any earlier resourceVersion gets
    /// 410 Gone and must list again (open watches are dropped to make them resume).
    pub fn expire_resource_versions(&self) {
        {
            let mut inner = self.lock();
            let rv = inner.rv;
            inner.compacted_rv = rv;
            for rt in inner.types.clone() {
                inner
                    .compacted_by_type
                    .insert((rt.group.clone(), rt.plural.clone()), rv);
            }
            inner.history.clear();
        }
        self.faults.drop_watches();
    }

    /// The clock timestamps come from.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The type served at `group/version/plural`.
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.lock()
            .types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// All served types.
    pub fn types(&self) -> Vec<Arc<ResourceType>> {
        self.lock().types.clone()
    }

    /// What the store holds: per resource (group/plural), the number of objects and the
    /// bytes of their JSON; then the events in the watch history and the bytes of the
    /// versions only the history still keeps.
    pub fn footprint(&self) -> Footprint {
        let inner = self.lock();
        let mut kinds: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
        for (key, object) in &inner.objects {
            let name = if key.group.is_empty() {
                key.plural.clone()
            } else {
                format!("{}.{}", key.plural, key.group)
            };
            let entry = kinds.entry(name).or_default();
            entry.0 += 1;
            entry.1 += object.json_len();
            entry.2 += object.stored_len();
        }
        let current: std::collections::HashSet<usize> =
            inner.objects.values().map(Packed::addr).collect();
        let history_only = inner
            .history
            .iter()
            .filter(|e| !current.contains(&e.object.addr()))
            .map(|e| e.object.stored_len())
            .sum();
        Footprint {
            kinds: kinds
                .into_iter()
                .map(|(k, (n, json, stored))| (k, n, json, stored))
                .collect(),
            history_events: inner.history.len(),
            history_only_bytes: history_only,
        }
    }

    /// The latest resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// Subscribes to every future change.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<WatchEvent>> {
        self.events.subscribe()
    }

    fn key(rt: &ResourceType, namespace: &str, name: &str) -> Key {
        Key {
            group: rt.group.clone(),
            plural: rt.plural.clone(),
            namespace: if rt.namespaced {
                namespace.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }

    /// The first key of a type's objects (in `namespace`, when given) and the first key
    /// after them: a trailing NUL sorts after the name itself and before any longer one.
    fn run_of(rt: &ResourceType, namespace: Option<&str>) -> (Key, Key) {
        let start = Key {
            group: rt.group.clone(),
            plural: rt.plural.clone(),
            namespace: namespace.unwrap_or_default().to_string(),
            name: String::new(),
        };
        let end = match namespace {
            Some(ns) => Key {
                namespace: format!("{ns}\0"),
                ..start.clone()
            },
            None => Key {
                plural: format!("{}\0", rt.plural),
                ..start.clone()
            },
        };
        (start, end)
    }

    fn now(&self) -> String {
        self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    /// Reads one object.
    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let inner = self.lock();
        inner
            .objects
            .get(&Self::key(rt, namespace, name))
            .map(Packed::unpack)
            .ok_or_else(|| ApiError::not_found(&resource_name(rt), name))
    }

    /// Lists objects of a type, sorted by namespace and name, a page at a time.
    pub fn list(
        &self,
        rt: &ResourceType,
        filter: &Filter,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<ListPage, ApiError> {
        let inner = self.lock();
        let after = match continue_token {
            Some(token) => Some(decode_continue(token)?),
            None => None,
        };
        let mut items = Vec::new();
        let mut next = None;
        // Keys sort by type, namespace and name: read only this type's (and namespace's) run,
        // bounded at both ends so no key inside it is compared.
        let namespace = filter
            .namespace
            .as_deref()
            .filter(|ns| rt.namespaced && !ns.is_empty());
        let (start, end) = Self::run_of(rt, namespace);
        // A continued list starts where the last page ended rather than at the type's start.
        let start = match &after {
            Some((ns, name)) => start.max(Key {
                group: rt.group.clone(),
                plural: rt.plural.clone(),
                namespace: ns.clone(),
                name: name.clone(),
            }),
            None => start,
        };
        // A token from past the run leaves nothing to read (and no inverted range).
        let end = end.max(start.clone());
        for (key, object) in inner.objects.range(start..end) {
            if let Some((ns, name)) = &after
                && (&key.namespace, &key.name) <= (ns, name)
            {
                continue;
            }
            // The range holds only the filter's namespace, when it names one.
            let selected = if namespace.is_some() {
                filter.selects_packed(&key.namespace, object)
            } else {
                filter.matches_packed(&key.namespace, object)
            };
            if !selected {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                next = items
                    .last()
                    .map(|o: &Value| encode_continue(&namespace_of(o), &name_of(o)));
                break;
            }
            items.push(object.unpack());
        }
        Ok(ListPage {
            items,
            rv: inner.rv,
            continue_token: next,
        })
    }

    /// Objects of a type naming `owner_uid` in their ownerReferences and matching `filter`,
    /// sorted by namespace and name: read from the owner index, as controllers find their
    /// pods through an informer index rather than by scanning a namespace.
    pub fn owned(&self, rt: &ResourceType, owner_uid: &str, filter: &Filter) -> Vec<Value> {
        let inner = self.lock();
        let Some(keys) = inner.dependents.get(owner_uid) else {
            return Vec::new();
        };
        keys.iter()
            .filter(|k| k.group == rt.group && k.plural == rt.plural)
            .filter_map(|k| {
                let object = inner.objects.get(k)?;
                filter
                    .matches_packed(&k.namespace, object)
                    .then(|| object.unpack())
            })
            .collect()
    }

    /// Namespace and name of every object of a type, without reading the objects.
    pub fn names(&self, rt: &ResourceType) -> Vec<(String, String)> {
        let inner = self.lock();
        let (start, end) = Self::run_of(rt, None);
        inner
            .objects
            .range(start..end)
            .map(|(k, _)| (k.namespace.clone(), k.name.clone()))
            .collect()
    }

    /// Events after `since` for a watch, and a receiver for the ones to come. `since` of
    /// `None` starts with a synthetic ADDED event per existing object.
    pub fn watch(
        &self,
        rt: &ResourceType,
        filter: &Filter,
        since: Option<u64>,
    ) -> Result<WatchStart, ApiError> {
        let mut inner = self.lock();
        // Subscribing under the lock: no change can fall between the replay and the stream.
        let receiver = inner
            .feeds
            .entry((rt.group.clone(), rt.plural.clone()))
            .or_insert_with(|| broadcast::channel(1 << 12).0)
            .subscribe();
        let (start, end) = Self::run_of(rt, None);
        let initial = match since {
            None => inner
                .objects
                .range(start..end)
                .filter(|(k, o)| filter.matches_packed(&k.namespace, o))
                .map(|(k, o)| {
                    Arc::new(WatchEvent {
                        rv: o.resource_version(),
                        kind: EventType::Added,
                        group: k.group.clone(),
                        plural: k.plural.clone(),
                        namespace: k.namespace.clone(),
                        object: o.clone(),
                    })
                })
                .collect(),
            Some(rv) => history_after(&inner, rt, filter, rv)?,
        };
        Ok((initial, receiver, inner.rv))
    }

    /// Events of a type after `after` still in the history, and the current resourceVersion:
    /// how a watch that fell behind the live feed catches up, as the API server's watch cache
    /// does. `410 Gone` once the history no longer reaches back that far.
    pub fn replay(
        &self,
        rt: &ResourceType,
        filter: &Filter,
        after: u64,
    ) -> Result<(Vec<Arc<WatchEvent>>, u64), ApiError> {
        let inner = self.lock();
        Ok((history_after(&inner, rt, filter, after)?, inner.rv))
    }

    /// Every change of any type after `after` still in the history; `410 Gone` once the
    /// history no longer reaches back that far.
    pub fn changes_after(&self, after: u64) -> Result<Vec<Arc<WatchEvent>>, ApiError> {
        let inner = self.lock();
        if after < inner.compacted_rv {
            return Err(ApiError::gone(format!(
                "too old resource version: {after} ({})",
                inner.compacted_rv
            )));
        }
        // The history is in resourceVersion order: find the first later one by bisection.
        let from = inner.history.partition_point(|e| e.rv <= after);
        Ok(inner.history.range(from..).cloned().collect())
    }
}

impl ApiError {
    /// 403: the namespace is being deleted.
    pub fn forbidden_terminating(namespace: &str) -> Self {
        let mut e = ApiError::bad_request(format!(
            "unable to create new content in namespace {namespace} because it is being terminated"
        ));
        e.code = 403;
        e.reason = "Forbidden";
        e
    }

    /// 422 without field causes.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        let mut e = ApiError::bad_request(message);
        e.code = 422;
        e.reason = "Invalid";
        e
    }
}

fn resource_name(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.plural.clone()
    } else {
        format!("{}.{}", rt.plural, rt.group)
    }
}

fn set(meta: &mut Value, key: &str, value: Value) {
    if let Some(m) = meta.as_object_mut() {
        m.insert(key.to_string(), value);
    }
}

/// Name of an object.
pub fn name_of(object: &Value) -> String {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Namespace of an object.
pub fn namespace_of(object: &Value) -> String {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A type's events after `after` in the history; `410 Gone` once it no longer reaches back.
fn history_after(
    inner: &Inner,
    rt: &ResourceType,
    filter: &Filter,
    after: u64,
) -> Result<Vec<Arc<WatchEvent>>, ApiError> {
    let compacted = inner
        .compacted_by_type
        .get(&(rt.group.clone(), rt.plural.clone()))
        .copied()
        .unwrap_or(0);
    if after < compacted {
        return Err(ApiError::gone(format!(
            "too old resource version: {after} ({compacted})"
        )));
    }
    // The history is in resourceVersion order: skip the older part by bisection.
    let from = inner.history.partition_point(|e| e.rv <= after);
    Ok(inner
        .history
        .range(from..)
        .filter(|e| {
            e.group == rt.group
                && e.plural == rt.plural
                && filter.matches_packed(&e.namespace, &e.object)
        })
        .cloned()
        .collect())
}

/// resourceVersion of an object as a number.
pub fn rv_of(object: &Value) -> u64 {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
