//! The picture of a simulation: traffic per revision over time, each metric's values against
//! its thresholds, and markers for the decisions — drawn as SVG with plotters.

use std::collections::BTreeMap;

use plotters::prelude::*;

use super::{Entry, Report};

/// Decision reasons worth a marker.
const MARKED: [&str; 10] = [
    "KillSwitch",
    "MigrationFailed",
    "RolledBack",
    "StepCompleted",
    "Aborted",
    "Promoted",
    "PromotedFull",
    "Retried",
    "Undone",
    "Healthy",
];

/// Colour of the n-th series.
fn colour(n: usize) -> RGBColor {
    const PALETTE: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    PALETTE[n % PALETTE.len()]
}

/// Weight of each revision over time, as step functions (minutes, percent).
fn weight_series(report: &Report) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for e in &report.timeline {
        if let Entry::Traffic {
            t,
            rollout,
            weights,
            ..
        } = e
        {
            let minute = *t as f64 / 60.0;
            // Revisions that left the list drop to zero.
            let present: Vec<String> = weights
                .iter()
                .map(|w| format!("{rollout} {} ({})", w.revision, w.image))
                .collect();
            for (label, points) in series.iter_mut() {
                if label.starts_with(&format!("{rollout} "))
                    && !present.contains(label)
                    && points.last().is_some_and(|p| p.1 != 0.0)
                {
                    let last = points.last().map_or(0.0, |p| p.1);
                    points.push((minute, last));
                    points.push((minute, 0.0));
                }
            }
            for (w, label) in weights.iter().zip(present) {
                let points = series.entry(label).or_default();
                if let Some(&(_, last)) = points.last() {
                    points.push((minute, last));
                }
                points.push((minute, f64::from(w.weight)));
            }
        }
    }
    // A flag's share of users is traffic too.
    for e in &report.timeline {
        if let Entry::Flag {
            t,
            flag,
            percentage: Some(p),
            ..
        } = e
        {
            let points = series.entry(format!("flag {flag}")).or_default();
            let minute = *t as f64 / 60.0;
            if let Some(&(_, last)) = points.last() {
                points.push((minute, last));
            }
            points.push((minute, f64::from(*p)));
        }
    }
    let end = report.duration as f64 / 60.0;
    for points in series.values_mut() {
        if let Some(&(_, last)) = points.last() {
            points.push((end, last));
        }
    }
    series
}

/// Pauses of the report, in seconds from the start: from each `Paused` decision to the next
/// decision that moves its object on; `true` for a manual gate (waiting for promote).
fn pauses(report: &Report) -> Vec<(f64, f64, bool)> {
    let mut open: BTreeMap<String, (u64, bool)> = BTreeMap::new();
    let mut out = Vec::new();
    for e in &report.timeline {
        let Entry::Decision {
            t,
            object,
            reason,
            message,
            ..
        } = e
        else {
            continue;
        };
        if reason == "Paused" {
            let gate = message.contains("promote");
            open.entry(object.clone()).or_insert((*t, gate));
        } else if matches!(
            reason.as_str(),
            "StepCompleted" | "Aborted" | "Promoted" | "PromotedFull" | "Retried"
        ) && let Some((from, gate)) = open.remove(object)
        {
            out.push((from as f64, *t as f64, gate));
        }
    }
    let end = report.duration as f64;
    out.extend(
        open.into_values()
            .map(|(from, gate)| (from as f64, end, gate)),
    );
    out
}

/// Values of each metric (minutes, value), from measurements with a number; a comparison
/// gives two series, its canary and its stable median.
fn metric_series(report: &Report) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for e in &report.timeline {
        let Entry::Measurement {
            t,
            metric,
            value,
            figures,
            ..
        } = e
        else {
            continue;
        };
        let x = *t as f64 / 60.0;
        // A comparison: canary against stable, each side's median.
        if let Some(f) = figures {
            for (side, v) in [("canary", f.canary), ("stable", f.stable)] {
                if v.is_finite() {
                    series
                        .entry(format!("{metric} {side}"))
                        .or_default()
                        .push((x, v));
                }
            }
        } else if let Some(v) = value.as_deref().and_then(|v| v.parse::<f64>().ok())
            && v.is_finite()
        {
            series.entry(metric.clone()).or_default().push((x, v));
        }
    }
    series
}

/// Draws the report as an SVG document.
pub fn svg(report: &Report) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1000, 640)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root
            .titled(
                &format!("cutover simulate: {}", report.name),
                ("sans-serif", 20),
            )
            .map_err(|e| e.to_string())?;
        let (top, bottom) = root.split_vertically(330);
        let end = (report.duration as f64 / 60.0).max(1.0 / 60.0);
        draw_weights(&top, report, end).map_err(|e| e.to_string())?;
        draw_metrics(&bottom, report, end).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn draw_weights(
    area: &Area<'_>,
    report: &Report,
    end: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut chart = ChartBuilder::on(area)
        .caption("traffic per revision (%)", ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(0f64..end, 0f64..105f64)?;
    chart
        .configure_mesh()
        .x_desc("minutes")
        .y_desc("%")
        .light_line_style(WHITE)
        .draw()?;
    for (i, (label, points)) in weight_series(report).into_iter().enumerate() {
        let c = colour(i);
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))?
            .label(if label.starts_with("flag ") {
                label.clone()
            } else {
                format!("revision {label}")
            })
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
    }
    // Pauses as shaded bands: a manual gate darker than a timed pause.
    for (from, to, gate) in pauses(report) {
        let (shade, label) = if gate {
            (RGBColor(255, 170, 0).mix(0.25), "gate")
        } else {
            (BLACK.mix(0.08), "pause")
        };
        chart.draw_series(std::iter::once(Rectangle::new(
            [(from / 60.0, 0.0), (to / 60.0, 100.0)],
            shade.filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            label,
            (from / 60.0, 96.0),
            ("sans-serif", 10).into_font().color(&BLACK.mix(0.6)),
        )))?;
    }
    // Decision markers: a dashed vertical line and the reason.
    let mut last_label_x = f64::NEG_INFINITY;
    for e in &report.timeline {
        if let Entry::Decision { t, reason, .. } = e
            && MARKED.contains(&reason.as_str())
        {
            let x = *t as f64 / 60.0;
            let c = if reason == "Aborted" {
                RED.mix(0.9)
            } else {
                BLACK.mix(0.4)
            };
            chart.draw_series(DashedLineSeries::new(
                vec![(x, 0.0), (x, 100.0)],
                3,
                3,
                c.stroke_width(1),
            ))?;
            // Labels closer than 3 % of the width would overlap; the line is enough then.
            if x - last_label_x > end * 0.03 {
                chart.draw_series(std::iter::once(Text::new(
                    reason.clone(),
                    (x, 103.0),
                    ("sans-serif", 10).into_font().color(&c),
                )))?;
                last_label_x = x;
            }
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::MiddleRight)
        .draw()?;
    Ok(())
}

fn draw_metrics(
    area: &Area<'_>,
    report: &Report,
    end: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let series = metric_series(report);
    let mut max = series
        .values()
        .flatten()
        .map(|p| p.1)
        .chain(report.thresholds.values().flatten().copied())
        .fold(0.0f64, f64::max);
    if max <= 0.0 {
        max = 1.0;
    }
    let mut chart = ChartBuilder::on(area)
        .caption("analysis measurements", ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..end, 0f64..(max * 1.15))?;
    chart
        .configure_mesh()
        .x_desc("minutes")
        .light_line_style(WHITE)
        .draw()?;
    for (i, (metric, points)) in series.into_iter().enumerate() {
        let c = colour(i + 3);
        chart
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))?
            .label(format!("metric {metric}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, c.filled())))?;
        for threshold in report.thresholds.get(&metric).into_iter().flatten() {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(0.0, *threshold), (end, *threshold)],
                    6,
                    4,
                    c.mix(0.7).stroke_width(1),
                ))?
                .label(format!("threshold {metric} {threshold}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.mix(0.7)));
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}
