//! `successCondition` / `failureCondition`: CEL expressions over `result`.

/// A condition that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CEL expression: {0}")]
pub struct ConditionError(pub String);

/// Longest expression accepted; the schema enforces the same bound.
pub const MAX_EXPRESSION_LEN: usize = 1024;

/// Compiles a condition, rejecting syntax errors and references other than `result`.
pub fn compile(expression: &str) -> Result<cel::Program, ConditionError> {
    if expression.len() > MAX_EXPRESSION_LEN {
        return Err(ConditionError(format!(
            "longer than {MAX_EXPRESSION_LEN} bytes"
        )));
    }
    let program =
        cel::Program::compile(expression).map_err(|e| ConditionError(one_line(&e.to_string())))?;
    let bound = macro_variables(expression);
    let unknown = program
        .references()
        .variables()
        .into_iter()
        .find(|v| *v != "result" && !bound.iter().any(|b| b == v))
        .map(str::to_string);
    if let Some(name) = unknown {
        return Err(ConditionError(format!(
            "unknown variable {name:?}: conditions may only use `result`"
        )));
    }
    Ok(program)
}

/// Names bound by comprehension macros (`result.all(x, x < 1)` binds `x`).
fn macro_variables(expression: &str) -> Vec<String> {
    static MACRO: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    MACRO
        .get_or_init(|| {
            regex::Regex::new(
                r"\.(?:all|exists|exists_one|map|filter)\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,",
            )
            .ok()
        })
        .as_ref()
        .map(|re| {
            re.captures_iter(expression)
                .map(|c| c[1].to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_conditions_over_result() {
        for ok in [
            "result < 0.05",
            "result[0] >= 0.99",
            "size(result) == 0 || result.all(x, x < 1.0)",
        ] {
            assert!(compile(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_syntax_errors_and_unknown_variables() {
        assert!(compile("result <").is_err());
        assert!(compile("result < (").is_err());
        assert!(compile("result.all(x, y < 1.0)").is_err());
        let err = compile("value < 1").unwrap_err();
        assert!(err.0.contains("\"value\""), "{err}");
    }

    #[test]
    fn rejects_overlong_expressions() {
        assert!(compile(&"1 + ".repeat(400)).is_err());
    }
}
