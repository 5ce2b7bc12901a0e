//! Wall time of `cutover simulate` for a one-hour, 8-step canary with two metrics measured
//! every 30 s: how fast a team can test a rollout policy in CI.

use std::time::Instant;

fn scenario() -> String {
    let steps: String = [5, 10, 20, 30, 40, 50, 75, 90]
        .iter()
        .map(|w| format!("            - setWeight: {w}\n            - pause: {{duration: 6m}}\n"))
        .collect();
    format!(
        r#"name: one-hour canary
duration: 1h
objects:
  - apiVersion: v1
    kind: Service
    metadata: {{name: web}}
    spec: {{selector: {{app: web}}, ports: [{{port: 80}}]}}
  - apiVersion: cutover.dev/v1alpha1
    kind: Rollout
    metadata: {{name: web}}
    spec:
      replicas: 20
      selector: {{matchLabels: {{app: web}}}}
      template:
        metadata: {{labels: {{app: web}}}}
        spec: {{containers: [{{name: web, image: "web:1"}}]}}
      strategy:
        canary:
          stableService: web
          analysis:
            metrics:
              - name: error-rate
                interval: 30s
                successCondition: result < 0.05
                prometheus: {{query: 'error_rate{{revision="{{{{ rollout.canaryRevision }}}}"}}'}}
              - name: p99-latency
                interval: 30s
                failureCondition: result > 2.0
                prometheus: {{query: 'p99{{revision="{{{{ rollout.canaryRevision }}}}"}}'}}
          steps:
{steps}metrics:
  metrics:
    - match: 'error_rate'
      value: 0.01
      jitter: 0.2
    - match: 'p99'
      value: 0.4
      jitter: 0.2
events:
  - at: 1m
    setImage: {{rollout: web, image: "web:2"}}
expect:
  - phase: Healthy
    stableImage: "web:2"
"#
    )
}

fn main() {
    let text = scenario();
    let scenario =
        cutover::simulate::scenario::parse(&text, "bench.yaml", std::path::Path::new("."))
            .expect("the bench scenario is valid");
    let mut walls = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let started = Instant::now();
        let report = cutover::simulate::run(&scenario).expect("the scenario runs");
        walls.push(started.elapsed());
        last = Some(report);
    }
    let report = last.expect("three runs");
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    let measurements = report
        .timeline
        .iter()
        .filter(|e| matches!(e, cutover::simulate::Entry::Measurement { .. }))
        .count();
    walls.sort();
    let median = walls[1];
    println!("cutover simulate, 1h 8-step canary (20 replicas), 2 metrics every 30s:");
    println!("  measurements recorded            {measurements:>8}");
    println!(
        "  timeline entries                 {:>8}",
        report.timeline.len()
    );
    println!("  wall time (median of 3)          {median:>8.2?}   (goal < 2s)");
    println!(
        "  simulated seconds per wall second {:>7.0}",
        report.duration as f64 / median.as_secs_f64()
    );
}
