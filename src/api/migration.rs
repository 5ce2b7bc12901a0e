//! The `MigrationJob` kind: a database migration run as a Job once per spec revision.

use k8s_openapi::{
    api::core::v1::PodTemplateSpec,
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Annotation a person sets (any new value) to run the rollback Job once.
pub const ANNOTATION_ROLLBACK: &str = "cutover.dev/rollback";
/// Annotation a person sets (any new value) to run a Failed or RolledBack migration again.
pub const ANNOTATION_MIGRATION_RETRY: &str = "cutover.dev/retry";
/// Label on Jobs naming their MigrationJob.
pub const LABEL_MIGRATION: &str = "cutover.dev/migration";
/// Bytes of a failed pod's log kept in the status message.
pub const LOG_TAIL_BYTES: usize = 2048;

/// Desired state of a MigrationJob: the Job to run, its rollback, timeout and lock.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "cutover.dev",
    version = "v1alpha1",
    kind = "MigrationJob",
    namespaced,
    status = "MigrationJobStatus",
    shortname = "mj",
    category = "cutover",
    doc = "A database migration run as a Kubernetes Job, once per spec revision.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Revision", type_ = "string", json_path = ".status.revision"),
    printcolumn(name = "Lock", type_ = "string", json_path = ".spec.lockKey"),
    printcolumn(name = "Duration", type_ = "string", json_path = ".status.duration"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MigrationJobSpec {
    /// Pod template of the migration (its restartPolicy must be Never or OnFailure).
    #[schemars(schema_with = "job_template_schema")]
    pub template: PodTemplateSpec,
    /// The down migration, run once on request or when a gated Rollout aborts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<MigrationRollback>,
    /// Seconds the Job may run before it is stopped and the migration is Failed with reason
    /// DeadlineExceeded (the Job's activeDeadlineSeconds; default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 604800))]
    pub timeout_seconds: Option<i64>,
    /// Retries of a failed pod before the migration is Failed (default 0: a migration is
    /// retried only when you say so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 20))]
    pub backoff_limit: Option<i32>,
    /// MigrationJobs with the same key in a namespace (one database) never run at once;
    /// they wait in creation order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$")
    )]
    pub lock_key: Option<String>,
    /// Seconds a finished Job is kept before it is deleted; status still records the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 31536000))]
    pub ttl_seconds_after_finished: Option<i32>,
    /// A Job run before the migration, once per spec (a database dump): the migration
    /// runs only once it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<MigrationBackup>,
    /// Refuses a migration without a `rollback` (down) Job, as InvalidSpec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_rollback: Option<bool>,
    /// When the migration may start; one started runs to its end. A rollback is never
    /// held.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub windows: Vec<super::DeploymentWindow>,
}

/// Default timeout of a migration Job in seconds.
pub const DEFAULT_MIGRATION_TIMEOUT_SECONDS: i64 = 3600;

impl MigrationJobSpec {
    /// Timeout in seconds, defaulted.
    pub fn timeout_seconds(&self) -> i64 {
        self.timeout_seconds
            .unwrap_or(DEFAULT_MIGRATION_TIMEOUT_SECONDS)
    }
    /// Backoff limit, defaulted.
    pub fn backoff_limit(&self) -> i32 {
        self.backoff_limit.unwrap_or(0)
    }
}

fn job_template_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = super::rollout::pod_template_schema(generator);
    schema.insert(
        "description".into(),
        "Pod template of the migration Job.".into(),
    );
    schema.insert(
        "x-kubernetes-validations".into(),
        serde_json::json!([{
            "rule": "!has(self.spec) || !has(self.spec.restartPolicy) || self.spec.restartPolicy != 'Always'",
            "message": "a migration's restartPolicy must be Never or OnFailure"
        }]),
    );
    schema
}

/// The backup taken before a migration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationBackup {
    /// Pod template of the backup Job.
    #[schemars(schema_with = "job_template_schema")]
    pub template: PodTemplateSpec,
}

/// The down migration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationRollback {
    /// Pod template of the rollback Job.
    #[schemars(schema_with = "job_template_schema")]
    pub template: PodTemplateSpec,
}

/// Lifecycle phase of a MigrationJob.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum MigrationPhase {
    /// Not started yet.
    #[default]
    Pending,
    /// Waiting for another migration holding the same lock.
    Waiting,
    /// The Job runs.
    Running,
    /// The Job completed for the current spec.
    Succeeded,
    /// The Job failed or timed out.
    Failed,
    /// The rollback Job runs.
    RollingBack,
    /// The rollback Job completed.
    RolledBack,
}

/// Observed state of a MigrationJob.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationJobStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Lifecycle phase.
    #[serde(default)]
    pub phase: MigrationPhase,
    /// Hash of the spec being run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Hash of the last spec that succeeded; an unchanged spec never reruns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded_revision: Option<String>,
    /// The backup Job of the current spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_job_name: Option<String>,
    /// Hash of the spec whose backup succeeded: it is not taken again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backed_up_revision: Option<String>,
    /// Name of the Job of the current revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Name of the rollback Job, once one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_job_name: Option<String>,
    /// Rollback requests already acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_rollback: Option<String>,
    /// Retry requests already acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_retry: Option<String>,
    /// Runs of the current revision started by retry requests (part of the Job's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i32>,
    /// Pods started for the current revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,
    /// When the Job started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the Job finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// How long it ran, e.g. `2m13s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// The MigrationJob holding the lock this one waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_holder: Option<String>,
    /// What happened; for a failure, the tail of the pod's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Standard conditions, including Ready for GitOps health checks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_never_retry_and_time_out_after_an_hour() {
        let spec = MigrationJobSpec::default();
        assert_eq!(spec.backoff_limit(), 0);
        assert_eq!(spec.timeout_seconds(), 3600);
    }
}
