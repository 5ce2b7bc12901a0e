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
/// is as close as possible to `weight`. A weight above 0 always gets at least one canary pod
/// and a weight below 100 keeps at least one stable pod, when there are pods to share.
pub fn split_without_router(replicas: i32, weight: i32) -> Split {
    let replicas = replicas.max(0);
    let weight = weight.clamp(0, 100);
    let mut canary = ((f64::from(replicas) * f64::from(weight)) / 100.0).round() as i32;
    if weight > 0 && canary == 0 && replicas > 0 {
        canary = 1;
    }
    if weight < 100 && canary == replicas && replicas > 1 {
        canary = replicas - 1;
    }
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
    fn small_weights_still_get_a_canary_pod_and_large_keep_a_stable_one() {
        assert_eq!(
            split_without_router(3, 10),
            Split {
                stable: 2,
                canary: 1
            }
        );
        assert_eq!(
            split_without_router(4, 95),
            Split {
                stable: 1,
                canary: 3
            }
        );
        assert_eq!(
            split_without_router(1, 50),
            Split {
                stable: 0,
                canary: 1
            }
        );
        assert_eq!(
            split_without_router(5, 0),
            Split {
                stable: 5,
                canary: 0
            }
        );
        assert_eq!(
            split_without_router(5, 100),
            Split {
                stable: 0,
                canary: 5
            }
        );
        assert_eq!(
            split_without_router(0, 50),
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
            if replicas >= 2 && weight > 0 && weight < 100 {
                // No other split with both revisions present is closer to the weight.
                let best = (1..replicas)
                    .map(|c| (f64::from(c) * 100.0 / f64::from(replicas) - f64::from(weight)).abs())
                    .fold(f64::INFINITY, f64::min);
                let got = (f64::from(split.canary) * 100.0 / f64::from(replicas) - f64::from(weight)).abs();
                prop_assert!(got <= best + 1e-9, "got {} best {}", got, best);
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
