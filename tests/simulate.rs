//! `cutover simulate` as a user runs it: every example scenario meets its expectations, a
//! wrong expectation is named, the plot is a well-formed SVG with a series per revision and
//! per metric, and scenario errors point at file and line.

use std::{path::Path, process::Command};

fn cutover() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cutover"))
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = cutover().arg("simulate").args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_example_scenario_meets_its_expectations() {
    let dir = root().join("examples/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    for file in files {
        let (code, stdout, stderr) = run(&[file.to_str().unwrap()]);
        assert_eq!(code, Some(0), "{}:\n{stdout}\n{stderr}", file.display());
        assert!(stderr.contains("expectation(s) held"), "{stderr}");
    }
}

#[test]
fn a_wrong_expectation_fails_naming_it() {
    let file = root().join("tests/scenarios/wrong-expectation.yaml");
    let (code, stdout, stderr) = run(&[file.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("wrong-expectation.yaml:12: expectation 2 failed: expected phase Aborted before 00:09:00"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("expectation 1 failed"),
        "the right one held: {stderr}"
    );
    assert!(stdout.contains("!! expectation 2"), "{stdout}");
}

#[test]
fn window_expectations_hold_between_after_and_before() {
    let file = root().join("tests/scenarios/window-expected-too-early.yaml");
    let (code, stdout, stderr) = run(&[file.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        !stderr.contains("expectation 1 failed"),
        "held from 1h on, never after: {stderr}"
    );
    assert!(
        stderr.contains("expectation 2 failed: expected weight 20 before 02:00:00"),
        "{stderr}"
    );
    // The clock starts where the scenario says: the deny window names its opening.
    assert!(
        stdout.contains("the next window opens at 2030-01-07T07:00:00Z"),
        "{stdout}"
    );
}

#[test]
fn the_timeline_is_readable_text_or_json_lines() {
    let file = root().join("examples/scenarios/canary-error-spike.yaml");
    let (code, text, _) = run(&[file.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    assert!(
        text.contains(">> set image of web to registry.example.com/web:1.1.0"),
        "{text}"
    );
    assert!(
        text.contains("background/error-rate = 0.08 -> Failed"),
        "{text}"
    );
    assert!(
        text.contains("Rollout/web: Aborted: analysis background"),
        "{text}"
    );
    let (code, json, _) = run(&[file.to_str().unwrap(), "--output", "json"]);
    assert_eq!(code, Some(0));
    let entries: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), text.lines().count());
    assert!(
        entries.iter().any(|e| e["kind"] == "measurement"
            && e["outcome"] == "Failed"
            && e["value"] == "0.08")
    );
    let times: Vec<u64> = entries.iter().map(|e| e["t"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in time order");
}

#[test]
fn the_plot_is_an_svg_with_a_series_per_revision_and_metric() {
    let file = root().join("examples/scenarios/canary-error-spike.yaml");
    let svg = std::env::temp_dir().join(format!("cutover-plot-{}.svg", std::process::id()));
    let (code, _, stderr) = run(&[file.to_str().unwrap(), "--plot", svg.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    let text = std::fs::read_to_string(&svg).unwrap();
    let _ = std::fs::remove_file(&svg);
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let labels: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_string()))
        .collect();
    let revisions: Vec<&String> = labels
        .iter()
        .filter(|l| l.starts_with("revision web "))
        .collect();
    assert_eq!(revisions.len(), 2, "{labels:?}");
    assert!(revisions.iter().any(|l| l.contains("web:1.0.0")));
    assert!(revisions.iter().any(|l| l.contains("web:1.1.0")));
    assert_eq!(
        labels
            .iter()
            .filter(|l| l.as_str() == "metric error-rate")
            .count(),
        1,
        "{labels:?}"
    );
    assert!(labels.iter().any(|l| l == "threshold error-rate 0.05"));
    assert!(
        labels.iter().any(|l| l == "Aborted"),
        "a marker for the abort"
    );
    let lines = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .count();
    assert!(lines >= 3, "revision and metric lines drawn: {lines}");
}

#[test]
fn scenario_errors_name_file_and_line() {
    let cases = [
        ("bad-yaml.yaml", "bad-yaml.yaml:3:", "unclosed bracket"),
        (
            "unknown-kind.yaml",
            "unknown-kind.yaml:6:",
            "unknown kind Widget",
        ),
        ("unknown-field.yaml", "unknown-field.yaml:6:", "canaryPods"),
        (
            "out-of-order.yaml",
            "out-of-order.yaml:7:",
            "events must be in time order: 2m comes after 5m",
        ),
        (
            "bad-start.yaml",
            "bad-start.yaml:4:",
            "start \"next Friday\" is not an RFC 3339 time",
        ),
    ];
    for (file, location, message) in cases {
        let path = root().join("tests/scenarios").join(file);
        let (code, _, stderr) = run(&[path.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{file}: {stderr}");
        assert!(stderr.contains(location), "{file}: {stderr}");
        assert!(stderr.contains(message), "{file}: {stderr}");
    }
    let (code, _, stderr) = run(&["/nonexistent/scenario.yaml"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("/nonexistent/scenario.yaml:0: cannot read"),
        "{stderr}"
    );
}

fn svg_labels(scenario: &str) -> Vec<String> {
    let file = root().join(scenario);
    let svg = std::env::temp_dir().join(format!(
        "cutover-plot-{}-{}.svg",
        std::process::id(),
        scenario.replace('/', "-")
    ));
    let (code, _, stderr) = run(&[file.to_str().unwrap(), "--plot", svg.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    let text = std::fs::read_to_string(&svg).unwrap();
    let _ = std::fs::remove_file(&svg);
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_string()))
        .collect()
}

#[test]
fn a_comparison_is_plotted_canary_against_stable_and_its_figures_are_numbers() {
    let labels = svg_labels("examples/scenarios/canary-gateway.yaml");
    for series in [
        "metric latency-vs-stable canary",
        "metric latency-vs-stable stable",
    ] {
        assert!(labels.iter().any(|l| l == series), "{series} in {labels:?}");
    }
    let file = root().join("examples/scenarios/canary-gateway.yaml");
    let (code, json, _) = run(&[file.to_str().unwrap(), "--output", "json"]);
    assert_eq!(code, Some(0));
    let judged: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["kind"] == "measurement" && e["metric"] == "latency-vs-stable")
        .collect();
    assert!(!judged.is_empty());
    for e in judged {
        let f = &e["figures"];
        for key in ["p", "shift", "low", "high", "ratio", "canary", "stable"] {
            assert!(f[key].is_f64(), "{key} is a number: {e}");
        }
        assert!(
            f["canarySamples"].is_u64() && f["stableSamples"].is_u64(),
            "{e}"
        );
        let (canary, stable, ratio) = (
            f["canary"].as_f64().unwrap(),
            f["stable"].as_f64().unwrap(),
            f["ratio"].as_f64().unwrap(),
        );
        assert!(
            (canary / stable - ratio).abs() < 0.01,
            "the medians give the ratio: {e}"
        );
    }
}

#[test]
fn pauses_and_gates_are_shaded_and_decision_labels_never_overlap() {
    let labels = svg_labels("examples/scenarios/canary-manual-gate.yaml");
    assert!(
        labels.iter().any(|l| l == "pause"),
        "the timed pause: {labels:?}"
    );
    assert!(
        labels.iter().any(|l| l == "gate"),
        "the manual gate: {labels:?}"
    );
    // Decision labels on one row stay apart: the scenario completes two steps within two
    // seconds, which once printed as one smeared `StepCompletedStepCompleted`.
    let file = root().join("examples/scenarios/canary-manual-gate.yaml");
    let svg = std::env::temp_dir().join(format!("cutover-plot-gate-{}.svg", std::process::id()));
    let (code, _, _) = run(&[file.to_str().unwrap(), "--plot", svg.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    let text = std::fs::read_to_string(&svg).unwrap();
    let _ = std::fs::remove_file(&svg);
    let doc = roxmltree::Document::parse(&text).unwrap();
    let mut markers: Vec<(f64, f64)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter(|n| {
            n.text().is_some_and(|t| {
                ["StepCompleted", "Promoted", "Healthy", "Aborted"].contains(&t.trim())
            })
        })
        .map(|n| {
            let at = |a: &str| n.attribute(a).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            (at("y"), at("x"))
        })
        .collect();
    assert!(markers.len() >= 2, "{markers:?}");
    markers.sort_by(|a, b| a.partial_cmp(b).unwrap());
    for pair in markers.windows(2) {
        if pair[0].0 == pair[1].0 {
            assert!(pair[1].1 - pair[0].1 >= 25.0, "labels overlap: {markers:?}");
        }
    }
}

/// The comment lines at the top of an example, as one text.
fn header(text: &str) -> String {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Each example that rolls out a Rollout ends in the phase its header names for a new image
/// on a plain `cutover dev` (its built-in metrics, no --scenario), and never aborts: run on
/// the simulator's virtual clock with those same metrics.
#[test]
fn every_example_ends_as_its_header_says_on_the_default_dev_metrics() {
    use serde_json::{Value, json};
    let metrics: Value = cutover::yaml::from_str(cutover::cli::dev::DEFAULT_METRICS).unwrap();
    let docs = |name: &str| -> (String, Vec<Value>) {
        let text = std::fs::read_to_string(root().join("examples").join(name)).unwrap();
        let docs = cutover::yaml::from_multi_str::<Value>(&text)
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        (text, docs)
    };
    let dir = std::env::temp_dir().join(format!("cutover-examples-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = "On a plain `cutover dev`, a new image ends ";
    let mut checked = Vec::new();
    for name in [
        "bluegreen.yaml",
        "canary.yaml",
        "canary-analysis.yaml",
        "canary-gateway.yaml",
        "rolling.yaml",
    ] {
        let (text, mut objects) = docs(name);
        let header = header(&text);
        let phase: String = header
            .split(marker)
            .nth(1)
            .unwrap_or_else(|| panic!("{name}: no '{marker}…' in its header"))
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        if header.contains("Apply examples/migration.yaml first") {
            objects.extend(docs("migration.yaml").1);
        }
        let rollout = objects.iter().find(|o| o["kind"] == "Rollout").unwrap();
        let rollout_name = rollout["metadata"]["name"].as_str().unwrap().to_string();
        let image = rollout["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string();
        let scenario = json!({
            "kind": "Scenario",
            "name": format!("{name} on the default dev metrics"),
            "duration": "40m",
            "objects": objects,
            "metrics": metrics,
            "events": [{"at": "1m", "setImage": {"rollout": rollout_name, "image": format!("{image}-next")}}],
            "expect": [{"never": true, "reason": "Aborted"}, {"never": true, "phase": "Degraded"}, {"phase": phase}],
        });
        // JSON is YAML: the scenario file is written as JSON.
        let file = dir.join(name);
        std::fs::write(&file, serde_json::to_string_pretty(&scenario).unwrap()).unwrap();
        let (code, stdout, stderr) = run(&[file.to_str().unwrap()]);
        assert_eq!(
            code,
            Some(0),
            "{name} should end {phase}:\n{stdout}\n{stderr}"
        );
        checked.push(format!("{name}: {phase}"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(checked.len(), 5, "{checked:?}");
}
