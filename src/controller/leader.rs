//! Leader election on a coordination.k8s.io Lease, with client-go's timings: only the
//! leader reconciles; a standby takes over once the leader's lease expires.
//!
//! Expiry is judged as client-go does: from when this process last saw the Lease record
//! change, on its own monotonic clock, never by comparing the holder's `renewTime` with the
//! local wall clock, so two nodes whose clocks disagree never both lead (or neither).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{Api, api::PostParams};
use tokio_util::sync::CancellationToken;

use super::Clock;

/// Name of the Lease.
pub const LEASE_NAME: &str = "cutover-leader";
/// How long a lease is valid without renewal (client-go: 15 s).
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How long the leader keeps leading when renewals fail (client-go: 10 s).
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// Time between attempts to acquire or renew (client-go: 2 s).
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// Why leading ended.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// Renewals failed for longer than the renew deadline: another process may lead now.
    #[error("lost the leader lease {0}: renewals failed for longer than the renew deadline")]
    Lost(String),
}

/// Who this process is and which Lease it competes for.
#[derive(Clone, Debug)]
pub struct Election {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This process's identity (the pod name in a cluster).
    pub identity: String,
    /// The Lease record as last seen, and when.
    seen: std::sync::Arc<std::sync::Mutex<Option<Observation>>>,
}

/// A Lease record as this process last saw it, and when it first saw it that way, on its
/// own monotonic clock.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// The record (holder, times, duration, transitions).
    pub record: Option<LeaseSpec>,
    /// When it was first seen.
    pub at: tokio::time::Instant,
}

/// The observation after reading `current` at `now`: the time moves on only when the
/// record changed.
pub fn observe(
    previous: Option<Observation>,
    current: Option<&LeaseSpec>,
    now: tokio::time::Instant,
) -> Observation {
    match previous {
        Some(p) if p.record.as_ref() == current => p,
        _ => Observation {
            record: current.cloned(),
            at: now,
        },
    }
}

impl Election {
    /// The election for this process: pod name (or host and pid) competing in `namespace`.
    pub fn new(namespace: String) -> Self {
        let identity = std::env::var("POD_NAME").unwrap_or_else(|_| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "cutover".into());
            format!("{host}-{}", std::process::id())
        });
        Self {
            namespace,
            name: LEASE_NAME.into(),
            identity,
            seen: Default::default(),
        }
    }
}

/// What to do with the Lease `seen` (read at `local`, this process's monotonic time):
/// `Some(spec)` to write (take or renew it, stamped with the wall-clock `now`), `None` to
/// stand by because another holder renewed it less than its duration ago by the local clock.
pub fn decide(
    seen: &Observation,
    me: &str,
    local: tokio::time::Instant,
    now: Timestamp,
) -> Option<LeaseSpec> {
    let current = seen.record.as_ref();
    let holder = current
        .and_then(|l| l.holder_identity.clone())
        .filter(|h| !h.is_empty());
    let duration = current
        .and_then(|l| l.lease_duration_seconds)
        .map_or(Duration::ZERO, |s| {
            Duration::from_secs(u64::try_from(s).unwrap_or(0))
        });
    let mine = holder.as_deref() == Some(me);
    if !mine && holder.is_some() && local < seen.at + duration {
        return None;
    }
    let transitions = current.and_then(|l| l.lease_transitions).unwrap_or(0);
    Some(LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
        acquire_time: if mine {
            current.and_then(|l| l.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if mine { transitions } else { transitions + 1 }),
        ..Default::default()
    })
}

/// One attempt to take or renew the lease; returns whether this process holds it now.
pub async fn try_lead(api: &Api<Lease>, election: &Election, clock: &Clock) -> bool {
    let current = match api.get_opt(&election.name).await {
        Ok(l) => l,
        Err(error) => {
            tracing::debug!(%error, "cannot read the leader lease");
            return false;
        }
    };
    let local = tokio::time::Instant::now();
    let seen = {
        let mut seen = election.seen.lock().unwrap_or_else(|p| p.into_inner());
        let observed = observe(
            seen.take(),
            current.as_ref().and_then(|l| l.spec.as_ref()),
            local,
        );
        *seen = Some(observed.clone());
        observed
    };
    let Some(spec) = decide(&seen, &election.identity, local, clock.now()) else {
        return false;
    };
    let result = match current {
        Some(mut lease) => {
            // resourceVersion is kept: if another process wrote meanwhile, this is a conflict.
            lease.spec = Some(spec);
            api.replace(&election.name, &PostParams::default(), &lease)
                .await
                .map(|_| ())
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(election.name.clone()),
                    namespace: Some(election.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(spec),
            };
            api.create(&PostParams::default(), &lease).await.map(|_| ())
        }
    };
    match result {
        Ok(()) => true,
        Err(error) => {
            tracing::debug!(%error, "lost a race for the leader lease");
            false
        }
    }
}

/// Waits until this process leads (or `shutdown`); returns whether it leads.
pub async fn acquire(
    api: &Api<Lease>,
    election: &Election,
    clock: &Clock,
    shutdown: &CancellationToken,
) -> bool {
    loop {
        if try_lead(api, election, clock).await {
            tracing::info!(identity = %election.identity, lease = %election.name, "became the leader");
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY_PERIOD) => {},
            _ = shutdown.cancelled() => return false,
        }
    }
}

/// Renews the lease every retry period until `shutdown`; fails once renewals have failed
/// for the renew deadline, so the caller stops reconciling before another leader starts.
pub async fn keep(
    api: &Api<Lease>,
    election: &Election,
    clock: &Clock,
    shutdown: &CancellationToken,
) -> Result<(), LeaderError> {
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RETRY_PERIOD) => {},
            _ = shutdown.cancelled() => return Ok(()),
        }
        if try_lead(api, election, clock).await {
            last = tokio::time::Instant::now();
        } else if last.elapsed() > RENEW_DEADLINE {
            return Err(LeaderError::Lost(election.name.clone()));
        }
    }
}

/// Gives the lease up on a clean shutdown, so a standby leads at once instead of after
/// the lease duration.
pub async fn release(api: &Api<Lease>, election: &Election) {
    let Ok(Some(mut lease)) = api.get_opt(&election.name).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(election.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    if let Err(error) = api
        .replace(&election.name, &PostParams::default(), &lease)
        .await
    {
        tracing::warn!(%error, "could not release the leader lease");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// A standby reading `record` at the local times `reads` (seconds after `t0`) and
    /// deciding at each.
    fn standby(record: &LeaseSpec, t0: Instant, reads: &[u64]) -> Vec<bool> {
        let mut seen = None;
        reads
            .iter()
            .map(|r| {
                let local = t0 + secs(*r);
                let o = observe(seen.take(), Some(record), local);
                let takes = decide(&o, "b", local, at(0)).is_some();
                seen = Some(o);
                takes
            })
            .collect()
    }

    #[test]
    fn a_free_or_expired_lease_is_taken_and_a_valid_one_is_respected() {
        let t0 = Instant::now();
        let taken = decide(&observe(None, None, t0), "a", t0, at(0)).unwrap();
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        assert_eq!(taken.lease_duration_seconds, Some(15));
        assert_eq!(taken.lease_transitions, Some(1));
        assert_eq!(
            standby(&taken, t0, &[0, 14, 15, 16]),
            [false, false, true, true],
            "valid for 15 s after it was first seen"
        );
        let seen = observe(None, Some(&taken), t0);
        let stolen = decide(&seen, "b", t0 + secs(16), at(16)).unwrap();
        assert_eq!(stolen.holder_identity.as_deref(), Some("b"));
        assert_eq!(stolen.lease_transitions, Some(2));
        assert_eq!(stolen.acquire_time, Some(MicroTime(at(16))));
    }

    #[test]
    fn the_holder_renews_without_a_transition() {
        let t0 = Instant::now();
        let taken = decide(&observe(None, None, t0), "a", t0, at(0)).unwrap();
        let seen = observe(None, Some(&taken), t0);
        let renewed = decide(&seen, "a", t0 + secs(2), at(2)).unwrap();
        assert_eq!(renewed.renew_time, Some(MicroTime(at(2))));
        assert_eq!(renewed.acquire_time, Some(MicroTime(at(0))));
        assert_eq!(renewed.lease_transitions, Some(1));
    }

    #[test]
    fn a_released_lease_is_free() {
        let t0 = Instant::now();
        let mut released = decide(&observe(None, None, t0), "a", t0, at(0)).unwrap();
        released.holder_identity = None;
        released.lease_duration_seconds = Some(1);
        assert!(decide(&observe(None, Some(&released), t0), "b", t0, at(0)).is_some());
    }

    #[test]
    fn a_holder_whose_clock_runs_ahead_loses_the_lease_on_time() {
        // The holder's clock is an hour ahead: its renewTime lies an hour in the standby's
        // future. Comparing clocks, the standby would wait an hour after the holder died.
        let t0 = Instant::now();
        let ahead = decide(&observe(None, None, t0), "a", t0, at(3600)).unwrap();
        assert_eq!(
            standby(&ahead, t0, &[0, 10, 15]),
            [false, false, true],
            "taken 15 s after the record stopped changing"
        );
    }

    #[test]
    fn a_holder_whose_clock_runs_behind_keeps_the_lease_while_it_renews() {
        // The holder's clock is an hour behind: every renewTime looks long expired to the
        // standby. Comparing clocks, the standby would take a lease that is being renewed.
        let t0 = Instant::now();
        let mut record = decide(&observe(None, None, t0), "a", t0, at(-3600)).unwrap();
        let mut seen = None;
        for tick in 0..20u64 {
            // The holder renews every 2 s (its own clock, an hour behind).
            record = decide(
                &observe(None, Some(&record), t0),
                "a",
                t0,
                at(-3600 + 2 * tick as i64),
            )
            .unwrap();
            let local = t0 + secs(2 * tick);
            let o = observe(seen.take(), Some(&record), local);
            assert_eq!(
                decide(&o, "b", local, at(2 * tick as i64)),
                None,
                "tick {tick}"
            );
            seen = Some(o);
        }
        // Then it dies: the record stops changing, and 15 s later the standby takes it.
        let last = seen.clone().unwrap().at;
        let o = observe(seen.take(), Some(&record), last + secs(14));
        assert_eq!(decide(&o, "b", last + secs(14), at(0)), None);
        assert!(decide(&o, "b", last + secs(15), at(0)).is_some());
    }
}
