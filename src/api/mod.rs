//! Custom resource types of `cutover.dev/v1alpha1`.
//!
//! This module owns the shape of the API: the Rust types, their OpenAPI schemas with the
//! bounds and CEL rules the API server enforces, and defaulting. It performs no I/O.

pub mod analysis;
pub mod conditions;
pub mod duration;
// kube's `printcolumn(...)` attributes repeat their keys by design.
#[allow(clippy::duplicated_attributes)]
pub mod flag;
pub mod health;
#[allow(clippy::duplicated_attributes)]
pub mod migration;
pub mod openapi;
#[allow(clippy::duplicated_attributes)]
pub mod rollout;
#[allow(clippy::duplicated_attributes)]
pub mod run;
pub mod selector;
mod steps;
pub mod template;
pub mod validate;
pub mod window;

pub use analysis::*;
pub use conditions::*;
pub use duration::Duration;
pub use flag::*;
pub use migration::*;
pub use rollout::*;
pub use run::*;
pub use steps::*;
pub use template::*;
pub use window::{ANNOTATION_FREEZE, DeploymentWindow, WindowKind};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of every cutover kind.
pub const GROUP: &str = "cutover.dev";
/// API version served and stored.
pub const VERSION: &str = "v1alpha1";
/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "cutover";
/// Finalizer the operator puts on objects whose cleanup it must run.
pub const FINALIZER: &str = "cutover.dev/cleanup";
/// Label naming the Rollout that owns an object.
pub const LABEL_ROLLOUT: &str = "cutover.dev/rollout";
/// Label carrying the pod-template hash of a revision.
pub const LABEL_REVISION: &str = "cutover.dev/revision";
/// Label carrying the role of a revision (`stable`, `canary`, `active`, `preview`).
pub const LABEL_ROLE: &str = "cutover.dev/role";
/// Annotation on a revision's Deployment: the Rollout's pod template as written, which
/// `undo` restores. The Deployment's own template carries the apiserver's defaults, and
/// hashes to another revision.
pub const ANNOTATION_TEMPLATE: &str = "cutover.dev/template";
/// Label on a revision's Deployment: when (Unix seconds) it last became the revision
/// serving stable traffic, so `undo` goes back to the last promoted release, never to an
/// aborted one. A label, not an annotation: a Deployment's annotation change is a new
/// generation, and its status would read stale until the controller caught up.
pub const LABEL_PROMOTED_AT: &str = "cutover.dev/promoted-at";

/// Every CustomResourceDefinition of the API, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        Rollout::crd(),
        MigrationJob::crd(),
        FeatureFlag::crd(),
        AnalysisTemplate::crd(),
        ClusterAnalysisTemplate::crd(),
        AnalysisRun::crd(),
    ]
}

/// The compiled schema of a cutover kind (`Rollout`, `FeatureFlag`, …), built
/// once per process: generating and compiling it is far costlier than validating with it.
pub fn schema_for_kind(kind: &str) -> Option<&'static openapi::CompiledSchema> {
    use std::sync::OnceLock;
    static SCHEMAS: OnceLock<Vec<(String, openapi::CompiledSchema)>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| {
        crds()
            .into_iter()
            .map(|crd| {
                let schema = crd
                    .spec
                    .versions
                    .first()
                    .and_then(|v| v.schema.as_ref())
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .and_then(|s| serde_json::to_value(s).ok())
                    .unwrap_or(serde_json::Value::Null);
                (crd.spec.names.kind, openapi::CompiledSchema::new(schema))
            })
            .collect()
    });
    schemas.iter().find(|(k, _)| k == kind).map(|(_, s)| s)
}
