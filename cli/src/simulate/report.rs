//! `nodewright simulate --report DIR`: the fleet over virtual time for nodewright and for the
//! same workload on a fixed node group of one instance type (the Cluster Autoscaler setup users
//! migrate from; see `nodewright_sim::baseline` for how it is made and how it differs from a
//! real Cluster Autoscaler), written as `DIR/timeline.json` and drawn as `DIR/report.svg`.
//!
//! `timeline.json` (format version 1; fields are only ever added):
//!
//! ```text
//! format_version        1
//! scenario              the scenario's name
//! duration, duration_seconds          how long was simulated ("25:00", 1500)
//! sample_every_seconds  10, or more for scenarios over ~2h45m (at most ~1000 samples)
//! baseline              {instance_type, capacity_type: "on-demand", price_per_hour, consolidate_after: "10m"}
//! samples[]             {at: "05:00", at_seconds: 300,
//!                        nodewright: {nodes, pending_pods, cost_per_hour},
//!                        baseline:   {nodes, pending_pods, cost_per_hour}}
//! totals                {nodewright: {cost, node_hours, peak_nodes, instances_launched, pods_never_bound},
//!                        baseline:   {…the same},
//!                        saving: baseline cost − nodewright cost (USD),
//!                        saving_percent: of the baseline's cost, one decimal (null if it cost nothing)}
//! ```
//!
//! A sample is taken after the simulated second it names: `nodes` are the cluster's Nodes,
//! `pending_pods` the workload pods not bound, `cost_per_hour` the price of every instance not
//! yet terminated (billed from launch, so it rises before the nodes do). Costs in `totals` are
//! the simulation's own (every instance's price × the time it ran), not integrated samples.

use std::fs;
use std::path::Path;

use anyhow::Context;
use nodewright_sim::{BASELINE_CONSOLIDATE_AFTER, Baseline, Report, Sample, format_offset};
use plotters::prelude::*;
use serde::Serialize;

pub const TIMELINE_FILE: &str = "timeline.json";
pub const CHART_FILE: &str = "report.svg";
const FORMAT_VERSION: u32 = 1;
const MIN_SAMPLE_EVERY_MS: i64 = 10_000;
/// Longer scenarios are sampled less often, so that the files stay small.
const MAX_SAMPLES: i64 = 1_000;

const CHART_SIZE: (u32, u32) = (960, 900);
const NODEWRIGHT_COLOR: RGBColor = RGBColor(31, 119, 180);
const BASELINE_COLOR: RGBColor = RGBColor(214, 39, 40);

/// How often to sample a scenario `end_ms` long: every 10 s, or in whole 10 s steps so that at
/// most about [`MAX_SAMPLES`] are taken.
pub fn sample_every_ms(end_ms: i64) -> i64 {
    let per_sample = (end_ms.max(0) + MAX_SAMPLES - 1) / MAX_SAMPLES;
    let steps = ((per_sample + MIN_SAMPLE_EVERY_MS - 1) / MIN_SAMPLE_EVERY_MS).max(1);
    steps * MIN_SAMPLE_EVERY_MS
}

/// One run's samples and report.
pub struct Run<'a> {
    pub report: &'a Report,
    pub samples: &'a [Sample],
}

#[derive(Debug, Serialize)]
struct Timeline {
    format_version: u32,
    scenario: String,
    duration: String,
    duration_seconds: f64,
    sample_every_seconds: f64,
    baseline: BaselineInfo,
    samples: Vec<TimelineSample>,
    totals: Totals,
}

#[derive(Debug, Serialize)]
struct BaselineInfo {
    instance_type: String,
    capacity_type: &'static str,
    price_per_hour: f64,
    consolidate_after: &'static str,
}

#[derive(Debug, Serialize)]
struct TimelineSample {
    at: String,
    at_seconds: f64,
    nodewright: Point,
    baseline: Point,
}

#[derive(Debug, Serialize)]
struct Point {
    nodes: usize,
    pending_pods: usize,
    cost_per_hour: f64,
}

impl From<&Sample> for Point {
    fn from(s: &Sample) -> Self {
        Point {
            nodes: s.nodes,
            pending_pods: s.pending_pods,
            cost_per_hour: s.cost_per_hour,
        }
    }
}

#[derive(Debug, Serialize)]
struct Totals {
    nodewright: RunTotals,
    baseline: RunTotals,
    saving: f64,
    saving_percent: Option<f64>,
}

#[derive(Debug, Serialize)]
struct RunTotals {
    cost: f64,
    node_hours: f64,
    peak_nodes: usize,
    instances_launched: usize,
    pods_never_bound: usize,
}

impl From<&Report> for RunTotals {
    fn from(r: &Report) -> Self {
        RunTotals {
            cost: r.summary.total_cost,
            node_hours: r.summary.node_hours,
            peak_nodes: r.summary.peak_nodes,
            instances_launched: r.summary.instances_launched,
            pods_never_bound: r.summary.pods_never_bound,
        }
    }
}

/// What `--report` tells on stderr once the files are written.
pub struct Written {
    pub nodewright_cost: f64,
    pub baseline_cost: f64,
    pub saving_percent: Option<f64>,
}

/// Writes `dir/timeline.json` and `dir/report.svg` (making `dir` if needed).
pub fn write(
    dir: &Path,
    every_ms: i64,
    baseline: &Baseline,
    ours: &Run<'_>,
    theirs: &Run<'_>,
) -> anyhow::Result<Written> {
    // Both runs are sampled at the same moments; anything else is a bug, not bad input.
    anyhow::ensure!(
        ours.samples.len() == theirs.samples.len()
            && ours
                .samples
                .iter()
                .zip(theirs.samples)
                .all(|(a, b)| a.at_ms == b.at_ms),
        "the two runs were not sampled at the same moments"
    );
    let timeline = timeline(every_ms, baseline, ours, theirs);
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(&timeline).context("serializing the timeline")?;
    let path = dir.join(TIMELINE_FILE);
    fs::write(&path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    let svg = chart(&timeline)?;
    let path = dir.join(CHART_FILE);
    fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
    Ok(Written {
        nodewright_cost: timeline.totals.nodewright.cost,
        baseline_cost: timeline.totals.baseline.cost,
        saving_percent: timeline.totals.saving_percent,
    })
}

fn timeline(every_ms: i64, baseline: &Baseline, ours: &Run<'_>, theirs: &Run<'_>) -> Timeline {
    let samples = ours
        .samples
        .iter()
        .zip(theirs.samples)
        .map(|(o, t)| TimelineSample {
            at: format_offset(o.at_ms),
            at_seconds: seconds(o.at_ms),
            nodewright: o.into(),
            baseline: t.into(),
        })
        .collect();
    let nodewright = RunTotals::from(ours.report);
    let baseline_totals = RunTotals::from(theirs.report);
    let saving = round4(baseline_totals.cost - nodewright.cost);
    let saving_percent =
        (baseline_totals.cost > 0.0).then(|| (1000.0 * saving / baseline_totals.cost).round() / 10.0);
    let end_ms = ours.samples.last().map_or(0, |s| s.at_ms);
    Timeline {
        format_version: FORMAT_VERSION,
        scenario: ours.report.scenario.clone(),
        duration: ours.report.summary.duration.clone(),
        duration_seconds: seconds(end_ms),
        sample_every_seconds: seconds(every_ms),
        baseline: BaselineInfo {
            instance_type: baseline.instance_type.clone(),
            capacity_type: "on-demand",
            price_per_hour: baseline.price_per_hour,
            consolidate_after: BASELINE_CONSOLIDATE_AFTER,
        },
        samples,
        totals: Totals {
            nodewright,
            baseline: baseline_totals,
            saving,
            saving_percent,
        },
    }
}

/// One panel of the chart: a quantity of both runs over time.
struct Panel {
    axis: &'static str,
    value: fn(&Point) -> f64,
    /// The y axis reaches at least this, so that a flat series still has a scale.
    min_top: f64,
    integer: bool,
}

const PANELS: [Panel; 3] = [
    Panel {
        axis: "nodes",
        value: |p| p.nodes as f64,
        min_top: 1.0,
        integer: true,
    },
    Panel {
        axis: "pending pods",
        value: |p| p.pending_pods as f64,
        min_top: 1.0,
        integer: true,
    },
    Panel {
        axis: "$/h",
        value: |p| p.cost_per_hour,
        min_top: 0.1,
        integer: false,
    },
];

/// The SVG: three panels over virtual time (nodes, pending pods, $/h), each with nodewright's
/// line and the baseline's.
fn chart(timeline: &Timeline) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let t = &timeline.totals;
        let saving = match t.saving_percent {
            Some(p) => format!(" ({p}% less)"),
            None => String::new(),
        };
        let title = format!(
            "{}, {}: nodewright ${:.4}, {} node group ${:.4}{saving}",
            timeline.scenario,
            timeline.duration,
            t.nodewright.cost,
            timeline.baseline.instance_type,
            t.baseline.cost
        );
        let root = root.titled(&title, ("sans-serif", 22)).map_err(draw_error)?;
        let baseline_name = format!(
            "{} node group (Cluster Autoscaler setup)",
            timeline.baseline.instance_type
        );
        // Minutes on the x axis, so that its ticks fall on whole minutes.
        let end = (timeline.duration_seconds / 60.0).max(1.0 / 60.0);
        let areas = root.split_evenly((PANELS.len(), 1));
        for (i, (panel, area)) in PANELS.iter().zip(&areas).enumerate() {
            let ours = steps(timeline, |s| (panel.value)(&s.nodewright));
            let theirs = steps(timeline, |s| (panel.value)(&s.baseline));
            let top = ours
                .iter()
                .chain(&theirs)
                .map(|(_, y)| *y)
                .fold(panel.min_top, f64::max)
                // Headroom above the highest value keeps the lines clear of the legend.
                * 1.5;
            let last = i + 1 == PANELS.len();
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .x_label_area_size(if last { 44 } else { 24 })
                .y_label_area_size(64)
                .build_cartesian_2d(0.0..end, 0.0..top)
                .map_err(draw_error)?;
            let integer = panel.integer;
            let x_label = |x: &f64| format_offset((x * 60_000.0).round() as i64);
            let y_label = |y: &f64| {
                if integer {
                    format!("{y:.0}")
                } else {
                    format!("{y:.2}")
                }
            };
            let mut mesh = chart.configure_mesh();
            mesh.y_desc(panel.axis)
                .x_labels(13)
                .y_labels(6)
                .x_label_formatter(&x_label)
                .y_label_formatter(&y_label)
                .label_style(("sans-serif", 15))
                .axis_desc_style(("sans-serif", 17))
                .light_line_style(WHITE);
            if last {
                mesh.x_desc("virtual time (mm:ss)");
            }
            mesh.draw().map_err(draw_error)?;
            // The baseline first and wider, so that where the two lines coincide both show.
            chart
                .draw_series(LineSeries::new(theirs, BASELINE_COLOR.stroke_width(4)))
                .map_err(draw_error)?
                .label(baseline_name.as_str())
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BASELINE_COLOR.stroke_width(4)));
            chart
                .draw_series(LineSeries::new(ours, NODEWRIGHT_COLOR.stroke_width(2)))
                .map_err(draw_error)?
                .label("nodewright")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], NODEWRIGHT_COLOR.stroke_width(2)));
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .label_font(("sans-serif", 16))
                .draw()
                .map_err(draw_error)?;
        }
        root.present().map_err(draw_error)?;
    }
    Ok(svg)
}

/// The series as steps over minutes: a value holds until the next sample, as the fleet does.
fn steps(timeline: &Timeline, value: impl Fn(&TimelineSample) -> f64) -> Vec<(f64, f64)> {
    let mut points = Vec::with_capacity(timeline.samples.len() * 2);
    for (i, s) in timeline.samples.iter().enumerate() {
        let minutes = s.at_seconds / 60.0;
        if i > 0 {
            let held = points.last().map_or(0.0, |(_, y)| *y);
            points.push((minutes, held));
        }
        points.push((minutes, value(s)));
    }
    points
}

fn draw_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing the chart: {e}")
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_scenarios_are_sampled_every_ten_seconds_and_long_ones_at_most_a_thousand_times() {
        assert_eq!(sample_every_ms(25 * 60_000), 10_000);
        assert_eq!(sample_every_ms(1), 10_000);
        assert_eq!(sample_every_ms(10_000_000), 10_000);
        assert_eq!(sample_every_ms(10_000_001), 20_000);
        assert_eq!(sample_every_ms(24 * 3_600_000), 90_000);
    }
}
