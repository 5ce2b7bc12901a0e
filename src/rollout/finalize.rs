//! What a deleted Rollout gives back before it goes: the replicas of the Deployment it
//! adopted, and its HTTPRoute without cutover's header and mirror rules.

use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, ResourceExt,
    api::{DynamicObject, Patch, PatchParams},
};
use serde_json::json;

use super::{reconcile::publish, route};
use crate::{
    api::{FIELD_MANAGER, Rollout},
    controller::{Context, Error, shell},
};

/// Finalizer that gives an adopted Deployment (`workloadRef`) its replicas back before its
/// Rollout goes: the Rollout scaled it to zero, and without it deleting the Rollout would
/// leave nothing serving.
pub const FINALIZER_WORKLOAD: &str = "cutover.dev/workload-ref";

/// Finalizer that takes cutover's header and mirror rules out of the HTTPRoute before its
/// Rollout goes: they send requests to a canary that goes with the Rollout.
pub const FINALIZER_ROUTE: &str = "cutover.dev/route-rules";

/// Takes cutover's header and mirror rules out of a deleted Rollout's HTTPRoute, then lets
/// the Rollout go.
pub(super) async fn restore_route(
    ctx: &Context,
    rollouts: &Api<Rollout>,
    rollout: &Rollout,
) -> Result<(), Error> {
    let ns = rollout.namespace().unwrap_or_default();
    let routing = rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routing.as_ref());
    if let Some(routing) = routing {
        let (kind, name) = routing.gateway_api.route();
        let routes: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &ns, &route::route_resource(kind));
        // Read by a list: the role the operator runs with lists and watches routes.
        match crate::controller::cache::by_name(&routes, name).await {
            Ok(Some(r)) => {
                if route::set_route_rules(&ctx.client, &ns, kind, &r, &[])
                    .await?
                    .is_some()
                {
                    let message = format!(
                        "header and mirror routes taken out of {} {name:?}",
                        kind.kind()
                    );
                    publish(ctx, rollout, "RouteRestored", &message, false).await;
                }
            }
            // Gone already, or its namespace is being deleted: nothing to restore.
            Ok(None) => {}
            Err(kube::Error::Api(status)) if status.code == 403 => {}
            Err(e) => return Err(e.into()),
        }
    }
    shell::remove_finalizer(rollouts, rollout, FINALIZER_ROUTE).await?;
    Ok(())
}

/// Scales the Deployment a deleted Rollout adopted back to the Rollout's size, then lets
/// the Rollout go.
pub(super) async fn return_workload(
    ctx: &Context,
    rollouts: &Api<Rollout>,
    rollout: &Rollout,
) -> Result<(), Error> {
    if let Some(wr) = &rollout.spec.workload_ref {
        let replicas = rollout
            .spec
            .replicas
            .or_else(|| rollout.status.as_ref().and_then(|s| s.replicas))
            .unwrap_or(1);
        let deployments: Api<Deployment> =
            Api::namespaced(ctx.client.clone(), &rollout.namespace().unwrap_or_default());
        let scale = json!({"spec": {"replicas": replicas}});
        match deployments
            .patch_scale(
                &wr.name,
                &PatchParams::apply(FIELD_MANAGER),
                &Patch::Merge(&scale),
            )
            .await
        {
            Ok(_) => {
                let message = format!(
                    "Deployment {:?} scaled back to {replicas} replicas",
                    wr.name
                );
                publish(ctx, rollout, "WorkloadReturned", &message, false).await;
            }
            // Gone already, or its namespace is being deleted: nothing left to give back.
            Err(kube::Error::Api(status)) if matches!(status.code, 403 | 404) => {}
            Err(e) => return Err(e.into()),
        }
    }
    shell::remove_finalizer(rollouts, rollout, FINALIZER_WORKLOAD).await?;
    Ok(())
}
