//! Fuzzing of the parsers that read user input: the `successCondition`/`failureCondition`
//! compiler and evaluator, the query template renderer, and the scenario loader.
//!
//! Inputs come from proptest strategies: grammar-shaped expressions and templates, random
//! text, and mutations of the example scenarios. Each target must never panic, and must keep
//! the properties users rely on (overlong conditions are refused, a template without
//! placeholders renders as written, a rejected scenario says why).
//!
//! CI runs a fixed number of inputs per target. For a long run, set `CUTOVER_FUZZ_SECONDS`:
//! `CUTOVER_FUZZ_SECONDS=600 cargo test --release --test fuzz -- --nocapture --test-threads 1`
//! prints the executions each target reached.

use std::{
    collections::BTreeMap,
    fmt::Debug,
    panic::{AssertUnwindSafe, catch_unwind},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use cutover::{
    analysis::{
        condition::{self, MAX_EXPRESSION_LEN, QueryResult},
        template::{self, TemplateContext},
    },
    simulate::scenario,
};
use proptest::{
    prelude::*,
    strategy::ValueTree,
    test_runner::{Config, RngAlgorithm, TestRng, TestRunner},
};

/// Inputs per target in CI, when no time budget is set.
const CI_CASES: usize = 1500;

/// Runs `target` on inputs from `strategy` until the budget is spent; returns executions.
/// Runs `target` on generated inputs; it returns whether it accepted the input. Fails
/// unless the inputs reached both sides: a generator that only makes accepted (or only
/// rejected) inputs leaves the other half of the target untried.
fn fuzz<T: Debug>(name: &str, strategy: impl Strategy<Value = T>, target: impl Fn(&T) -> bool) {
    let seconds = std::env::var("CUTOVER_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    // A fixed seed in CI keeps a red run reproducible; a long run explores new ground.
    let rng = match seconds {
        Some(_) => TestRng::from_seed(RngAlgorithm::ChaCha, &rand_seed()),
        None => TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    };
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let started = Instant::now();
    let deadline = seconds.map(|s| started + Duration::from_secs(s));
    let mut executions = 0usize;
    let mut accepted = 0usize;
    loop {
        match deadline {
            Some(d) if Instant::now() >= d => break,
            None if executions >= CI_CASES => break,
            _ => {}
        }
        let tree = strategy
            .new_tree(&mut runner)
            .unwrap_or_else(|e| panic!("{name}: no input generated: {e}"));
        let input = tree.current();
        match catch_unwind(AssertUnwindSafe(|| target(&input))) {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(_) => {
                let shown: String = format!("{input:?}").chars().take(2000).collect();
                panic!("{name}: panicked after {executions} executions on input {shown}");
            }
        }
        executions += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "fuzz {name}: {executions} executions in {secs:.1} s ({:.0}/s), {accepted} accepted",
        executions as f64 / secs.max(1e-9)
    );
    assert!(
        accepted > 0 && accepted < executions,
        "{name}: {accepted} of {executions} inputs accepted: the generator misses a side"
    );
}

fn rand_seed() -> [u8; 32] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(&nanos.to_le_bytes());
    seed[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    seed
}

// ---- conditions ----

fn cel_leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("result".to_string()),
        Just("x".to_string()),
        Just("size(result)".to_string()),
        Just("9223372036854775807".to_string()),
        Just("-9223372036854775808".to_string()),
        Just("18446744073709551615u".to_string()),
        Just("1e308".to_string()),
        Just("0.0".to_string()),
        Just("0".to_string()),
        Just("null".to_string()),
        Just("true".to_string()),
        Just("\"a\"".to_string()),
        Just("b\"\\xff\"".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("[1, 2.5, 'x']".to_string()),
        Just("{'k': 1}".to_string()),
        Just("duration('1s')".to_string()),
        Just("timestamp('2026-01-01T00:00:00Z')".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:?}")),
        "[a-z_]{1,6}",
        "\"[^\"\\\\]{0,8}\"",
    ]
}

fn cel_expression() -> impl Strategy<Value = String> {
    cel_leaf().prop_recursive(6, 64, 4, |inner| {
        let op = prop::sample::select(vec![
            "+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!=", "&&", "||", " in ",
        ]);
        let func = prop::sample::select(vec![
            "size",
            "int",
            "uint",
            "double",
            "string",
            "bytes",
            "dyn",
            "type",
            "has",
            "duration",
            "timestamp",
            "max",
            "min",
        ]);
        let method = prop::sample::select(vec!["all", "exists", "exists_one", "map", "filter"]);
        let call = prop::sample::select(vec![
            "contains",
            "startsWith",
            "endsWith",
            "matches",
            "size",
        ]);
        prop_oneof![
            (inner.clone(), op, inner.clone()).prop_map(|(a, o, b)| format!("{a} {o} {b}")),
            inner.clone().prop_map(|a| format!("({a})")),
            inner.clone().prop_map(|a| format!("!{a}")),
            inner.clone().prop_map(|a| format!("-{a}")),
            (func, inner.clone()).prop_map(|(f, a)| format!("{f}({a})")),
            (inner.clone(), method, inner.clone()).prop_map(|(a, m, b)| format!("{a}.{m}(x, {b})")),
            (inner.clone(), call, inner.clone()).prop_map(|(a, c, b)| format!("{a}.{c}({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}[{b}]")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(a, b, c)| format!("{a} ? {b} : {c}")),
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            (inner.clone(), inner).prop_map(|(k, v)| format!("{{{k}: {v}}}")),
        ]
    })
}

/// Conditions: grammar-shaped, random text, deep nesting, and long inputs.
fn condition_input() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => cel_expression(),
        2 => "\\PC{0,80}",
        1 => (1usize..700).prop_map(|n| format!("{}result{}", "(".repeat(n), ")".repeat(n))),
        1 => (1usize..700).prop_map(|n| format!("{}result", "!".repeat(n))),
        1 => (1usize..400).prop_map(|n| format!("{}1{}", "[".repeat(n), "]".repeat(n))),
        1 => (MAX_EXPRESSION_LEN - 8..MAX_EXPRESSION_LEN + 8)
            .prop_map(|n| format!("result < {}", "1".repeat(n.saturating_sub(9)))),
        // Costly shapes: nested comprehensions over list literals, the cost estimate's prey.
        3 => (1usize..14, 1usize..12, prop::sample::select(vec!["all", "exists", "map", "filter", "exists_one"]))
            .prop_map(|(depth, width, macro_)| {
                let list = format!("[{}]", (0..width).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
                let mut e = "result >= 0.0 || true".to_string();
                for d in 0..depth {
                    e = match macro_ {
                        "map" | "filter" => format!("size({list}.{macro_}(v{d}, {e})) > 0"),
                        _ => format!("{list}.{macro_}(v{d}, {e})"),
                    };
                }
                e
            }),
    ]
}

fn check_condition(expression: &str) -> bool {
    let compiled = condition::check(expression);
    if expression.len() > MAX_EXPRESSION_LEN {
        assert!(compiled.is_err(), "an overlong condition compiled");
    }
    if compiled.is_ok() {
        for result in [
            QueryResult::Empty,
            QueryResult::Number(0.5),
            QueryResult::Number(f64::NAN),
            QueryResult::Number(f64::INFINITY),
            QueryResult::Numbers(vec![1.0, -2.0, 1e308]),
        ] {
            // Ok or a clear error, never a panic.
            if let Err(e) = condition::test(expression, &result) {
                assert!(!e.0.is_empty());
            }
        }
    }
    compiled.is_ok()
}

#[test]
fn conditions_never_panic() {
    fuzz("condition", condition_input(), |e: &String| {
        check_condition(e)
    });
}

// ---- templates ----

fn template_input() -> impl Strategy<Value = (String, BTreeMap<String, String>)> {
    let fragment = prop_oneof![
        Just("{{".to_string()),
        Just("}}".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("{{ rollout.name }}".to_string()),
        Just("{{rollout.namespace}}".to_string()),
        Just("{{ rollout.canaryRevision }}".to_string()),
        Just("{{ rollout.stableRevision }}".to_string()),
        Just("{{ args.service }}".to_string()),
        Just("{{args.}}".to_string()),
        Just("{{ args.missing }}".to_string()),
        Just("rate(http_requests_total{code=~\"5..\"}[5m])".to_string()),
        Just("é".to_string()),
        Just("\u{0}".to_string()),
        "\\PC{0,8}",
    ];
    let args = prop::collection::btree_map(
        prop::sample::select(vec!["service", "ns", "", "a.b"]).prop_map(str::to_string),
        "\\PC{0,12}",
        0..3,
    );
    (
        prop::collection::vec(fragment, 0..24).prop_map(|f| f.concat()),
        args,
    )
}

fn check_template((text, args): &(String, BTreeMap<String, String>)) -> bool {
    let ctx = TemplateContext {
        args: args.clone(),
        name: "web".into(),
        namespace: "shop".into(),
        canary_revision: "c4f3".into(),
        stable_revision: "5ab1".into(),
        service: None,
    };
    let rendered = template::render(text, &ctx);
    if !text.contains("{{") {
        assert_eq!(rendered.as_deref(), Ok(text.as_str()), "plain text changed");
    }
    let checked = template::check(text, args.keys().map(String::as_str));
    if checked.is_ok() {
        assert!(
            rendered.is_ok(),
            "checked template failed to render: {rendered:?}"
        );
    }
    if let Err(e) = &rendered {
        assert!(!e.to_string().is_empty());
    }
    checked.is_ok()
}

#[test]
fn templates_never_panic_and_render_what_they_check() {
    fuzz("template", template_input(), check_template);
}

// ---- scenarios ----

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/scenarios")
}

fn seeds() -> Vec<String> {
    let mut seeds: Vec<String> = std::fs::read_dir(scenarios_dir())
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    seeds.sort();
    assert!(!seeds.is_empty(), "no example scenarios to mutate");
    seeds
}

#[derive(Clone, Debug)]
enum Mutation {
    Delete(usize, usize),
    Duplicate(usize, usize),
    Insert(usize, String),
    Swap(usize, usize),
}

fn apply(seed: &str, mutations: &[Mutation]) -> String {
    let mut text: Vec<char> = seed.chars().collect();
    for m in mutations {
        let len = text.len().max(1);
        match m {
            Mutation::Delete(at, n) => {
                let at = at % len;
                let end = (at + n).min(text.len());
                text.drain(at.min(end)..end);
            }
            Mutation::Duplicate(at, n) => {
                let at = at % len;
                let end = (at + n).min(text.len());
                let copy: Vec<char> = text[at.min(end)..end].to_vec();
                text.splice(at.min(end)..at.min(end), copy);
            }
            Mutation::Insert(at, token) => {
                let at = (at % len).min(text.len());
                text.splice(at..at, token.chars());
            }
            Mutation::Swap(a, b) => {
                if !text.is_empty() {
                    let n = text.len();
                    text.swap(a % n, b % n);
                }
            }
        }
    }
    text.into_iter().collect()
}

fn scenario_input(seeds: Vec<String>) -> impl Strategy<Value = String> {
    let token = prop_oneof![
        prop::sample::select(vec![
            ":",
            "- ",
            "{",
            "}",
            "[",
            "]",
            "&a ",
            "*a",
            "!!binary ",
            "~",
            "1e309",
            "-1",
            "\t",
            "\n  ",
            "\n",
            "'",
            "\"",
            "#",
            "? ",
            "|",
            ">",
            "0x",
            "99999999999999999999",
            "at: ",
            "duration: ",
            "expect: ",
            "weight: ",
            "value: ",
            "match: ",
            "kind: Rollout",
            "path: ",
            "1h",
            "0s",
            "-5m",
            "NaN",
            ".inf",
            "null",
            "<<: *a",
        ])
        .prop_map(str::to_string),
        "\\PC{0,6}",
    ];
    let mutation = prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), 0usize..40).prop_map(|(a, n)| Mutation::Duplicate(a, n)),
        (any::<usize>(), token).prop_map(|(a, t)| Mutation::Insert(a, t)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
    ];
    prop_oneof![
        8 => (prop::sample::select(seeds), prop::collection::vec(mutation, 1..6))
            .prop_map(|(seed, ms)| apply(&seed, &ms)),
        1 => "\\PC{0,200}",
        1 => (1usize..400).prop_map(|n| format!("a: {}1{}", "[".repeat(n), "]".repeat(n))),
    ]
}

#[test]
fn scenario_loader_never_panics_and_explains_rejections() {
    let dir = scenarios_dir();
    let file = dir.join("fuzzed.yaml").display().to_string();
    fuzz(
        "scenario",
        scenario_input(seeds()),
        |text: &String| match scenario::parse(text, &file, &dir) {
            Ok(_) => true,
            Err(e) => {
                assert!(
                    !e.message.trim().is_empty(),
                    "a rejection without a message"
                );
                assert_eq!(e.file, file);
                false
            }
        },
    );
}
