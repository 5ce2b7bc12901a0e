//! What the Rollout controller watches: the Rollouts, and the kinds a reconcile reads, each
//! kept in a cache that answers those reads and wakes the Rollouts naming a changed object.

use std::sync::Arc;

use futures::{Stream, StreamExt, stream::BoxStream};
use kube::{
    Api, Client, ResourceExt,
    api::DynamicObject,
    runtime::{
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use tokio_util::sync::CancellationToken;

use super::{
    reconcile::{self, Reads},
    route::route_resource,
};
use crate::{
    api::{LABEL_ROLLOUT, Rollout, RouteKind},
    controller::{
        Context,
        cache::Cache,
        fair::FairGate,
        freeze,
        reconcile::{gated, lean_controller, runtime_config},
        templates::TemplateReads,
    },
};

/// Which Gateway API route kinds the API server serves.
async fn served_routes(client: &Client) -> Vec<RouteKind> {
    let Ok(list) = client
        .list_api_group_resources("gateway.networking.k8s.io/v1")
        .await
    else {
        return Vec::new();
    };
    [RouteKind::Http, RouteKind::Grpc]
        .into_iter()
        .filter(|k| list.resources.iter().any(|r| r.name == k.plural()))
        .collect()
}

/// The Rollouts of the store in `namespace` that `names` accepts.
fn naming(
    store: &Store<reconcile::Guarded>,
    namespace: Option<String>,
    names: impl Fn(&Rollout) -> bool,
) -> Vec<ObjectRef<reconcile::Guarded>> {
    store
        .state()
        .into_iter()
        .filter(|g| {
            g.0.as_ref()
                .is_ok_and(|r| r.namespace() == namespace && names(r))
        })
        .map(|g| ObjectRef::from_obj(g.as_ref()))
        .collect()
}

/// The Rollouts of `store` that name, by `names`, each object of `events`.
fn wakes<O>(
    events: impl Stream<Item = Result<O, watcher::Error>> + Send + 'static,
    store: Store<reconcile::Guarded>,
    names: impl Fn(&Rollout, &str) -> bool + Send + 'static,
) -> BoxStream<'static, Vec<ObjectRef<reconcile::Guarded>>>
where
    O: kube::Resource,
{
    events
        .map(move |event| match event {
            Ok(obj) => {
                let name = obj.name_any();
                naming(&store, obj.namespace(), |r| names(r, &name))
            }
            Err(_) => Vec::new(),
        })
        .boxed()
}

/// The Rollouts of every namespace in `store` that name, by `names`, each cluster-scoped
/// object of `events`.
fn wakes_cluster<O>(
    events: impl Stream<Item = Result<O, watcher::Error>> + Send + 'static,
    store: Store<reconcile::Guarded>,
    names: fn(&Rollout, &str) -> bool,
) -> BoxStream<'static, Vec<ObjectRef<reconcile::Guarded>>>
where
    O: kube::Resource,
{
    events
        .map(move |event| match event {
            Ok(obj) => {
                let name = obj.name_any();
                store
                    .state()
                    .into_iter()
                    .filter(|g| g.0.as_ref().is_ok_and(|r| names(r, &name)))
                    .map(|g| ObjectRef::from_obj(g.as_ref()))
                    .collect()
            }
            Err(_) => Vec::new(),
        })
        .boxed()
}

fn names_template(rollout: &Rollout, template: &str) -> bool {
    rollout
        .spec
        .template_refs()
        .any(|r| !r.cluster_scope && r.template_name == template)
}

fn names_cluster_template(rollout: &Rollout, template: &str) -> bool {
    rollout
        .spec
        .template_refs()
        .any(|r| r.cluster_scope && r.template_name == template)
}

fn names_service(rollout: &Rollout, service: &str) -> bool {
    let strategy = &rollout.spec.strategy;
    let canary = strategy.canary.as_ref();
    let bg = strategy.blue_green.as_ref();
    [
        canary.and_then(|c| c.stable_service.as_deref()),
        canary.and_then(|c| c.canary_service.as_deref()),
        bg.map(|b| b.active_service.as_str()),
        bg.and_then(|b| b.preview_service.as_deref()),
    ]
    .into_iter()
    .flatten()
    .any(|s| s == service)
}

fn names_route(rollout: &Rollout, kind: RouteKind, route: &str) -> bool {
    rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routing.as_ref())
        .is_some_and(|t| t.gateway_api.route() == (kind, route))
}

fn names_config_map(rollout: &Rollout, config_map: &str) -> bool {
    rollout.spec.config_rollout.unwrap_or(false)
        && rollout
            .spec
            .template
            .as_ref()
            .is_some_and(|t| super::config::references(t).iter().any(|n| n == config_map))
}

fn names_flag(rollout: &Rollout, flag: &str) -> bool {
    rollout.spec.flags.as_ref().is_some_and(|f| {
        f.enable_on_promotion.iter().any(|n| n == flag)
            || f.disable_on_abort.iter().any(|n| n == flag)
    })
}

fn names_migration(rollout: &Rollout, migration: &str) -> bool {
    rollout.spec.migrations.as_ref().is_some_and(|m| {
        m.before.iter().any(|n| n == migration) || m.after.iter().any(|n| n == migration)
    })
}

/// Runs the Rollout controller until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    ctx.metrics.start(reconcile::CONTROLLER);
    let client = ctx.client.clone();
    let scopes: Vec<Option<String>> = if ctx.config.namespaces.is_empty() {
        vec![None]
    } else {
        ctx.config.namespaces.iter().cloned().map(Some).collect()
    };
    let served = served_routes(&client).await;
    // One gate for every namespace's controller: the limit and the turns are global.
    let gate = FairGate::new(usize::from(ctx.config.concurrency));
    let controllers = scopes.into_iter().map(|scope| {
        fn api<K>(client: &Client, scope: &Option<String>) -> Api<K>
        where
            K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
            K::DynamicType: Default,
        {
            match scope {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            }
        }
        let metrics = ctx.metrics.clone();
        let (deployments, deployment_events) = Cache::watch(
            "Deployment",
            api(&client, &scope),
            watcher::Config::default().labels(LABEL_ROLLOUT),
            (),
            false,
            metrics.clone(),
        );
        let (services, service_events) = Cache::watch(
            "Service",
            api(&client, &scope),
            watcher::Config::default(),
            (),
            false,
            metrics.clone(),
        );
        let (migrations, migration_events) = Cache::watch(
            "MigrationJob",
            api(&client, &scope),
            watcher::Config::default(),
            (),
            false,
            metrics.clone(),
        );
        let (flags, flag_events) = Cache::watch(
            "FeatureFlag",
            api(&client, &scope),
            watcher::Config::default(),
            (),
            false,
            metrics.clone(),
        );
        // One cache per route kind the API server serves.
        let routes: Vec<_> = served
            .iter()
            .map(|&kind| {
                let resource = route_resource(kind);
                let api: Api<DynamicObject> = match &scope {
                    Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                    None => Api::all_with(client.clone(), &resource),
                };
                let (cache, events) = Cache::watch(
                    kind.kind(),
                    api,
                    watcher::Config::default(),
                    resource.clone(),
                    false,
                    metrics.clone(),
                );
                (kind, cache, events)
            })
            .collect();
        let (templates, (template_events, cluster_template_events)) =
            TemplateReads::watch(&client, scope.as_deref(), metrics.clone());
        let (namespaces, namespace_events) =
            freeze::watch(&client, scope.as_deref(), metrics.clone());
        let (config_maps, config_map_events) = Cache::watch(
            "ConfigMap",
            api(&client, &scope),
            watcher::Config::default(),
            (),
            false,
            metrics.clone(),
        );
        let controller = lean_controller(
            api(&client, &scope),
            watcher::Config::default().any_semantic(),
        );
        let store = controller.store();
        let reads = Arc::new(Reads {
            deployments,
            services,
            migrations,
            flags,
            routes: routes
                .iter()
                .map(|(kind, cache, _)| (*kind, cache.clone()))
                .collect(),
            templates,
            namespaces,
            rollouts: store.clone(),
            config_maps,
        });
        let ctx = ctx.clone();
        let token = shutdown.clone();
        ctx.metrics.rollouts.read_from({
            let store = store.clone();
            move || {
                store
                    .state()
                    .iter()
                    .filter_map(|guarded: &Arc<reconcile::Guarded>| guarded.0.as_ref().ok())
                    .map(crate::controller::rollout_metrics::RolloutSample::of)
                    .collect()
            }
        });
        let reconcile = gated(gate.clone(), controller.store(), reconcile::urgency, {
            move |rollout, ctx| reconcile::reconcile(rollout, ctx, reads.clone())
        });
        // One trigger for every kind a Rollout names, so that the Rollouts' own changes
        // are not polled behind more streams than before.
        let named = {
            // A migration that ends opens (or fails) the gate of the Rollouts naming it; a
            // pinned Service edited by someone else is pinned again, and one created
            // clears the InvalidSpec that named it missing.
            let mut all = vec![
                wakes(migration_events, store.clone(), names_migration),
                wakes(service_events, store.clone(), names_service),
                wakes(flag_events, store.clone(), names_flag),
                // A template created, edited or deleted changes the analyses naming it.
                wakes(template_events, store.clone(), names_template),
                wakes_cluster(
                    cluster_template_events,
                    store.clone(),
                    names_cluster_template,
                ),
                // A ConfigMap read by a configRollout template changed: a new revision.
                wakes(config_map_events, store.clone(), names_config_map),
                // A freeze set or lifted holds or frees every Rollout of the namespace.
                {
                    let store = store.clone();
                    namespace_events
                        .map(move |event| match event {
                            Ok(ns) => naming(&store, Some(ns.name_any()), |_| true),
                            Err(_) => Vec::new(),
                        })
                        .boxed()
                },
            ];
            for (kind, _, route_events) in routes {
                // The gateway's verdict on a route (its status) is what a weight step
                // waits on.
                all.push(wakes(route_events, store.clone(), move |r, name| {
                    names_route(r, kind, name)
                }));
            }
            futures::stream::select_all(all).flat_map(futures::stream::iter)
        };
        let controller = controller
            .reconcile_on(named)
            .owns_stream(deployment_events);
        controller
            .with_config(runtime_config())
            .graceful_shutdown_on(async move { token.cancelled().await })
            .run(reconcile, reconcile::on_error, ctx)
            .for_each(|_| async {})
    });
    futures::future::join_all(controllers).await;
}
