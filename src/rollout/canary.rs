//! Canary replica arithmetic: how many pods each revision needs for a traffic weight.

/// Replicas of the stable and canary revisions for one weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// Pods of the stable revision.
    pub stable: i32,
    /// Pods of the canary revision.
    pub canary: i32,
}

impl Split {
    /// The traffic share of the canary, in percent, when traffic follows pods.
    pub fn weight(&self) -> i32 {
        achieved_weight(self.stable, self.canary)
    }
}

/// Percentage of pods (and so of traffic without a router) that are canary.
pub fn achieved_weight(stable: i32, canary: i32) -> i32 {
    let total = stable.max(0) + canary.max(0);
    if total == 0 {
        return 0;
    }
    ((f64::from(canary.max(0)) * 100.0 / f64::from(total)).round()) as i32
}

/// Without a router: the pods are shared between the revisions so that the canary's share
/// is the closest possible to `weight` without exceeding it — the step's weight is the blast
/// radius a team agreed to. Too few replicas for a small weight give the canary no pod; the
/// status then reports the weight actually achieved.
pub fn split_without_router(replicas: i32, weight: i32) -> Split {
    let replicas = replicas.max(0);
    let weight = weight.clamp(0, 100);
    // Integer arithmetic: floor(replicas * weight / 100) exactly.
    let canary = replicas * weight / 100;
    Split {
        stable: replicas - canary,
        canary,
    }
}

/// With a router: the stable keeps full size (an abort moves traffic back at once) and the
/// canary gets enough pods for its weight (at least one for any weight above 0).
pub fn split_with_router(replicas: i32, weight: i32) -> Split {
    let replicas = replicas.max(0);
    let weight = weight.clamp(0, 100);
    let canary = ((f64::from(replicas) * f64::from(weight)) / 100.0).ceil() as i32;
    Split {
        stable: replicas,
        canary: if weight > 0 { canary.max(1) } else { 0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn argo_example_ten_replicas_at_41_percent() {
        assert_eq!(
            split_without_router(10, 41),
            Split {
                stable: 6,
                canary: 4
            }
        );
        assert_eq!(split_without_router(10, 41).weight(), 40);
    }

    #[test]
    fn the_canary_never_gets_more_than_its_weight() {
        let split = |r, w| split_without_router(r, w);
        assert_eq!(
            split(3, 10),
            Split {
                stable: 3,
                canary: 0
            }
        );
        assert_eq!(
            split(20, 5),
            Split {
                stable: 19,
                canary: 1
            }
        );
        assert_eq!(
            split(4, 95),
            Split {
                stable: 1,
                canary: 3
            }
        );
        assert_eq!(
            split(1, 50),
            Split {
                stable: 1,
                canary: 0
            }
        );
        assert_eq!(
            split(5, 0),
            Split {
                stable: 5,
                canary: 0
            }
        );
        assert_eq!(
            split(5, 100),
            Split {
                stable: 0,
                canary: 5
            }
        );
        assert_eq!(
            split(0, 50),
            Split {
                stable: 0,
                canary: 0
            }
        );
    }

    #[test]
    fn router_keeps_stable_at_full_size() {
        assert_eq!(
            split_with_router(10, 5),
            Split {
                stable: 10,
                canary: 1
            }
        );
        assert_eq!(
            split_with_router(4, 30),
            Split {
                stable: 4,
                canary: 2
            }
        );
        assert_eq!(
            split_with_router(4, 0),
            Split {
                stable: 4,
                canary: 0
            }
        );
        assert_eq!(
            split_with_router(4, 100),
            Split {
                stable: 4,
                canary: 4
            }
        );
    }

    proptest! {
        #[test]
        fn without_router_pods_are_conserved_and_weight_is_closest(replicas in 0i32..200, weight in 0i32..=100) {
            let split = split_without_router(replicas, weight);
            prop_assert_eq!(split.stable + split.canary, replicas);
            prop_assert!(split.stable >= 0 && split.canary >= 0);
            if replicas > 0 {
                let share = |c: i32| f64::from(c) * 100.0 / f64::from(replicas);
                prop_assert!(share(split.canary) <= f64::from(weight) + 1e-9, "never above the step's weight");
                // No split that stays within the weight is closer to it.
                prop_assert!(split.canary == replicas || share(split.canary + 1) > f64::from(weight) + 1e-9);
            }
        }

        #[test]
        fn with_router_canary_never_exceeds_stable_size(replicas in 0i32..200, weight in 0i32..=100) {
            let split = split_with_router(replicas, weight);
            prop_assert_eq!(split.stable, replicas);
            prop_assert!(split.canary <= replicas.max(1));
            prop_assert_eq!(split.canary == 0, weight == 0);
        }
    }
}
