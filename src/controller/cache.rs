//! Reads from watch caches, guarded against the operator's own writes that a cache has not
//! seen yet.
//!
//! A reconcile that reads what it already watches needs no request. The one danger is a
//! cache behind the operator's own last write: acting on it would repeat or skip a step.
//! So every write made for an owner (a Rollout, a MigrationJob) is noted, and that owner's
//! reads come from the cache only once the cache has applied a resourceVersion at least as
//! new as the write, and no longer holds what the owner deleted. Until then the read goes
//! to the API server, as it always did.

use std::{
    collections::HashMap,
    fmt::Debug,
    hash::Hash,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use futures::{Stream, TryStreamExt};
use kube::{
    Api, Resource, ResourceExt,
    api::ListParams,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef},
        watcher,
    },
};
use serde::de::DeserializeOwned;

use super::metrics::{CacheLabels, Metrics};

/// The annotation `kubectl apply` keeps a full copy of the applied object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A resourceVersion as a number: the etcd revision kube-apiserver hands out. One that is
/// not a number is never trusted to order a cache after a write.
fn version_of<K: Resource>(obj: &K) -> Option<u64> {
    obj.meta().resource_version.as_deref()?.parse().ok()
}

/// The object `name` of `api`, read with a list by name: what a watch cache needs
/// granted (list) is all its reads need.
pub async fn by_name<K>(api: &Api<K>, name: &str) -> Result<Option<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let found = api
        .list(&ListParams::default().fields(&format!("metadata.name={name}")))
        .await?;
    Ok(found.items.into_iter().next())
}

/// How far a watch cache has come.
#[derive(Debug, Default)]
struct Progress {
    /// Newest resourceVersion the store has applied.
    seen: AtomicU64,
    /// Newest resourceVersion of a relist not yet swapped into the store.
    pending: AtomicU64,
    /// Whether the first list is in: before it, an absent object proves nothing.
    ready: AtomicBool,
}

impl Progress {
    fn observe<K: Resource>(&self, event: &watcher::Event<K>) {
        match event {
            watcher::Event::Apply(o) | watcher::Event::Delete(o) => {
                self.seen
                    .fetch_max(version_of(o).unwrap_or(0), Ordering::SeqCst);
            }
            watcher::Event::Init => self.pending.store(0, Ordering::SeqCst),
            watcher::Event::InitApply(o) => {
                self.pending
                    .fetch_max(version_of(o).unwrap_or(0), Ordering::SeqCst);
            }
            watcher::Event::InitDone => {
                // The relist is now the store: at least as new as its newest object.
                self.seen
                    .fetch_max(self.pending.load(Ordering::SeqCst), Ordering::SeqCst);
                self.ready.store(true, Ordering::SeqCst);
            }
        }
    }
}

/// What one owner's writes require a cache to have seen before it is read for that owner.
#[derive(Debug, Default, Clone)]
struct Mark {
    /// The newest resourceVersion written.
    at_least: u64,
    /// Objects deleted (namespace, name): still cached means the cache is behind.
    gone: Vec<(String, String)>,
}

/// A watch cache of one kind, and the writes its readers wait for.
pub struct Cache<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Clone + Eq + Hash,
{
    kind: &'static str,
    store: reflector::Store<K>,
    dyntype: K::DynamicType,
    progress: Arc<Progress>,
    marks: Mutex<HashMap<String, Mark>>,
    metrics: Arc<Metrics>,
}

impl<K> Cache<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + Hash + Send + Sync,
{
    /// A cache of `api`'s objects and the stream that fills it; the stream yields every
    /// object changed or deleted, for use as a controller's trigger, and must be polled.
    /// `keep_managed_fields` is for readers that look at who owns which field.
    pub fn watch(
        kind: &'static str,
        api: Api<K>,
        config: watcher::Config,
        dyntype: K::DynamicType,
        keep_managed_fields: bool,
        metrics: Arc<Metrics>,
    ) -> (
        Arc<Self>,
        impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    ) {
        let writer = reflector::store::Writer::new(dyntype.clone());
        let store = writer.as_reader();
        let progress = Arc::new(Progress::default());
        let seen = progress.clone();
        let stream = watcher(api, config)
            .modify(move |obj| {
                if !keep_managed_fields {
                    obj.meta_mut().managed_fields = None;
                }
                obj.annotations_mut().remove(LAST_APPLIED);
            })
            .reflect(writer)
            // After the store applied the event: `seen` never runs ahead of the store.
            .inspect_ok(move |event| seen.observe(event))
            .touched_objects();
        let cache = Arc::new(Self {
            kind,
            store,
            dyntype,
            progress,
            marks: Mutex::new(HashMap::new()),
            metrics,
        });
        (cache, stream)
    }

    /// Notes an object written for `owner`: its reads wait until the cache has seen it.
    pub fn wrote(&self, owner: &str, written: &K) {
        self.mark(owner, version_of(written));
    }

    /// Notes a write of resourceVersion `version` made for `owner` (a status write, whose
    /// answer is not kept).
    pub fn wrote_version(&self, owner: &str, version: &str) {
        self.mark(owner, version.parse().ok());
    }

    /// A version that is not a number can never be seen: reads stay on the API server.
    fn mark(&self, owner: &str, version: Option<u64>) {
        let version = version.unwrap_or(u64::MAX);
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        let mark = marks.entry(owner.to_string()).or_default();
        mark.at_least = mark.at_least.max(version);
    }

    /// The store the watch fills, for a controller's own objects.
    pub fn store(&self) -> reflector::Store<K> {
        self.store.clone()
    }

    /// Notes an object deleted for `owner`: its reads wait until the cache lets it go.
    pub fn deleted(&self, owner: &str, namespace: &str, name: &str) {
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        marks
            .entry(owner.to_string())
            .or_default()
            .gone
            .push((namespace.to_string(), name.to_string()));
    }

    /// The cached object; a cluster-scoped kind is asked for with an empty namespace.
    fn cached(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let key = ObjectRef::new_with(name, self.dyntype.clone());
        let key = if namespace.is_empty() {
            key
        } else {
            key.within(namespace)
        };
        self.store.get(&key)
    }

    /// Whether the cache may answer for `owner`: its first list is in and it has seen every
    /// write noted for `owner`. A satisfied mark is dropped, as a cache never goes back.
    pub fn fresh_for(&self, owner: &str) -> bool {
        if !self.progress.ready.load(Ordering::SeqCst) {
            return false;
        }
        let seen = self.progress.seen.load(Ordering::SeqCst);
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mark) = marks.get(owner) else {
            return true;
        };
        let caught_up = seen >= mark.at_least
            && mark.gone.iter().all(|(ns, name)| {
                self.cached(ns, name)
                    .is_none_or(|o| o.meta().deletion_timestamp.is_some())
            });
        if caught_up {
            marks.remove(owner);
        }
        caught_up
    }

    fn count(&self, source: &'static str) {
        self.metrics
            .cache_reads
            .get_or_create(&CacheLabels {
                kind: self.kind,
                source,
            })
            .inc();
    }

    /// The object `name` of `namespace`, from the cache when it is fresh for `owner`,
    /// else from the API server.
    pub async fn get(
        &self,
        api: &Api<K>,
        owner: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<K>, kube::Error> {
        if self.fresh_for(owner) {
            self.count("cache");
            return Ok(self.cached(namespace, name).map(|o| o.as_ref().clone()));
        }
        self.count("api");
        by_name(api, name).await
    }

    /// The objects of `namespace` whose label `key` is `value`, from the cache when it is
    /// fresh for `owner`, else from the API server.
    pub async fn list(
        &self,
        api: &Api<K>,
        owner: &str,
        namespace: &str,
        (key, value): (&str, &str),
    ) -> Result<Vec<K>, kube::Error> {
        let labelled = |o: &K| o.labels().get(key).map(String::as_str) == Some(value);
        let selector = format!("{key}={value}");
        self.read(api, owner, namespace, &selector, labelled).await
    }

    /// Every cached object of `namespace` that `keep` accepts, from the cache when it is
    /// fresh for `owner`, else from the API server.
    pub async fn all(
        &self,
        api: &Api<K>,
        owner: &str,
        namespace: &str,
        keep: impl Fn(&K) -> bool,
    ) -> Result<Vec<K>, kube::Error> {
        self.read(api, owner, namespace, "", keep).await
    }

    async fn read(
        &self,
        api: &Api<K>,
        owner: &str,
        namespace: &str,
        selector: &str,
        keep: impl Fn(&K) -> bool,
    ) -> Result<Vec<K>, kube::Error> {
        if self.fresh_for(owner) {
            self.count("cache");
            return Ok(self
                .store
                .state()
                .into_iter()
                .filter(|o| o.namespace().as_deref() == Some(namespace) && keep(o))
                .map(|o| o.as_ref().clone())
                .collect());
        }
        self.count("api");
        let params = match selector {
            "" => ListParams::default(),
            selector => ListParams::default().labels(selector),
        };
        Ok(api
            .list(&params)
            .await?
            .items
            .into_iter()
            .filter(|o| keep(o))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn map(name: &str, version: &str) -> ConfigMap {
        let mut m = ConfigMap::default();
        m.metadata.name = Some(name.into());
        m.metadata.namespace = Some("ns".into());
        m.metadata.resource_version = Some(version.into());
        m
    }

    /// A cache over a hand-fed store, as the watch would fill it.
    fn fed() -> (Cache<ConfigMap>, reflector::store::Writer<ConfigMap>) {
        let writer = reflector::store::Writer::default();
        let cache = Cache {
            kind: "ConfigMap",
            store: writer.as_reader(),
            dyntype: (),
            progress: Arc::new(Progress::default()),
            marks: Mutex::new(HashMap::new()),
            metrics: Arc::new(Metrics::new()),
        };
        (cache, writer)
    }

    fn feed(
        cache: &Cache<ConfigMap>,
        writer: &mut reflector::store::Writer<ConfigMap>,
        event: watcher::Event<ConfigMap>,
    ) {
        writer.apply_watcher_event(&event);
        cache.progress.observe(&event);
    }

    #[test]
    fn nothing_is_fresh_before_the_first_list_is_in() {
        let (cache, mut writer) = fed();
        assert!(!cache.fresh_for("owner"));
        feed(&cache, &mut writer, watcher::Event::Init);
        feed(
            &cache,
            &mut writer,
            watcher::Event::InitApply(map("a", "5")),
        );
        assert!(!cache.fresh_for("owner"), "a relist half in is not a cache");
        feed(&cache, &mut writer, watcher::Event::InitDone);
        assert!(cache.fresh_for("owner"));
        assert!(cache.cached("ns", "a").is_some());
    }

    #[test]
    fn a_write_is_read_from_the_cache_only_once_the_cache_has_seen_it() {
        let (cache, mut writer) = fed();
        feed(&cache, &mut writer, watcher::Event::Init);
        feed(
            &cache,
            &mut writer,
            watcher::Event::InitApply(map("a", "5")),
        );
        feed(&cache, &mut writer, watcher::Event::InitDone);
        cache.wrote("owner", &map("a", "9"));
        assert!(!cache.fresh_for("owner"), "the cache still holds version 5");
        assert!(cache.fresh_for("other"), "another owner wrote nothing");
        feed(&cache, &mut writer, watcher::Event::Apply(map("b", "8")));
        assert!(!cache.fresh_for("owner"));
        feed(&cache, &mut writer, watcher::Event::Apply(map("a", "9")));
        assert!(cache.fresh_for("owner"));
        // The mark is gone: a cache never goes back.
        assert!(cache.marks.lock().map(|m| m.is_empty()).unwrap_or(false));
    }

    #[test]
    fn a_later_event_of_another_object_proves_the_write_was_seen() {
        let (cache, mut writer) = fed();
        feed(&cache, &mut writer, watcher::Event::Init);
        feed(&cache, &mut writer, watcher::Event::InitDone);
        cache.wrote("owner", &map("a", "9"));
        feed(&cache, &mut writer, watcher::Event::Apply(map("b", "12")));
        assert!(cache.fresh_for("owner"), "a watch delivers in order");
    }

    #[test]
    fn a_deletion_is_read_from_the_cache_only_once_the_cache_let_the_object_go() {
        let (cache, mut writer) = fed();
        feed(&cache, &mut writer, watcher::Event::Init);
        feed(
            &cache,
            &mut writer,
            watcher::Event::InitApply(map("a", "5")),
        );
        feed(&cache, &mut writer, watcher::Event::InitDone);
        cache.deleted("owner", "ns", "a");
        assert!(!cache.fresh_for("owner"));
        feed(&cache, &mut writer, watcher::Event::Delete(map("a", "6")));
        assert!(cache.fresh_for("owner"));
    }

    #[test]
    fn a_version_that_is_not_a_number_never_lets_the_cache_answer() {
        let (cache, mut writer) = fed();
        feed(&cache, &mut writer, watcher::Event::Init);
        feed(&cache, &mut writer, watcher::Event::InitDone);
        cache.wrote("owner", &map("a", "opaque"));
        feed(
            &cache,
            &mut writer,
            watcher::Event::Apply(map("a", "opaque")),
        );
        feed(
            &cache,
            &mut writer,
            watcher::Event::Apply(map("b", "99999")),
        );
        assert!(!cache.fresh_for("owner"));
    }

    #[test]
    fn a_relist_counts_only_once_it_is_swapped_in() {
        let (cache, mut writer) = fed();
        feed(&cache, &mut writer, watcher::Event::Init);
        feed(&cache, &mut writer, watcher::Event::InitDone);
        cache.wrote("owner", &map("a", "20"));
        feed(&cache, &mut writer, watcher::Event::Init);
        feed(
            &cache,
            &mut writer,
            watcher::Event::InitApply(map("a", "20")),
        );
        assert!(!cache.fresh_for("owner"), "the relist is still buffered");
        feed(&cache, &mut writer, watcher::Event::InitDone);
        assert!(cache.fresh_for("owner"));
    }
}
