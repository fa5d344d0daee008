//! Cost property: on random mixes of pods without constraints, what the plan costs over the
//! lower bound whatever the pool allows — capacity types, architectures, categories, zones.
//! Every configuration below is planned with a mix drawn from a fixed seed; the worst ratio and
//! every configuration over the 1.10× target are printed
//! (`cargo test --release --test plan_cost -- --nocapture`).
//!
//! The bound is the larger of the fractional cover and, for rounds of few shapes, the
//! configuration LP of bin packing (whole pods per node), so the ratio measures packing loss,
//! not the looseness of the bound. The target is not met on every configuration yet (pools
//! with burstable types miss it by up to 18%): the assertion holds the worst ratio seen today
//! so that packing never gets worse, and the configurations over the target are listed.

use nodewright_core::benchmark::Rng;
use nodewright_core::builders::{nodepool, pod, pool_input};
use nodewright_core::labels;
use nodewright_core::pod::Pod;
use nodewright_core::requirements::Operator;
use nodewright_core::scheduler::{Input, schedule};

/// Where packing should be on every configuration.
const TARGET: f64 = 1.10;
/// The worst ratio seen today (1.18×, spot and on-demand amd64 with burstable types in two
/// zones): no change may exceed it.
const GUARD: f64 = 1.20;

/// (cpu, memory) of the shapes a mix draws from: CPU-heavy to memory-heavy.
const SHAPES: [(&str, &str); 8] = [
    ("100m", "128Mi"),
    ("250m", "2Gi"),
    ("500m", "512Mi"),
    ("500m", "4Gi"),
    ("1", "1Gi"),
    ("1", "4Gi"),
    ("2", "2Gi"),
    ("4", "16Gi"),
];

/// 1 to 4 shapes in random proportions, 150 to 800 pods.
fn mix(rng: &mut Rng) -> Vec<Pod> {
    let kinds = 1 + rng.below(4);
    let shapes: Vec<(&str, &str)> = (0..kinds).map(|_| SHAPES[rng.below(SHAPES.len())]).collect();
    let weights: Vec<usize> = (0..kinds).map(|_| 1 + rng.below(4)).collect();
    let total: usize = weights.iter().sum();
    let count = 150 + rng.below(650);
    (0..count)
        .map(|i| {
            let mut pick = rng.below(total);
            let mut s = 0;
            while pick >= weights[s] {
                pick -= weights[s];
                s += 1;
            }
            let (cpu, memory) = shapes[s];
            pod(&format!("p{i}"))
                .cpu(cpu)
                .memory(memory)
                .created_at(i as i64)
                .build()
        })
        .collect()
}

#[test]
fn unconstrained_pods_never_cost_more_over_the_lower_bound_than_today_on_any_pool_configuration() {
    let capacity_types: [&[&str]; 3] = [&["spot"], &["on-demand"], &["spot", "on-demand"]];
    let arches: [&[&str]; 3] = [&["amd64"], &["arm64"], &["amd64", "arm64"]];
    let categories: [&[&str]; 4] = [&["c", "m", "r"], &["m"], &["c", "r"], &["c", "m", "r", "t"]];
    let zones: [&[&str]; 3] = [&[], &["us-east-1a"], &["us-east-1b", "us-east-1d"]];
    let mut rng = Rng(7);
    let mut worst = (0.0f64, String::new());
    let mut failures = Vec::new();
    let mut over_target = Vec::new();
    for ct in capacity_types {
        for arch in arches {
            for cats in categories {
                for z in zones {
                    let mut pool = nodepool("default")
                        .requirement(labels::CAPACITY_TYPE, Operator::In, ct)
                        .requirement(labels::ARCH, Operator::In, arch)
                        .requirement(labels::INSTANCE_CATEGORY, Operator::In, cats)
                        .requirement(labels::INSTANCE_GENERATION, Operator::Gt, &["2"]);
                    if !z.is_empty() {
                        pool = pool.requirement(labels::ZONE, Operator::In, z);
                    }
                    let input = Input {
                        pending: mix(&mut rng),
                        pools: vec![pool_input(pool.build())],
                        ..Input::default()
                    };
                    let plan = schedule(&input);
                    let mut shapes: std::collections::BTreeMap<String, usize> = Default::default();
                    for p in &input.pending {
                        *shapes
                            .entry(format!("{}m/{}Mi", p.requests.cpu(), p.requests.memory() >> 20))
                            .or_default() += 1;
                    }
                    let what = format!(
                        "{ct:?} {arch:?} {cats:?} zones {z:?}, {shapes:?}: ${:.3}/h vs ${:.3}/h",
                        plan.cost_per_hour, plan.lower_bound_per_hour
                    );
                    assert!(
                        plan.unschedulable.is_empty(),
                        "{what}: {:?}",
                        plan.unschedulable.first()
                    );
                    let ratio = plan.cost_per_hour / plan.lower_bound_per_hour;
                    // A bound above what the plan pays is no bound.
                    assert!(ratio >= 1.0 - 1e-9, "{what}: the bound exceeds the plan");
                    if ratio > worst.0 {
                        worst = (ratio, what.clone());
                    }
                    if ratio > TARGET {
                        over_target.push(format!("{ratio:.3}× {what}"));
                    }
                    if ratio > GUARD {
                        failures.push(format!("{ratio:.3}× {what}"));
                    }
                }
            }
        }
    }
    println!("worst cost / lower bound: {:.3}× ({})", worst.0, worst.1);
    println!(
        "{} configurations over {TARGET}×:\n{}",
        over_target.len(),
        over_target.join("\n")
    );
    assert!(failures.is_empty(), "over {GUARD}×:\n{}", failures.join("\n"));
}
