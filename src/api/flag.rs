//! The `FeatureFlag` kind: a flag rendered into a flagd-format ConfigMap, with an optional
//! progressive percentage rollout and a kill switch.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{AnalysisRunStatus, AnalysisSpec, AnalysisVerdict, Duration};

/// ConfigMap key flags are rendered into unless `output.configMap.key` says otherwise.
pub const DEFAULT_FLAGS_KEY: &str = "flags.flagd.json";
/// Default time between two percentage steps.
pub const DEFAULT_FLAG_STEP_INTERVAL: Duration = Duration::from_secs(300);

/// Desired state of a FeatureFlag: its variants, targeting, rollout and output.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "cutover.dev",
    version = "v1alpha1",
    kind = "FeatureFlag",
    namespaced,
    status = "FeatureFlagStatus",
    shortname = "ff",
    category = "cutover",
    doc = "A feature flag served in the flagd format, optionally rolled out by percentage under analysis.",
    printcolumn(name = "State", type_ = "string", json_path = ".spec.state"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Variant",
        type_ = "string",
        json_path = ".spec.rollout.variant"
    ),
    printcolumn(name = "Percent", type_ = "integer", json_path = ".status.percentage"),
    printcolumn(
        name = "ConfigMap",
        type_ = "string",
        json_path = ".spec.output.configMap.name"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
// Only rules over typed fields: kube-apiserver refuses a CRD whose rules read `variants` or
// `targeting`, whose values are free-form JSON. `validate::flag` checks those (InvalidSpec
// and `cutover lint`).
#[x_kube(validation = kube::core::Rule::new("!has(self.rollout) || self.rollout.variant != self.defaultVariant").message("rollout.variant must differ from defaultVariant"))]
pub struct FeatureFlagSpec {
    /// Key applications evaluate; defaults to the object's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[A-Za-z0-9_.-]+$"))]
    pub key: Option<String>,
    /// ENABLED serves the flag; DISABLED makes applications fall back to their code default
    /// and stops any rollout at 0 % (the kill switch).
    pub state: FlagState,
    /// Variant name to value (boolean, string, number or object).
    #[schemars(schema_with = "variants_schema")]
    pub variants: BTreeMap<String, serde_json::Value>,
    /// Variant served when no targeting rule applies.
    #[schemars(length(min = 1, max = 63))]
    pub default_variant: String,
    /// flagd targeting rule (JSON Logic), used as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_json_schema")]
    pub targeting: Option<serde_json::Value>,
    /// Flag metadata passed to applications (string, number or boolean values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "metadata_schema")]
    pub metadata: Option<BTreeMap<String, serde_json::Value>>,
    /// Progressive percentage rollout of one variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<FlagRollout>,
    /// When the rollout may start and take its next step. The kill switch is never held.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub windows: Vec<super::DeploymentWindow>,
    /// Where the flag is rendered.
    pub output: FlagOutput,
}

impl FeatureFlagSpec {
    /// Key applications evaluate, given the object's name.
    pub fn flag_key<'a>(&'a self, object_name: &'a str) -> &'a str {
        self.key.as_deref().unwrap_or(object_name)
    }
}

fn variants_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "minProperties": 1,
        "maxProperties": 64,
        "additionalProperties": { "x-kubernetes-preserve-unknown-fields": true }
    })
}

fn any_json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

fn metadata_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": 32,
        "additionalProperties": { "x-kubernetes-preserve-unknown-fields": true }
    })
}

/// Whether a flag is served.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum FlagState {
    /// Served.
    #[default]
    Enabled,
    /// Not served; applications fall back to their code default.
    Disabled,
}

/// A progressive percentage rollout of one variant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagRollout {
    /// Variant rolled out; the rest get `defaultVariant`.
    #[schemars(length(min = 1, max = 63))]
    pub variant: String,
    /// Percentages of users given the variant, ascending, each 0 to 100.
    #[schemars(length(min = 1, max = 20))]
    #[x_kube(validation = kube::core::Rule::new("self.all(p, p >= 0 && p <= 100)").message("each step is a percentage from 0 to 100"))]
    #[x_kube(validation = kube::core::Rule::new("self.isSorted()").message("steps must be ascending"))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub steps: Vec<i32>,
    /// Time at each percentage before the next (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Analysis that must pass at each step; a failure is the kill switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSpec>,
}

/// Where a flag is rendered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagOutput {
    /// ConfigMap (in the flag's namespace) shared by all flags that name it.
    pub config_map: ConfigMapOutput,
}

/// A ConfigMap key holding a flagd flag-definition file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapOutput {
    /// ConfigMap name.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Key in the ConfigMap (default `flags.flagd.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: Option<String>,
}

/// Lifecycle phase of a FeatureFlag.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum FlagPhase {
    /// Not rendered yet.
    #[default]
    Pending,
    /// A percentage rollout is advancing.
    Progressing,
    /// Rendered and served as specified (rollout complete, or none).
    Serving,
    /// State is DISABLED.
    Disabled,
    /// The kill switch fired: the variant is back at 0 %.
    RolledBack,
}

/// Observed state of a FeatureFlag.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeatureFlagStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Lifecycle phase.
    #[serde(default)]
    pub phase: FlagPhase,
    /// Why the flag is in this phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Index of the current rollout step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_index: Option<i32>,
    /// Percentage of users currently given the rolled-out variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<i32>,
    /// When the current step started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<Time>,
    /// Verdict of the last analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verdict: Option<AnalysisVerdict>,
    /// The current analysis run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisRunStatus>,
    /// ConfigMap and key the flag is rendered into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendered_to: Option<String>,
    /// Standard conditions: Ready, Progressing, Conflict, InvalidSpec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_key_defaults_to_the_object_name() {
        let mut spec = FeatureFlagSpec::default();
        assert_eq!(spec.flag_key("new-checkout"), "new-checkout");
        spec.key = Some("checkout.v2".into());
        assert_eq!(spec.flag_key("new-checkout"), "checkout.v2");
    }

    #[test]
    fn state_uses_flagd_spelling() {
        assert_eq!(
            serde_json::to_string(&FlagState::Disabled).unwrap(),
            "\"DISABLED\""
        );
    }
}
