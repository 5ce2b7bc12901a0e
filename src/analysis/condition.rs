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

/// What a query returned, reduced to what conditions see.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryResult {
    /// No sample.
    Empty,
    /// One number (a scalar, or a vector with one sample).
    Number(f64),
    /// Several numbers (a vector with several samples).
    Numbers(Vec<f64>),
}

impl QueryResult {
    /// Whether the result counts as no data: nothing, or only NaN.
    pub fn is_no_data(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Number(n) => n.is_nan(),
            Self::Numbers(ns) => ns.is_empty() || ns.iter().all(|n| n.is_nan()),
        }
    }

    /// The value as shown in status.
    pub fn render(&self) -> String {
        match self {
            Self::Empty => "[]".into(),
            Self::Number(n) => n.to_string(),
            Self::Numbers(ns) => format!(
                "[{}]",
                ns.iter().map(f64::to_string).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// Evaluates a compiled condition with `result` bound; errors if it is not a boolean.
pub fn evaluate(program: &cel::Program, result: &QueryResult) -> Result<bool, ConditionError> {
    let mut context = cel::Context::default();
    match result {
        QueryResult::Empty => context.add_variable_from_value("result", Vec::<f64>::new()),
        QueryResult::Number(n) => context.add_variable_from_value("result", *n),
        QueryResult::Numbers(ns) => context.add_variable_from_value("result", ns.clone()),
    }
    match program.execute(&context) {
        Ok(cel::Value::Bool(b)) => Ok(b),
        Ok(other) => Err(ConditionError(format!(
            "the condition returned {other:?}, not a boolean"
        ))),
        Err(e) => Err(ConditionError(one_line(&e.to_string()))),
    }
}

#[cfg(test)]
mod evaluation_tests {
    use super::*;

    fn eval(expr: &str, result: QueryResult) -> Result<bool, ConditionError> {
        evaluate(&compile(expr).unwrap(), &result)
    }

    #[test]
    fn conditions_see_numbers_and_lists() {
        assert_eq!(eval("result < 0.05", QueryResult::Number(0.01)), Ok(true));
        assert_eq!(eval("result < 0.05", QueryResult::Number(0.08)), Ok(false));
        assert_eq!(
            eval(
                "result.all(x, x < 1.0)",
                QueryResult::Numbers(vec![0.2, 0.9])
            ),
            Ok(true)
        );
        assert_eq!(eval("size(result) == 0", QueryResult::Empty), Ok(true));
    }

    #[test]
    fn a_non_boolean_or_failing_expression_is_an_error() {
        assert!(eval("result + 1.0", QueryResult::Number(1.0)).is_err());
        assert!(eval("result[5] > 1.0", QueryResult::Numbers(vec![1.0])).is_err());
    }

    #[test]
    fn nan_and_empty_are_no_data() {
        assert!(QueryResult::Empty.is_no_data());
        assert!(QueryResult::Number(f64::NAN).is_no_data());
        assert!(QueryResult::Numbers(vec![f64::NAN]).is_no_data());
        assert!(!QueryResult::Number(0.0).is_no_data());
    }
}
