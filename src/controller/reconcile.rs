//! Helpers every controller's reconcile uses: requeue at the plan's next due time,
//! per-object backoff on errors, and metrics around each reconcile.

use std::{future::Future, sync::Arc, time::Instant};

use jiff::Timestamp;
use kube::{Resource, ResourceExt, runtime::controller::Action};

use super::{Clock, Context, Error};

/// Key identifying an object in backoff bookkeeping.
pub fn object_key<K: Resource>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
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
}
