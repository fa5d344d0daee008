//! Properties of disruption sweeps over generated clusters: whatever a sweep decides, it never
//! takes a node a PodDisruptionBudget or `do-not-disrupt` protects, never goes past a pool's
//! budget, never raises the cost of the cluster, and the pods of every node it takes fit on
//! what remains with all their constraints.

use nodewright_core::api::Budget;
use nodewright_core::benchmark::{Rng, consolidation_input};
use nodewright_core::catalog::CapacityType;
use nodewright_core::disruption::budgets::{Reason, allowed};
use nodewright_core::disruption::{SweepInput, plan_sweep};
use nodewright_core::nodeclaim::ClaimState;
use nodewright_core::scheduler::{ExistingNode, Input, schedule};

/// A generated cluster with random budgets and a random share of nodes already disrupting.
fn cluster(seed: u64) -> SweepInput {
    let mut rng = Rng(seed);
    let nodes = 4 + rng.below(40);
    let pods = nodes * (2 + rng.below(12));
    let mut input = consolidation_input(nodes, pods, seed);
    let pool = &mut input.pools[0].nodepool;
    pool.spec.disruption.budgets = match rng.below(4) {
        0 => vec![Budget::nodes("10%")],
        1 => vec![Budget::nodes(&rng.below(5).to_string())],
        2 => vec![Budget::nodes("100%")],
        _ => vec![
            Budget::nodes("50%"),
            Budget {
                nodes: "1".into(),
                reasons: vec!["Underutilized".into()],
                schedule: None,
                duration: None,
            },
        ],
    };
    // Some nodes are already on their way out.
    let leaving = rng.below(3);
    for c in input.claims.iter_mut().take(leaving) {
        c.state = ClaimState::Terminating;
    }
    // Some nodes are protected.
    for n in input.nodes.iter_mut() {
        n.node.do_not_disrupt = rng.below(20) == 0;
    }
    input
}

#[test]
fn sweeps_never_break_a_budget_a_pdb_or_do_not_disrupt_and_never_raise_the_cost() {
    let mut consolidations = 0;
    let mut replacements = 0;
    for seed in 0..60 {
        let input = cluster(seed);
        let plan = plan_sweep(&input);
        let pool = &input.pools[0].nodepool;
        let total = input.claims.len();
        let disrupting = input
            .claims
            .iter()
            .filter(|c| matches!(c.state, ClaimState::Disrupting | ClaimState::Terminating))
            .count();
        let mut taken = 0;
        for d in &plan.decisions {
            if d.reason == Reason::Expired {
                continue;
            }
            taken += d.candidates.len();
            if d.reason == Reason::Underutilized {
                consolidations += 1;
                replacements += usize::from(!d.replacements.is_empty());
            }
            // Budgets: every node taken for a reason fits the allowance for that reason.
            assert!(
                d.candidates.len() <= allowed(pool, d.reason, total, disrupting, input.now),
                "seed {seed}: {:?} took {} with {disrupting} disrupting",
                d.reason,
                d.candidates.len()
            );
            for c in &d.candidates {
                let node = input
                    .nodes
                    .iter()
                    .find(|n| n.node.name == c.node)
                    .expect("a candidate is a node");
                assert!(!node.node.do_not_disrupt, "seed {seed}: a protected node");
                assert!(
                    node.pods.iter().all(|p| !p.do_not_disrupt),
                    "seed {seed}: a protected pod"
                );
                for pdb in &input.pdbs {
                    if !node.pods.iter().any(|p| pdb.selects(p)) {
                        continue;
                    }
                    let all: Vec<_> = input
                        .nodes
                        .iter()
                        .flat_map(|n| n.pods.iter())
                        .filter(|p| pdb.selects(p))
                        .collect();
                    let n = all.len() as u32;
                    assert!(
                        pdb.disruptions_allowed(n, n) > 0,
                        "seed {seed}: PDB {} allows none",
                        pdb.name
                    );
                }
            }
            // Cost: what goes costs more than what comes.
            let going: f64 = d.candidates.iter().map(|c| c.price).sum();
            let coming: f64 = d.replacements.iter().map(|r| r.chosen.price).sum();
            if d.reason != Reason::Drifted {
                assert!(coming < going, "seed {seed}: {coming} ≥ {going}");
                assert!(d.savings_per_hour > 0.0);
            }
            // Spot: a spot node gives way to spot only with enough cheaper types to choose from.
            if d.candidates.iter().any(|c| c.capacity_type == CapacityType::Spot) {
                for r in &d.replacements {
                    if r.chosen.capacity_type == CapacityType::Spot {
                        assert!(
                            r.instance_types.len() >= 15,
                            "seed {seed}: {} types",
                            r.instance_types.len()
                        );
                    }
                }
            }
            // Hard constraints: the candidates' pods fit on the remaining nodes plus the
            // replacements, with nothing new launched.
            let leaving: Vec<&str> = d.candidates.iter().map(|c| c.node.as_str()).collect();
            let mut nodes: Vec<ExistingNode> = input
                .nodes
                .iter()
                .filter(|n| !leaving.contains(&n.node.name.as_str()))
                .cloned()
                .collect();
            for (i, r) in d.replacements.iter().enumerate() {
                let t = input.pools[0]
                    .instance_types
                    .iter()
                    .find(|t| t.name == r.chosen.instance_type)
                    .expect("a catalog type");
                let mut node = nodes[0].node.clone();
                node.name = format!("replacement-{i}");
                node.allocatable = t.allocatable.clone();
                node.labels = t.labels.clone();
                node.labels.extend(r.labels.clone());
                node.labels
                    .insert("kubernetes.io/hostname".into(), node.name.clone());
                node.labels
                    .insert("topology.kubernetes.io/zone".into(), r.chosen.zone.clone());
                node.labels.insert(
                    "karpenter.sh/capacity-type".into(),
                    r.chosen.capacity_type.as_str().into(),
                );
                node.taints = r.taints.clone();
                node.do_not_disrupt = false;
                nodes.push(ExistingNode {
                    node,
                    pods: Vec::new(),
                });
            }
            let pending = d
                .candidates
                .iter()
                .flat_map(|c| c.pods.iter().cloned())
                .map(|mut p| {
                    p.node_name = None;
                    p
                })
                .collect();
            let check = schedule(&Input {
                pending,
                nodes,
                daemonsets: input.daemonsets.clone(),
                now: input.now,
                ..Input::default()
            });
            assert!(
                check.unschedulable.is_empty(),
                "seed {seed}: {:?}",
                check.unschedulable
            );
        }
        assert!(taken <= total, "seed {seed}");
    }
    // The generated clusters do give the sweeps something to decide.
    assert!(consolidations >= 20, "{consolidations} consolidations");
    assert!(replacements >= 1, "{replacements} replacements");
}
