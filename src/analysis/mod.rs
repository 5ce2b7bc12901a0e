//! Analysis: query templates, CEL conditions and (with the providers) measurements that
//! decide promote, pause or abort.

pub mod condition;
pub mod cost;
pub mod fetch;
pub mod history;
pub mod job;
pub mod judge;
pub mod measure;
pub mod prometheus;
pub mod resolve;
pub mod run;
pub mod template;
pub mod web;
