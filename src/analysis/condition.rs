//! `successCondition` / `failureCondition`: CEL expressions over `result`.

use super::cost::{COST_BUDGET, MAX_RESULT_SAMPLES, estimate};

/// A cost for a message: exact below a million, else as a power of ten.
fn human(cost: f64) -> String {
    if cost < 1e6 {
        format!("{cost:.0}")
    } else {
        format!("10^{:.0}", cost.log10().floor())
    }
}

/// A condition that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CEL expression: {0}")]
pub struct ConditionError(pub String);

/// Longest expression accepted; the schema enforces the same bound.
pub const MAX_EXPRESSION_LEN: usize = 1024;

/// Checks that a condition compiles, uses only `result` and stays within the cost budget.
pub fn check(expression: &str) -> Result<(), ConditionError> {
    worker::run(|reply| worker::Job::Check(expression.to_string(), reply))
}

/// Evaluates a condition with `result` bound; errors if it does not compile, is not a
/// boolean, reads more than [`MAX_RESULT_SAMPLES`] samples or runs past
/// [`EVALUATION_TIMEOUT`].
pub fn test(expression: &str, result: &QueryResult) -> Result<bool, ConditionError> {
    if let QueryResult::Numbers(ns) = result
        && ns.len() > MAX_RESULT_SAMPLES
    {
        return Err(ConditionError(format!(
            "the query returned {} samples, more than the {MAX_RESULT_SAMPLES} a condition reads: aggregate it",
            ns.len()
        )));
    }
    worker::run(|reply| worker::Job::Test(expression.to_string(), result.clone(), reply))
}

/// Longest a check or an evaluation may take before it counts as an error. The cost budget
/// keeps real conditions far below it; this bounds what the estimate could not foresee.
pub const EVALUATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// CEL runs on a few threads of its own with a large stack. The CEL parser and evaluator
/// recurse deeply per nesting level, enough to overflow a runtime worker's 2 MiB stack and
/// abort the whole operator (in a debug build sixteen nested parentheses or sixty chained
/// additions do); compiled programs are cached per thread, never leaving the thread that
/// parsed them. Several threads, so one slow evaluation holds up no other; a requester
/// waits at most [`EVALUATION_TIMEOUT`].
mod worker {
    use std::{
        collections::HashMap,
        panic::{AssertUnwindSafe, catch_unwind},
        sync::{Arc, Mutex, OnceLock, mpsc},
    };

    use super::{ConditionError, EVALUATION_TIMEOUT, QueryResult, compile, evaluate};

    /// Stack of each CEL thread: room for the deepest expression the length limit allows.
    const STACK_BYTES: usize = 256 << 20;
    /// Compiled programs kept per thread; the cache starts over when full.
    const CACHE_ENTRIES: usize = 4096;
    /// CEL threads.
    const THREADS: usize = 4;

    pub(super) enum Job {
        Check(String, mpsc::Sender<Result<(), ConditionError>>),
        Test(
            String,
            QueryResult,
            mpsc::Sender<Result<bool, ConditionError>>,
        ),
    }

    fn sender() -> Option<mpsc::Sender<Job>> {
        static SENDER: OnceLock<Option<Mutex<mpsc::Sender<Job>>>> = OnceLock::new();
        SENDER
            .get_or_init(|| {
                let (tx, rx) = mpsc::channel::<Job>();
                let jobs = Arc::new(Mutex::new(rx));
                let started = (0..THREADS)
                    .filter(|i| {
                        let jobs = jobs.clone();
                        std::thread::Builder::new()
                            .name(format!("cutover-cel-{i}"))
                            .stack_size(STACK_BYTES)
                            .spawn(move || serve(&jobs))
                            .is_ok()
                    })
                    .count();
                (started > 0).then(|| Mutex::new(tx))
            })
            .as_ref()
            .and_then(|m| m.lock().ok().map(|tx| tx.clone()))
    }

    /// Sends a job and waits for its answer, at most [`EVALUATION_TIMEOUT`].
    pub(super) fn run<T>(
        job: impl FnOnce(mpsc::Sender<Result<T, ConditionError>>) -> Job,
    ) -> Result<T, ConditionError> {
        let unavailable = || ConditionError("the condition evaluator is not running".into());
        let (reply, answer) = mpsc::channel();
        sender()
            .ok_or_else(unavailable)?
            .send(job(reply))
            .map_err(|_| unavailable())?;
        match answer.recv_timeout(EVALUATION_TIMEOUT) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(ConditionError(format!(
                "the condition did not finish within {}s",
                EVALUATION_TIMEOUT.as_secs()
            ))),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(unavailable()),
        }
    }

    fn next(jobs: &Mutex<mpsc::Receiver<Job>>) -> Option<Job> {
        jobs.lock().ok()?.recv().ok()
    }

    fn serve(jobs: &Mutex<mpsc::Receiver<Job>>) {
        let mut cache: HashMap<String, Result<cel::Program, ConditionError>> = HashMap::new();
        while let Some(job) = next(jobs) {
            let expression = match &job {
                Job::Check(e, _) | Job::Test(e, _, _) => e.clone(),
            };
            if cache.len() >= CACHE_ENTRIES && !cache.contains_key(&expression) {
                cache.clear();
            }
            // A panic inside the CEL crate answers this job with an error and keeps the
            // thread serving the others.
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let program = cache
                    .entry(expression.clone())
                    .or_insert_with(|| compile(&expression).and_then(trial));
                match (&job, program) {
                    (Job::Check(..), p) => {
                        Outcome::Checked(p.as_ref().map(|_| ()).map_err(Clone::clone))
                    }
                    (Job::Test(_, result, _), Ok(p)) => Outcome::Tested(evaluate(p, result)),
                    (Job::Test(..), Err(e)) => Outcome::Tested(Err(e.clone())),
                }
            }));
            let failed = || ConditionError("the condition could not be evaluated".into());
            // A requester that gave up is no reason to stop.
            match (job, outcome) {
                (Job::Check(_, reply), Ok(Outcome::Checked(r))) => drop(reply.send(r)),
                (Job::Test(_, _, reply), Ok(Outcome::Tested(r))) => drop(reply.send(r)),
                (Job::Check(_, reply), _) => {
                    cache.remove(&expression);
                    drop(reply.send(Err(failed())));
                }
                (Job::Test(_, _, reply), _) => {
                    cache.remove(&expression);
                    drop(reply.send(Err(failed())));
                }
            }
        }
    }

    enum Outcome {
        Checked(Result<(), ConditionError>),
        Tested(Result<bool, ConditionError>),
    }

    /// Evaluates a new program once over each shape of result: parts of CEL the crate has
    /// not implemented (struct literals) panic instead of failing, and a condition using
    /// them is refused when it is checked rather than failing every measurement later.
    fn trial(program: cel::Program) -> Result<cel::Program, ConditionError> {
        let shapes = [
            QueryResult::Empty,
            QueryResult::Number(0.0),
            QueryResult::Numbers(vec![0.0, 1.0]),
        ];
        let panicked = shapes.iter().any(|shape| {
            catch_unwind(AssertUnwindSafe(|| drop(evaluate(&program, shape)))).is_err()
        });
        if panicked {
            return Err(ConditionError(
                "the condition uses a part of CEL this evaluator does not support (struct literals)"
                    .into(),
            ));
        }
        Ok(program)
    }
}

/// Compiles a condition, rejecting syntax errors and references other than `result`.
fn compile(expression: &str) -> Result<cel::Program, ConditionError> {
    if expression.len() > MAX_EXPRESSION_LEN {
        return Err(ConditionError(format!(
            "longer than {MAX_EXPRESSION_LEN} bytes"
        )));
    }
    nesting(expression)?;
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
    // The cost is estimated before the program ever runs (the trial evaluation included).
    let ast = cel::parser::Parser::default()
        .parse(expression)
        .map_err(|e| ConditionError(one_line(&e.to_string())))?;
    let cost = estimate(&ast, expression.len());
    if cost > COST_BUDGET {
        return Err(ConditionError(format!(
            "too costly: about {} evaluation steps at worst, over the budget of {}; each comprehension (all, exists, map, filter) costs the size of what it iterates times its body, `result` counting as {MAX_RESULT_SAMPLES} samples",
            human(cost),
            human(COST_BUDGET)
        )));
    }
    Ok(program)
}

/// Deepest nesting of brackets accepted, and longest run of prefix operators: far beyond
/// any real condition, and checked before parsing so that the answer is one clear sentence
/// (the CEL parser's own limit, 96, answers with its internals and the expression quoted
/// back), and so that parser work stays bounded.
pub const MAX_NESTING: usize = 24;

/// Refuses expressions nested deeper than [`MAX_NESTING`], before the parser sees them.
fn nesting(expression: &str) -> Result<(), ConditionError> {
    let mut depth = 0usize;
    let mut prefix_run = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in expression.chars() {
        if let Some(q) = quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                _ if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        match c {
            '!' | '-' => prefix_run += 1,
            c if c.is_whitespace() => {}
            _ => prefix_run = 0,
        }
        if depth > MAX_NESTING || prefix_run > MAX_NESTING {
            return Err(ConditionError(format!(
                "nested deeper than {MAX_NESTING} levels"
            )));
        }
    }
    Ok(())
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

/// Longest error message kept: the CEL parser quotes the whole expression, more than once.
const MAX_MESSAGE_LEN: usize = 300;

fn one_line(message: &str) -> String {
    let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(MAX_MESSAGE_LEN) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line,
    }
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
            assert!(check(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_syntax_errors_and_unknown_variables() {
        assert!(check("result <").is_err());
        assert!(check("result < (").is_err());
        assert!(check("result.all(x, y < 1.0)").is_err());
        let err = check("value < 1").unwrap_err();
        assert!(err.0.contains("\"value\""), "{err}");
    }

    #[test]
    fn rejects_overlong_expressions() {
        assert!(check(&"1 + ".repeat(400)).is_err());
    }

    #[test]
    fn deep_nesting_is_answered_not_a_crash() {
        // A binary chain this long would overflow a runtime thread's stack inside the parser.
        let sum = format!("result{} > 0.0", " + 1.0".repeat(140));
        assert_eq!(test(&sum, &QueryResult::Number(0.5)), Ok(true));
        let parens = |n| format!("{}result{} < 1.0", "(".repeat(n), ")".repeat(n));
        assert_eq!(
            test(&parens(MAX_NESTING), &QueryResult::Number(0.5)),
            Ok(true)
        );
        for too_deep in [
            parens(MAX_NESTING + 1),
            parens(500),
            format!("{}1", "[".repeat(500)),
            format!("{}true", "!".repeat(500)),
            format!("{}1", "- ".repeat(400)),
        ] {
            let e = check(&too_deep).unwrap_err();
            assert!(e.0.contains("nested deeper than"), "{e}");
        }
        let unsupported = check("result < 1.0 || a{b: 1} == 1").unwrap_err();
        assert!(unsupported.0.contains("does not support"), "{unsupported}");
        assert!(test("a{b: 1} == 1", &QueryResult::Number(0.5)).is_err());
        // Brackets inside string literals are text, not nesting.
        let quoted = format!("result < 1.0 || \"{}\" == ''", "(".repeat(100));
        assert_eq!(check(&quoted), Ok(()));
        let long = one_line(&"word ".repeat(400));
        assert!(long.len() <= MAX_MESSAGE_LEN + 3, "{}", long.len());
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
    /// A boolean (a web metric's JSON value).
    Bool(bool),
    /// A string (a web metric's JSON value).
    Text(String),
}

impl QueryResult {
    /// Whether the result counts as no data: nothing, or any sample that is not a finite
    /// number (NaN, +Inf, -Inf). A division by a zero rate gives such samples; compared,
    /// `-Inf < 0.05` would pass, so they follow the metric's `noData` policy instead and
    /// never reach a condition.
    pub fn is_no_data(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Number(n) => !n.is_finite(),
            Self::Numbers(ns) => ns.is_empty() || ns.iter().any(|n| !n.is_finite()),
            Self::Bool(_) | Self::Text(_) => false,
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
            Self::Bool(b) => b.to_string(),
            Self::Text(t) => format!("{t:?}"),
        }
    }
}

/// Evaluates a compiled condition with `result` bound; errors if it is not a boolean.
fn evaluate(program: &cel::Program, result: &QueryResult) -> Result<bool, ConditionError> {
    let mut context = cel::Context::default();
    match result {
        QueryResult::Empty => context.add_variable_from_value("result", Vec::<f64>::new()),
        QueryResult::Number(n) => context.add_variable_from_value("result", *n),
        QueryResult::Numbers(ns) => context.add_variable_from_value("result", ns.clone()),
        QueryResult::Bool(b) => context.add_variable_from_value("result", *b),
        QueryResult::Text(t) => context.add_variable_from_value("result", t.clone()),
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
        test(expr, &result)
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
        assert_eq!(eval("result", QueryResult::Bool(true)), Ok(true));
        assert_eq!(eval("result == false", QueryResult::Bool(true)), Ok(false));
        assert_eq!(
            eval("result == 'ok'", QueryResult::Text("ok".into())),
            Ok(true)
        );
        assert_eq!(
            eval(
                "result.startsWith('degr')",
                QueryResult::Text("degraded".into())
            ),
            Ok(true)
        );
        assert!(!QueryResult::Bool(false).is_no_data());
        assert_eq!(QueryResult::Text("ok".into()).render(), "\"ok\"");
    }

    #[test]
    fn a_non_boolean_or_failing_expression_is_an_error() {
        assert!(eval("result + 1.0", QueryResult::Number(1.0)).is_err());
        assert!(eval("result[5] > 1.0", QueryResult::Numbers(vec![1.0])).is_err());
    }

    #[test]
    fn nan_infinities_and_empty_are_no_data() {
        assert!(QueryResult::Empty.is_no_data());
        assert!(QueryResult::Number(f64::NAN).is_no_data());
        assert!(QueryResult::Number(f64::INFINITY).is_no_data());
        assert!(QueryResult::Number(f64::NEG_INFINITY).is_no_data());
        assert!(QueryResult::Numbers(vec![f64::NAN]).is_no_data());
        assert!(QueryResult::Numbers(vec![0.01, f64::NEG_INFINITY]).is_no_data());
        assert!(!QueryResult::Number(0.0).is_no_data());
        assert!(!QueryResult::Numbers(vec![0.0, 1.0]).is_no_data());
    }
}
