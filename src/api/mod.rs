//! Custom resource types of `cutover.dev/v1alpha1`.
//!
//! This module owns the shape of the API: the Rust types, their OpenAPI schemas with the
//! bounds and CEL rules the API server enforces, and defaulting. It performs no I/O.

pub mod analysis;
pub mod conditions;
pub mod duration;
pub mod flag;
pub mod migration;
pub mod openapi;
pub mod rollout;
pub mod validate;

pub use analysis::*;
pub use conditions::*;
pub use duration::Duration;
pub use flag::*;
pub use migration::*;
pub use rollout::*;

use kube::CustomResourceExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

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

/// Every CustomResourceDefinition of the API, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![Rollout::crd(), MigrationJob::crd(), FeatureFlag::crd()]
}

/// Renders all CRDs as one multi-document YAML stream.
pub fn crds_yaml() -> Result<String, serde_json::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&crate::yaml::to_string(&serde_json::to_value(&crd)?));
    }
    Ok(out)
}
