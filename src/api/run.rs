//! The `AnalysisRun` kind: the whole measurement record of one analysis run of a Rollout
//! or FeatureFlag, kept beside it so the object's own status stays small in a long bake.

use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::AnalysisRunStatus;

/// Which run of which object an AnalysisRun records.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[kube(
    group = "cutover.dev",
    version = "v1alpha1",
    kind = "AnalysisRun",
    namespaced,
    shortname = "arun",
    category = "cutover",
    status = "AnalysisRunStatus",
    doc = "The measurements of one analysis run of a Rollout or FeatureFlag, written by the operator.",
    printcolumn(name = "Of", type_ = "string", json_path = ".spec.of.name"),
    printcolumn(name = "Run", type_ = "string", json_path = ".spec.run"),
    printcolumn(name = "Revision", type_ = "string", json_path = ".spec.revision"),
    printcolumn(name = "Verdict", type_ = "string", json_path = ".status.verdict"),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.message",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunSpec {
    /// The Rollout or FeatureFlag whose analysis this is.
    pub of: RunSubject,
    /// The run: `step-N`, `background`, `prePromotion`, `postPromotion`, `batch-N`, or a
    /// FeatureFlag's `step-N`.
    pub run: String,
    /// The revision it judged (Rollouts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// The object an AnalysisRun belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSubject {
    /// `Rollout` or `FeatureFlag`.
    pub kind: String,
    /// Its name.
    pub name: String,
}
