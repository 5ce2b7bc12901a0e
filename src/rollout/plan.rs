//! The pure decision of the Rollout controller: what was observed and the time in, the
//! writes to make and the status to record out. No I/O, no clock.

pub use super::record::{
    Action, MigrationObserved, Note, Observed, Plan, RequiredObserved, RevisionObserved, Role,
    RouteRulesObserved,
};
use super::record::{Ctx, abort, begin, report_refused_pods};
use crate::api::{Rollout, RolloutPhase, StrategyKind, conditions as cond};

/// Decides the next writes and the status of a Rollout whose spec passed validation.
pub fn plan(obs: &Observed<'_>) -> Plan {
    let rollout = obs.rollout;
    let mut status = rollout.status.clone().unwrap_or_default();
    status.observed_generation = rollout.metadata.generation;
    status.strategy = rollout.spec.strategy_kind();
    if cond::remove(&mut status.conditions, cond::INVALID_SPEC)
        && status.phase == RolloutPhase::Degraded
    {
        // The phase an invalid spec showed is not one the strategy decided: back to where
        // it stood, and the strategy decides again from there.
        status.phase = if cond::is_true(&status.conditions, cond::ABORTED) {
            RolloutPhase::Aborted
        } else {
            RolloutPhase::Progressing
        };
    }
    let mut ctx = Ctx::new(obs, status);
    if migration_gate(&mut ctx) {
        finish(&mut ctx);
        return ctx.into_plan();
    }
    if super::bake::restoring(&mut ctx) {
        finish(&mut ctx);
        return ctx.into_plan();
    }
    let strategy = &rollout.spec.strategy;
    match (
        rollout.spec.strategy_kind(),
        &strategy.canary,
        &strategy.blue_green,
    ) {
        (Some(StrategyKind::Canary), Some(canary), _) => super::canary::plan(&mut ctx, canary),
        (Some(StrategyKind::BlueGreen), _, Some(bg)) => super::bluegreen::plan(&mut ctx, bg),
        (Some(StrategyKind::Rolling), _, _) => {
            if let Some(rolling) = &strategy.rolling {
                super::rolling::plan(&mut ctx, rolling);
            }
        }
        _ => {}
    }
    super::bake::watch(&mut ctx);
    report_refused_pods(&mut ctx);
    rollback_migrations(&mut ctx);
    link_flags(&mut ctx);
    finish(&mut ctx);
    ctx.into_plan()
}

/// The `before` migrations gate a new revision until it has pods: while any runs the
/// rollout waits (WaitingForMigrations) with the stable revision untouched; a failed one
/// aborts it. Returns whether the decision is made (nothing else to plan).
fn migration_gate(ctx: &mut Ctx<'_>) -> bool {
    let Some(gates) = ctx.obs.rollout.spec.migrations.clone() else {
        return false;
    };
    if gates.before.is_empty() {
        return false;
    }
    let target = ctx.obs.target_revision.clone();
    let stable = ctx.status.stable_revision.clone();
    let has_pods = ctx.revision(&target).is_some_and(|r| r.replicas > 0);
    if stable.as_deref() == Some(target.as_str()) || has_pods {
        return false;
    }
    let aborted_here = ctx.status.phase == RolloutPhase::Aborted
        && ctx.status.current_revision.as_deref() == Some(target.as_str());
    let of = |name: &String| ctx.obs.migrations.iter().find(|m| &m.name == name).cloned();
    let failed = gates.before.iter().filter_map(of).find(|m| m.failed);
    let pending: Vec<String> = gates
        .before
        .iter()
        .filter(|n| !of(n).is_some_and(|m| m.succeeded))
        .cloned()
        .collect();
    if let Some(f) = failed {
        let message = format!("migration {} failed: {}", f.name, f.message);
        if aborted_here {
            if ctx.request(crate::api::ANNOTATION_RETRY) {
                ctx.note(
                    "RetryRefused",
                    format!("{message}; retry or fix the MigrationJob first"),
                );
            }
            // The strategy holds the aborted rollout as it is.
            return false;
        }
        match stable {
            None => {
                // Nothing deployed yet: nothing to fall back to, nothing to abort.
                ctx.status.phase = RolloutPhase::Degraded;
                ctx.status.message = Some(message.clone());
                ctx.condition(cond::PROGRESSING, cond::FALSE, "MigrationFailed", message);
                true
            }
            Some(_) => {
                begin(ctx, &target, format!("rolling out revision {target}"));
                ctx.note("MigrationFailed", message.clone());
                abort(ctx, "MigrationFailed", &message);
                false
            }
        }
    } else if pending.is_empty() {
        false
    } else {
        if aborted_here {
            if !ctx.request(crate::api::ANNOTATION_RETRY) {
                return false;
            }
            // Retried while a migration runs again: wait for it, then start afresh.
            ctx.status.current_revision = stable.clone();
            ctx.status.analysis.clear();
            ctx.condition(
                cond::ABORTED,
                cond::FALSE,
                "Retried",
                "retried; waiting for migrations",
            );
            ctx.note("Retried", "retrying once the migrations succeed");
        }
        rerun_rolled_back(ctx, &pending);
        let message = format!("waiting for migrations: {}", pending.join(", "));
        if ctx.status.message.as_deref() != Some(message.as_str()) {
            ctx.note("WaitingForMigrations", message.clone());
        }
        ctx.status.phase = RolloutPhase::Progressing;
        ctx.status.message = Some(message.clone());
        ctx.condition(
            cond::PROGRESSING,
            cond::TRUE,
            "WaitingForMigrations",
            message,
        );
        true
    }
}

/// A retried rollout asks its rolled-back `before` migrations to run again: a RolledBack
/// migration gates nothing until it runs, so the retry would otherwise wait for ever. Once
/// per retry: the request carries the retry's value.
fn rerun_rolled_back(ctx: &mut Ctx<'_>, pending: &[String]) {
    let retried = ctx
        .status
        .conditions
        .iter()
        .any(|c| c.type_ == cond::ABORTED && c.status == cond::FALSE && c.reason == "Retried");
    let retry = ctx
        .obs
        .rollout
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(crate::api::ANNOTATION_RETRY))
        .cloned();
    let (true, Some(retry)) = (retried, retry) else {
        return;
    };
    let name = ctx.obs.rollout.metadata.name.clone().unwrap_or_default();
    let request = format!("rollout/{name}/{}/retry/{retry}", ctx.obs.target_revision);
    for migration in pending {
        let Some(m) = ctx.obs.migrations.iter().find(|m| &m.name == migration) else {
            continue;
        };
        if m.phase == crate::api::MigrationPhase::RolledBack
            && m.requested_retry.as_deref() != Some(request.as_str())
        {
            ctx.actions.push(Action::RequestMigrationRetry {
                migration: m.name.clone(),
                request: request.clone(),
            });
        }
    }
}

/// With `rollbackOnAbort`, an aborted rollout asks its `before` migrations to roll back,
/// newest first, one at a time.
fn rollback_migrations(ctx: &mut Ctx<'_>) {
    let Some(gates) = ctx.obs.rollout.spec.migrations.clone() else {
        return;
    };
    if !gates.rollback_on_abort.unwrap_or(false) || ctx.status.phase != RolloutPhase::Aborted {
        return;
    }
    let target = ctx.obs.target_revision.clone();
    let Some(at) = ctx.status.paused_at.as_ref().map(|t| t.0.as_second()) else {
        return;
    };
    let name = ctx.obs.rollout.metadata.name.clone().unwrap_or_default();
    // One value per abort: a second abort of the same revision rolls back again.
    let request = format!("rollout/{name}/{target}/{at}");
    for migration in gates.before.iter().rev() {
        let Some(m) = ctx.obs.migrations.iter().find(|m| &m.name == migration) else {
            continue;
        };
        if m.handled_rollback.as_deref() == Some(request.as_str()) {
            if m.phase == crate::api::MigrationPhase::RollingBack {
                return;
            }
            continue;
        }
        if m.requested_rollback.as_deref() == Some(request.as_str()) {
            // Asked already; waiting for it to act.
            return;
        }
        if m.succeeded || m.failed {
            ctx.actions.push(Action::RequestMigrationRollback {
                migration: m.name.clone(),
                request,
            });
            return;
        }
    }
}

/// Flag links: the flags to enable once a revision is fully promoted, and to disable when a
/// rollout aborts — each once per promotion or abort, so a person's later change stands.
fn link_flags(ctx: &mut Ctx<'_>) {
    let Some(links) = ctx.obs.rollout.spec.flags.clone() else {
        return;
    };
    let target = ctx.obs.target_revision.clone();
    let promoted = ctx.status.phase == RolloutPhase::Healthy
        && ctx.status.stable_revision.as_deref() == Some(target.as_str())
        && ctx.status.current_revision.as_deref() == Some(target.as_str());
    let aborted = ctx.status.phase == RolloutPhase::Aborted;
    let at = ctx.status.paused_at.as_ref().map_or(0, |t| t.0.as_second());
    let todo = [
        (
            promoted,
            "flags/enable",
            target.clone(),
            &links.enable_on_promotion,
            true,
        ),
        (
            aborted,
            "flags/disable",
            format!("{target}/{at}"),
            &links.disable_on_abort,
            false,
        ),
    ];
    for (when, key, id, flags, enabled) in todo {
        if !when || flags.is_empty() || ctx.status.handled_requests.get(key) == Some(&id) {
            continue;
        }
        ctx.status.handled_requests.insert(key.to_string(), id);
        for flag in flags {
            ctx.actions.push(Action::SetFlagState {
                flag: flag.clone(),
                enabled,
            });
        }
        let verb = if enabled { "enabled" } else { "disabled" };
        ctx.note("FlagsSet", format!("{verb} flags {}", flags.join(", ")));
    }
}

fn finish(ctx: &mut Ctx<'_>) {
    super::analysis::end_unneeded(ctx);
    // An adopted Deployment is scaled down only once the stable revision serves in full,
    // so there is no moment without serving pods.
    if let (Some(referenced), Some(stable)) = (
        ctx.obs.referenced_replicas,
        ctx.status.stable_revision.clone(),
    ) && referenced > 0
        && ctx.available(&stable) >= ctx.obs.rollout.spec.replicas()
    {
        ctx.actions.push(Action::ScaleReferenced { replicas: 0 });
    }
    let replicas = ctx.obs.rollout.spec.replicas();
    // Contract migrations may run once only the stable revision has pods.
    let target = ctx.obs.target_revision.as_str();
    let settled = ctx.status.phase == RolloutPhase::Healthy
        && ctx.status.stable_revision.as_deref() == Some(target)
        && ctx.status.current_revision.as_deref() == Some(target)
        && ctx.status.previous_revision.is_none()
        && ctx
            .obs
            .revisions
            .iter()
            .filter(|r| r.revision != target)
            .all(|r| r.replicas == 0 && r.available == 0);
    ctx.status.contract_revision = settled.then(|| target.to_string());
    // What Rollouts requiring this one compare with: the images now serving as stable, and
    // since when.
    if ctx.status.phase == RolloutPhase::Healthy
        && ctx.status.stable_revision.as_deref() == Some(target)
        && ctx.status.current_revision.as_deref() == Some(target)
        && ctx.status.stable_images != ctx.obs.images
    {
        ctx.status.stable_images = ctx.obs.images.clone();
        ctx.status.stable_since = Some(super::record::ts(ctx.obs.now));
    }
    let total: i32 = ctx.obs.revisions.iter().map(|r| r.replicas).sum();
    let available: i32 = ctx.obs.revisions.iter().map(|r| r.available).sum();
    ctx.status.replicas = Some(total);
    ctx.status.available_replicas = Some(available);
    ctx.status.ready_replicas = Some(available);
    ctx.status.selector = ctx.obs.selector.clone();
    let (status, reason) = if available >= replicas {
        (cond::TRUE, "MinimumReplicasAvailable")
    } else {
        (cond::FALSE, "MinimumReplicasUnavailable")
    };
    ctx.condition(
        cond::AVAILABLE,
        status,
        reason,
        format!("{available} of {replicas} pods available"),
    );
    super::history::record(ctx);
    let health = crate::api::health::rollout(&ctx.status);
    let now = super::record::ts(ctx.obs.now);
    let generation = ctx.obs.rollout.metadata.generation;
    crate::api::health::record(&mut ctx.status.conditions, &health, generation, &now);
}

/// Whether a person changed the Rollout and waits for the operator to act: a spec it has
/// not yet observed, or a promote, abort or retry request it has not yet taken. Such
/// Rollouts go ahead of routine work.
pub fn awaits_operator(rollout: &Rollout) -> bool {
    let status = rollout.status.as_ref();
    if rollout.metadata.generation != status.and_then(|s| s.observed_generation) {
        return true;
    }
    let annotations = rollout.metadata.annotations.as_ref();
    [
        crate::api::ANNOTATION_PROMOTE,
        crate::api::ANNOTATION_PROMOTE_FULL,
        crate::api::ANNOTATION_ABORT,
        crate::api::ANNOTATION_RETRY,
    ]
    .iter()
    .any(|key| {
        annotations
            .and_then(|a| a.get(*key))
            .is_some_and(|value| status.and_then(|s| s.handled_requests.get(*key)) != Some(value))
    })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
