//! The `Rollout` kind: progressive delivery of one workload.

use k8s_openapi::{
    api::core::v1::PodTemplateSpec,
    apimachinery::pkg::{
        apis::meta::v1::{Condition, LabelSelector, Time},
        util::intstr::IntOrString,
    },
};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{
    AnalysisRunStatus, AnalysisSpec, CanaryStep, Duration, PauseStep, SecretKeyRef, TemplateRef,
};

/// Default number of old revisions kept for instant undo.
pub const DEFAULT_REVISION_HISTORY_LIMIT: u32 = 10;
/// Default seconds a revision may take to become available.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: u32 = 600;
/// Default seconds an old blue-green revision stays scaled after the switch.
pub const DEFAULT_SCALE_DOWN_DELAY_SECONDS: u32 = 30;
/// Default seconds a canary stays scaled after an abort when a router sends it no traffic.
pub const DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS: u32 = 30;

/// Annotation a person sets to move past the current pause or step (`kubectl cutover promote`).
pub const ANNOTATION_PROMOTE: &str = "cutover.dev/promote";
/// Annotation that skips all remaining steps and analysis (`promote --full`).
pub const ANNOTATION_PROMOTE_FULL: &str = "cutover.dev/promote-full";
/// Annotation that aborts the rollout: traffic back to stable.
pub const ANNOTATION_ABORT: &str = "cutover.dev/abort";
/// Annotation that restarts an aborted rollout from step 0.
pub const ANNOTATION_RETRY: &str = "cutover.dev/retry";

/// Desired state of a Rollout: the workload, how new revisions replace old ones, and what
/// gates them.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "cutover.dev",
    version = "v1alpha1",
    kind = "Rollout",
    namespaced,
    status = "RolloutStatus",
    shortname = "cro",
    category = "cutover",
    doc = "Progressive delivery of a workload: canary, blue-green or rolling, with analysis, migration gates and manual approval.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Strategy", type_ = "string", json_path = ".status.strategy"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Step", type_ = "integer", json_path = ".status.currentStepIndex"),
    printcolumn(name = "Weight", type_ = "integer", json_path = ".status.canaryWeight"),
    printcolumn(name = "Stable", type_ = "string", json_path = ".status.stableRevision"),
    printcolumn(name = "Current", type_ = "string", json_path = ".status.currentRevision"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    ),
    printcolumn(
        name = "Image",
        type_ = "string",
        json_path = ".spec.template.spec.containers[0].image",
        priority = 1
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.message",
        priority = 1
    ),
    validation = kube::core::Rule::new("has(self.spec.template) != has(self.spec.workloadRef)").message("exactly one of spec.template or spec.workloadRef must be set"),
    validation = kube::core::Rule::new("!has(self.spec.template) || has(self.spec.selector)").message("spec.selector is required with spec.template"),
    validation = kube::core::Rule::new("!has(self.metadata.name) || size(self.metadata.name) <= 52").message("a Rollout name may have at most 52 characters: revisions are named <rollout>-<10-character hash> and must stay valid label values")
)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Desired number of pods (default 1). The scale subresource sets it, so an HPA or
    /// `kubectl scale` can drive it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub replicas: Option<i32>,
    /// Label selector of the pods; must match `template.metadata.labels`. Immutable, as a
    /// Deployment's: the revisions' Deployments carry it, and theirs cannot change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("spec.selector is immutable: create a new Rollout (with another name) to change it"))]
    pub selector: Option<LabelSelector>,
    /// Pod template of the workload. Set this or `workloadRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pod_template_schema")]
    pub template: Option<PodTemplateSpec>,
    /// An existing Deployment whose template is used; it is scaled to 0 once this Rollout's
    /// stable revision is available, so adoption never leaves the app without pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_ref: Option<WorkloadRef>,
    /// Old revisions kept (scaled to 0) for instant undo (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub revision_history_limit: Option<u32>,
    /// Seconds a new revision may take to become available before the rollout aborts or is
    /// marked Degraded (default 600; time spent paused does not count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub progress_deadline_seconds: Option<u32>,
    /// Abort when the progress deadline passes (default true); false only marks Degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_abort: Option<bool>,
    /// Seconds a new pod must be ready before it counts as available (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub min_ready_seconds: Option<i32>,
    /// Pauses the rollout where it is (`kubectl cutover pause`); false resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// How a new revision replaces the old: exactly one of canary, blueGreen or rolling.
    pub strategy: RolloutStrategy,
    /// MigrationJobs that gate the new revision or follow its promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrations: Option<MigrationGates>,
    /// FeatureFlags switched when this rollout promotes or aborts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<FlagLinks>,
    /// Webhooks told about the rollout's progress; Kubernetes Events are always emitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Notifications>,
    /// When a new revision may start rolling out and a rollout under way may take its
    /// next step. Abort and undo are never held.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub windows: Vec<super::DeploymentWindow>,
    /// Rollouts whose release this one follows: a new revision starts only once its images
    /// have served as another Rollout's stable revision for a while (staging before
    /// production).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub requires: Vec<Requirement>,
    /// After full promotion: how long the new revision is watched with the previous one
    /// ready to come back, and the analysis that undoes the release when it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake: Option<Bake>,
    /// The ConfigMaps the pod template reads are part of each revision: copied per
    /// revision as `<name>-<revision>`, so a change to one rolls out through the steps and
    /// an abort returns to the old config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_rollout: Option<bool>,
}

/// The watch after a promotion: a failure within `duration` restores the previous revision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bake {
    /// How long after promotion (at most 168h).
    pub duration: Duration,
    /// What judges the release meanwhile; its failure restores the previous revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSpec>,
    /// A longer watch after the bake (the runbook's 24–48 hours) that only alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verify>,
}

/// A watch that alerts (an Event, a notification, a condition) and never rolls back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verify {
    /// How long after promotion (longer than the bake, at most 168h).
    pub duration: Duration,
    /// What judges the release.
    pub analysis: AnalysisSpec,
}

/// Where the bake of a promoted revision stands.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum BakePhase {
    /// Watched; the previous revision is ready to come back.
    #[default]
    Baking,
    /// The bake failed: the previous revision is scaling back up.
    Restoring,
    /// The bake failed and the previous revision serves again.
    RolledBack,
    /// The bake ended without failure.
    Passed,
    /// The verify window is watching.
    Verifying,
    /// The verify window ended without failure.
    Verified,
    /// The verify analysis failed (alerted; nothing rolled back).
    VerifyFailed,
    /// A newer release started before the bake ended.
    Superseded,
}

/// Most releases `status.history` keeps.
pub const MAX_HISTORY: usize = 10;

/// How a release ended.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum ReleaseResult {
    /// Still rolling out.
    #[default]
    Progressing,
    /// Fully promoted: it serves.
    Promoted,
    /// Aborted; the revision before it serves.
    Aborted,
    /// Promoted, then undone by its failed bake.
    RolledBack,
    /// Replaced by a newer release before it ended.
    Superseded,
}

/// One release of the deployment log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    /// The revision released.
    pub revision: String,
    /// Its images, in container order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// When it started.
    pub started_at: Time,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Time>,
    /// How it ended.
    pub result: ReleaseResult,
    /// Why, for an abort or a rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who changed the template, as the API server recorded it (the field manager: `kubectl-edit`, `argocd-controller`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
}

/// The bake of the last promoted revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BakeStatus {
    /// The promoted revision.
    pub revision: String,
    /// The revision it replaced, restored if the bake fails.
    pub previous: String,
    /// Where it stands.
    pub phase: BakePhase,
    /// When the revision was promoted.
    pub started_at: Time,
    /// Why it failed, or how it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Another Rollout a release must have gone through first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Requirement {
    /// The Rollout: `name` in this namespace, or `namespace/name`.
    #[schemars(
        length(min = 1, max = 317),
        regex(pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub rollout: String,
    /// How long the same images must have been its stable revision, and not Degraded.
    pub healthy_for: super::Duration,
}

impl Requirement {
    /// The required Rollout's namespace and name, with `namespace` for a bare name.
    pub fn target<'a>(&'a self, namespace: &'a str) -> (&'a str, &'a str) {
        match self.rollout.split_once('/') {
            Some((ns, name)) => (ns, name),
            None => (namespace, self.rollout.as_str()),
        }
    }
}

impl RolloutSpec {
    /// Every analysis of the spec with its path, e.g. `spec.strategy.canary.steps[2].analysis`.
    pub fn analyses_mut(&mut self) -> Vec<(String, &mut AnalysisSpec)> {
        let mut out = Vec::new();
        let strategy = &mut self.strategy;
        if let Some(canary) = &mut strategy.canary {
            for (i, step) in canary.steps.iter_mut().enumerate() {
                if let Some(a) = &mut step.analysis {
                    out.push((format!("spec.strategy.canary.steps[{i}].analysis"), a));
                }
            }
            if let Some(b) = &mut canary.analysis {
                out.push(("spec.strategy.canary.analysis".to_string(), &mut b.spec));
            }
        }
        if let Some(bg) = &mut strategy.blue_green {
            if let Some(a) = &mut bg.pre_promotion_analysis {
                out.push((
                    "spec.strategy.blueGreen.prePromotionAnalysis".to_string(),
                    a,
                ));
            }
            if let Some(a) = &mut bg.post_promotion_analysis {
                out.push((
                    "spec.strategy.blueGreen.postPromotionAnalysis".to_string(),
                    a,
                ));
            }
        }
        if let Some(a) = strategy.rolling.as_mut().and_then(|r| r.analysis.as_mut()) {
            out.push(("spec.strategy.rolling.analysis".to_string(), a));
        }
        if let Some(bake) = &mut self.bake {
            if let Some(a) = &mut bake.analysis {
                out.push(("spec.bake.analysis".to_string(), a));
            }
            if let Some(v) = &mut bake.verify {
                out.push(("spec.bake.verify.analysis".to_string(), &mut v.analysis));
            }
        }
        out
    }
    /// Every analysis of the spec.
    pub fn analyses(&self) -> impl Iterator<Item = &AnalysisSpec> {
        let s = &self.strategy;
        let canary = s.canary.as_ref();
        let bg = s.blue_green.as_ref();
        canary
            .into_iter()
            .flat_map(|c| c.steps.iter().filter_map(|st| st.analysis.as_ref()))
            .chain(canary.and_then(|c| c.analysis.as_ref()).map(|b| &b.spec))
            .chain(bg.and_then(|b| b.pre_promotion_analysis.as_ref()))
            .chain(bg.and_then(|b| b.post_promotion_analysis.as_ref()))
            .chain(s.rolling.as_ref().and_then(|r| r.analysis.as_ref()))
            .chain(self.bake.as_ref().and_then(|b| b.analysis.as_ref()))
            .chain(
                self.bake
                    .as_ref()
                    .and_then(|b| b.verify.as_ref())
                    .map(|v| &v.analysis),
            )
    }
    /// The templates the spec's analyses reference.
    pub fn template_refs(&self) -> impl Iterator<Item = &TemplateRef> {
        self.analyses().flat_map(|a| a.templates.iter())
    }
    /// Desired replicas, defaulted.
    pub fn replicas(&self) -> i32 {
        self.replicas.unwrap_or(1)
    }
    /// Revision history limit, defaulted.
    pub fn revision_history_limit(&self) -> u32 {
        self.revision_history_limit
            .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT)
    }
    /// Progress deadline in seconds, defaulted.
    pub fn progress_deadline_seconds(&self) -> u32 {
        self.progress_deadline_seconds
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS)
    }
    /// Whether passing the progress deadline aborts, defaulted.
    pub fn progress_deadline_abort(&self) -> bool {
        self.progress_deadline_abort.unwrap_or(true)
    }
    /// Which strategy is configured, if exactly one is.
    pub fn strategy_kind(&self) -> Option<StrategyKind> {
        match (
            &self.strategy.canary,
            &self.strategy.blue_green,
            &self.strategy.rolling,
        ) {
            (Some(_), None, None) => Some(StrategyKind::Canary),
            (None, Some(_), None) => Some(StrategyKind::BlueGreen),
            (None, None, Some(_)) => Some(StrategyKind::Rolling),
            _ => None,
        }
    }
}

/// The pod template schema without nested field descriptions: with them three embedded
/// templates make the CRDs larger than the API server stores (the same trade Argo Rollouts
/// makes); `kubectl explain` still shows every field.
pub(crate) fn pod_template_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut value = generator.subschema_for::<PodTemplateSpec>().to_value();
    strip_descriptions(&mut value);
    let mut schema = schemars::Schema::try_from(value).unwrap_or_default();
    schema.insert("description".into(), "Pod template of the workload.".into());
    schema
}

fn strip_descriptions(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.remove("description");
            for (key, child) in map.iter_mut() {
                if key == "properties" {
                    // Keys here are field names (a field may be called "description").
                    if let serde_json::Value::Object(fields) = child {
                        fields.values_mut().for_each(strip_descriptions);
                    }
                } else {
                    strip_descriptions(child);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_descriptions),
        _ => {}
    }
}

/// A Deployment whose pod template a Rollout adopts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.kind == 'Deployment' && self.apiVersion == 'apps/v1'").message("workloadRef must name an apps/v1 Deployment"))]
pub struct WorkloadRef {
    /// `apps/v1`.
    pub api_version: String,
    /// `Deployment`.
    pub kind: String,
    /// Name of the Deployment in the Rollout's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// The strategies a Rollout can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum StrategyKind {
    /// Traffic shifted step by step.
    Canary,
    /// A full new copy behind a preview Service, switched atomically.
    BlueGreen,
    /// Batches of the new revision replace the old.
    Rolling,
}

/// Exactly one of the strategies.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("(has(self.canary) ? 1 : 0) + (has(self.blueGreen) ? 1 : 0) + (has(self.rolling) ? 1 : 0) == 1").message("exactly one strategy must be set: canary, blueGreen or rolling"))]
pub struct RolloutStrategy {
    /// Shift traffic to the new revision step by step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,
    /// Run the new revision behind a preview Service and switch the active Service at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStrategy>,
    /// Replace the old revision in batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling: Option<RollingStrategy>,
}

/// Canary: a new revision receives a growing share of traffic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.trafficRouting) || (has(self.stableService) && has(self.canaryService))").message("trafficRouting needs both stableService and canaryService"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.stableService) || !has(self.canaryService) || self.stableService != self.canaryService").message("stableService and canaryService must differ"))]
#[x_kube(validation = kube::core::Rule::new("has(self.trafficRouting) || !has(self.steps) || !self.steps.exists(s, has(s.setCanaryScale))").message("setCanaryScale needs trafficRouting: without a router the canary's share of traffic is its share of pods"))]
#[x_kube(validation = kube::core::Rule::new("has(self.trafficRouting) || !has(self.steps) || !self.steps.exists(s, has(s.setHeaderRoute) || has(s.setMirrorRoute))").message("setHeaderRoute and setMirrorRoute need trafficRouting: they are rules of its route"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.trafficRouting) || !has(self.trafficRouting.gatewayAPI.grpcRoute) || !has(self.steps) || !self.steps.exists(s, has(s.setMirrorRoute))").message("setMirrorRoute needs an httpRoute: Gateway API names no feature by which a gateway says it mirrors gRPC"))]
pub struct CanaryStrategy {
    /// Service that receives stable traffic. Without a router it selects both revisions
    /// and the share of traffic is the replica ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub stable_service: Option<String>,
    /// Service pinned to the canary revision only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub canary_service: Option<String>,
    /// A router that sets exact weights; without one, weight is the replica ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<TrafficRouting>,
    /// Steps run in order; after the last the new revision is promoted to stable.
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub steps: Vec<CanaryStep>,
    /// Analysis run in the background across all steps; a failure aborts at any step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<BackgroundAnalysis>,
    /// Seconds a canary stays scaled after an abort, when a router took its traffic away
    /// (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub abort_scale_down_delay_seconds: Option<u32>,
}

/// Analysis that runs across all steps.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackgroundAnalysis {
    /// Step index at which it starts (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 99))]
    pub starting_step: Option<i32>,
    /// The metrics.
    #[serde(flatten)]
    pub spec: AnalysisSpec,
}

/// A router that sets traffic weights exactly.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficRouting {
    /// Gateway API HTTPRoute whose backendRefs to the stable and canary Services get weights.
    #[serde(rename = "gatewayAPI")]
    pub gateway_api: GatewayApiRouting,
}

/// A Gateway API route in the Rollout's namespace: an HTTPRoute or a GRPCRoute.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.httpRoute) != has(self.grpcRoute)").message("set httpRoute or grpcRoute, exactly one"))]
pub struct GatewayApiRouting {
    /// Name of the HTTPRoute. Only backendRefs naming the stable or canary Service are changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub http_route: Option<String>,
    /// Name of the GRPCRoute, for a gRPC service. Only backendRefs naming the stable or
    /// canary Service are changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub grpc_route: Option<String>,
}

/// Which Gateway API route kind a Rollout shifts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    /// `HTTPRoute`.
    Http,
    /// `GRPCRoute`.
    Grpc,
}

impl RouteKind {
    /// The kind's name.
    pub fn kind(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
        }
    }

    /// The kind's plural resource name.
    pub fn plural(self) -> &'static str {
        match self {
            RouteKind::Http => "httproutes",
            RouteKind::Grpc => "grpcroutes",
        }
    }
}

impl GatewayApiRouting {
    /// The route's kind and name (an HTTPRoute when both or neither are set; validation
    /// reports either).
    pub fn route(&self) -> (RouteKind, &str) {
        match (&self.http_route, &self.grpc_route) {
            (None, Some(grpc)) => (RouteKind::Grpc, grpc),
            (http, _) => (RouteKind::Http, http.as_deref().unwrap_or("")),
        }
    }
}

/// Blue-green: a full copy of the new revision behind a preview Service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.previewService) || self.previewService != self.activeService").message("activeService and previewService must differ"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.autoPromotionSeconds) || !has(self.autoPromotionEnabled) || self.autoPromotionEnabled").message("autoPromotionSeconds needs autoPromotionEnabled"))]
pub struct BlueGreenStrategy {
    /// Service that serves production traffic; its selector is switched on promotion.
    #[schemars(length(min = 1, max = 63))]
    pub active_service: String,
    /// Service pinned to the new revision before promotion, for testing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub preview_service: Option<String>,
    /// Promote without a person once the new revision is ready (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_enabled: Option<bool>,
    /// Seconds to wait after the new revision is ready before promoting automatically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 604800))]
    pub auto_promotion_seconds: Option<u32>,
    /// Seconds the old revision stays scaled after the switch, for instant rollback and for
    /// proxies to catch up (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub scale_down_delay_seconds: Option<u32>,
    /// Replicas of the new revision before promotion (default: full size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub preview_replica_count: Option<i32>,
    /// Analysis before the switch; failure aborts and the active Service never moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis: Option<AnalysisSpec>,
    /// Analysis after the switch; failure switches back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis: Option<AnalysisSpec>,
}

/// Rolling: batches of the new revision replace the old.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollingStrategy {
    /// Pods replaced per batch: a count or a percentage of replicas (default 25%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<IntOrString>,
    /// Pods that may be unavailable during the update: a count or a percentage (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Pause after each batch but the last: timed, or until promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseStep>,
    /// Analysis after each batch but the last; failure aborts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSpec>,
}

/// MigrationJobs tied to this rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationGates {
    /// MigrationJobs that must have Succeeded for their current spec before the new revision
    /// gets any pod (expand migrations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub before: Vec<String>,
    /// MigrationJobs run once the new revision is fully promoted and old pods are gone
    /// (contract migrations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub after: Vec<String>,
    /// Run each `before` migration's rollback Job when the rollout aborts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_on_abort: Option<bool>,
}

/// FeatureFlags switched by the rollout's outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagLinks {
    /// FeatureFlags set to ENABLED once the rollout is fully promoted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub enable_on_promotion: Vec<String>,
    /// FeatureFlags set to DISABLED when the rollout aborts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub disable_on_abort: Vec<String>,
}

/// Where progress is announced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notifications {
    /// HTTP endpoints told about chosen events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub webhooks: Vec<Webhook>,
}

/// A webhook endpoint; its URL is read from a Secret and never logged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// Name of the webhook, unique in the list.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Secret key holding the URL.
    pub url_from: SecretKeyRef,
    /// Payload shape: Generic JSON (default) or Slack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<WebhookFormat>,
    /// Events sent; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub events: Vec<NotificationEvent>,
    /// The message's text, with `{{ event }}`, `{{ namespace }}`, `{{ rollout }}`,
    /// `{{ revision }}`, `{{ message }}`, `{{ images }}`, `{{ startedBy }}`, `{{ result }}`
    /// and `{{ duration }}` filled in; default: the decision's own message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub template: Option<String>,
}

/// Payload shapes of webhooks.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum WebhookFormat {
    /// `{"event": ..., "rollout": ..., "message": ...}`.
    #[default]
    Generic,
    /// Slack incoming-webhook payload (`{"text": ...}`).
    Slack,
}

/// Events a webhook can be told about.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum NotificationEvent {
    /// A new revision started rolling out.
    Started,
    /// A step completed.
    StepCompleted,
    /// The rollout paused.
    Paused,
    /// The new revision became stable.
    Promoted,
    /// The rollout aborted.
    Aborted,
    /// A gating migration failed.
    MigrationFailed,
    /// The bake after promotion failed; the previous revision is restored.
    BakeFailed,
    /// The verify window's analysis failed (an alert; nothing is rolled back).
    VerifyFailed,
}

/// Lifecycle phase of a Rollout.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum RolloutPhase {
    /// Not yet acted on.
    #[default]
    Pending,
    /// A new revision is rolling out.
    Progressing,
    /// Waiting for a person or a timer.
    Paused,
    /// The current revision is stable and available.
    Healthy,
    /// Not available, or the progress deadline passed without abort.
    Degraded,
    /// Aborted; traffic is on stable.
    Aborted,
}

/// Observed state of a Rollout, written by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Lifecycle phase.
    #[serde(default)]
    pub phase: RolloutPhase,
    /// Why the rollout is in this phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Strategy in use (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<StrategyKind>,
    /// Index of the step being run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_index: Option<i32>,
    /// The canary's share in percent. With a traffic router, the share of requests the
    /// route's weights send it; without one, the share of pods it has (requests follow
    /// pods only roughly: keep-alive and HTTP/2 connections, topology-aware routing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<i32>,
    /// Revision (pod-template hash) that serves as stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// Revision being rolled out (equals stable when done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    /// Revision that served before the last promotion, kept scaled until `scaleDownAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_revision: Option<String>,
    /// Revision for which `after` (contract) migrations may run: fully promoted, with no
    /// pod of an older revision left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_revision: Option<String>,
    /// When the previous revision is scaled down (blue-green scaleDownDelaySeconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_at: Option<Time>,
    /// When the current step started (for timed pauses and deadlines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<Time>,
    /// When the rollout paused, if it is paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<Time>,
    /// Control annotations already acted on, by annotation key, so each request is acted on once.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub handled_requests: std::collections::BTreeMap<String, String>,
    /// Pods of all revisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Ready pods of all revisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Available pods of all revisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
    /// Label selector string used by the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Analysis runs of the current revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analysis: Vec<AnalysisRunStatus>,
    /// Images of the stable revision, in container order, once it is Healthy; what
    /// Rollouts that require this one compare with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stable_images: Vec<String>,
    /// When the stable revision with these images became Healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_since: Option<Time>,
    /// The bake of the last promoted revision, when `spec.bake` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake: Option<BakeStatus>,
    /// The deployment log: the last releases, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Release>,
    /// Standard conditions: Progressing, Available, Paused, Aborted, InvalidSpec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::StepAction;

    #[test]
    fn defaults_match_what_argo_rollouts_users_expect() {
        let spec = RolloutSpec::default();
        assert_eq!(spec.replicas(), 1);
        assert_eq!(spec.revision_history_limit(), 10);
        assert_eq!(spec.progress_deadline_seconds(), 600);
        assert!(
            spec.progress_deadline_abort(),
            "a stuck revision aborts unless told otherwise"
        );
    }

    #[test]
    fn strategy_kind_requires_exactly_one_strategy() {
        let mut spec = RolloutSpec::default();
        assert_eq!(spec.strategy_kind(), None);
        spec.strategy.canary = Some(CanaryStrategy::default());
        assert_eq!(spec.strategy_kind(), Some(StrategyKind::Canary));
        spec.strategy.rolling = Some(RollingStrategy::default());
        assert_eq!(spec.strategy_kind(), None);
    }

    #[test]
    fn step_actions() {
        let weight = CanaryStep {
            set_weight: Some(20),
            ..Default::default()
        };
        assert_eq!(weight.action(), Some(StepAction::SetWeight(20)));
        let gate = CanaryStep {
            pause: Some(PauseStep::default()),
            ..Default::default()
        };
        assert_eq!(gate.action(), Some(StepAction::Pause(None)));
        let both = CanaryStep {
            set_weight: Some(5),
            pause: Some(PauseStep::default()),
            ..Default::default()
        };
        assert_eq!(both.action(), None);
        assert_eq!(CanaryStep::default().action(), None);
    }

    #[test]
    fn manifests_round_trip_with_argo_style_field_names() {
        let yaml = r#"
replicas: 3
selector: {matchLabels: {app: web}}
template: {metadata: {labels: {app: web}}, spec: {containers: [{name: web, image: web:1}]}}
strategy:
  canary:
    stableService: web
    canaryService: web-canary
    trafficRouting: {gatewayAPI: {httpRoute: web}}
    steps: [{setWeight: 10}, {pause: {duration: 1m}}, {pause: {}}]
"#;
        let spec: RolloutSpec = crate::yaml::from_str(yaml).unwrap();
        let canary = spec.strategy.canary.as_ref().unwrap();
        assert_eq!(
            canary.traffic_routing.as_ref().unwrap().gateway_api.route(),
            (RouteKind::Http, "web")
        );
        assert_eq!(
            canary.steps[1].action(),
            Some(StepAction::Pause(Some(Duration::from_secs(60))))
        );
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            json["strategy"]["canary"]["trafficRouting"]["gatewayAPI"]["httpRoute"],
            "web"
        );
        assert_eq!(
            json["strategy"]["canary"]["steps"][1]["pause"]["duration"],
            "1m"
        );
        let back: RolloutSpec = serde_json::from_value(json).unwrap();
        assert_eq!(back, spec);
    }
}
