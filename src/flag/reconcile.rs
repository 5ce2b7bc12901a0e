//! The I/O shell of the FeatureFlag controller: observe the flag, the other flags of its
//! ConfigMap key and its analysis; call the pure plan; record status; render the ConfigMap
//! key (server-side apply, only when its content changes).

use std::{collections::BTreeMap, sync::Arc};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        Controller,
        controller::Action as Requeue,
        reflector::{self, ObjectRef},
        watcher,
    },
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{plan, render};
use crate::{
    analysis::fetch::Subject,
    api::{AnalysisTemplate, ClusterAnalysisTemplate, FIELD_MANAGER, FeatureFlag, validate},
    controller::{
        Context, Error,
        cache::Cache,
        fair::{FairGate, Urgency},
        reconcile::{error_policy, gated, instrumented, requeue_at, runtime_config},
        shell::{self, Recorded},
        templates::{self, TemplateReads},
    },
};

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "featureflag";
/// Finalizer that takes a deleted flag out of its ConfigMap before it goes.
pub const FINALIZER: &str = "cutover.dev/flag-render";

type Guarded = kube::core::DeserializeGuard<FeatureFlag>;

/// Label on every ConfigMap flags are rendered into: the controller watches only those.
const LABEL_FLAGS: &str = "cutover.dev/flags";

/// Whose writes every reconcile's reads of the flags wait for: a ConfigMap holds the state
/// of every flag rendered into it, so one flag's render reads the others' statuses.
const EVERYONE: &str = "*";

/// The watch caches a FeatureFlag's reconcile reads from.
pub struct Reads {
    /// The FeatureFlags (the controller's own objects).
    flags: Arc<Cache<Guarded>>,
    /// The ConfigMaps flags are rendered into, with their field owners (a key left behind
    /// by this controller is found through them).
    maps: Arc<Cache<ConfigMap>>,
    /// The analysis templates the flags reference.
    templates: TemplateReads,
    /// The Namespaces served, for their freeze.
    namespaces: Arc<Cache<k8s_openapi::api::core::v1::Namespace>>,
}

/// Runs the FeatureFlag controller until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    ctx.metrics.start(CONTROLLER);
    let client = ctx.client.clone();
    let scopes: Vec<Option<String>> = if ctx.config.namespaces.is_empty() {
        vec![None]
    } else {
        ctx.config.namespaces.iter().cloned().map(Some).collect()
    };
    // One gate for every namespace's controller: the limit and the turns are global.
    let gate = FairGate::new(usize::from(ctx.config.concurrency));
    let controllers = scopes.into_iter().map(|ns| {
        let (flags, maps): (Api<Guarded>, Api<ConfigMap>) = match &ns {
            None => (Api::all(client.clone()), Api::all(client.clone())),
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
        };
        let metrics = ctx.metrics.clone();
        let any = watcher::Config::default().any_semantic();
        let (flags, flag_events) =
            Cache::watch("FeatureFlag", flags, any, (), false, metrics.clone());
        let labelled = watcher::Config::default().labels(LABEL_FLAGS);
        let (maps, map_events) = Cache::watch("ConfigMap", maps, labelled, (), true, metrics);
        let controller = Controller::for_stream(flag_events, flags.store());
        let store = controller.store();
        let (templates, (template_events, cluster_template_events)) =
            TemplateReads::watch(&client, ns.as_deref(), ctx.metrics.clone());
        let (namespaces, namespace_events) =
            crate::controller::freeze::watch(&client, ns.as_deref(), ctx.metrics.clone());
        let reads = Arc::new(Reads {
            flags,
            maps,
            templates,
            namespaces,
        });
        let naming = |store: reflector::Store<Guarded>, cluster: bool| {
            move |namespace: Option<String>, template: String| {
                store
                    .state()
                    .into_iter()
                    .filter(|g| {
                        g.0.as_ref().is_ok_and(|f| {
                            (cluster || f.namespace() == namespace)
                                && f.spec
                                    .rollout
                                    .as_ref()
                                    .and_then(|r| r.analysis.as_ref())
                                    .is_some_and(|a| {
                                        a.templates.iter().any(|t| {
                                            t.cluster_scope == cluster
                                                && t.template_name == template
                                        })
                                    })
                        })
                    })
                    .map(|g| ObjectRef::from_obj(g.as_ref()))
                    .collect::<Vec<_>>()
            }
        };
        let controller_store = store.clone();
        let by_template = naming(store.clone(), false);
        let by_cluster_template = naming(store.clone(), true);
        let ctx = ctx.clone();
        let token = shutdown.clone();
        let reconcile = gated(gate.clone(), controller.store(), urgency, {
            move |flag, ctx| reconcile(flag, ctx, reads.clone())
        });
        controller
            // A rendered ConfigMap changed (or unlabelled) by anyone is rendered again by
            // the flags that name it.
            .watches_stream(map_events, move |cm: ConfigMap| {
                let name = cm.name_any();
                let ns = cm.namespace();
                store
                    .state()
                    .into_iter()
                    .filter(|g| {
                        g.0.as_ref().is_ok_and(|f| {
                            f.namespace() == ns && f.spec.output.config_map.name == name
                        })
                    })
                    .map(|g| ObjectRef::from_obj(g.as_ref()))
                    .collect::<Vec<_>>()
            })
            // A template created, edited or deleted changes the analyses naming it.
            .watches_stream(template_events, move |t: AnalysisTemplate| {
                by_template(t.namespace(), t.name_any())
            })
            .watches_stream(
                cluster_template_events,
                move |t: ClusterAnalysisTemplate| by_cluster_template(None, t.name_any()),
            )
            // A freeze set or lifted holds or frees every flag rollout of the namespace.
            .watches_stream(namespace_events, {
                let store = controller_store.clone();
                move |n: k8s_openapi::api::core::v1::Namespace| {
                    let ns = Some(n.name_any());
                    store
                        .state()
                        .into_iter()
                        .filter(|g| g.0.as_ref().is_ok_and(|f| f.namespace() == ns))
                        .map(|g| ObjectRef::from_obj(g.as_ref()))
                        .collect::<Vec<_>>()
                }
            })
            .with_config(runtime_config())
            .graceful_shutdown_on(async move { token.cancelled().await })
            .run(reconcile, on_error, ctx)
            .for_each(|_| async {})
    });
    futures::future::join_all(controllers).await;
}

/// A FeatureFlag whose spec changed since it was last observed goes ahead.
fn urgency(flag: &Guarded) -> Urgency {
    match &flag.0 {
        Ok(f) if f.metadata.generation != f.status.as_ref().and_then(|s| s.observed_generation) => {
            Urgency::Person
        }
        _ => Urgency::Routine,
    }
}

fn on_error(flag: Arc<Guarded>, error: &Error, ctx: Arc<Context>) -> Requeue {
    error_policy(CONTROLLER, flag.as_ref(), error, &ctx)
}

/// Reconciles one FeatureFlag.
pub async fn reconcile(
    guarded: Arc<Guarded>,
    ctx: Arc<Context>,
    reads: Arc<Reads>,
) -> Result<Requeue, Error> {
    match &guarded.0 {
        Ok(flag) => {
            instrumented(CONTROLLER, Arc::new(flag.clone()), ctx, |flag, ctx| {
                reconcile_flag(flag, ctx, reads)
            })
            .await
        }
        Err(invalid) => {
            tracing::warn!(
                flag = %invalid.metadata.name.clone().unwrap_or_default(),
                error = %invalid.error,
                "skipping a FeatureFlag that cannot be read"
            );
            Ok(Requeue::await_change())
        }
    }
}

async fn reconcile_flag(
    flag: Arc<FeatureFlag>,
    ctx: Arc<Context>,
    reads: Arc<Reads>,
) -> Result<Requeue, Error> {
    let ns = flag.namespace().unwrap_or_default();
    let api: Api<FeatureFlag> = Api::namespaced(ctx.client.clone(), &ns);
    let (cm, key) = render::output_of(&flag);
    // The other flags rendered into the same ConfigMap (under any key): the ConfigMap is
    // written whole in one apply, so flags sharing it never remove each other's keys. Read
    // once the cache has every status this controller wrote: a render from an older one
    // would put a flag's previous state back.
    let guarded: Api<Guarded> = Api::namespaced(ctx.client.clone(), &ns);
    let all: Vec<FeatureFlag> = reads
        .flags
        .all(&guarded, EVERYONE, &ns, |_| true)
        .await?
        .into_iter()
        .filter_map(|g| g.0.ok())
        .collect();
    let mut same_map: Vec<FeatureFlag> = all
        .into_iter()
        .filter(|f| render::output_of(f).0 == cm)
        .filter(|f| f.metadata.name != flag.metadata.name)
        .collect();
    if flag.meta().deletion_timestamp.is_some() {
        match write_config_map(&ctx, &reads, &ns, &cm, &same_map).await {
            Ok(()) => {}
            // In a namespace being deleted the ConfigMap is gone and cannot be made again
            // (403), and nothing reads it any more: the finalizer must not hold the
            // namespace's deletion.
            Err(Error::Kube(kube::Error::Api(status))) if matches!(status.code, 403 | 404) => {
                tracing::info!(flag = %flag.name_any(), namespace = %ns, code = status.code,
                    "flag's ConfigMap cannot be written while it is deleted; releasing it");
            }
            Err(e) => return Err(e),
        }
        shell::remove_finalizer(&api, flag.as_ref(), FINALIZER).await?;
        return Ok(Requeue::await_change());
    }
    // The flags rendered into this flag's key compete for flag keys.
    let group: Vec<FeatureFlag> = same_map
        .iter()
        .filter(|f| render::output_of(f).1 == key)
        .cloned()
        .collect();
    let mut problems: Vec<String> = shell::off_runtime(|| validate::flag(&flag.spec))
        .iter()
        .map(ToString::to_string)
        .collect();
    // Planned with its analysis's templates resolved; the addresses checked are those it
    // would query, the templates' included.
    let refs = flag
        .spec
        .rollout
        .as_ref()
        .and_then(|r| r.analysis.as_ref())
        .map(|a| a.templates.clone())
        .unwrap_or_default();
    let owner = format!("{ns}/{}", flag.name_any());
    let found = reads
        .templates
        .read(&ctx.client, &owner, &ns, &refs)
        .await?;
    let flag = {
        let object = || serde_json::to_value(flag.as_ref()).unwrap_or(serde_json::Value::Null);
        let mut resolved = flag.as_ref().clone();
        let analyses = resolved
            .spec
            .rollout
            .as_mut()
            .and_then(|r| r.analysis.as_mut())
            .map(|a| ("spec.rollout.analysis".to_string(), a))
            .into_iter()
            .collect();
        problems.extend(shell::off_runtime(|| {
            templates::resolve_all(analyses, &found, object)
        }));
        problems.extend(
            validate::egress(&resolved.spec, &ctx.egress)
                .iter()
                .map(ToString::to_string),
        );
        Arc::new(resolved)
    };
    if !problems.is_empty() {
        return shell::invalid(
            &api,
            &flag,
            flag.status.as_ref(),
            &ctx,
            &problems.join("; "),
        )
        .await;
    }
    if shell::add_finalizer(&api, flag.as_ref(), FINALIZER).await? {
        // The write's own watch event brings the newer version to plan from.
        return Ok(Requeue::await_change());
    }
    let everyone: Vec<&FeatureFlag> = group.iter().chain(std::iter::once(flag.as_ref())).collect();
    let claims = render::claims(&everyone);
    let name = flag.name_any();
    let conflict_with = claims.conflicts.get(&name).cloned();
    let due = plan::due(&flag, ctx.clock.now());
    let owner = flag.controller_owner_ref(&());
    let measurements = shell::take_measurements(&ctx, &ns, owner.as_ref(), &due, |_| Subject {
        name: flag.name_any(),
        namespace: ns.clone(),
        ..Default::default()
    })
    .await;
    let freeze = crate::controller::freeze::read(
        &reads.namespaces,
        &ctx.client,
        &format!("{ns}/{name}"),
        &ns,
    )
    .await?;
    let decision = shell::off_runtime(|| {
        plan::plan(&plan::Observed {
            flag: &flag,
            conflict_with,
            measurements,
            freeze,
            now: ctx.clock.now(),
        })
    });
    let recorded = shell::apply_status(
        &api,
        flag.as_ref(),
        flag.status.as_ref(),
        &decision.status,
        !decision.notes.is_empty(),
    )
    .await?;
    match &recorded {
        Recorded::Stale => return Ok(Requeue::requeue(shell::STALE_RETRY)),
        Recorded::Written(rv) => reads.flags.wrote_version(EVERYONE, rv),
        Recorded::Unchanged => {}
    }
    let before: Vec<_> = flag
        .status
        .iter()
        .flat_map(|s| s.analysis.clone())
        .collect();
    let after: Vec<_> = decision
        .replaced_runs
        .iter()
        .chain(&decision.status.analysis)
        .cloned()
        .collect();
    let subject = crate::controller::runs::Subject {
        kind: "FeatureFlag",
        name: &name,
        namespace: &ns,
    };
    crate::controller::runs::record(&ctx, &subject, &before, &after, |_| owner.clone()).await;
    let analyses = flag.spec.rollout.iter().filter_map(|r| r.analysis.as_ref());
    crate::controller::runs::stop_jobs(&ctx, &subject, analyses, &before, &after).await;
    let mut planned = flag.as_ref().clone();
    planned.status = Some(decision.status.clone());
    same_map.push(planned);
    write_config_map(&ctx, &reads, &ns, &cm, &same_map).await?;
    for note in &decision.notes {
        publish(&ctx, &flag, note.reason, &note.message, note.warning).await;
    }
    Ok(requeue_at(&ctx.clock, decision.requeue_at))
}

/// Renders every key of the ConfigMap from the flags that output to it, and writes them in
/// one server-side apply, only when some text changes. One apply holding all keys: applying
/// one key at a time under the one field manager would remove the keys left out.
async fn write_config_map(
    ctx: &Context,
    reads: &Reads,
    ns: &str,
    name: &str,
    flags: &[FeatureFlag],
) -> Result<(), Error> {
    // Every flag of the ConfigMap writes it: their reads wait for each other's writes.
    let owner = format!("{ns}/{name}");
    let mut by_key: BTreeMap<String, Vec<&FeatureFlag>> = BTreeMap::new();
    for f in flags {
        by_key.entry(render::output_of(f).1).or_default().push(f);
    }
    let data: BTreeMap<String, String> = by_key
        .into_iter()
        .map(|(key, flags)| (key, render::document(&flags)))
        .collect();
    let maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    // A ConfigMap not labelled yet is not in the cache: it is read from the API server.
    let current = match reads.maps.get(&maps, &owner, ns, name).await? {
        Some(m) => Some(m),
        None => maps.get_opt(name).await?,
    };
    let ours_unchanged = current.as_ref().is_some_and(|m| {
        let have = m.data.clone().unwrap_or_default();
        data.iter().all(|(k, v)| have.get(k) == Some(v))
    });
    let stale_key = current.as_ref().is_some_and(|m| {
        m.metadata.managed_fields.iter().flatten().any(|f| {
            f.manager.as_deref() == Some(FIELD_MANAGER)
                && f.fields_v1.as_ref().is_some_and(|fields| {
                    fields
                        .0
                        .pointer("/f:data")
                        .and_then(|d| d.as_object())
                        .is_some_and(|d| {
                            d.keys()
                                .filter_map(|k| k.strip_prefix("f:"))
                                .any(|k| !data.contains_key(k))
                        })
                })
        })
    });
    if ours_unchanged && !stale_key {
        return Ok(());
    }
    if current.is_none() && data.is_empty() {
        return Ok(());
    }
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {LABEL_FLAGS: "true"}},
        "data": data});
    let written = maps
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    reads.maps.wrote(&owner, &written);
    Ok(())
}

async fn publish(ctx: &Context, flag: &FeatureFlag, reason: &str, message: &str, warning: bool) {
    shell::publish(ctx, &flag.object_ref(&()), reason, message, warning).await;
}
