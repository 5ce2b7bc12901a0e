//! The MigrationJob controller: a migration run as a Job once per spec revision, with a
//! lock per database, a rollback Job, and the gate it gives Rollouts.

pub mod plan;

pub mod reconcile;
