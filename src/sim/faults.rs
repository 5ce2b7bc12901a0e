//! Fault hooks of the sim, for testing that the operator survives a misbehaving API server:
//! fail the next N requests of a kind with an HTTP status, delay every response, drop the
//! open watch streams, hold back the watch events of a kind (a lagging watch cache), and
//! expire resourceVersions (410 Gone on resume).

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

/// A rule failing matching requests.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FailRule {
    method: Option<String>,
    plural: Option<String>,
    status: u16,
    remaining: u32,
}

/// The faults currently injected.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<FailRule>>,
    delay: Mutex<Option<Duration>>,
    lags: Mutex<Vec<(String, Duration)>>,
    watch_generation: AtomicU64,
    failed: AtomicU64,
    delayed: AtomicU64,
    watches_dropped: AtomicU64,
    resumes_refused: AtomicU64,
    /// Wakes open watch streams when they are dropped.
    pub(crate) dropped: tokio::sync::Notify,
}

impl Faults {
    /// Fails the next `n` requests with `method` (e.g. `PATCH`; any when `None`) to
    /// resources named `plural` (e.g. `deployments` or `rollouts/status`; any when `None`)
    /// with HTTP `status` (500, 409, 429, ...).
    pub fn fail_next(&self, method: Option<&str>, plural: Option<&str>, n: u32, status: u16) {
        self.rules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(FailRule {
                method: method.map(str::to_uppercase),
                plural: plural.map(str::to_string),
                status,
                remaining: n,
            });
    }

    /// Delays every response by `delay` (none when `None`).
    pub fn delay_responses(&self, delay: Option<Duration>) {
        *self.delay.lock().unwrap_or_else(|p| p.into_inner()) = delay;
    }

    /// Holds back each watch event of resources named `plural` by `lag` before it is sent,
    /// as a watch cache behind the store would (none when `None`).
    pub fn lag_watches(&self, plural: &str, lag: Option<Duration>) {
        let mut lags = self.lags.lock().unwrap_or_else(|p| p.into_inner());
        lags.retain(|(p, _)| p != plural);
        if let Some(lag) = lag {
            lags.push((plural.to_string(), lag));
        }
    }

    /// How long watch events of `plural` are held back.
    pub(crate) fn watch_lag(&self, plural: &str) -> Option<Duration> {
        let lags = self.lags.lock().unwrap_or_else(|p| p.into_inner());
        lags.iter().find(|(p, _)| p == plural).map(|(_, lag)| *lag)
    }

    /// Ends every open watch stream (clients see the stream close and watch again).
    pub fn drop_watches(&self) {
        self.watch_generation.fetch_add(1, Ordering::SeqCst);
        self.dropped.notify_waiters();
    }

    /// Requests failed so far by rules.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    /// Responses delayed so far.
    pub fn delayed(&self) -> u64 {
        self.delayed.load(Ordering::SeqCst)
    }

    /// Open watch streams ended so far by `drop_watches`.
    pub fn watches_dropped(&self) -> u64 {
        self.watches_dropped.load(Ordering::SeqCst)
    }

    /// Watches refused so far with 410 Gone: their resourceVersion had expired.
    pub fn resumes_refused(&self) -> u64 {
        self.resumes_refused.load(Ordering::SeqCst)
    }

    pub(crate) fn count_delayed(&self) {
        self.delayed.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn count_watch_dropped(&self) {
        self.watches_dropped.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn count_resume_refused(&self) {
        self.resumes_refused.fetch_add(1, Ordering::SeqCst);
    }

    /// The current watch generation; a stream opened in an older one ends.
    pub(crate) fn watch_generation(&self) -> u64 {
        self.watch_generation.load(Ordering::SeqCst)
    }

    pub(crate) fn delay(&self) -> Option<Duration> {
        *self.delay.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The status to fail this request with, if a rule takes it.
    pub(crate) fn take(&self, method: &str, path: &str) -> Option<u16> {
        let plural = plural_of(path)?;
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        let rule = rules.iter_mut().find(|r| {
            r.remaining > 0
                && r.method.as_deref().is_none_or(|m| m == method)
                && r.plural.as_deref().is_none_or(|p| p == plural)
        })?;
        rule.remaining -= 1;
        let status = rule.status;
        rules.retain(|r| r.remaining > 0);
        self.failed.fetch_add(1, Ordering::SeqCst);
        Some(status)
    }
}

/// `resource` or `resource/subresource` of an API path.
fn plural_of(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match parts.as_slice() {
        ["api", _v, rest @ ..] => rest,
        ["apis", _g, _v, rest @ ..] => rest,
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] if !rest.is_empty() => rest,
        r => r,
    };
    match rest {
        [r] | [r, _] => Some((*r).to_string()),
        [r, _, sub] => Some(format!("{r}/{sub}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_take_the_next_matching_requests_only() {
        let f = Faults::default();
        f.fail_next(Some("patch"), Some("deployments"), 2, 500);
        assert_eq!(
            f.take("GET", "/apis/apps/v1/namespaces/d/deployments/x"),
            None
        );
        assert_eq!(
            f.take("PATCH", "/apis/apps/v1/namespaces/d/deployments/x"),
            Some(500)
        );
        assert_eq!(
            f.take("PATCH", "/apis/apps/v1/namespaces/d/deployments/y"),
            Some(500)
        );
        assert_eq!(
            f.take("PATCH", "/apis/apps/v1/namespaces/d/deployments/x"),
            None
        );
        f.fail_next(None, Some("rollouts/status"), 1, 409);
        assert_eq!(
            f.take(
                "PATCH",
                "/apis/cutover.dev/v1alpha1/namespaces/d/rollouts/web/status"
            ),
            Some(409)
        );
        assert_eq!(f.failed(), 3);
        assert_eq!(plural_of("/api/v1/namespaces/d/pods"), Some("pods".into()));
        assert_eq!(plural_of("/apis"), None);
    }
}
