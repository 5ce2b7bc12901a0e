//! Environment promotion: a new revision starts only once the same images have been the
//! stable revision of each Rollout it requires (staging before production) for long enough.

use jiff::{SignedDuration, Timestamp};

use super::record::{Ctx, RequiredObserved};
use super::window::{Hold, hold_for};
use crate::api::{Requirement, RolloutPhase};

/// Condition and Event reason of a rollout waiting for a Rollout it requires.
pub const REASON: &str = "WaitingForRequirement";

/// How often a rollout waiting for another Rollout looks again when nothing tells it when
/// to: the other Rollout may be in a namespace whose changes do not wake this one.
const RECHECK: SignedDuration = SignedDuration::from_secs(30);

/// Whether a new revision must wait for a Rollout it requires; when it must, the rollout is
/// marked held. The caller keeps the stable revision serving.
pub(super) fn start_held(ctx: &mut Ctx<'_>) -> bool {
    let target = ctx.obs.target_revision.clone();
    if ctx.status.current_revision.as_deref() == Some(target.as_str()) {
        return false;
    }
    let namespace = ctx
        .obs
        .rollout
        .metadata
        .namespace
        .clone()
        .unwrap_or_default();
    let unmet = ctx
        .obs
        .rollout
        .spec
        .requires
        .iter()
        .zip(ctx.obs.required.iter().chain(std::iter::repeat(&None)))
        .find_map(|(req, seen)| {
            unmet(req, seen.as_ref(), &ctx.obs.images, ctx.obs.now, &namespace)
        });
    let Some((why, until)) = unmet else {
        return false;
    };
    ctx.status.canary_weight = Some(0);
    let message = format!("revision {target} waits: {why}");
    hold_for(
        ctx,
        Hold {
            reason: REASON,
            event: REASON,
            refusal: format!("promote refused: {why}"),
            message,
            until: Some(until.unwrap_or(ctx.obs.now + RECHECK)),
        },
    );
    true
}

/// Why `req` is not met by the Rollout as `seen`, and when it will be if nothing changes.
pub fn unmet(
    req: &Requirement,
    seen: Option<&RequiredObserved>,
    images: &[String],
    now: Timestamp,
    namespace: &str,
) -> Option<(String, Option<Timestamp>)> {
    let (ns, name) = req.target(namespace);
    let who = format!("Rollout {ns}/{name}");
    let Some(seen) = seen else {
        return Some((
            format!("{who} is not found in a namespace this operator serves"),
            None,
        ));
    };
    if seen.phase == RolloutPhase::Degraded {
        return Some((format!("{who} is Degraded"), None));
    }
    if seen.stable_images != images {
        return Some((
            format!(
                "{who} does not serve {} as its stable revision yet",
                images.join(", ")
            ),
            None,
        ));
    }
    let Some(since) = seen.stable_since else {
        return Some((
            format!("{who} has not said since when it serves them"),
            None,
        ));
    };
    let due = since
        .checked_add(
            SignedDuration::try_from(req.healthy_for.as_std()).unwrap_or(SignedDuration::MAX),
        )
        .unwrap_or(Timestamp::MAX);
    if now >= due {
        return None;
    }
    let served = crate::api::Duration::from_secs(now.duration_since(since).as_secs().max(0) as u64);
    Some((
        format!(
            "{who} has served these images for {served} of {}; ready at {due}",
            req.healthy_for
        ),
        Some(due),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(T0 + secs).expect("a time")
    }

    fn req(rollout: &str) -> Requirement {
        Requirement {
            rollout: rollout.into(),
            healthy_for: "1h".parse().expect("a duration"),
        }
    }

    fn serving(images: &[&str], since: i64) -> RequiredObserved {
        RequiredObserved {
            phase: RolloutPhase::Healthy,
            stable_images: images.iter().map(|s| s.to_string()).collect(),
            stable_since: Some(at(since)),
        }
    }

    fn images() -> Vec<String> {
        vec!["web:2".into()]
    }

    #[test]
    fn met_once_the_same_images_served_long_enough() {
        let seen = serving(&["web:2"], 0);
        assert_eq!(
            unmet(
                &req("staging/web"),
                Some(&seen),
                &images(),
                at(3600),
                "prod"
            ),
            None
        );
        let (why, due) = unmet(
            &req("staging/web"),
            Some(&seen),
            &images(),
            at(1200),
            "prod",
        )
        .expect("not yet");
        assert_eq!(
            why,
            "Rollout staging/web has served these images for 20m of 1h; ready at 2027-01-15T09:00:00Z"
        );
        assert_eq!(due, Some(at(3600)));
    }

    #[test]
    fn other_images_a_degraded_or_missing_rollout_wait_without_a_time() {
        let other = serving(&["web:1"], -7200);
        let (why, due) = unmet(&req("web-staging"), Some(&other), &images(), at(0), "prod")
            .expect("other images");
        assert_eq!(
            why,
            "Rollout prod/web-staging does not serve web:2 as its stable revision yet"
        );
        assert_eq!(due, None);
        let mut degraded = serving(&["web:2"], -7200);
        degraded.phase = RolloutPhase::Degraded;
        assert_eq!(
            unmet(
                &req("staging/web"),
                Some(&degraded),
                &images(),
                at(0),
                "prod"
            )
            .map(|u| u.0)
            .as_deref(),
            Some("Rollout staging/web is Degraded")
        );
        assert_eq!(
            unmet(&req("staging/web"), None, &images(), at(0), "prod")
                .map(|u| u.0)
                .as_deref(),
            Some("Rollout staging/web is not found in a namespace this operator serves")
        );
    }

    #[test]
    fn a_rollout_mid_release_still_counts_its_stable_revision() {
        let mut seen = serving(&["web:2"], 0);
        seen.phase = RolloutPhase::Progressing;
        assert_eq!(
            unmet(
                &req("staging/web"),
                Some(&seen),
                &images(),
                at(3600),
                "prod"
            ),
            None
        );
    }
}
