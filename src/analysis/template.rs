//! Query templates: `{{ args.NAME }}` and `{{ rollout.* }}` placeholders in PromQL.
//!
//! An unknown placeholder is an error, never an empty string: a query silently missing its
//! label filter would measure the wrong thing.

use std::collections::BTreeMap;

/// Placeholders a query may use besides `args.NAME`.
pub const ROLLOUT_PLACEHOLDERS: [&str; 4] = [
    "rollout.name",
    "rollout.namespace",
    "rollout.canaryRevision",
    "rollout.stableRevision",
];

/// A query template that cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{{` without a matching `}}`.
    #[error("unclosed placeholder at byte {0}: expected '}}}}'")]
    Unclosed(usize),
    /// A placeholder that names nothing known.
    #[error(
        "unknown placeholder {{{{ {0} }}}}: use args.NAME or one of rollout.name, rollout.namespace, rollout.canaryRevision, rollout.stableRevision"
    )]
    Unknown(String),
    /// `{{ args.NAME }}` with no arg of that name.
    #[error("placeholder {{{{ args.{0} }}}} has no matching entry in args")]
    MissingArg(String),
}

/// Values placeholders are replaced with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateContext {
    /// Analysis args by name.
    pub args: BTreeMap<String, String>,
    /// `rollout.name`.
    pub name: String,
    /// `rollout.namespace`.
    pub namespace: String,
    /// `rollout.canaryRevision`.
    pub canary_revision: String,
    /// `rollout.stableRevision`.
    pub stable_revision: String,
    /// The Service the measured revision is reached through (`name.namespace.svc`), when
    /// the run has one: a `job` metric's containers get it as `CUTOVER_SERVICE`.
    pub service: Option<String>,
}

/// One `{{ ... }}` in a template.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placeholder<'a> {
    start: usize,
    end: usize,
    name: &'a str,
}

fn placeholders(template: &str) -> Result<Vec<Placeholder<'_>>, TemplateError> {
    let mut found = Vec::new();
    let mut rest = 0;
    while let Some(open) = template[rest..].find("{{") {
        let start = rest + open;
        let Some(close) = template[start + 2..].find("}}") else {
            return Err(TemplateError::Unclosed(start));
        };
        let end = start + 2 + close + 2;
        found.push(Placeholder {
            start,
            end,
            name: template[start + 2..end - 2].trim(),
        });
        rest = end;
    }
    Ok(found)
}

/// Checks that every placeholder is known and every arg it names is in `arg_names`.
pub fn check<'a>(
    template: &str,
    arg_names: impl IntoIterator<Item = &'a str> + Clone,
) -> Result<(), TemplateError> {
    for p in placeholders(template)? {
        if let Some(arg) = p.name.strip_prefix("args.") {
            if !arg_names.clone().into_iter().any(|n| n == arg) {
                return Err(TemplateError::MissingArg(arg.to_string()));
            }
        } else if !ROLLOUT_PLACEHOLDERS.contains(&p.name) {
            return Err(TemplateError::Unknown(p.name.chars().take(64).collect()));
        }
    }
    Ok(())
}

/// Renders a template with the given values.
pub fn render(template: &str, ctx: &TemplateContext) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut last = 0;
    for p in placeholders(template)? {
        out.push_str(&template[last..p.start]);
        let value = match p.name {
            "rollout.name" => &ctx.name,
            "rollout.namespace" => &ctx.namespace,
            "rollout.canaryRevision" => &ctx.canary_revision,
            "rollout.stableRevision" => &ctx.stable_revision,
            other => match other.strip_prefix("args.") {
                Some(arg) => ctx
                    .args
                    .get(arg)
                    .ok_or_else(|| TemplateError::MissingArg(arg.to_string()))?,
                None => return Err(TemplateError::Unknown(other.chars().take(64).collect())),
            },
        };
        out.push_str(value);
        last = p.end;
    }
    out.push_str(&template[last..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> TemplateContext {
        TemplateContext {
            args: BTreeMap::from([("service".to_string(), "checkout".to_string())]),
            name: "web".into(),
            namespace: "shop".into(),
            canary_revision: "abc123".into(),
            stable_revision: "def456".into(),
            service: None,
        }
    }

    #[test]
    fn renders_args_and_rollout_fields_with_any_spacing() {
        let q = r#"sum(rate(x{svc="{{args.service}}",rev="{{ rollout.canaryRevision }}",ns="{{  rollout.namespace }}"}[1m]))"#;
        assert_eq!(
            render(q, &ctx()).unwrap(),
            r#"sum(rate(x{svc="checkout",rev="abc123",ns="shop"}[1m]))"#
        );
    }

    #[test]
    fn text_without_placeholders_is_unchanged() {
        assert_eq!(render("up == 1", &ctx()).unwrap(), "up == 1");
    }

    #[test]
    fn unknown_placeholder_is_an_error_not_an_empty_string() {
        assert_eq!(
            render("{{ rollout.image }}", &ctx()),
            Err(TemplateError::Unknown("rollout.image".into()))
        );
        assert_eq!(
            check("{{ foo }}", ["service"]),
            Err(TemplateError::Unknown("foo".into()))
        );
    }

    #[test]
    fn missing_arg_and_unclosed_braces_are_errors() {
        assert_eq!(
            render("{{ args.zone }}", &ctx()),
            Err(TemplateError::MissingArg("zone".into()))
        );
        assert_eq!(
            check("{{ args.zone }}", ["service"]),
            Err(TemplateError::MissingArg("zone".into()))
        );
        assert_eq!(
            check("x{{ args.service ", ["service"]),
            Err(TemplateError::Unclosed(1))
        );
    }

    #[test]
    fn check_accepts_known_placeholders() {
        assert_eq!(
            check("{{args.service}} {{rollout.stableRevision}}", ["service"]),
            Ok(())
        );
    }
}
