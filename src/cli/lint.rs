//! `cutover lint`: the checks a cluster and the controllers would apply, before anything is
//! applied — so teams can gate manifests in CI.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    process::ExitCode,
};

use serde_json::Value;

use crate::{
    analysis::resolve::{self, Templates},
    api::{
        self, AnalysisSpec, AnalysisTemplate, AnalysisTemplateSpec, ClusterAnalysisTemplate,
        FeatureFlag, MigrationJob, Rollout,
        openapi::{FieldError, FieldErrorKind},
        validate,
    },
};

/// One problem in one document of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// File as given on the command line.
    pub file: String,
    /// 1-based index of the (non-empty) document in the file.
    pub doc: usize,
    /// Where the field at fault (or its nearest written parent) is in the file.
    pub at: super::positions::Position,
    /// The field at fault, dotted (empty for the whole document).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (line, column) = (self.at.line, self.at.column);
        if self.field.is_empty() {
            write!(f, "{}:{line}:{column}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{line}:{column}: {}: {}",
                self.file, self.field, self.message
            )
        }
    }
}

/// Result of linting a stream of documents.
#[derive(Debug, Default)]
pub struct Report {
    /// Problems found.
    pub problems: Vec<Problem>,
    /// Documents of cutover kinds checked.
    pub checked: usize,
    /// Documents of other kinds passed over.
    pub skipped: usize,
}

/// Splits a YAML stream at `---` lines, keeping only documents with content.
pub fn split_documents(text: &str) -> Vec<String> {
    split_documents_at(text)
        .into_iter()
        .map(|(_, doc)| doc)
        .collect()
}

/// Like [`split_documents`], with the number of lines before each document in the stream.
pub fn split_documents_at(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let (mut start, mut current) = (0, String::new());
    for (n, line) in text.lines().enumerate() {
        let is_separator = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_separator || line == "..." {
            docs.push((start, std::mem::take(&mut current)));
            start = n + 1;
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    docs.push((start, current));
    docs.into_iter().filter(|(_, d)| has_content(d)).collect()
}

fn has_content(doc: &str) -> bool {
    doc.lines().any(|l| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#')
    })
}

/// The analysis templates found among the files linted together, so references to them
/// are resolved; a reference to one not among them is left to the cluster.
#[derive(Clone, Debug, Default)]
pub struct Library {
    /// AnalysisTemplates by namespace as written (empty when none is) and name.
    namespaced: BTreeMap<(String, String), AnalysisTemplateSpec>,
    /// ClusterAnalysisTemplates by name.
    cluster: BTreeMap<String, AnalysisTemplateSpec>,
}

impl Library {
    /// Adds the templates among the documents of `text`; unreadable ones are left to lint.
    pub fn add(&mut self, text: &str) {
        for doc in split_documents(text) {
            let Ok(value) = crate::yaml::from_str::<Value>(&doc) else {
                continue;
            };
            let kind = value
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let api_version = value.get("apiVersion").and_then(Value::as_str);
            if api_version != Some(&format!("{}/{}", api::GROUP, api::VERSION)) {
                continue;
            }
            match kind {
                "AnalysisTemplate" => {
                    if let Ok(t) = serde_json::from_value::<AnalysisTemplate>(value) {
                        let ns = t.metadata.namespace.clone().unwrap_or_default();
                        let name = t.metadata.name.clone().unwrap_or_default();
                        self.namespaced.insert((ns, name), t.spec);
                    }
                }
                "ClusterAnalysisTemplate" => {
                    if let Ok(t) = serde_json::from_value::<ClusterAnalysisTemplate>(value) {
                        let name = t.metadata.name.clone().unwrap_or_default();
                        self.cluster.insert(name, t.spec.into());
                    }
                }
                _ => {}
            }
        }
    }

    /// Problems resolving `analyses` of an object in `namespace`; analyses naming a template
    /// not among the files are passed over.
    fn resolve(
        &self,
        namespace: &str,
        analyses: Vec<(String, &mut AnalysisSpec)>,
        object: &Value,
    ) -> Vec<FieldError> {
        let mut templates = Templates {
            namespace: namespace.to_string(),
            ..Default::default()
        };
        for ((ns, name), spec) in &self.namespaced {
            if ns == namespace {
                templates.namespaced.insert(name.clone(), spec.clone());
            }
        }
        templates.cluster = self.cluster.clone();
        let mut errors = Vec::new();
        for (path, spec) in analyses {
            if spec.templates.iter().all(|r| templates.get(r).is_some())
                && let Err(found) = resolve::resolve(spec, &path, &templates, object)
            {
                errors.extend(found);
            }
        }
        errors
    }
}

/// Lints every document of `text`, naming problems after `file`.
pub fn lint_text(file: &str, text: &str) -> Report {
    lint_text_with(file, text, &Library::default())
}

/// Lints every document of `text` with the templates of `library`.
pub fn lint_text_with(file: &str, text: &str, library: &Library) -> Report {
    let mut report = Report::default();
    for (i, (before, doc)) in split_documents_at(text).iter().enumerate() {
        let mut parse_error_at = None;
        let errors = match crate::yaml::from_str::<Value>(doc) {
            Err(e) => {
                let message = e.to_string();
                parse_error_at = yaml_error_position(&message);
                vec![FieldError::new(
                    "",
                    FieldErrorKind::Invalid,
                    format!("not valid YAML: {}", one_line(&message)),
                )]
            }
            Ok(value) => match lint_document_with(&value, library) {
                None => {
                    report.skipped += 1;
                    continue;
                }
                Some(errors) => errors,
            },
        };
        report.checked += 1;
        let positions = super::positions::Positions::of(doc);
        report.problems.extend(errors.into_iter().map(|e| {
            let mut at = parse_error_at.unwrap_or_else(|| positions.locate(&e.path));
            at.line += before;
            Problem {
                file: file.to_string(),
                doc: i + 1,
                at,
                field: e.path,
                message: e.message,
            }
        }));
    }
    report
}

/// The `line L column C` a YAML parser's message names.
fn yaml_error_position(message: &str) -> Option<super::positions::Position> {
    let rest = &message[message.find("line ")? + 5..];
    let (line, rest) = rest.split_once(' ')?;
    let column = rest.strip_prefix("column ")?;
    let column: String = column.chars().take_while(char::is_ascii_digit).collect();
    Some(super::positions::Position {
        line: line.parse().ok()?,
        column: column.parse().ok()?,
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Lints one parsed document. `None` when it is not a cutover kind (nothing to check).
pub fn lint_document(value: &Value) -> Option<Vec<FieldError>> {
    lint_document_with(value, &Library::default())
}

/// Lints one parsed document, resolving its template references from `library`.
pub fn lint_document_with(value: &Value, library: &Library) -> Option<Vec<FieldError>> {
    let Some(object) = value.as_object() else {
        return Some(vec![FieldError::new(
            "",
            FieldErrorKind::Invalid,
            "document is not a mapping",
        )]);
    };
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    // A `cutover simulate` scenario beside the manifests: not a Kubernetes object.
    if kind == "Scenario" && api_version.is_empty() {
        return None;
    }
    if api_version.is_empty() || kind.is_empty() {
        let field = if api_version.is_empty() {
            "apiVersion"
        } else {
            "kind"
        };
        return Some(vec![FieldError::new(
            field,
            FieldErrorKind::Required,
            "Required value",
        )]);
    }
    if group != api::GROUP {
        return None;
    }
    if version != api::VERSION {
        return Some(vec![FieldError::new(
            "apiVersion",
            FieldErrorKind::NotSupported,
            format!(
                "Unsupported value: {api_version:?}: supported values: \"{}/{}\"",
                api::GROUP,
                api::VERSION
            ),
        )]);
    }
    let Some(schema) = api::schema_for_kind(kind) else {
        return Some(vec![FieldError::new(
            "kind",
            FieldErrorKind::NotSupported,
            format!(
                "Unsupported value: {kind:?}: supported values: \"Rollout\", \"MigrationJob\", \"FeatureFlag\", \"AnalysisTemplate\", \"ClusterAnalysisTemplate\""
            ),
        )]);
    };
    let mut errors = metadata_errors(object.get("metadata"));
    errors.extend(schema.validate(value));
    let schema_found_problems = !errors.is_empty();
    for e in semantic_errors(kind, value, library) {
        // The schema already said it (or, for an undecodable object, said why).
        // A rule on the whole object names its field in its message ("spec.selector is
        // required with spec.template"): the same problem as that field's own error.
        let repeated = errors.iter().any(|s| {
            s.path == e.path
                || s.message == e.message
                || (s.path.is_empty()
                    && !e.path.is_empty()
                    && s.message.starts_with(&format!("{} ", e.path)))
        });
        let undecodable =
            e.path.is_empty() && e.message.starts_with("cannot be read") && schema_found_problems;
        if !repeated && !undecodable {
            errors.push(e);
        }
    }
    Some(errors)
}

fn metadata_errors(metadata: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let name = metadata.and_then(|m| m.get("name")).and_then(Value::as_str);
    let generate_name = metadata
        .and_then(|m| m.get("generateName"))
        .and_then(Value::as_str);
    match (name, generate_name) {
        (None, None) => errors.push(FieldError::new("metadata.name", FieldErrorKind::Required, "Required value: name or generateName is required")),
        (Some(n), _) if !is_dns_subdomain(n) => errors.push(FieldError::new(
            "metadata.name",
            FieldErrorKind::Invalid,
            format!("Invalid value: {:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character", truncate(n)),
        )),
        _ => {}
    }
    if let Some(ns) = metadata
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        && !is_dns_label(ns)
    {
        errors.push(FieldError::new(
            "metadata.namespace",
            FieldErrorKind::Invalid,
            format!("Invalid value: {:?}: must be a DNS label", truncate(ns)),
        ));
    }
    errors
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Whether `s` is a lowercase RFC 1123 subdomain (object names).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label_part)
}

/// Whether `s` is an RFC 1123 label (namespaces, label values of names).
pub fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && is_dns_label_part(s)
}

fn is_dns_label_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

fn semantic_errors(kind: &str, value: &Value, library: &Library) -> Vec<FieldError> {
    let typed = |e: serde_json::Error| {
        vec![FieldError::new(
            "",
            FieldErrorKind::Invalid,
            format!("cannot be read: {e}"),
        )]
    };
    match kind {
        "Rollout" => serde_json::from_value::<Rollout>(value.clone()).map_or_else(typed, |r| {
            let mut errors = validate::rollout(&r.spec);
            let ns = r.metadata.namespace.clone().unwrap_or_default();
            let mut spec = r.spec;
            errors.extend(library.resolve(&ns, spec.analyses_mut(), value));
            errors
        }),
        "MigrationJob" => serde_json::from_value::<MigrationJob>(value.clone())
            .map_or_else(typed, |m| validate::migration(&m.spec)),
        "FeatureFlag" => {
            serde_json::from_value::<FeatureFlag>(value.clone()).map_or_else(typed, |f| {
                let mut errors = validate::flag(&f.spec);
                let ns = f.metadata.namespace.clone().unwrap_or_default();
                let mut spec = f.spec;
                let analyses = spec
                    .rollout
                    .as_mut()
                    .and_then(|r| r.analysis.as_mut())
                    .map(|a| ("spec.rollout.analysis".to_string(), a))
                    .into_iter()
                    .collect();
                errors.extend(library.resolve(&ns, analyses, value));
                errors
            })
        }
        "AnalysisTemplate" => serde_json::from_value::<AnalysisTemplate>(value.clone())
            .map_or_else(typed, |t| template_errors(&t.spec)),
        "ClusterAnalysisTemplate" => {
            serde_json::from_value::<ClusterAnalysisTemplate>(value.clone())
                .map_or_else(typed, |t| template_errors(&t.spec.into()))
        }
        _ => Vec::new(),
    }
}

/// A template's problems with the paths of its own document.
fn template_errors(spec: &AnalysisTemplateSpec) -> Vec<FieldError> {
    resolve::check_template("", spec)
        .into_iter()
        .map(|mut e| {
            e.path = e.path.trim_start_matches(": ").to_string();
            e
        })
        .collect()
}

/// Files named by `paths`: files as given, directories searched for `*.yaml` / `*.yml`.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            collect_yaml(path, &mut found)
                .map_err(|e| format!("{}: cannot read directory: {e}", path.display()))?;
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        // A kustomization in a manifest directory is kustomize's file, not a manifest.
        let kustomization = path
            .file_name()
            .is_some_and(|n| n == "kustomization.yaml" || n == "kustomization.yml");
        if path.is_dir() {
            collect_yaml(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") && !kustomization {
            out.push(path);
        }
    }
    Ok(())
}

/// Lints the files and prints `file:doc: field: message` per problem.
pub fn run(paths: &[PathBuf]) -> ExitCode {
    let files = match expand(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let (mut problems, mut checked, mut unreadable) = (0usize, 0usize, false);
    // Every file is read first: a Rollout may name a template of a later file.
    let mut texts = Vec::new();
    let mut library = Library::default();
    for file in &files {
        let name = file.display().to_string();
        let text = if name == "-" {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(file)
        };
        match text {
            Ok(t) => {
                library.add(&t);
                texts.push((name, t));
            }
            Err(e) => {
                eprintln!("error: cannot read {name}: {e}");
                unreadable = true;
            }
        }
    }
    for (name, text) in &texts {
        let report = lint_text_with(name, text, &library);
        for p in &report.problems {
            println!("{p}");
        }
        problems += report.problems.len();
        checked += report.checked;
    }
    if problems == 0 && !unreadable {
        eprintln!(
            "cutover lint: {checked} document(s) OK in {} file(s)",
            files.len()
        );
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "cutover lint: {problems} problem(s) in {} file(s)",
            files.len()
        );
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_streams_and_drops_empty_documents() {
        let docs = split_documents("---\n# only a comment\n---\na: 1\n--- \nb: 2\n...\n");
        assert_eq!(docs, vec!["a: 1\n".to_string(), "b: 2\n".to_string()]);
    }

    #[test]
    fn other_kinds_are_skipped_and_missing_kind_is_reported() {
        let r = lint_text(
            "f",
            "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n---\napiVersion: v1\n",
        );
        assert_eq!(r.skipped, 1);
        assert_eq!(r.problems.len(), 1);
        assert_eq!(r.problems[0].to_string(), "f:5:1: kind: Required value");
    }

    #[test]
    fn scenario_files_are_passed_over_and_other_kindless_documents_are_not() {
        let r = lint_text("s", "kind: Scenario\nname: x\nduration: 10m\nobjects: []\n");
        assert_eq!((r.checked, r.skipped, r.problems.len()), (0, 1, 0));
        let r = lint_text("s", "name: x\nduration: 10m\nobjects: []\n");
        assert_eq!(
            r.problems[0].to_string(),
            "s:1:1: apiVersion: Required value"
        );
    }

    #[test]
    fn a_missing_selector_is_reported_once() {
        let r = lint_text(
            "f",
            "apiVersion: cutover.dev/v1alpha1\nkind: Rollout\nmetadata: {name: web}\nspec:\n  replicas: 1\n\
             \x20 template: {metadata: {labels: {app: web}}, spec: {containers: [{name: a, image: b}]}}\n\
             \x20 strategy: {canary: {steps: [{setWeight: 10}]}}\n",
        );
        let problems: Vec<String> = r.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            vec!["f:1:1: spec.selector is required with spec.template"]
        );
    }

    #[test]
    fn dns_names() {
        assert!(is_dns_subdomain("web.v2-a"));
        assert!(!is_dns_subdomain("Web"));
        assert!(!is_dns_subdomain("-web"));
        assert!(!is_dns_subdomain(&"a".repeat(254)));
        assert!(is_dns_label("default"));
        assert!(!is_dns_label("a.b"));
    }
}
