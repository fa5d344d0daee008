//! Sampling the fleet over virtual time, and the fixed-node-group baseline a simulation report
//! compares nodewright against.

use nodewright_core::catalog::CapacityType;
use nodewright_core::requirements::Operator;
use nodewright_sim::{Event, Report, Sample, Scenario, Simulation, baseline, simulate};

const GETTING_STARTED: &str = include_str!("../../../infra/examples/default-nodepool.yaml");
const EVERY_MS: i64 = 10_000;

fn run_sampled(scenario: Scenario) -> (Report, Vec<Sample>) {
    let mut sim = Simulation::new(scenario);
    sim.sample_every(EVERY_MS);
    sim.run_sampled().expect("runs")
}

/// A scenario over the getting-started pool with `pool_edit` applied to its manifest.
fn scenario(body: &str, pool_edit: impl Fn(&str) -> String) -> Scenario {
    let manifest = pool_edit(GETTING_STARTED);
    let yaml = format!("name: test\nobjects: [{{include: pool.yaml}}]\n{body}");
    Scenario::parse(&yaml, "test.yaml", &|_| Ok(manifest.clone())).expect("scenario parses")
}

fn launches(report: &Report) -> Vec<(String, String, CapacityType)> {
    report
        .timeline
        .iter()
        .filter_map(|e| match &e.event {
            Event::Launched {
                instance_type,
                nodepool,
                capacity_type,
                ..
            } => Some((instance_type.clone(), nodepool.clone(), *capacity_type)),
            _ => None,
        })
        .collect()
}

#[test]
fn samples_show_pending_pods_first_then_nodes_and_what_the_fleet_costs() {
    let (report, samples) = run_sampled(Scenario::inflate().expect("parses"));
    // Every 10 s from the start through the end (25:00).
    let times: Vec<i64> = samples.iter().map(|s| s.at_ms).collect();
    let expected: Vec<i64> = (0..=150).map(|i| i * EVERY_MS).collect();
    assert_eq!(times, expected);

    // 0 → 10 at the start: ten pods wait, with instances launched and billed but no node yet.
    let first = samples[0];
    assert_eq!((first.nodes, first.pending_pods), (0, 10), "{first:?}");
    assert!(first.cost_per_hour > 0.0, "{first:?}");
    // Nodes come up after the boot delay (45 s) and the pods are bound then.
    let first_node = samples.iter().position(|s| s.nodes > 0).expect("nodes came");
    assert!(
        (40_000..=60_000).contains(&samples[first_node].at_ms),
        "{samples:?}"
    );
    assert!(samples[..first_node].iter().all(|s| s.pending_pods == 10));
    assert_eq!(samples[first_node].pending_pods, 0);
    // 10 → 20 at 5:00: ten more wait, and more nodes follow.
    let at_5m = samples[30];
    assert_eq!(at_5m.pending_pods, 10, "{at_5m:?}");
    let peak = samples.iter().map(|s| s.nodes).max().unwrap_or(0);
    assert_eq!(peak, report.summary.peak_nodes);
    assert!(peak > samples[first_node].nodes);
    // 0 at 15:00 and everything consolidated away by the end.
    let last = samples[samples.len() - 1];
    assert_eq!((last.nodes, last.pending_pods), (0, 0), "{last:?}");
    assert_eq!(last.cost_per_hour.to_bits(), 0.0_f64.to_bits(), "0, not -0");

    // The $/h series integrates to the run's cost (left sums, 10 s steps: within a cent).
    let integral: f64 = samples
        .windows(2)
        .map(|w| w[0].cost_per_hour * EVERY_MS as f64 / 3_600_000.0)
        .sum();
    assert!(
        (integral - report.summary.total_cost).abs() < 0.01,
        "{integral} vs {}",
        report.summary.total_cost
    );
}

#[test]
fn sampling_changes_nothing_the_simulation_reports() {
    let (sampled, _) = run_sampled(Scenario::inflate().expect("parses"));
    let plain = simulate(Scenario::inflate().expect("parses")).expect("runs");
    assert_eq!(
        serde_json::to_string(&sampled).expect("json"),
        serde_json::to_string(&plain).expect("json")
    );
}

#[test]
fn an_end_between_ticks_and_intervals_is_still_sampled() {
    let s = scenario(
        "workloads: [{name: web, requests: {cpu: \"1\"}}]\nsteps: [{at: 0s, scale: {web: 2}}]\nend: 95500ms",
        str::to_string,
    );
    let mut sim = Simulation::new(s);
    sim.sample_every(30_000);
    let (_, samples) = sim.run_sampled().expect("runs");
    let times: Vec<i64> = samples.iter().map(|s| s.at_ms).collect();
    assert_eq!(times, [0, 30_000, 60_000, 90_000, 95_000, 95_500]);
}

#[test]
fn the_inflate_baseline_runs_only_m5_xlarge_on_demand_and_costs_more_throughout() {
    let scenario = Scenario::inflate().expect("parses");
    let b = baseline(&scenario, None).expect("a baseline");
    assert_eq!(b.instance_type, "m5.xlarge");
    assert!((b.price_per_hour - 0.192).abs() < 1e-9, "{}", b.price_per_hour);

    let (ours, ours_samples) = run_sampled(scenario);
    let (theirs, theirs_samples) = run_sampled(b.scenario);
    let launched = launches(&theirs);
    assert!(!launched.is_empty());
    for (instance_type, pool, capacity_type) in &launched {
        assert_eq!(
            (instance_type.as_str(), pool.as_str(), *capacity_type),
            ("m5.xlarge", "default", CapacityType::OnDemand)
        );
    }
    // With one type, consolidation can only delete nodes, as Cluster Autoscaler does.
    for e in &theirs.timeline {
        if let Event::Disrupting { replacement, .. } = &e.event {
            assert!(replacement.is_none(), "{e:?}");
        }
    }
    // The same workload runs: every pod bound, none left pending.
    assert_eq!(theirs.summary.pods_never_bound, 0);
    assert_eq!(theirs.summary.peak_pods_bound, 20);
    // Whole 4-vCPU nodes (3 one-CPU pods each) and a 10-minute scale-down delay cost more at
    // every moment of this demo than nodewright's right-sized, quickly consolidated nodes.
    assert_eq!(ours_samples.len(), theirs_samples.len());
    for (o, t) in ours_samples.iter().zip(&theirs_samples) {
        assert_eq!(o.at_ms, t.at_ms);
        assert!(t.cost_per_hour >= o.cost_per_hour, "{o:?} {t:?}");
    }
    assert!(theirs.summary.total_cost > ours.summary.total_cost * 1.5);
    // Nodes empty after the scale-down to 1 at 10:00 stay for consolidateAfter (10m).
    let at_19m = theirs_samples[19 * 6];
    assert!(at_19m.nodes > 1, "{at_19m:?}");
    assert_eq!(ours_samples[19 * 6].nodes, 0);
}

#[test]
fn a_pool_selected_by_label_and_taint_still_takes_its_pods_in_the_baseline() {
    let taint_and_label = |m: &str| {
        m.replacen(
            "  template:\n    spec:\n",
            "  template:\n    metadata:\n      labels: {team: blue}\n    spec:\n      taints: [{key: dedicated, value: blue, effect: NoSchedule}]\n",
            1,
        )
    };
    let s = scenario(
        "workloads:\n  - name: web\n    requests: {cpu: \"1\"}\n    nodeSelector: {team: blue}\n    tolerations: [{key: dedicated, operator: Equal, value: blue, effect: NoSchedule}]\n\
         steps: [{at: 0s, scale: {web: 5}}]\nend: 5m",
        taint_and_label,
    );
    let b = baseline(&s, Some("m5.large")).expect("a baseline");
    let pool = &b.scenario.nodepools[0];
    assert_eq!(
        pool.spec.template.metadata.labels.get("team").map(String::as_str),
        Some("blue")
    );
    assert_eq!(pool.spec.template.spec.taints.len(), 1);
    assert_eq!(pool.spec.template.spec.node_class_ref.name, "default");
    let (report, _) = run_sampled(b.scenario);
    assert_eq!(report.summary.pods_never_bound, 0, "{:?}", report.timeline);
    assert_eq!(report.summary.peak_pods_bound, 5);
    assert!(launches(&report).iter().all(|(t, _, _)| t == "m5.large"));
}

#[test]
fn the_default_type_grows_to_the_smallest_m5_that_holds_the_largest_pod() {
    let with_cpu = |cpu: &str| {
        scenario(
            &format!("workloads: [{{name: big, requests: {{cpu: \"{cpu}\"}}}}]\nend: 1m"),
            str::to_string,
        )
    };
    // m5.xlarge has 4 vCPUs, less than 4 allocatable; m5.2xlarge has 8.
    assert_eq!(
        baseline(&with_cpu("3"), None).expect("fits").instance_type,
        "m5.xlarge"
    );
    assert_eq!(
        baseline(&with_cpu("6"), None).expect("fits").instance_type,
        "m5.2xlarge"
    );
    assert_eq!(
        baseline(&with_cpu("40"), None).expect("fits").instance_type,
        "m5.12xlarge"
    );

    let err = baseline(&with_cpu("200"), None)
        .expect_err("nothing fits")
        .to_string();
    assert!(
        err.contains("no m5 size holds every pod") && err.contains("big"),
        "{err}"
    );
    assert!(err.contains("--baseline-type"), "{err}");

    let err = baseline(&with_cpu("6"), Some("m5.xlarge"))
        .expect_err("too small")
        .to_string();
    assert!(err.contains("m5.xlarge") && err.contains("big"), "{err}");
    let err = baseline(&with_cpu("1"), Some("m5.huge"))
        .expect_err("unknown")
        .to_string();
    assert!(err.contains("unknown instance type \"m5.huge\""), "{err}");
}

#[test]
fn an_arm64_pod_rules_out_the_x86_default() {
    let s = scenario(
        "workloads: [{name: batch, requests: {cpu: \"1\"}, nodeSelector: {kubernetes.io/arch: arm64}}]\nend: 1m",
        |m| m.replace("values: [\"amd64\"]", "values: [\"arm64\"]"),
    );
    let err = baseline(&s, None).expect_err("no m5 is arm64").to_string();
    assert!(err.contains("batch"), "{err}");
    // An arm64 type takes it; the pool's own arch requirement gives way to the type.
    let b = baseline(&s, Some("m6g.xlarge")).expect("arm64 fits");
    let (report, _) = run_sampled(b.scenario);
    assert_eq!(report.summary.pods_never_bound, 0);
}

#[test]
fn pools_applied_by_steps_become_node_groups_too() {
    let s = scenario(
        "workloads: [{name: web, requests: {cpu: \"1\"}}]\n\
         steps: [{at: 1m, apply: [{include: pool.yaml}]}]\nend: 2m",
        str::to_string,
    );
    let b = baseline(&s, None).expect("a baseline");
    let applied = &b.scenario.steps[0].apply.nodepools;
    assert_eq!(applied.len(), 1);
    for pool in b.scenario.nodepools.iter().chain(applied) {
        let reqs = &pool.spec.template.spec.requirements;
        let keys: Vec<&str> = reqs.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "kubernetes.io/os",
                "node.kubernetes.io/instance-type",
                "karpenter.sh/capacity-type"
            ],
            "instance category, generation and arch give way to the one type"
        );
        assert!(reqs.iter().all(|r| r.operator == Operator::In));
        assert_eq!(reqs[1].values, ["m5.xlarge"]);
        assert_eq!(reqs[2].values, ["on-demand"]);
        assert_eq!(pool.spec.disruption.consolidate_after, "10m");
        assert_eq!(pool.spec.template.spec.expire_after.as_deref(), Some("Never"));
    }
}
