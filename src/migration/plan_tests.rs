use serde_json::json;

use super::*;

const T0: i64 = 1_800_000_000;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(T0 + secs).unwrap()
}

fn migration(extra: serde_json::Value) -> MigrationJob {
    let mut spec = json!({"template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "m", "image": "migrate:1"}]}}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(
        json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "MigrationJob",
        "metadata": {"name": "add-column", "namespace": "default", "generation": 1, "uid": "u",
            "creationTimestamp": "2027-01-15T08:00:00Z"},
        "spec": spec}),
    )
    .unwrap()
}

struct World {
    mj: MigrationJob,
    job: Option<JobObserved>,
    rollback_job: Option<JobObserved>,
    lock: Lock,
    held: Option<String>,
    log: Option<String>,
    freeze: Option<String>,
    backup_job: Option<JobObserved>,
}

impl World {
    fn new(mj: MigrationJob) -> Self {
        Self {
            mj,
            job: None,
            rollback_job: None,
            lock: Lock::Free,
            held: None,
            log: None,
            freeze: None,
            backup_job: None,
        }
    }

    fn step(&mut self, now: Timestamp) -> Plan {
        let p = plan(&Observed {
            migration: &self.mj,
            revision: spec_revision(&self.mj.spec),
            job: self.job.clone(),
            rollback_job: self.rollback_job.clone(),
            lock: self.lock.clone(),
            held_by_rollout: self.held.clone(),
            backup_job: self.backup_job.clone(),
            failed_log: self.log.clone(),
            freeze: self.freeze.clone(),
            now,
        });
        self.mj.status = Some(p.status.clone());
        p
    }

    fn status(&self) -> &MigrationJobStatus {
        self.mj.status.as_ref().unwrap()
    }

    fn annotate(&mut self, key: &str, value: &str) {
        self.mj
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(key.into(), value.into());
    }
}

fn running(name: &str) -> JobObserved {
    JobObserved {
        name: name.into(),
        active: 1,
        start: Some(at(0)),
        ..Default::default()
    }
}

fn finished(name: &str, complete: bool, reason: &str) -> JobObserved {
    JobObserved {
        name: name.into(),
        active: 0,
        succeeded: i32::from(complete),
        failed: i32::from(!complete),
        start: Some(at(0)),
        completion: Some(at(75)),
        finished: Some((complete, reason.into(), "job message".into())),
    }
}

#[test]
fn one_job_per_revision_with_a_name_from_its_hash() {
    let mut w = World::new(migration(json!({})));
    let p = w.step(at(0));
    let rev = spec_revision(&w.mj.spec);
    let name = format!("add-column-{rev}");
    assert_eq!(p.actions, vec![Action::CreateJob { name: name.clone() }]);
    assert_eq!(w.status().phase, MigrationPhase::Running);
    // Not yet seen in the cache: asking again names the same Job, so it cannot run twice.
    let p = w.step(at(1));
    assert_eq!(p.actions, vec![Action::CreateJob { name: name.clone() }]);
    w.job = Some(running(&name));
    let p = w.step(at(2));
    assert!(p.actions.is_empty());
    assert_eq!(w.status().attempts, Some(1));
    w.job = Some(finished(&name, true, "CompletionsReached"));
    w.step(at(80));
    let s = w.status();
    assert_eq!(s.phase, MigrationPhase::Succeeded);
    assert_eq!(s.succeeded_revision.as_deref(), Some(rev.as_str()));
    assert_eq!(s.duration.as_deref(), Some("1m15s"));
    let ready = cond::find(&s.conditions, cond::READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Succeeded")
    );
    // The Job is garbage-collected: the migration never reruns.
    w.job = None;
    let p = w.step(at(10_000));
    assert!(p.actions.is_empty());
    assert_eq!(w.status().phase, MigrationPhase::Succeeded);
}

#[test]
fn a_changed_spec_runs_a_new_job() {
    let mut w = World::new(migration(json!({})));
    let first = spec_revision(&w.mj.spec);
    w.step(at(0));
    w.job = Some(finished(&format!("add-column-{first}"), true, ""));
    w.step(at(1));
    w.mj.spec.template.spec.as_mut().unwrap().containers[0].image = Some("migrate:2".into());
    w.job = None;
    let p = w.step(at(2));
    let second = spec_revision(&w.mj.spec);
    assert_ne!(first, second);
    assert_eq!(
        p.actions,
        vec![Action::CreateJob {
            name: format!("add-column-{second}")
        }]
    );
    assert!(p.notes.iter().any(|n| n.reason == "SpecChanged"));
    // Lock key and TTL do not change what runs.
    let mut a = migration(json!({}));
    let b = migration(json!({"lockKey": "db", "ttlSecondsAfterFinished": 60}));
    assert_eq!(spec_revision(&a.spec), spec_revision(&b.spec));
    a.spec.timeout_seconds = Some(10);
    assert_ne!(spec_revision(&a.spec), spec_revision(&b.spec));
}

#[test]
fn a_failure_keeps_the_log_tail_and_never_reruns_until_retried() {
    let mut w = World::new(migration(json!({"timeoutSeconds": 60})));
    let p = w.step(at(0));
    let Action::CreateJob { name } = p.actions[0].clone() else {
        panic!()
    };
    w.job = Some(finished(&name, false, "DeadlineExceeded"));
    w.log = Some("ALTER TABLE orders ADD COLUMN ...\nlock timeout".into());
    let p = w.step(at(61));
    let s = w.status().clone();
    assert_eq!(s.phase, MigrationPhase::Failed);
    let ready = cond::find(&s.conditions, cond::READY).unwrap();
    assert_eq!(ready.reason, "DeadlineExceeded");
    assert!(s.message.as_deref().unwrap().contains("lock timeout"));
    assert!(
        p.notes
            .iter()
            .any(|n| n.reason == "MigrationFailed" && n.warning)
    );
    w.job = None;
    assert!(w.step(at(100)).actions.is_empty(), "never rerun by itself");
    w.annotate(ANNOTATION_MIGRATION_RETRY, "1");
    let p = w.step(at(101));
    assert_eq!(
        p.actions,
        vec![Action::CreateJob {
            name: format!("{name}-1")
        }]
    );
    w.job = Some(running(&format!("{name}-1")));
    w.step(at(102));
    w.job = Some(finished(&format!("{name}-1"), true, ""));
    w.step(at(103));
    assert_eq!(w.status().phase, MigrationPhase::Succeeded);
    assert!(
        w.step(at(104)).actions.is_empty(),
        "the same retry is taken once"
    );
}

#[test]
fn a_job_deleted_while_running_fails_the_migration() {
    let mut w = World::new(migration(json!({})));
    let p = w.step(at(0));
    let Action::CreateJob { name } = p.actions[0].clone() else {
        panic!()
    };
    w.job = Some(running(&name));
    w.step(at(1));
    w.job = None;
    let p = w.step(at(2));
    assert!(p.actions.is_empty());
    assert_eq!(w.status().phase, MigrationPhase::Failed);
}

#[test]
fn a_held_lock_waits_with_the_holders_name() {
    let mut w = World::new(migration(json!({"lockKey": "orders-db"})));
    w.lock = Lock::HeldBy("rename-table".into());
    let p = w.step(at(0));
    assert!(p.actions.is_empty());
    let s = w.status();
    assert_eq!(s.phase, MigrationPhase::Waiting);
    assert_eq!(s.lock_holder.as_deref(), Some("rename-table"));
    assert_eq!(p.requeue_at, Some(at(LOCK_RECHECK_SECONDS)));
    w.lock = Lock::Free;
    let p = w.step(at(5));
    assert_eq!(p.actions.len(), 1);
    assert_eq!(w.status().lock_holder, None);
}

#[test]
fn the_lock_goes_first_come_first_served() {
    let make = |name: &str, created: &str, phase: Option<MigrationPhase>| {
        let mut m = migration(json!({"lockKey": "db"}));
        m.metadata.name = Some(name.into());
        m.metadata.creation_timestamp = Some(Time(created.parse().unwrap()));
        m.status = phase.map(|p| MigrationJobStatus {
            phase: p,
            ..Default::default()
        });
        m
    };
    let a = make("a", "2027-01-01T00:00:00Z", None);
    let b = make("b", "2027-01-01T00:00:01Z", None);
    let c = make("c", "2027-01-01T00:00:02Z", Some(MigrationPhase::Running));
    let all = vec![a.clone(), b.clone(), c.clone()];
    assert_eq!(
        lock_for(&a, &all),
        Lock::HeldBy("c".into()),
        "a running one holds it"
    );
    let all = vec![a.clone(), b.clone()];
    assert_eq!(lock_for(&a, &all), Lock::Free, "the oldest goes first");
    assert_eq!(lock_for(&b, &all), Lock::HeldBy("a".into()));
    let done = make("a", "2027-01-01T00:00:00Z", Some(MigrationPhase::Failed));
    assert_eq!(lock_for(&b, &[done, b.clone()]), Lock::Free);
    let mut other_key = make("x", "2026-01-01T00:00:00Z", Some(MigrationPhase::Running));
    other_key.spec.lock_key = Some("other".into());
    assert_eq!(lock_for(&b, &[other_key, b.clone()]), Lock::Free);
    let no_key = migration(json!({}));
    assert_eq!(lock_for(&no_key, &[c]), Lock::Free);
}

#[test]
fn a_migration_held_by_a_rollout_does_not_start() {
    let mut w = World::new(migration(json!({})));
    w.held = Some("waiting for Rollout web".into());
    let p = w.step(at(0));
    assert!(p.actions.is_empty());
    assert_eq!(w.status().phase, MigrationPhase::Pending);
    assert_eq!(
        cond::find(&w.status().conditions, cond::READY)
            .unwrap()
            .reason,
        "WaitingForRollout"
    );
}

#[test]
fn a_rollback_runs_once_per_request() {
    let mut w = World::new(migration(
        json!({"rollback": {"template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "m", "image": "migrate:1", "args": ["down"]}]}}}}),
    ));
    let p = w.step(at(0));
    let Action::CreateJob { name } = p.actions[0].clone() else {
        panic!()
    };
    w.job = Some(finished(&name, true, ""));
    w.step(at(1));
    w.annotate(ANNOTATION_ROLLBACK, "abort-1");
    let p = w.step(at(2));
    let rb = rollback_job_name("add-column", &spec_revision(&w.mj.spec), "abort-1");
    assert_eq!(
        p.actions,
        vec![Action::CreateRollbackJob { name: rb.clone() }]
    );
    assert_eq!(w.status().phase, MigrationPhase::RollingBack);
    w.rollback_job = Some(running(&rb));
    assert!(w.step(at(3)).actions.is_empty());
    w.rollback_job = Some(finished(&rb, true, ""));
    w.step(at(4));
    assert_eq!(w.status().phase, MigrationPhase::RolledBack);
    assert_eq!(
        w.status().succeeded_revision,
        None,
        "a rolled-back migration gates nothing"
    );
    w.rollback_job = None;
    assert!(
        w.step(at(5)).actions.is_empty(),
        "the same request runs once"
    );
    assert_eq!(
        w.status().phase,
        MigrationPhase::RolledBack,
        "and it does not rerun"
    );
    // Without a rollback template a request is noted and changes nothing.
    let mut w = World::new(migration(json!({})));
    w.step(at(0));
    w.annotate(ANNOTATION_ROLLBACK, "x");
    let p = w.step(at(1));
    assert!(p.notes.iter().any(|n| n.reason == "RollbackUnavailable"));
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::CreateRollbackJob { .. }))
    );
}

#[test]
fn job_names_fit_in_a_label() {
    let long = "m".repeat(80);
    let n = job_name(&long, "abcdefghij", 3);
    assert!(n.len() <= 63, "{n}");
    assert!(n.ends_with("-abcdefghij-3"));
    assert!(rollback_job_name(&long, "abcdefghij", "req").len() <= 63);
}

#[test]
fn a_running_job_s_log_is_kept_shortly_before_its_deadline() {
    let job = running("j");
    let start = job.start.unwrap_or(at(0));
    let secs = |s: i64| start + jiff::SignedDuration::from_secs(s);
    // 300 s: 30 s ahead is more than 10, so 10 s ahead.
    assert_eq!(
        log_snapshot(&job, 300, (0, 0), secs(0)),
        Snapshot::At(secs(290))
    );
    assert_eq!(log_snapshot(&job, 300, (0, 0), secs(290)), Snapshot::Now);
    assert_eq!(log_snapshot(&job, 300, (0, 0), secs(400)), Snapshot::Now);
    // 60 s: a tenth, 6 s ahead.
    assert_eq!(
        log_snapshot(&job, 60, (0, 0), secs(0)),
        Snapshot::At(secs(54))
    );
    // 4 s: at least 1 s ahead.
    assert_eq!(
        log_snapshot(&job, 4, (0, 0), secs(0)),
        Snapshot::At(secs(3))
    );
    // 1 s: never earlier than half way, so at the deadline.
    assert_eq!(
        log_snapshot(&job, 1, (0, 0), secs(0)),
        Snapshot::At(secs(1))
    );
}

#[test]
fn a_job_not_running_has_no_log_to_keep() {
    assert_eq!(
        log_snapshot(
            &finished("j", false, "BackoffLimitExceeded"),
            60,
            (0, 0),
            at(100)
        ),
        Snapshot::Never
    );
    let pending = JobObserved {
        active: 0,
        ..running("j")
    };
    assert_eq!(log_snapshot(&pending, 60, (0, 0), at(100)), Snapshot::Never);
    let unstarted = JobObserved {
        start: None,
        ..running("j")
    };
    assert_eq!(
        log_snapshot(&unstarted, 60, (0, 0), at(100)),
        Snapshot::Never
    );
    assert_eq!(
        log_snapshot(&running("j"), 0, (0, 0), at(100)),
        Snapshot::Never
    );
}

#[test]
fn a_restart_keeps_the_failed_run_s_log_once() {
    let job = running("j");
    assert_eq!(log_snapshot(&job, 300, (1, 0), at(5)), Snapshot::Now);
    assert_eq!(
        log_snapshot(&job, 300, (1, 1), at(6)),
        Snapshot::At(at(290)),
        "kept after that restart: next at the deadline"
    );
    assert_eq!(log_snapshot(&job, 300, (2, 1), at(7)), Snapshot::Now);
    assert_eq!(
        log_snapshot(
            &finished("j", false, "BackoffLimitExceeded"),
            300,
            (3, 1),
            at(8)
        ),
        Snapshot::Never,
        "a finished Job has no run left to read"
    );
}

/// T0 is Friday 2027-01-15 08:00 UTC.
#[test]
fn a_migration_starts_only_in_a_window_and_a_rollback_never_waits() {
    let mut mj = migration(json!({}));
    mj.spec.windows = serde_json::from_value(json!([
        {"kind": "Deny", "schedule": "0 8 * * FRI", "duration": "1h"}
    ]))
    .unwrap();
    let mut w = World::new(mj);
    let p = w.step(at(0));
    assert!(p.actions.is_empty(), "no Job: {:?}", p.actions);
    assert_eq!(w.status().phase, MigrationPhase::Pending);
    assert_eq!(p.requeue_at, Some(at(3600)));
    assert_eq!(p.notes[0].reason, "WaitingForWindow");
    assert!(w.step(at(60)).notes.is_empty(), "said once");
    let p = w.step(at(3600));
    assert!(matches!(p.actions.as_slice(), [Action::CreateJob { .. }]));
    // A freeze does not stop a Job that runs.
    w.job = Some(running(&w.status().job_name.clone().unwrap()));
    w.freeze = Some("incident".into());
    let p = w.step(at(3700));
    assert!(p.actions.is_empty());
    assert_eq!(w.status().phase, MigrationPhase::Running);
}

#[test]
fn a_frozen_namespace_holds_a_new_migration() {
    let mut w = World::new(migration(json!({})));
    w.freeze = Some("year-end freeze".into());
    let p = w.step(at(0));
    assert!(p.actions.is_empty());
    assert_eq!(
        w.status().message.as_deref(),
        Some("waiting for a deployment window: the namespace is frozen: year-end freeze")
    );
    w.freeze = None;
    assert!(matches!(
        w.step(at(5)).actions.as_slice(),
        [Action::CreateJob { .. }]
    ));
}

fn with_backup() -> MigrationJob {
    migration(
        json!({"backup": {"template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "dump", "image": "postgres:16", "command": ["pg_dump"]}]}}}}),
    )
}

#[test]
fn a_backup_runs_first_once_per_spec_and_must_succeed() {
    let mut w = World::new(with_backup());
    let p = w.step(at(0));
    let backup = w.status().backup_job_name.clone().expect("a backup Job");
    assert_eq!(
        p.actions,
        vec![Action::CreateBackupJob {
            name: backup.clone()
        }]
    );
    assert_eq!(w.status().phase, MigrationPhase::Running);
    assert!(
        w.status()
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("backing up before revision"))
    );
    // While it runs, the migration does not start.
    w.backup_job = Some(running(&backup));
    assert!(w.step(at(10)).actions.is_empty());
    // It succeeded: the migration Job now, in the same decision.
    w.backup_job = Some(finished(&backup, true, "Complete"));
    let p = w.step(at(20));
    assert!(
        matches!(p.actions.as_slice(), [Action::CreateJob { .. }]),
        "{:?}",
        p.actions
    );
    assert!(p.notes.iter().any(|n| n.reason == "BackedUp"));
    let job = w.status().job_name.clone().expect("the migration Job");
    w.job = Some(finished(&job, true, "Complete"));
    w.step(at(30));
    assert_eq!(w.status().phase, MigrationPhase::Succeeded);
    // Once per spec: nothing runs again, the backup neither.
    w.backup_job = None;
    assert!(w.step(at(40)).actions.is_empty());
}

#[test]
fn a_failed_backup_fails_the_migration_with_its_log_and_a_retry_backs_up_again() {
    let mut w = World::new(with_backup());
    w.step(at(0));
    let backup = w.status().backup_job_name.clone().expect("a backup Job");
    w.backup_job = Some(finished(&backup, false, "BackoffLimitExceeded"));
    w.log = Some("pg_dump: error: connection refused".into());
    let p = w.step(at(10));
    assert!(
        p.actions.is_empty(),
        "the migration never ran: {:?}",
        p.actions
    );
    assert_eq!(w.status().phase, MigrationPhase::Failed);
    let message = w.status().message.clone().unwrap_or_default();
    assert!(
        message.starts_with(&format!("backup Job {backup} failed: BackoffLimitExceeded")),
        "{message}"
    );
    assert!(message.contains("the migration did not run"), "{message}");
    assert!(
        message.ends_with("pg_dump: error: connection refused"),
        "{message}"
    );
    w.annotate(crate::api::ANNOTATION_MIGRATION_RETRY, "1");
    w.log = None;
    let p = w.step(at(20));
    let again = w.status().backup_job_name.clone().expect("a backup Job");
    assert_ne!(again, backup, "a retry is a new backup Job");
    assert_eq!(p.actions, vec![Action::CreateBackupJob { name: again }]);
}
