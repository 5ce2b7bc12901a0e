//! The `AnalysisTemplate` and `ClusterAnalysisTemplate` kinds: metrics and typed args
//! written once by a platform team and referenced, with args, by any analysis.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{AnalysisArg, Metric};

/// Metrics and the args they take, usable by analyses in the template's namespace.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "cutover.dev",
    version = "v1alpha1",
    kind = "AnalysisTemplate",
    namespaced,
    shortname = "atpl",
    category = "cutover",
    doc = "Metrics and args that analyses in this namespace reference by name.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateSpec {
    /// Args the metrics take; one without a value must be given by each analysis using it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub args: Vec<AnalysisArg>,
    /// Metrics measured by each analysis using the template.
    #[schemars(length(min = 1, max = 20))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub metrics: Vec<Metric>,
}

/// Metrics and the args they take, usable by analyses in every namespace.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "cutover.dev",
    version = "v1alpha1",
    kind = "ClusterAnalysisTemplate",
    shortname = "catpl",
    category = "cutover",
    doc = "Metrics and args that analyses in any namespace reference by name.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAnalysisTemplateSpec {
    /// Args the metrics take; one without a value must be given by each analysis using it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub args: Vec<AnalysisArg>,
    /// Metrics measured by each analysis using the template.
    #[schemars(length(min = 1, max = 20))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub metrics: Vec<Metric>,
}

impl From<ClusterAnalysisTemplateSpec> for AnalysisTemplateSpec {
    fn from(spec: ClusterAnalysisTemplateSpec) -> Self {
        AnalysisTemplateSpec {
            args: spec.args,
            metrics: spec.metrics,
        }
    }
}
