//! The namespace freeze: a `cutover.dev/freeze` annotation on a Namespace holds every
//! rollout and migration in it. The controllers watch the Namespaces they serve, so that
//! lifting a freeze wakes what it held.

use std::sync::Arc;

use futures::Stream;
use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, Client, ResourceExt, runtime::watcher};

use super::{cache::Cache, metrics::Metrics};
use crate::api::ANNOTATION_FREEZE;

/// A cache of the Namespaces of `scope` (all when `None`), and the stream of changed ones.
pub fn watch(
    client: &Client,
    scope: Option<&str>,
    metrics: Arc<Metrics>,
) -> (
    Arc<Cache<Namespace>>,
    impl Stream<Item = Result<Namespace, watcher::Error>> + Send + 'static,
) {
    let config = match scope {
        Some(ns) => watcher::Config::default().fields(&format!("metadata.name={ns}")),
        None => watcher::Config::default(),
    };
    Cache::watch(
        "Namespace",
        Api::all(client.clone()),
        config,
        (),
        false,
        metrics,
    )
}

/// Why `namespace` is frozen, if it is: its annotation's value ("frozen" when empty).
pub async fn read(
    cache: &Cache<Namespace>,
    client: &Client,
    owner: &str,
    namespace: &str,
) -> Result<Option<String>, kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let found = cache.get(&api, owner, "", namespace).await?;
    Ok(found.as_ref().and_then(reason))
}

/// The freeze a Namespace's annotation states: its value says why; `"false"` (as a
/// person might write to lift it) is no freeze.
pub fn reason(namespace: &Namespace) -> Option<String> {
    match namespace.annotations().get(ANNOTATION_FREEZE)?.trim() {
        "false" => None,
        "" => Some("frozen".to_string()),
        v => Some(v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(value: Option<&str>) -> Namespace {
        let mut n = Namespace::default();
        if let Some(v) = value {
            n.annotations_mut()
                .insert(ANNOTATION_FREEZE.into(), v.into());
        }
        n
    }

    #[test]
    fn the_annotation_says_why_and_false_lifts_it() {
        assert_eq!(reason(&ns(None)), None);
        assert_eq!(reason(&ns(Some("false"))), None);
        assert_eq!(reason(&ns(Some(""))).as_deref(), Some("frozen"));
        assert_eq!(
            reason(&ns(Some(" year-end freeze "))).as_deref(),
            Some("year-end freeze")
        );
    }
}
