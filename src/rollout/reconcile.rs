//! The I/O shell of the Rollout controller: observe the Rollout and what it owns, call the
//! pure plan, apply its writes with server-side apply, record status, publish events.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Service},
    },
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, DynamicObject, Patch, PatchParams},
    runtime::controller::Action as Requeue,
};
use serde_json::{Value, json};

use super::{
    analysis::{self, Taken},
    config,
    finalize::{
        FINALIZER_ROUTE, FINALIZER_WORKLOAD, leave_old_route, record_rules_route, restore_route,
        return_workload,
    },
    history,
    observe::{available, copy_config, failure, observe_migrations, read_config, required},
    observe_route,
    plan::{self, Action, Observed, RevisionObserved},
    revision::{deployment_name, promotion_stamp, template_hash},
    route,
};
use crate::{
    analysis::fetch::Subject,
    api::{
        ANNOTATION_MIGRATION_RETRY, ANNOTATION_ROLLBACK, ANNOTATION_TEMPLATE, FIELD_MANAGER,
        FeatureFlag, LABEL_PROMOTED_AT, LABEL_REVISION, LABEL_ROLE, LABEL_ROLLOUT, MigrationJob,
        Rollout, RouteKind, validate,
    },
    controller::{
        Context, Error,
        cache::Cache,
        fair::Urgency,
        freeze,
        reconcile::{error_policy, instrumented, requeue_at},
        rollout_metrics, runs,
        shell::{self, Recorded},
        templates::{self, TemplateReads},
    },
};

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "rollout";

/// The watch caches a Rollout's reconcile reads from.
pub struct Reads {
    /// The Deployments the Rollouts own (labelled with their Rollout).
    pub deployments: Arc<Cache<Deployment>>,
    /// Services, to pin and to check.
    pub services: Arc<Cache<Service>>,
    /// MigrationJobs the Rollouts gate on.
    pub migrations: Arc<Cache<MigrationJob>>,
    /// FeatureFlags the Rollouts switch.
    pub flags: Arc<Cache<FeatureFlag>>,
    /// HTTPRoutes and GRPCRoutes, each kind the API server serves at start.
    pub routes: Vec<(RouteKind, Arc<Cache<DynamicObject>>)>,
    /// The analysis templates the Rollouts reference.
    pub templates: TemplateReads,
    /// The Namespaces served, for their freeze.
    pub namespaces: Arc<Cache<k8s_openapi::api::core::v1::Namespace>>,
    /// The Rollouts served, for the ones a Rollout requires.
    pub rollouts: kube::runtime::reflector::Store<Guarded>,
    /// ConfigMaps, read by Rollouts with `configRollout` (and their copies).
    pub config_maps: Arc<Cache<ConfigMap>>,
}

impl Reads {
    /// The watch cache of a route kind, when the API server served it at start.
    pub(super) fn route_cache(&self, kind: RouteKind) -> Option<&Arc<Cache<DynamicObject>>> {
        self.routes.iter().find(|(k, _)| *k == kind).map(|(_, c)| c)
    }
}

/// A Rollout as read from the watch: one that does not deserialize is reported and
/// skipped instead of breaking the watch for every other Rollout.
pub(super) type Guarded = kube::core::DeserializeGuard<Rollout>;

pub(super) fn urgency(rollout: &Guarded) -> Urgency {
    match &rollout.0 {
        Ok(r) if plan::awaits_operator(r) => Urgency::Person,
        _ => Urgency::Routine,
    }
}

pub(super) fn on_error(rollout: Arc<Guarded>, error: &Error, ctx: Arc<Context>) -> Requeue {
    error_policy(CONTROLLER, rollout.as_ref(), error, &ctx)
}

/// Reconciles one Rollout.
pub async fn reconcile(
    guarded: Arc<Guarded>,
    ctx: Arc<Context>,
    reads: Arc<Reads>,
) -> Result<Requeue, Error> {
    match &guarded.0 {
        Ok(rollout) => {
            instrumented(
                CONTROLLER,
                Arc::new(rollout.clone()),
                ctx,
                |rollout, ctx| reconcile_rollout(rollout, ctx, reads),
            )
            .await
        }
        Err(invalid) => {
            let name = invalid.metadata.name.clone().unwrap_or_default();
            tracing::warn!(rollout = %name, error = %invalid.error, "skipping a Rollout that cannot be read");
            let reference = k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some(format!("{}/{}", crate::api::GROUP, crate::api::VERSION)),
                kind: Some("Rollout".into()),
                name: invalid.metadata.name.clone(),
                namespace: invalid.metadata.namespace.clone(),
                uid: invalid.metadata.uid.clone(),
                ..Default::default()
            };
            let message = format!("cannot read this Rollout: {}", invalid.error);
            shell::publish(&ctx, &reference, "InvalidObject", &message, true).await;
            Ok(Requeue::await_change())
        }
    }
}

async fn reconcile_rollout(
    rollout: Arc<Rollout>,
    ctx: Arc<Context>,
    reads: Arc<Reads>,
) -> Result<Requeue, Error> {
    let ns = rollout.namespace().unwrap_or_default();
    let name = rollout.name_any();
    // Reads come from watch caches once they have seen this Rollout's own last writes.
    let owner = format!("{ns}/{name}");
    let rollouts: Api<Rollout> = Api::namespaced(ctx.client.clone(), &ns);
    if rollout.meta().deletion_timestamp.is_some() {
        // Owned Deployments go with the Rollout through their owner references.
        if rollout.finalizers().iter().any(|f| f == FINALIZER_WORKLOAD) {
            return_workload(&ctx, &rollouts, &rollout).await?;
        }
        if rollout.finalizers().iter().any(|f| f == FINALIZER_ROUTE) {
            restore_route(&ctx, &rollouts, &rollout).await?;
        }
        return Ok(Requeue::await_change());
    }
    let mut problems: Vec<String> = shell::off_runtime(|| validate::rollout(&rollout.spec))
        .iter()
        .map(ToString::to_string)
        .collect();
    for (i, req) in rollout.spec.requires.iter().enumerate() {
        if req.target(&ns) == (ns.as_str(), name.as_str()) {
            problems.push(format!(
                "spec.requires[{i}].rollout: a Rollout cannot require itself"
            ));
        }
    }
    // From here on the Rollout is planned with its analyses' templates resolved; the
    // addresses checked are those it would query, the templates' included.
    let found = reads
        .templates
        .read(&ctx.client, &owner, &ns, rollout.spec.template_refs())
        .await?;
    let rollout = {
        let object = || serde_json::to_value(rollout.as_ref()).unwrap_or(Value::Null);
        let mut resolved = rollout.as_ref().clone();
        problems.extend(shell::off_runtime(|| {
            templates::resolve_all(resolved.spec.analyses_mut(), &found, object)
        }));
        problems.extend(
            validate::egress(&resolved.spec, &ctx.egress)
                .iter()
                .map(ToString::to_string),
        );
        Arc::new(resolved)
    };
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    // The pod template and selector: the Rollout's own, or adopted from a Deployment.
    let mut referenced_replicas = None;
    let source = match (&rollout.spec.template, &rollout.spec.workload_ref) {
        (Some(t), _) => Some((t.clone(), rollout.spec.selector.clone())),
        (None, Some(wr)) => match deployments.get_opt(&wr.name).await? {
            Some(d) => {
                // Before it is ever scaled down: whatever happens next, deleting the
                // Rollout gives it its replicas back.
                if shell::add_finalizer(&rollouts, rollout.as_ref(), FINALIZER_WORKLOAD).await? {
                    return Ok(Requeue::await_change());
                }
                referenced_replicas = Some(d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1));
                let spec = d.spec.unwrap_or_default();
                Some((spec.template, Some(spec.selector)))
            }
            None => {
                problems.push(format!(
                    "Deployment {:?} (spec.workloadRef) does not exist in namespace {ns:?}",
                    wr.name
                ));
                None
            }
        },
        // validate::rollout has named the missing template.
        (None, None) => None,
    };
    let canary = rollout.spec.strategy.canary.clone().unwrap_or_default();
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    let mut service_revisions = BTreeMap::new();
    let bg = rollout.spec.strategy.blue_green.as_ref();
    let pinned_services: Vec<&String> = match (&canary.traffic_routing, bg) {
        (Some(_), _) => [&canary.stable_service, &canary.canary_service]
            .into_iter()
            .flatten()
            .collect(),
        (None, Some(bg)) => std::iter::once(&bg.active_service)
            .chain(bg.preview_service.as_ref())
            .collect(),
        _ => Vec::new(),
    };
    // Each pinned Service's whole selector, kept for the pin (an atomic map is written whole).
    let mut service_selectors: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for svc in pinned_services {
        match reads.services.get(&services, &owner, &ns, svc).await? {
            Some(s) => {
                let selector = s.spec.and_then(|sp| sp.selector).unwrap_or_default();
                service_revisions.insert(svc.clone(), selector.get(LABEL_REVISION).cloned());
                service_selectors.insert(svc.clone(), selector);
            }
            None => problems.push(format!(
                "Service {svc:?} (from spec.strategy) does not exist in namespace {ns:?}"
            )),
        }
    }
    let seen = observe_route::observe(&ctx, &reads, &owner, &ns, &canary, &mut problems).await?;
    let (route_kind, mut route, route_weight, route_pending, mut route_rules_seen) =
        (seen.kind, seen.route, seen.weight, seen.pending, seen.rules);
    let route_cache = reads.route_cache(route_kind);
    let migrations = observe_migrations(&ctx, &reads, &owner, &rollout, &mut problems).await?;
    if let Some(links) = &rollout.spec.flags {
        let flags: Api<FeatureFlag> = Api::namespaced(ctx.client.clone(), &ns);
        for name in links
            .enable_on_promotion
            .iter()
            .chain(&links.disable_on_abort)
        {
            if reads.flags.get(&flags, &owner, &ns, name).await?.is_none() {
                problems.push(format!(
                    "FeatureFlag {name:?} (spec.flags) does not exist in namespace {ns:?}"
                ));
            }
        }
    }
    let config_maps = match (&source, rollout.spec.config_rollout.unwrap_or(false)) {
        (Some((t, _)), true) => {
            Some(read_config(&ctx, &reads, &owner, &ns, t, &mut problems).await?)
        }
        _ => None,
    };
    // Every problem found is reported at once, so one edit can fix them all.
    let (template, selector) = match source {
        Some(source) if problems.is_empty() => source,
        _ => {
            return shell::invalid(
                &rollouts,
                &rollout,
                rollout.status.as_ref(),
                &ctx,
                &problems.join("; "),
            )
            .await;
        }
    };
    // Rules left in a route the spec no longer names come out before anything else.
    if leave_old_route(&ctx, &rollouts, rollout.as_ref()).await? {
        return Ok(Requeue::await_change());
    }
    let owned = reads
        .deployments
        .list(&deployments, &owner, &ns, (LABEL_ROLLOUT, &name))
        .await?;
    let by_revision: BTreeMap<String, Deployment> = owned
        .into_iter()
        .filter(|d| {
            d.owner_references()
                .iter()
                .any(|o| Some(o.uid.as_str()) == rollout.uid().as_deref())
        })
        .filter_map(|d| Some((d.labels().get(LABEL_REVISION)?.clone(), d)))
        .collect();
    let revisions = by_revision
        .iter()
        .map(|(hash, d)| RevisionObserved {
            revision: hash.clone(),
            replicas: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            available: available(d),
            role: d.labels().get(LABEL_ROLE).cloned(),
            created: d.metadata.creation_timestamp.as_ref().map(|t| t.0),
            failure: failure(d),
        })
        .collect();
    // With configRollout the ConfigMaps read are part of the revision.
    let target = match &config_maps {
        Some(maps) => config::revision(&template, &config::Contents::of(maps)),
        None => template_hash(&template),
    };
    route_rules_seen.mirror_refused = observe_route::mirror_refused(
        &ctx,
        &ns,
        &rollout,
        &canary,
        route.as_ref(),
        &route_rules_seen,
        &target,
    )
    .await;
    let measurements = take_measurements(&ctx, &rollout, &ns).await;
    let freeze = freeze::read(&reads.namespaces, &ctx.client, &owner, &ns).await?;
    // Who changed the template goes into the deployment log when a release may start: the
    // watch cache drops managed fields, so they are read then, and only then.
    let started_by = if rollout
        .status
        .as_ref()
        .and_then(|s| s.current_revision.as_deref())
        != Some(target.as_str())
    {
        crate::controller::cache::by_name(&rollouts, &name)
            .await?
            .and_then(|r| {
                history::template_manager(r.metadata.managed_fields.as_deref().unwrap_or_default())
            })
    } else {
        None
    };
    let observed = Observed {
        rollout: &rollout,
        measurements,
        migrations,
        target_revision: target.clone(),
        revisions,
        route_weight,
        route_pending,
        route_rules: route_rules_seen,
        service_revisions,
        referenced_replicas,
        selector: selector.as_ref().map(crate::api::selector::to_string),
        freeze,
        images: template
            .spec
            .as_ref()
            .map(|p| {
                p.containers
                    .iter()
                    .map(|c| c.image.clone().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default(),
        required: rollout
            .spec
            .requires
            .iter()
            .map(|req| required(&reads.rollouts, req, &ns))
            .collect(),
        started_by,
        now: ctx.clock.now(),
    };
    let decision = shell::off_runtime(|| plan::plan(&observed));
    // Status first: progress is recorded before it is acted on, so a crash in between
    // replays the writes of the recorded step instead of completing a step twice.
    // Conditional on the version read: a decision made from a stale read is neither
    // recorded, acted on nor announced, so no decision is announced twice.
    // Rules written into the author's route are taken out again if the Rollout is deleted
    // mid-release: the finalizer is there before the first of them.
    let writes_rules = decision
        .actions
        .iter()
        .any(|a| matches!(a, Action::SetRouteRules { rules } if !rules.is_empty()));
    if writes_rules
        && (shell::add_finalizer(&rollouts, rollout.as_ref(), FINALIZER_ROUTE).await?
            || record_rules_route(&rollouts, rollout.as_ref()).await?)
    {
        return Ok(Requeue::await_change());
    }
    let recorded_at = match shell::apply_status(
        &rollouts,
        rollout.as_ref(),
        rollout.status.as_ref(),
        &decision.status,
        !decision.notes.is_empty(),
    )
    .await?
    {
        Recorded::Stale => return Ok(Requeue::requeue(shell::STALE_RETRY)),
        Recorded::Written(rv) => rv,
        Recorded::Unchanged => rollout.resource_version().unwrap_or_default(),
    };
    let before = rollout
        .status
        .as_ref()
        .map(|s| s.analysis.as_slice())
        .unwrap_or_default();
    // Each run's record is owned by the revision it judged, and goes with it.
    let rollout_owner = rollout.controller_owner_ref(&());
    let subject = runs::Subject {
        kind: "Rollout",
        name: &name,
        namespace: &ns,
    };
    runs::record(&ctx, &subject, before, &decision.status.analysis, |run| {
        run.revision
            .as_ref()
            .and_then(|r| by_revision.get(r))
            .and_then(revision_owner)
            .or_else(|| rollout_owner.clone())
    })
    .await;
    runs::stop_jobs(
        &ctx,
        &subject,
        rollout.spec.analyses(),
        before,
        &decision.status.analysis,
    )
    .await;
    for verdict in rollout_metrics::ended_runs(before, &decision.status.analysis) {
        ctx.metrics
            .verdicts
            .get_or_create(&rollout_metrics::VerdictLabels {
                namespace: ns.clone(),
                name: name.clone(),
                verdict: rollout_metrics::verdict_label(verdict),
            })
            .inc();
    }
    for action in &decision.actions {
        match action {
            Action::ApplyRevision {
                revision,
                replicas,
                role,
            } => {
                let existing = by_revision.get(revision);
                let source = existing
                    .and_then(|d| d.spec.as_ref())
                    .map(|s| s.template.clone());
                // The template as the Rollout wrote it stays with its revision for `undo`;
                // an existing Deployment's own template carries the apiserver's defaults.
                let written =
                    existing.and_then(|d| d.annotations().get(ANNOTATION_TEMPLATE).cloned());
                let promoted_at = promotion_stamp(
                    existing
                        .and_then(|d| d.labels().get(LABEL_ROLE))
                        .map(String::as_str),
                    existing
                        .and_then(|d| d.labels().get(LABEL_PROMOTED_AT))
                        .map(String::as_str),
                    *role,
                    ctx.clock.now(),
                );
                // A new Deployment of the target revision: with configRollout its template
                // reads the revision's copies, and the template as written is kept for undo.
                let (template, written) = match (source, &config_maps) {
                    (Some(t), _) => (t, written),
                    (None, Some(_)) if revision == &target => (
                        config::rewrite(&template, revision),
                        Some(serde_json::to_string(&template)?),
                    ),
                    (None, _) => (template.clone(), written),
                };
                let mut desired = revision_deployment(
                    &rollout,
                    selector.as_ref(),
                    revision,
                    *replicas,
                    role.as_str(),
                    (&template, written),
                )?;
                if let Some(at) = promoted_at {
                    desired["metadata"]["labels"][LABEL_PROMOTED_AT] = json!(at);
                }
                let params = PatchParams::apply(FIELD_MANAGER).force();
                let written = deployments
                    .patch(
                        &deployment_name(&name, revision),
                        &params,
                        &Patch::Apply(&desired),
                    )
                    .await?;
                reads.deployments.wrote(&owner, &written);
                if let Some(maps) = config_maps.as_ref().filter(|_| revision == &target) {
                    copy_config(&ctx, &reads, &owner, &ns, &name, revision, maps, &written).await?;
                }
            }
            Action::ScaleReferenced { replicas } => {
                // The user's Deployment: only its replica count changes, through the scale
                // subresource, so its template and labels stay as its owner applied them.
                if let Some(wr) = &rollout.spec.workload_ref {
                    let scale = json!({"spec": {"replicas": replicas}});
                    deployments
                        .patch_scale(
                            &wr.name,
                            &PatchParams::apply(FIELD_MANAGER),
                            &Patch::Merge(&scale),
                        )
                        .await?;
                }
            }
            Action::DeleteRevision { revision } => {
                let gone = deployment_name(&name, revision);
                deployments
                    .delete(&gone, &DeleteParams::background())
                    .await?;
                reads.deployments.deleted(&owner, &ns, &gone);
            }
            Action::PinService { service, revision } => {
                // A Service's selector is an atomic map: server-side apply owns it whole or
                // not at all. So the pin sends the selector as observed plus the revision,
                // and forces: the user's own keys stay, and only the revision key changes.
                let mut selector = service_selectors.get(service).cloned().unwrap_or_default();
                selector.insert(LABEL_REVISION.to_string(), revision.clone());
                let pin = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": service},
                    "spec": {"selector": selector}});
                let written = services
                    .patch(
                        service,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&pin),
                    )
                    .await?;
                reads.services.wrote(&owner, &written);
            }
            Action::SetFlagState { flag, enabled } => {
                let flags: Api<FeatureFlag> = Api::namespaced(ctx.client.clone(), &ns);
                let state = if *enabled { "ENABLED" } else { "DISABLED" };
                let body = json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "FeatureFlag",
                    "metadata": {"name": flag}, "spec": {"state": state}});
                let written = flags
                    .patch(
                        flag,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&body),
                    )
                    .await?;
                reads.flags.wrote(&owner, &written);
            }
            Action::RequestMigrationRollback { migration, request }
            | Action::RequestMigrationRetry { migration, request } => {
                let key = match action {
                    Action::RequestMigrationRollback { .. } => ANNOTATION_ROLLBACK,
                    _ => ANNOTATION_MIGRATION_RETRY,
                };
                let mjs: Api<MigrationJob> = Api::namespaced(ctx.client.clone(), &ns);
                let body = json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "MigrationJob",
                    "metadata": {"name": migration, "annotations": {key: request}}});
                let written = mjs
                    .patch(
                        migration,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&body),
                    )
                    .await?;
                reads.migrations.wrote(&owner, &written);
            }
            Action::SetRouteWeight { canary: weight } => {
                if let Some(r) = &route {
                    let written = route::set_route_weight(
                        &ctx,
                        &ns,
                        route_kind,
                        r,
                        canary.stable_service.as_deref(),
                        canary.canary_service.as_deref(),
                        *weight,
                    )
                    .await?;
                    if let Some(cache) = route_cache {
                        cache.wrote(&owner, &written);
                    }
                    // The next write to the route works from the route as written.
                    route = Some(written);
                }
            }
            Action::SetRouteRules { rules } => {
                if let Some(r) = &route
                    && let Some(written) =
                        route::set_route_rules(&ctx.client, &ns, route_kind, r, rules).await?
                {
                    if let Some(cache) = route_cache {
                        cache.wrote(&owner, &written);
                    }
                    route = Some(written);
                }
            }
        }
    }
    for note in &decision.notes {
        publish(
            &ctx,
            &rollout,
            note.reason,
            &note.message,
            matches!(
                note.reason,
                "Aborted" | "MigrationFailed" | "ReplicaFailure"
            ),
        )
        .await;
    }
    notify(&ctx, &rollout, &decision, &recorded_at).await;
    Ok(requeue_at(&ctx.clock, decision.requeue_at))
}

/// Sends the decisions a Rollout's webhooks asked for. The URL is read from its Secret per
/// notification (so a rotated Secret takes effect at once) and never logged.
async fn notify(ctx: &Context, rollout: &Rollout, decision: &plan::Plan, recorded_at: &str) {
    let Some(webhooks) = rollout.spec.notifications.as_ref().map(|n| &n.webhooks) else {
        return;
    };
    let ns = rollout.namespace().unwrap_or_default();
    let ns = ns.as_str();
    let notes = &decision.notes;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(ctx.client.clone(), ns);
    for note in notes {
        let Some(event) = crate::notify::event_of(note.reason) else {
            continue;
        };
        let message = crate::notify::Message {
            event,
            namespace: ns.to_string(),
            rollout: rollout.name_any(),
            revision: rollout
                .status
                .as_ref()
                .and_then(|s| s.current_revision.clone()),
            text: note.message.clone(),
            release: decision.status.history.last().cloned(),
            key: crate::notify::idempotency_key(
                rollout.uid().as_deref().unwrap_or_default(),
                rollout.metadata.generation.unwrap_or_default(),
                decision.status.current_step_index,
                event,
                recorded_at,
            ),
        };
        for hook in webhooks
            .iter()
            .filter(|w| w.events.is_empty() || w.events.contains(&event))
        {
            let url = match secrets.get_opt(&hook.url_from.name).await {
                Ok(Some(secret)) => secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(&hook.url_from.key))
                    .and_then(|b| String::from_utf8(b.0.clone()).ok())
                    .map(|u| u.trim().to_string()),
                _ => None,
            };
            let Some(url) = url else {
                tracing::warn!(rollout = %rollout.name_any(), webhook = %hook.name, secret = %hook.url_from.name, key = %hook.url_from.key, "webhook URL not found in its Secret");
                continue;
            };
            // The URL comes from the author's Secret: its host must be one the platform
            // allowed. The message names the host, never the URL (which may hold a token).
            if let Err(refused) = ctx.egress.check(&format!("webhook {:?}", hook.name), &url) {
                tracing::warn!(rollout = %rollout.name_any(), webhook = %hook.name, "webhook refused: its host is not allowed");
                publish(ctx, rollout, "WebhookRefused", &refused.to_string(), true).await;
                continue;
            }
            let now = ctx.clock.now();
            let mut message = message.clone();
            message.text = match &hook.template {
                Some(t) => crate::notify::render(t, &message, now),
                None => crate::notify::ending(&message, now),
            };
            ctx.notifier().send(crate::notify::Delivery {
                webhook: hook.name.clone(),
                url,
                body: crate::notify::payload(hook.format.unwrap_or_default(), &message),
                rollout: format!("{ns}/{}", rollout.name_any()),
                key: message.key.clone(),
            });
        }
    }
}

/// Largest pod template kept in a revision's `cutover.dev/template` annotation.
const MAX_TEMPLATE_ANNOTATION: usize = 64 * 1024;

fn revision_deployment(
    rollout: &Rollout,
    selector: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    revision: &str,
    replicas: i32,
    role: &str,
    (template, written): (&k8s_openapi::api::core::v1::PodTemplateSpec, Option<String>),
) -> Result<Value, Error> {
    let name = rollout.name_any();
    let owner = rollout
        .controller_owner_ref(&())
        .ok_or_else(|| Error::Internal("the Rollout has no uid yet".into()))?;
    let written = match written {
        Some(w) => Some(w),
        None => Some(serde_json::to_string(template)?),
    }
    // A template is the author's to size: past this it is not kept (annotations share
    // 256 KiB), and undo falls back to the Deployment's own template.
    .filter(|w| w.len() <= MAX_TEMPLATE_ANNOTATION);
    let mut template = serde_json::to_value(template)?;
    template["metadata"]["labels"][LABEL_REVISION] = json!(revision);
    template["metadata"]["labels"][LABEL_ROLLOUT] = json!(name);
    // The Rollout's selector, expressions included, narrowed to the revision.
    let mut match_labels = selector
        .and_then(|s| s.match_labels.clone())
        .unwrap_or_default();
    match_labels.insert(LABEL_REVISION.to_string(), revision.to_string());
    let mut selector_json = json!({"matchLabels": match_labels});
    if let Some(expressions) = selector
        .and_then(|s| s.match_expressions.as_ref())
        .filter(|e| !e.is_empty())
    {
        selector_json["matchExpressions"] = serde_json::to_value(expressions)?;
    }
    Ok(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(&name, revision),
            "labels": {LABEL_ROLLOUT: name, LABEL_REVISION: revision, LABEL_ROLE: role},
            "annotations": written.map(|w| json!({ANNOTATION_TEMPLATE: w})).unwrap_or(json!({})),
            "ownerReferences": [owner],
        },
        "spec": {
            "replicas": replicas,
            "selector": selector_json,
            "template": template,
            "minReadySeconds": rollout.spec.min_ready_seconds.unwrap_or(0),
        },
    }))
}

/// A revision's Deployment as the (non-controlling) owner of what belongs to the revision.
pub(super) fn revision_owner(d: &Deployment) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: d.metadata.name.clone()?,
        uid: d.metadata.uid.clone()?,
        controller: None,
        block_owner_deletion: None,
    })
}

pub(super) async fn publish(
    ctx: &Context,
    rollout: &Rollout,
    reason: &str,
    message: &str,
    warning: bool,
) {
    shell::publish(ctx, &rollout.object_ref(&()), reason, message, warning).await;
}

async fn take_measurements(ctx: &Context, rollout: &Rollout, ns: &str) -> Vec<Taken> {
    let due = analysis::due(rollout, ctx.clock.now());
    let stable = rollout
        .status
        .as_ref()
        .and_then(|s| s.stable_revision.clone())
        .unwrap_or_default();
    let owner = rollout.controller_owner_ref(&());
    shell::take_measurements(ctx, ns, owner.as_ref(), &due, |d| Subject {
        name: rollout.name_any(),
        namespace: ns.to_string(),
        canary_revision: d.revision.clone().unwrap_or_default(),
        stable_revision: stable.clone(),
        service: analysis::service_for(&rollout.spec, &d.run).map(|s| format!("{s}.{ns}.svc")),
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(generation: i64, observed: i64, desired: i32, available_now: i32) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "generation": generation},
            "spec": {"replicas": desired, "selector": {}, "template": {}},
            "status": {"observedGeneration": observed, "availableReplicas": available_now}
        }))
        .expect("a Deployment")
    }

    #[test]
    fn an_observed_deployment_counts_its_available_pods() {
        assert_eq!(available(&deployment(3, 3, 4, 4)), 4);
        assert_eq!(available(&deployment(3, 3, 4, 2)), 2);
        assert_eq!(available(&Deployment::default()), 0, "no status yet");
    }

    #[test]
    fn an_unobserved_write_counts_what_the_last_status_and_the_new_size_allow() {
        // Scaled down from 4 to 3: at most 3 stay, not 0 (which made a 25% step read 100%).
        assert_eq!(available(&deployment(4, 3, 3, 4)), 3);
        // Scaled up from 1 to 4: the new pods are not there yet.
        assert_eq!(available(&deployment(4, 3, 4, 1)), 1);
        // Scaled to zero: none.
        assert_eq!(available(&deployment(4, 3, 0, 4)), 0);
    }
}
