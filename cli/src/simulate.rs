//! `nodewright simulate`: plays a scenario on the embedded cloud and cluster in virtual time and
//! prints the timeline and a cost and latency summary.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Context;
use nodewright_core::status::FleetStatus;
use nodewright_sim::{Report, Scenario, Simulation, format_offset};

mod report;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A scenario file (see scenarios/README.md); without one, the embedded inflate demo.
    scenario: Option<PathBuf>,

    /// How to print the result.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    output: Output,

    /// Also show the fleet (nodes, $/h, requested against allocatable, claims in flight) every
    /// so often of virtual time, as `nodewright status` shows it: `5m`, `30s`, `1h`.
    #[arg(long, value_name = "DURATION")]
    status_every: Option<String>,

    /// Also write DIR/timeline.json and DIR/report.svg: nodes, pending pods and $/h over
    /// virtual time, for nodewright and for the same workload on a fixed node group of one
    /// instance type (the Cluster Autoscaler setup), with the cost of each and the saving.
    /// The printed output is unchanged. Example: `nodewright simulate --report out/`.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,

    /// The baseline's one instance type, with --report (default: m5.xlarge, or the smallest m5
    /// size that holds the largest pod). Example: `--report out/ --baseline-type c5.2xlarge`.
    #[arg(long, value_name = "TYPE", requires = "report")]
    baseline_type: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Table,
    Json,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let scenario = match &args.scenario {
        Some(path) => Scenario::from_file(path),
        None => Scenario::inflate(),
    }
    .map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
    let every = match &args.status_every {
        None => None,
        Some(text) => match nodewright_core::api::parse_duration(text) {
            Ok(Some(ms)) if ms > 0 => Some(ms),
            _ => anyhow::bail!("--status-every {text:?}: expected a duration such as 30s, 5m or 1h"),
        },
    };
    // The baseline is made first, so that a type that cannot hold the workload is refused
    // before anything is printed.
    let baseline = match &args.report {
        Some(_) => Some(
            nodewright_sim::baseline(&scenario, args.baseline_type.as_deref())
                .map_err(|e| anyhow::anyhow!(error_chain(&e)))?,
        ),
        None => None,
    };
    let sample_every = report::sample_every_ms(scenario.end_ms);
    let mut sim = Simulation::new(scenario);
    if baseline.is_some() {
        sim.sample_every(sample_every);
    }
    // Snapshots at every multiple of `every` up to the end: (elapsed, status).
    let mut snapshots: Vec<(i64, FleetStatus)> = Vec::new();
    if let Some(every) = every {
        let mut at = every;
        while at <= sim.end_ms() {
            sim.run_until(at).map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
            snapshots.push((at, sim.status()));
            at += every;
        }
    }
    let (report, samples) = sim.run_sampled().map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
    let mut out = io::stdout().lock();
    let written = match args.output {
        Output::Table => write_table(&mut out, &report).and_then(|()| {
            for (at, status) in &snapshots {
                writeln!(out, "\nstatus at {}", format_offset(*at))?;
                write!(out, "{}", nodewright_core::status::render(status))?;
            }
            Ok(())
        }),
        Output::Json => {
            // The report's JSON is unchanged without the flag; with it, `status` is added.
            let mut value = serde_json::to_value(&report).map_err(io::Error::from)?;
            if every.is_some()
                && let Some(object) = value.as_object_mut()
            {
                let status: Vec<serde_json::Value> = snapshots
                    .iter()
                    .map(|(at, s)| serde_json::json!({"at": format_offset(*at), "fleet": s}))
                    .collect();
                object.insert("status".into(), serde_json::Value::Array(status));
            }
            serde_json::to_writer_pretty(&mut out, &value)
                .map_err(io::Error::from)
                .and_then(|()| writeln!(out))
        }
    };
    match written {
        // `nodewright simulate | head` closes the pipe early; that is not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        other => other.context("writing the report")?,
    }
    if let (Some(dir), Some(baseline)) = (&args.report, &baseline) {
        let mut theirs = Simulation::new(baseline.scenario.clone());
        theirs.sample_every(sample_every);
        let (their_report, their_samples) = theirs
            .run_sampled()
            .map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
        let ours = report::Run {
            report: &report,
            samples: &samples,
        };
        let theirs = report::Run {
            report: &their_report,
            samples: &their_samples,
        };
        let costs = report::write(dir, sample_every, baseline, &ours, &theirs)?;
        // On stderr, so that stdout stays the table or JSON it is without --report.
        eprintln!(
            "wrote {} and {}: nodewright ${:.4}, {} node group ${:.4}{}",
            dir.join(report::TIMELINE_FILE).display(),
            dir.join(report::CHART_FILE).display(),
            costs.nodewright_cost,
            baseline.instance_type,
            costs.baseline_cost,
            costs
                .saving_percent
                .map(|p| format!(" ({p}% less)"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    nodewright_core::error::chain(e)
}

fn write_table(out: &mut impl Write, report: &Report) -> io::Result<()> {
    writeln!(out, "scenario {}", report.scenario)?;
    if !report.description.is_empty() {
        writeln!(out, "  {}", report.description)?;
    }
    writeln!(out)?;
    writeln!(out, "{:<6} EVENT", "TIME")?;
    for e in &report.timeline {
        writeln!(out, "{:<6} {}", e.at, e.event)?;
    }
    let s = &report.summary;
    let t = &s.time_to_bind;
    writeln!(out)?;
    writeln!(out, "summary after {}", s.duration)?;
    let rows: [(&str, String); 15] = [
        ("provisioning rounds", s.rounds.to_string()),
        ("pods created", s.pods_created.to_string()),
        ("peak pods bound", s.peak_pods_bound.to_string()),
        (
            "pods never bound",
            format!(
                "{} ({} pending at the end)",
                s.pods_never_bound, s.pods_pending_at_end
            ),
        ),
        ("instances launched", s.instances_launched.to_string()),
        ("peak nodes", s.peak_nodes.to_string()),
        ("nodes at the end", s.nodes_at_end.to_string()),
        ("pods evicted", s.pods_evicted.to_string()),
        ("budget violations", s.pdb_violations.to_string()),
        (
            "interrupted pods",
            format!("{}s unbound in all", s.pods_disrupted_seconds),
        ),
        (
            "disruptions",
            if s.disruptions.is_empty() {
                "none".to_string()
            } else {
                s.disruptions
                    .iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
        ("$/h at the end", format!("${:.4}", s.cost_per_hour_at_end)),
        ("node-hours", format!("{:.2}", s.node_hours)),
        ("total cost", format!("${:.4}", s.total_cost)),
        (
            "pending → bound",
            if t.samples == 0 {
                "no pod bound".to_string()
            } else {
                format!(
                    "p50 {}s, p95 {}s, max {}s over {} pods",
                    t.p50_seconds, t.p95_seconds, t.max_seconds, t.samples
                )
            },
        ),
    ];
    for (name, value) in rows {
        writeln!(out, "  {name:<20} {value}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_prints_the_timeline_then_the_summary() {
        let report = nodewright_sim::simulate(Scenario::inflate().expect("parses")).expect("runs");
        let mut out = Vec::new();
        write_table(&mut out, &report).expect("written");
        let text = String::from_utf8(out).expect("utf-8");
        let timeline = text.find("00:00  scaled inflate 0 → 10").expect("timeline");
        let summary = text.find("summary after 25:00").expect("summary");
        assert!(timeline < summary, "{text}");
        assert!(text.contains("nodes at the end     0"), "{text}");
    }

    #[test]
    fn a_bad_scenario_is_reported_once_with_its_file_and_field() {
        let err = Scenario::parse("name: t\nend: 1m\nstepz: []\n", "s.yaml", &|_| {
            Err(io::Error::from(io::ErrorKind::NotFound))
        })
        .expect_err("unknown field");
        let message = error_chain(&err);
        assert!(
            message.starts_with("s.yaml: ") && message.contains("stepz"),
            "{message}"
        );
        assert_eq!(message.matches("stepz").count(), 1, "{message}");
    }
}
