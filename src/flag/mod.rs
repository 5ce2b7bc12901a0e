//! The FeatureFlag controller: flags rendered into flagd-format ConfigMaps, rolled out by
//! percentage under analysis, with a kill switch.

pub mod plan;
pub mod reconcile;
pub mod render;
