//! `nodewright bench scheduling`: one scheduling round over a generated workload;
//! `nodewright bench consolidation`: one disruption sweep's decision over a generated cluster.

use std::time::Instant;

use anyhow::Context;
use nodewright_core::benchmark::{self, Mix};
use nodewright_core::scheduler::schedule;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Plan a generated workload over the full embedded catalog and time it.
    Scheduling {
        #[arg(long, default_value_t = 10_000)]
        pods: usize,
        /// `diverse` (Karpenter's benchmark mix), `plain` or `mixed` (spot and on-demand, both architectures).
        #[arg(long, default_value = "diverse")]
        mix: String,
        /// Timed runs; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value = "table")]
        output: String,
    },
    /// Parse and plan a batch of interruption messages and time it.
    Interruption {
        #[arg(long, default_value_t = 15_000)]
        messages: usize,
        /// Timed runs; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value = "table")]
        output: String,
    },
    /// Decide one disruption sweep over a generated cluster and time it.
    Consolidation {
        #[arg(long, default_value_t = 1_000)]
        nodes: usize,
        #[arg(long, default_value_t = 10_000)]
        pods: usize,
        /// Timed runs; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value = "table")]
        output: String,
    },
}

#[derive(Debug, serde::Serialize)]
struct SweepBench {
    nodes: usize,
    pods: usize,
    seconds: f64,
    decisions: usize,
    nodes_disrupted: usize,
    savings_per_hour: f64,
    runs: usize,
}

#[derive(Debug, serde::Serialize)]
struct InterruptionBench {
    messages: usize,
    seconds: f64,
    messages_per_sec: f64,
    actions: usize,
    runs: usize,
}

fn interruption(messages: usize, runs: usize, seed: u64, output: &str) -> anyhow::Result<()> {
    use nodewright_core::interruption::{Rebalance, parse, plan};
    let (bodies, claims) = benchmark::interruption_messages(messages, seed);
    let mut times = Vec::new();
    let mut actions = 0;
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let notices: Vec<_> = bodies.iter().filter_map(|b| parse(b).ok().flatten()).collect();
        let planned = plan(&notices, &claims, Rebalance::Record, &|_| None, 0);
        times.push(start.elapsed().as_secs_f64());
        actions = planned.len();
    }
    times.sort_by(f64::total_cmp);
    let seconds = times[times.len() / 2];
    let report = InterruptionBench {
        messages,
        seconds,
        messages_per_sec: messages as f64 / seconds,
        actions,
        runs: times.len(),
    };
    if output == "json" {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} messages parsed and planned in {:.4}s median of {} ({:.0} messages/s, {} actions)",
            report.messages, report.seconds, report.runs, report.messages_per_sec, report.actions
        );
    }
    Ok(())
}

fn consolidation(nodes: usize, pods: usize, runs: usize, seed: u64, output: &str) -> anyhow::Result<()> {
    let input = benchmark::consolidation_input(nodes, pods, seed);
    let mut times = Vec::new();
    let mut plan = None;
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let p = nodewright_core::disruption::plan_sweep(&input);
        times.push(start.elapsed().as_secs_f64());
        plan = Some(p);
    }
    let plan = plan.context("no run")?;
    times.sort_by(f64::total_cmp);
    let report = SweepBench {
        nodes: input.nodes.len(),
        pods: input.nodes.iter().map(|n| n.pods.len()).sum(),
        seconds: times[times.len() / 2],
        decisions: plan.decisions.len(),
        nodes_disrupted: plan.decisions.iter().map(|d| d.candidates.len()).sum(),
        savings_per_hour: plan.decisions.iter().fold(0.0, |sum, d| sum + d.savings_per_hour),
        runs: times.len(),
    };
    if output == "json" {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} nodes, {} pods → {} decisions ({} nodes, ${:.4}/h saved) in {:.3}s median of {}",
            report.nodes,
            report.pods,
            report.decisions,
            report.nodes_disrupted,
            report.savings_per_hour,
            report.seconds,
            report.runs
        );
    }
    Ok(())
}

#[derive(Debug, serde::Serialize)]
struct Report {
    pods: usize,
    nodes: usize,
    seconds: f64,
    pods_per_sec: f64,
    cost_per_hour: f64,
    lower_bound_per_hour: f64,
    unschedulable: usize,
    runs: usize,
    peak_rss_mib: Option<f64>,
    /// How many nodes of each chosen instance type the plan launches.
    chosen_types: std::collections::BTreeMap<String, usize>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let (pods, mix, runs, seed, output) = match &args.what {
        What::Scheduling {
            pods,
            mix,
            runs,
            seed,
            output,
        } => (pods, mix, runs, seed, output),
        What::Consolidation {
            nodes,
            pods,
            runs,
            seed,
            output,
        } => return consolidation(*nodes, *pods, *runs, *seed, output),
        What::Interruption {
            messages,
            runs,
            seed,
            output,
        } => return interruption(*messages, *runs, *seed, output),
    };
    let mix: Mix = mix.parse().map_err(anyhow::Error::msg)?;
    let input = benchmark::input(*pods, mix, *seed);
    let mut times = Vec::new();
    let mut plan = None;
    for _ in 0..(*runs).max(1) {
        let start = Instant::now();
        let p = schedule(&input);
        times.push(start.elapsed().as_secs_f64());
        plan = Some(p);
    }
    let plan = plan.context("no run")?;
    times.sort_by(f64::total_cmp);
    let seconds = times[times.len() / 2];
    let report = Report {
        pods: *pods,
        nodes: plan.new_claims.len(),
        seconds,
        pods_per_sec: *pods as f64 / seconds,
        cost_per_hour: plan.cost_per_hour,
        lower_bound_per_hour: plan.lower_bound_per_hour,
        unschedulable: plan.unschedulable.len(),
        runs: times.len(),
        peak_rss_mib: peak_rss_mib(),
        chosen_types: plan.new_claims.iter().fold(Default::default(), |mut m, c| {
            *m.entry(c.chosen.instance_type.clone()).or_insert(0) += 1;
            m
        }),
    };
    if output == "json" {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} {:?} pods → {} nodes in {:.3}s median of {} ({:.0} pods/s); ${:.2}/h vs lower bound ${:.2}/h ({:.3}×); {} unschedulable; peak RSS {}",
            report.pods,
            mix,
            report.nodes,
            report.seconds,
            report.runs,
            report.pods_per_sec,
            report.cost_per_hour,
            report.lower_bound_per_hour,
            report.cost_per_hour / report.lower_bound_per_hour,
            report.unschedulable,
            report
                .peak_rss_mib
                .map(|m| format!("{m:.0} MiB"))
                .unwrap_or_else(|| "unknown".into()),
        );
    }
    Ok(())
}

/// Peak resident set size of this process (Linux `VmHWM`).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
