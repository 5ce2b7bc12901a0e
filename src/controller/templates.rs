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
    object: impl FnOnce() -> Value,
) -> Vec<String> {
    // The object is serialized only when an analysis's arg reads one of its fields (a
    // template's cannot): a reconcile without fieldRef args does not pay for a copy of it.
    let reads_fields = analyses.iter().any(|(_, s)| {
        s.args
            .iter()
            .any(|a| a.value_from.as_ref().is_some_and(|f| f.field_ref.is_some()))
    });
    let object = if reads_fields { object() } else { Value::Null };
    let object = &object;
    let mut problems = Vec::new();
    for (path, spec) in analyses {
        match resolve::resolve(spec, &path, templates, object) {
            Ok(resolved) => *spec = resolved,
            Err(errors) => problems.extend(errors.iter().map(ToString::to_string)),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use serde_json::json;

    use super::*;
    use crate::api::AnalysisTemplateSpec;

    fn spec(args: serde_json::Value) -> AnalysisSpec {
        serde_json::from_value(json!({"templates": [{"templateName": "rate"}], "args": args}))
            .expect("an analysis")
    }

    fn templates(args: serde_json::Value) -> Templates {
        let t: AnalysisTemplateSpec = serde_json::from_value(json!({"args": args, "metrics": [
            {"name": "rate", "successCondition": "result < 1",
             "prometheus": {"query": "rate{team=\"{{ args.team }}\"}"}}]}))
        .expect("a template");
        Templates {
            namespace: "shop".into(),
            namespaced: [("rate".to_string(), t)].into(),
            cluster: Default::default(),
        }
    }

    fn object_reads(analysis: &mut AnalysisSpec, found: &Templates) -> (usize, Vec<String>) {
        let calls = Cell::new(0);
        let problems = resolve_all(vec![("spec".into(), analysis)], found, || {
            calls.set(calls.get() + 1);
            json!({"metadata": {"labels": {"team": "payments"}}})
        });
        (calls.get(), problems)
    }

    #[test]
    fn the_object_is_read_only_when_an_arg_reads_one_of_its_fields() {
        let field = json!([{"name": "team", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}}]);
        let required = || templates(json!([{"name": "team"}]));
        // No fieldRef: never serialized.
        let mut plain = spec(json!([{"name": "team", "value": "web"}]));
        assert_eq!(object_reads(&mut plain, &required()), (0, vec![]));
        // In the analysis's args: read once, and resolved.
        let mut from_analysis = spec(field.clone());
        assert_eq!(object_reads(&mut from_analysis, &required()), (1, vec![]));
        let team = from_analysis
            .args
            .iter()
            .find(|a| a.name == "team")
            .and_then(|a| a.value.clone());
        assert_eq!(team.as_deref(), Some("payments"));
        // A template cannot read fields: refused, without reading the object.
        let mut from_template = spec(json!([]));
        let (reads, problems) = object_reads(&mut from_template, &templates(field));
        assert_eq!(reads, 0);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("a template cannot read fields")),
            "{problems:?}"
        );
    }
}
