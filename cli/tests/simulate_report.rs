//! `nodewright simulate --report DIR`: the timeline as JSON and the chart as SVG, for nodewright
//! and the one-type node group baseline, with the printed output unchanged.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn nodewright(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nodewright"))
        .arg("simulate")
        .args(args)
        .output()
        .expect("the binary runs")
}

fn succeeded(out: Output) -> Output {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// A fresh directory for one test's report.
fn report_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("simulate-report-{name}"));
    // Left over from an earlier run, or absent: either way it is made anew.
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn count(v: &Value) -> f64 {
    let n = v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"));
    n as f64
}

#[test]
fn the_report_writes_the_timeline_and_a_chart_of_both_runs_and_prints_what_it_did_before() {
    let dir = report_dir("inflate");
    let dir_arg = dir.to_str().expect("UTF-8 path");
    let plain = succeeded(nodewright(&["--output", "json"]));
    let with_report = succeeded(nodewright(&["--output", "json", "--report", dir_arg]));
    assert_eq!(
        plain.stdout, with_report.stdout,
        "--report changes nothing printed"
    );
    let printed: Value = serde_json::from_slice(&plain.stdout).expect("JSON");
    let stderr = String::from_utf8_lossy(&with_report.stderr);
    assert!(
        stderr.contains("report.svg") && stderr.contains("m5.xlarge"),
        "{stderr}"
    );

    // timeline.json, in the documented shape.
    let text = std::fs::read_to_string(dir.join("timeline.json")).expect("timeline.json");
    let timeline: Value = serde_json::from_str(&text).expect("timeline.json is JSON");
    assert_eq!(timeline["format_version"], 1);
    assert_eq!(timeline["scenario"], "inflate");
    assert_eq!(timeline["duration"], "25:00");
    assert_eq!(number(&timeline["duration_seconds"]), 1500.0);
    assert_eq!(number(&timeline["sample_every_seconds"]), 10.0);
    let baseline = &timeline["baseline"];
    assert_eq!(baseline["instance_type"], "m5.xlarge");
    assert_eq!(baseline["capacity_type"], "on-demand");
    assert_eq!(baseline["consolidate_after"], "10m");
    assert!((number(&baseline["price_per_hour"]) - 0.192).abs() < 1e-9);

    let samples = timeline["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 151);
    for (i, s) in samples.iter().enumerate() {
        assert_eq!(number(&s["at_seconds"]), i as f64 * 10.0, "{s}");
        let at = s["at"].as_str().expect("at");
        assert_eq!(at, format!("{:02}:{:02}", i * 10 / 60, i * 10 % 60));
        for run in ["nodewright", "baseline"] {
            count(&s[run]["nodes"]);
            count(&s[run]["pending_pods"]);
            assert!(number(&s[run]["cost_per_hour"]) >= 0.0, "{s}");
        }
    }
    assert_eq!(samples[0]["nodewright"]["pending_pods"], 10);
    assert_eq!(samples[0]["baseline"]["pending_pods"], 10);

    let totals = &timeline["totals"];
    let ours = number(&totals["nodewright"]["cost"]);
    let theirs = number(&totals["baseline"]["cost"]);
    assert_eq!(
        ours,
        number(&printed["summary"]["total_cost"]),
        "the simulation's own cost"
    );
    assert_eq!(
        totals["nodewright"]["peak_nodes"],
        printed["summary"]["peak_nodes"]
    );
    assert_eq!(totals["baseline"]["pods_never_bound"], 0);
    assert!(theirs > ours, "{totals}");
    assert!(
        (number(&totals["saving"]) - (theirs - ours)).abs() < 1e-4,
        "{totals}"
    );
    let percent = number(&totals["saving_percent"]);
    assert!(
        (percent - 100.0 * (theirs - ours) / theirs).abs() < 0.06,
        "{totals}"
    );

    check_chart(&dir.join("report.svg"), samples);
}

/// The SVG is well-formed, names the series and the axes, and draws each of the six series
/// (three panels, nodewright and the baseline in each) as a line through the sampled values.
fn check_chart(path: &Path, samples: &[Value]) {
    let svg = std::fs::read_to_string(path).expect("report.svg");
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    let times = |label: &str| texts.iter().filter(|t| **t == label).count();
    assert_eq!(times("nodewright"), 3, "a legend per panel: {texts:?}");
    assert_eq!(
        times("m5.xlarge node group (Cluster Autoscaler setup)"),
        3,
        "{texts:?}"
    );
    for axis in ["nodes", "pending pods", "$/h", "virtual time (mm:ss)"] {
        assert_eq!(times(axis), 1, "axis {axis:?}: {texts:?}");
    }
    assert!(
        texts.iter().any(|t| t.contains("$0.1568")),
        "the title has the cost: {texts:?}"
    );

    // Data lines are the polylines with a point per sample and step; the rest are ticks and
    // legend marks. In each panel the baseline is drawn first, then nodewright.
    let lines: Vec<(String, Vec<(f64, f64)>)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .map(|n| {
            let points = n
                .attribute("points")
                .unwrap_or_default()
                .split_whitespace()
                .map(|p| {
                    let (x, y) = p.split_once(',').expect("x,y");
                    (x.parse().expect("x"), y.parse().expect("y"))
                })
                .collect();
            (n.attribute("stroke").unwrap_or_default().to_string(), points)
        })
        .filter(|(_, points): &(String, Vec<(f64, f64)>)| points.len() > 2)
        .collect();
    assert_eq!(lines.len(), 6, "three panels of two lines");
    for (panel, field) in ["nodes", "pending_pods", "cost_per_hour"].iter().enumerate() {
        let (baseline_color, baseline_points) = &lines[2 * panel];
        let (ours_color, ours_points) = &lines[2 * panel + 1];
        assert_ne!(baseline_color, ours_color);
        let values = |run: &str| -> Vec<f64> {
            // As drawn: each value held until the next sample, then the step.
            let v: Vec<f64> = samples.iter().map(|s| number(&s[run][field])).collect();
            (0..2 * v.len() - 1).map(|j| v[j / 2]).collect()
        };
        let theirs = values("baseline");
        let ours = values("nodewright");
        assert_eq!(baseline_points.len(), theirs.len());
        assert_eq!(ours_points.len(), ours.len());
        // One y scale per panel: pixel = a − b·value, b > 0, fitted on the baseline's extremes.
        let (lo, hi) = extremes(&theirs);
        assert!(theirs[hi] > theirs[lo], "{field}: the baseline varies");
        let b = (baseline_points[lo].1 - baseline_points[hi].1) / (theirs[hi] - theirs[lo]);
        let a = baseline_points[lo].1 + b * theirs[lo];
        assert!(b > 0.0, "{field}: larger values are drawn higher");
        for (points, values) in [(baseline_points, &theirs), (ours_points, &ours)] {
            for (p, v) in points.iter().zip(values.iter()) {
                assert!(
                    (p.1 - (a - b * v)).abs() <= 1.5,
                    "{field}: {v} drawn at y {}",
                    p.1
                );
            }
            assert!(
                points.windows(2).all(|w| w[1].0 >= w[0].0),
                "{field}: time runs right"
            );
        }
    }
}

/// Indices of the smallest and the largest value.
fn extremes(values: &[f64]) -> (usize, usize) {
    let mut lo = 0;
    let mut hi = 0;
    for (i, v) in values.iter().enumerate() {
        if *v < values[lo] {
            lo = i;
        }
        if *v > values[hi] {
            hi = i;
        }
    }
    (lo, hi)
}

#[test]
fn the_baseline_type_can_be_chosen() {
    let dir = report_dir("m5-2xlarge");
    let dir_arg = dir.to_str().expect("UTF-8 path");
    let with_report = succeeded(nodewright(&[
        "--report",
        dir_arg,
        "--baseline-type",
        "m5.2xlarge",
    ]));
    let plain = succeeded(nodewright(&[]));
    assert_eq!(plain.stdout, with_report.stdout, "the table is unchanged");
    let text = std::fs::read_to_string(dir.join("timeline.json")).expect("timeline.json");
    let timeline: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(timeline["baseline"]["instance_type"], "m5.2xlarge");
    assert!((number(&timeline["baseline"]["price_per_hour"]) - 0.384).abs() < 1e-9);
}

#[test]
fn an_unknown_baseline_type_is_refused_before_anything_is_printed_or_written() {
    let dir = report_dir("unknown-type");
    let dir_arg = dir.to_str().expect("UTF-8 path");
    let out = nodewright(&["--report", dir_arg, "--baseline-type", "m5.huge"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown instance type \"m5.huge\""), "{err}");
    assert!(out.stdout.is_empty());
    assert!(!dir.exists());
}

#[test]
fn a_baseline_type_without_a_report_is_refused() {
    let out = nodewright(&["--baseline-type", "m5.large"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--report"), "{err}");
}
