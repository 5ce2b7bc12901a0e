//! What a deleted Rollout gives back before it goes: the replicas of the Deployment it
//! adopted, and its route without cutover's header and mirror rules (also when the spec
//! stops naming that route).

use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, ResourceExt,
    api::{DynamicObject, Patch, PatchParams},
};
use serde_json::json;

use super::{reconcile::publish, route};
use crate::{
    api::{FIELD_MANAGER, GROUP, Rollout, RouteKind, VERSION},
    controller::{Context, Error, shell},
};

/// Finalizer that gives an adopted Deployment (`workloadRef`) its replicas back before its
/// Rollout goes: the Rollout scaled it to zero, and without it deleting the Rollout would
/// leave nothing serving.
pub const FINALIZER_WORKLOAD: &str = "cutover.dev/workload-ref";

/// Finalizer that takes cutover's header and mirror rules out of the HTTPRoute before its
/// Rollout goes: they send requests to a canary that goes with the Rollout.
pub const FINALIZER_ROUTE: &str = "cutover.dev/route-rules";

/// Annotation naming the route that holds the Rollout's header and mirror rules
/// (`HTTPRoute/<name>` or `GRPCRoute/<name>`): written before the first of them, so that a
/// route the spec no longer names is still found and restored.
pub const ANNOTATION_ROUTE_RULES: &str = "cutover.dev/route-rules";

/// The route a Rollout's annotation says holds its rules.
fn rules_route(rollout: &Rollout) -> Option<(RouteKind, String)> {
    let value = rollout.annotations().get(ANNOTATION_ROUTE_RULES)?;
    let (kind, name) = value.split_once('/')?;
    let kind = [RouteKind::Http, RouteKind::Grpc]
        .into_iter()
        .find(|k| k.kind() == kind)?;
    // Anyone who may edit the Rollout may edit this: only an object name is used.
    crate::cli::lint::is_dns_subdomain(name).then(|| (kind, name.to_string()))
}

/// The route the Rollout's spec routes by.
fn spec_route(rollout: &Rollout) -> Option<(RouteKind, String)> {
    let routing = rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routing.as_ref())?;
    let (kind, name) = routing.gateway_api.route();
    Some((kind, name.to_string()))
}

/// Takes cutover's rules out of one route; a route gone or not readable has none to take.
async fn take_rules_out(
    ctx: &Context,
    rollout: &Rollout,
    ns: &str,
    (kind, name): (RouteKind, String),
) -> Result<(), Error> {
    let routes: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), ns, &route::route_resource(kind));
    // Read by a list: the role the operator runs with lists and watches routes.
    match crate::controller::cache::by_name(&routes, &name).await {
        Ok(Some(r)) => {
            if route::set_route_rules(&ctx.client, ns, kind, &r, &[])
                .await?
                .is_some()
            {
                let message = format!(
                    "header and mirror routes taken out of {} {name:?}",
                    kind.kind()
                );
                publish(ctx, rollout, "RouteRestored", &message, false).await;
            }
            Ok(())
        }
        // Gone already, or its namespace is being deleted: nothing to restore.
        Ok(None) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 403 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Takes cutover's header and mirror rules out of a deleted Rollout's route (the one its
/// annotation names, else its spec's), then lets the Rollout go.
pub(super) async fn restore_route(
    ctx: &Context,
    rollouts: &Api<Rollout>,
    rollout: &Rollout,
) -> Result<(), Error> {
    let ns = rollout.namespace().unwrap_or_default();
    if let Some(route) = rules_route(rollout).or_else(|| spec_route(rollout)) {
        take_rules_out(ctx, rollout, &ns, route).await?;
    }
    shell::remove_finalizer(rollouts, rollout, FINALIZER_ROUTE).await?;
    Ok(())
}

/// Names in the Rollout's annotation the route its rules are about to be written to;
/// returns whether it wrote (the caller waits for the change to come back).
pub(super) async fn record_rules_route(
    rollouts: &Api<Rollout>,
    rollout: &Rollout,
) -> Result<bool, Error> {
    let Some((kind, name)) = spec_route(rollout) else {
        return Ok(false);
    };
    if rules_route(rollout) == Some((kind, name.clone())) {
        return Ok(false);
    }
    apply_rules_route(rollouts, rollout, Some(format!("{}/{name}", kind.kind()))).await?;
    Ok(true)
}

/// Applies the annotation (or, with `None`, gives it up) as cutover's only field of the
/// Rollout's metadata.
async fn apply_rules_route(
    rollouts: &Api<Rollout>,
    rollout: &Rollout,
    value: Option<String>,
) -> Result<(), Error> {
    let mut metadata = json!({"name": rollout.name_any()});
    if let Some(value) = value {
        metadata["annotations"] = json!({ANNOTATION_ROUTE_RULES: value});
    }
    let body = json!({"apiVersion": format!("{GROUP}/{VERSION}"), "kind": "Rollout",
        "metadata": metadata});
    rollouts
        .patch(
            &rollout.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    Ok(())
}

/// When the spec no longer routes by the route that holds the Rollout's rules (routing
/// removed, or another route named), takes the rules out of it and forgets it; returns
/// whether it wrote.
pub(super) async fn leave_old_route(
    ctx: &Context,
    rollouts: &Api<Rollout>,
    rollout: &Rollout,
) -> Result<bool, Error> {
    let Some(old) = rules_route(rollout) else {
        return Ok(false);
    };
    if spec_route(rollout).as_ref() == Some(&old) {
        return Ok(false);
    }
    let ns = rollout.namespace().unwrap_or_default();
    take_rules_out(ctx, rollout, &ns, old).await?;
    apply_rules_route(rollouts, rollout, None).await?;
    Ok(true)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn annotated(value: &str) -> Rollout {
        serde_json::from_value(
            json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "annotations": {ANNOTATION_ROUTE_RULES: value}},
            "spec": {"strategy": {"canary": {}}}}),
        )
        .expect("a Rollout")
    }

    #[test]
    fn the_annotation_names_a_route_of_a_known_kind_by_an_object_name_only() {
        assert_eq!(
            rules_route(&annotated("HTTPRoute/shop")),
            Some((RouteKind::Http, "shop".into()))
        );
        assert_eq!(
            rules_route(&annotated("GRPCRoute/cart.v2")),
            Some((RouteKind::Grpc, "cart.v2".into()))
        );
        for bad in [
            "HTTPRoute/",
            "TCPRoute/shop",
            "shop",
            "HTTPRoute/shop,metadata.namespace=other",
            "HTTPRoute/Shop",
        ] {
            assert_eq!(rules_route(&annotated(bad)), None, "{bad}");
        }
    }
}
