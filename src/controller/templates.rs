//! Analysis templates as the controllers read them: watched into caches, read for the
//! references an object makes, and resolved into its analyses before it is planned.

use std::sync::Arc;

use futures::Stream;
use kube::{Api, Client, runtime::watcher};
use serde_json::Value;

use super::{cache::Cache, metrics::Metrics};
use crate::{
    analysis::resolve::{self, Templates},
    api::{AnalysisSpec, AnalysisTemplate, ClusterAnalysisTemplate, TemplateRef},
};

/// The template caches of one controller scope.
pub struct TemplateReads {
    /// AnalysisTemplates of the scope.
    pub namespaced: Arc<Cache<AnalysisTemplate>>,
    /// ClusterAnalysisTemplates.
    pub cluster: Arc<Cache<ClusterAnalysisTemplate>>,
}

/// Streams of changed templates, for waking the objects that name them.
pub type TemplateEvents = (
    std::pin::Pin<Box<dyn Stream<Item = Result<AnalysisTemplate, watcher::Error>> + Send>>,
    std::pin::Pin<Box<dyn Stream<Item = Result<ClusterAnalysisTemplate, watcher::Error>> + Send>>,
);

impl TemplateReads {
    /// Caches of the templates of `scope` (all namespaces when `None`) and of the cluster.
    pub fn watch(
        client: &Client,
        scope: Option<&str>,
        metrics: Arc<Metrics>,
    ) -> (Self, TemplateEvents) {
        let api: Api<AnalysisTemplate> = match scope {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let any = watcher::Config::default().any_semantic();
        let (namespaced, namespaced_events) = Cache::watch(
            "AnalysisTemplate",
            api,
            any.clone(),
            (),
            false,
            metrics.clone(),
        );
        let (cluster, cluster_events) = Cache::watch(
            "ClusterAnalysisTemplate",
            Api::all(client.clone()),
            any,
            (),
            false,
            metrics,
        );
        (
            TemplateReads {
                namespaced,
                cluster,
            },
            (Box::pin(namespaced_events), Box::pin(cluster_events)),
        )
    }

    /// The templates `refs` name, read for `owner` in `namespace`; missing ones are absent.
    pub async fn read<'a>(
        &self,
        client: &Client,
        owner: &str,
        namespace: &str,
        refs: impl IntoIterator<Item = &'a TemplateRef>,
    ) -> Result<Templates, kube::Error> {
        let mut found = Templates {
            namespace: namespace.to_string(),
            ..Default::default()
        };
        for r in refs {
            let name = &r.template_name;
            if r.cluster_scope {
                if found.cluster.contains_key(name) {
                    continue;
                }
                let api: Api<ClusterAnalysisTemplate> = Api::all(client.clone());
                if let Some(t) = self.cluster.get(&api, owner, "", name).await? {
                    found.cluster.insert(name.clone(), t.spec.into());
                }
            } else {
                if found.namespaced.contains_key(name) {
                    continue;
                }
                let api: Api<AnalysisTemplate> = Api::namespaced(client.clone(), namespace);
                if let Some(t) = self.namespaced.get(&api, owner, namespace, name).await? {
                    found.namespaced.insert(name.clone(), t.spec);
                }
            }
        }
        Ok(found)
    }
}

/// Resolves every analysis in place; the problems found, as messages.
pub fn resolve_all(
    analyses: Vec<(String, &mut AnalysisSpec)>,
    templates: &Templates,
    object: &Value,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, spec) in analyses {
        match resolve::resolve(spec, &path, templates, object) {
            Ok(resolved) => *spec = resolved,
            Err(errors) => problems.extend(errors.iter().map(ToString::to_string)),
        }
    }
    problems
}
