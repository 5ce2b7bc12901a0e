//! The steps of a canary: weights, pauses, analyses, the canary's size, and the header and
//! mirror routes it adds to its HTTPRoute.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::{AnalysisSpec, Duration};

/// One canary step: set a weight, pause, run an analysis, or size the canary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("(has(self.setWeight) ? 1 : 0) + (has(self.pause) ? 1 : 0) + (has(self.analysis) ? 1 : 0) + (has(self.setCanaryScale) ? 1 : 0) + (has(self.setHeaderRoute) ? 1 : 0) + (has(self.setMirrorRoute) ? 1 : 0) == 1").message("a step sets exactly one of setWeight, pause, analysis, setCanaryScale, setHeaderRoute or setMirrorRoute"))]
pub struct CanaryStep {
    /// Percentage of traffic sent to the canary, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub set_weight: Option<i32>,
    /// Wait for a duration, or (without one) until a person promotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseStep>,
    /// Measure and wait for the verdict: success goes on, failure aborts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSpec>,
    /// Size the canary apart from its traffic weight, from this step on (routed canaries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_canary_scale: Option<SetCanaryScale>,
    /// Send requests whose headers match to the canary, from this step on (routed
    /// canaries); removed at promotion and abort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_header_route: Option<SetHeaderRoute>,
    /// Mirror a share of requests to the canary, responses dropped, from this step on
    /// (routed canaries); removed at promotion and abort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_mirror_route: Option<SetMirrorRoute>,
}

/// A route to the canary for requests whose headers match (A/B testing). With only a
/// name, removes the route of that name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetHeaderRoute {
    /// Its name, unique among the Rollout's routes: a later step with the name replaces or
    /// removes it.
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Headers a request must all carry; none removes the route.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub matches: Vec<HeaderMatch>,
}

/// A copy of a share of requests sent to the canary, its responses dropped. With only a
/// name, removes the mirror of that name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetMirrorRoute {
    /// Its name, unique among the Rollout's routes.
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Percentage of the requests mirrored (default 100 when a match is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub percentage: Option<i32>,
    /// Headers a request must carry to be mirrored; none mirrors every request of the
    /// route's rule (with a percentage).
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub matches: Vec<HeaderMatch>,
}

/// One header a request must carry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatch {
    /// Header name (`Cookie` matches cookies).
    #[schemars(
        length(min = 1, max = 256),
        regex(pattern = r"^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$")
    )]
    pub header_name: String,
    /// How its value must match.
    pub header_value: HeaderValueMatch,
}

/// Exactly one way a header's value matches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("(has(self.exact) ? 1 : 0) + (has(self.prefix) ? 1 : 0) + (has(self.regex) ? 1 : 0) == 1").message("a header value matches by exactly one of exact, prefix or regex"))]
pub struct HeaderValueMatch {
    /// The value, exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub exact: Option<String>,
    /// A prefix of the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub prefix: Option<String>,
    /// A regular expression the value matches (RE2 syntax, as gateways read it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub regex: Option<String>,
}

/// How many pods the canary runs, apart from its share of traffic: a 5 % weight on full
/// capacity, or a canary of one pod. Only with `trafficRouting`, where the route (not the
/// pods) sets the share of traffic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("(has(self.replicas) ? 1 : 0) + (has(self.weight) ? 1 : 0) + ((has(self.matchTrafficWeight) && self.matchTrafficWeight) ? 1 : 0) == 1").message("setCanaryScale sets exactly one of replicas, weight or matchTrafficWeight: true"))]
pub struct SetCanaryScale {
    /// An exact number of canary pods (never more than spec.replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub replicas: Option<i32>,
    /// A percentage of spec.replicas, rounded up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub weight: Option<i32>,
    /// Back to pods that follow the traffic weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_traffic_weight: Option<bool>,
}

/// The canary's size as a step set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CanaryScale {
    /// This many pods.
    Replicas(i32),
    /// This percentage of spec.replicas.
    Weight(i32),
    /// As many as the traffic weight calls for.
    MatchTrafficWeight,
}

impl SetCanaryScale {
    /// The size it sets, if exactly one way is given.
    pub fn scale(&self) -> Option<CanaryScale> {
        match (self.replicas, self.weight, self.match_traffic_weight) {
            (Some(n), None, None | Some(false)) => Some(CanaryScale::Replicas(n)),
            (None, Some(w), None | Some(false)) => Some(CanaryScale::Weight(w)),
            (None, None, Some(true)) => Some(CanaryScale::MatchTrafficWeight),
            _ => None,
        }
    }
}

/// What a canary step does, as one value.
#[derive(Clone, Debug, PartialEq)]
pub enum StepAction<'a> {
    /// Send this percentage of traffic to the canary.
    SetWeight(i32),
    /// Wait this long, or for a person when `None`.
    Pause(Option<Duration>),
    /// Run this analysis and wait for its verdict.
    Analysis(&'a AnalysisSpec),
    /// Size the canary so.
    SetCanaryScale(CanaryScale),
    /// Set (or, without matches, remove) a header route.
    SetHeaderRoute(&'a SetHeaderRoute),
    /// Set (or, with only its name, remove) a mirror route.
    SetMirrorRoute(&'a SetMirrorRoute),
}

impl CanaryStep {
    /// The step's action, if exactly one is set.
    pub fn action(&self) -> Option<StepAction<'_>> {
        let set = usize::from(self.set_weight.is_some())
            + usize::from(self.pause.is_some())
            + usize::from(self.analysis.is_some())
            + usize::from(self.set_canary_scale.is_some())
            + usize::from(self.set_header_route.is_some())
            + usize::from(self.set_mirror_route.is_some());
        if set != 1 {
            return None;
        }
        if let Some(w) = self.set_weight {
            return Some(StepAction::SetWeight(w));
        }
        if let Some(p) = &self.pause {
            return Some(StepAction::Pause(p.duration));
        }
        if let Some(a) = &self.analysis {
            return Some(StepAction::Analysis(a));
        }
        if let Some(h) = &self.set_header_route {
            return Some(StepAction::SetHeaderRoute(h));
        }
        if let Some(m) = &self.set_mirror_route {
            return Some(StepAction::SetMirrorRoute(m));
        }
        self.set_canary_scale
            .as_ref()
            .and_then(SetCanaryScale::scale)
            .map(StepAction::SetCanaryScale)
    }
}

/// A pause: timed, or open-ended until promoted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PauseStep {
    /// How long to wait; absent means wait for `kubectl cutover promote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
}
