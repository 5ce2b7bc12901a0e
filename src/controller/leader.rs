//! Leader election on a coordination.k8s.io Lease, with client-go's timings: only the
//! leader reconciles; a standby takes over once the leader's lease expires.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
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
        }
    }
}

/// What to do with the Lease as it is now: `Some(spec)` to write (take or renew it), `None`
/// to stand by because another holder's lease is still valid.
pub fn decide(current: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Option<LeaseSpec> {
    let holder = current
        .and_then(|l| l.holder_identity.clone())
        .filter(|h| !h.is_empty());
    let expires = current.and_then(|l| {
        let renewed = l.renew_time.as_ref().or(l.acquire_time.as_ref())?.0;
        let secs = i64::from(l.lease_duration_seconds.unwrap_or(0));
        renewed.checked_add(SignedDuration::from_secs(secs)).ok()
    });
    let mine = holder.as_deref() == Some(me);
    if !mine && holder.is_some() && expires.is_some_and(|e| now < e) {
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
    let Some(spec) = decide(
        current.as_ref().and_then(|l| l.spec.as_ref()),
        &election.identity,
        clock.now(),
    ) else {
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

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn a_free_or_expired_lease_is_taken_and_a_valid_one_is_respected() {
        let taken = decide(None, "a", at(0)).unwrap();
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        assert_eq!(taken.lease_duration_seconds, Some(15));
        assert_eq!(taken.lease_transitions, Some(1));
        assert_eq!(decide(Some(&taken), "b", at(14)), None, "valid for 15 s");
        let stolen = decide(Some(&taken), "b", at(16)).unwrap();
        assert_eq!(stolen.holder_identity.as_deref(), Some("b"));
        assert_eq!(stolen.lease_transitions, Some(2));
        assert_eq!(stolen.acquire_time, Some(MicroTime(at(16))));
    }

    #[test]
    fn the_holder_renews_without_a_transition() {
        let taken = decide(None, "a", at(0)).unwrap();
        let renewed = decide(Some(&taken), "a", at(2)).unwrap();
        assert_eq!(renewed.renew_time, Some(MicroTime(at(2))));
        assert_eq!(renewed.acquire_time, Some(MicroTime(at(0))));
        assert_eq!(renewed.lease_transitions, Some(1));
    }

    #[test]
    fn a_released_lease_is_free() {
        let mut released = decide(None, "a", at(0)).unwrap();
        released.holder_identity = None;
        released.lease_duration_seconds = Some(1);
        assert!(decide(Some(&released), "b", at(0)).is_some());
    }
}
