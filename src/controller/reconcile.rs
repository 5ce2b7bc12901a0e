//! Helpers every controller's reconcile uses: requeue at the plan's next due time,
//! per-object backoff on errors, and metrics around each reconcile.

use std::{future::Future, sync::Arc, time::Instant};

use jiff::Timestamp;
use kube::{
    Api, Resource, ResourceExt,
    runtime::{
        WatchStreamExt,
        controller::{Action, Controller},
        reflector, watcher,
    },
};
use serde::de::DeserializeOwned;

use futures::future::BoxFuture;

use super::{
    Clock, Context, Error,
    fair::{FairGate, Urgency},
};

/// Key identifying an object in backoff bookkeeping.
pub fn object_key<K: Resource>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// The annotation `kubectl apply` keeps a full copy of the applied object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A controller for the objects of `api` whose cache holds them without managedFields or the
/// last-applied copy: no reconcile reads either, and together they are a large share of
/// every cached object.
pub fn lean_controller<K>(api: Api<K>, config: watcher::Config) -> Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync,
    K: 'static,
{
    let writer = reflector::store::Writer::default();
    let reader = writer.as_reader();
    let objects = watcher(api, config)
        .modify(|obj| {
            obj.meta_mut().managed_fields = None;
            obj.annotations_mut().remove(LAST_APPLIED);
        })
        .reflect(writer)
        .applied_objects();
    Controller::for_stream(objects, reader)
}

/// A reconcile function that waits its turn at `gate`, then reconciles the newest cached
/// copy of the object: the copy it was woken with may be old by the time its turn comes,
/// and a status write from an old copy would only lose its precondition.
pub fn gated<K, R, Fut>(
    gate: Arc<FairGate>,
    cache: reflector::Store<K>,
    urgency: fn(&K) -> Urgency,
    reconcile: R,
) -> impl FnMut(Arc<K>, Arc<Context>) -> BoxFuture<'static, Result<Action, Error>>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    R: Fn(Arc<K>, Arc<Context>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Action, Error>> + Send + 'static,
{
    move |obj, ctx| {
        let gate = gate.clone();
        let cache = cache.clone();
        let reconcile = reconcile.clone();
        Box::pin(async move {
            let namespace = obj.namespace().unwrap_or_default();
            let _permit = gate.enter(&namespace, urgency(&obj)).await;
            match cache.get(&reflector::ObjectRef::from_obj(obj.as_ref())) {
                Some(latest) => reconcile(latest, ctx).await,
                // Gone while it waited: nothing is left to reconcile.
                None => Ok(Action::await_change()),
            }
        })
    }
}

/// kube-runtime's own limit of concurrent reconciles: none, as the fair gate limits them.
pub fn runtime_config() -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(0)
}

/// Wakes the object when `due` comes (the plan's next timer), or on its next change.
pub fn requeue_at(clock: &Clock, due: Option<Timestamp>) -> Action {
    match due {
        Some(due) => Action::requeue(clock.until(due)),
        None => Action::await_change(),
    }
}

/// Runs one reconcile, recording its duration and outcome and resetting the object's backoff
/// when it succeeds.
pub async fn instrumented<K, F, Fut>(
    controller: &'static str,
    obj: Arc<K>,
    ctx: Arc<Context>,
    run: F,
) -> Result<Action, Error>
where
    K: Resource,
    F: FnOnce(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action, Error>>,
{
    let key = object_key(obj.as_ref());
    let started = Instant::now();
    let result = run(obj, ctx.clone()).await;
    let category = result.as_ref().err().map(|e| e.category().as_str());
    ctx.metrics
        .observe(controller, started.elapsed().as_secs_f64(), category);
    if result.is_ok() {
        ctx.backoff.succeeded(&key);
    }
    result
}

/// The error policy: log with the error's category and retry after the object's backoff.
pub fn error_policy<K: Resource>(
    controller: &'static str,
    obj: &K,
    error: &Error,
    ctx: &Context,
) -> Action {
    let key = object_key(obj);
    let delay = ctx.backoff.failed(&key);
    tracing::warn!(
        controller,
        object = %key,
        category = error.category().as_str(),
        error = %super::error::one_line(error),
        retry_in_ms = delay.as_millis() as u64,
        "reconcile failed"
    );
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requeue_waits_until_the_due_time() {
        let base = Timestamp::from_second(1_700_000_000).unwrap();
        let clock = Clock::tokio_at(base);
        let due = base + jiff::SignedDuration::from_secs(42);
        assert_eq!(
            requeue_at(&clock, Some(due)),
            Action::requeue(std::time::Duration::from_secs(42))
        );
        assert_eq!(
            requeue_at(&clock, Some(base - jiff::SignedDuration::from_secs(5))),
            Action::requeue(std::time::Duration::ZERO)
        );
        assert_eq!(requeue_at(&clock, None), Action::await_change());
    }

    #[tokio::test]
    async fn the_lean_cache_drops_managed_fields_and_the_last_applied_copy_only() {
        use futures::StreamExt;
        use k8s_openapi::api::core::v1::ConfigMap;
        use kube::api::{Patch, PatchParams};

        let sim = crate::sim::Sim::new(Clock::System);
        let api: Api<ConfigMap> = Api::namespaced(sim.client(), "default");
        let applied = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web", "annotations": {
                LAST_APPLIED: "{\"data\":{\"k\":\"v\"}}", "team": "payments"}},
            "data": {"k": "v"}
        });
        let stored = api
            .patch(
                "web",
                &PatchParams::apply("someone"),
                &Patch::Apply(&applied),
            )
            .await
            .unwrap();
        // What the API server keeps, so the test would see it if the cache kept it too.
        assert!(!stored.managed_fields().is_empty());
        assert!(stored.annotations().contains_key(LAST_APPLIED));

        let (seen, mut reconciled) = tokio::sync::mpsc::unbounded_channel();
        let controller = lean_controller(api, watcher::Config::default());
        let cache = controller.store();
        tokio::spawn(
            controller
                .run(
                    move |cm: Arc<ConfigMap>, _| {
                        let seen = seen.clone();
                        async move {
                            let _ = seen.send(cm);
                            Ok::<_, Error>(Action::await_change())
                        }
                    },
                    |_, _, _| Action::await_change(),
                    Arc::new(()),
                )
                .for_each(|_| async {}),
        );
        let cm = tokio::time::timeout(std::time::Duration::from_secs(10), reconciled.recv())
            .await
            .unwrap()
            .unwrap();
        for cm in [cm, cache.state()[0].clone()] {
            assert_eq!(cm.metadata.managed_fields, None);
            assert!(!cm.annotations().contains_key(LAST_APPLIED));
            assert_eq!(
                cm.annotations().get("team").map(String::as_str),
                Some("payments")
            );
            assert_eq!(
                cm.data
                    .as_ref()
                    .and_then(|d| d.get("k"))
                    .map(String::as_str),
                Some("v")
            );
            assert!(cm.resource_version().is_some());
        }
    }
}
