//! The fleet at a glance, in the spirit of eks-node-viewer: one row per node of ours (type,
//! zone, capacity type, age, $/h, claim state) with what its pods request against what it
//! offers, the claims still in flight, and totals. Built from plain data, rendered as a table
//! or serialized as JSON, so the same view serves the simulator and a live cluster.

use std::fmt::Write as _;

use serde::Serialize;

use crate::nodeclaim::{ClaimState, NodeClaim};
use crate::pod::Millis;
use crate::resources::Resources;
use crate::scheduler::ExistingNode;

/// One node of ours.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeRow {
    pub name: String,
    pub nodeclaim: String,
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: String,
    pub age_seconds: i64,
    pub price_per_hour: f64,
    /// The claim's state (`initialized`, `disrupting`, `terminating`, …).
    pub state: String,
    pub pods: usize,
    pub cpu_requested_millis: i64,
    pub cpu_allocatable_millis: i64,
    pub memory_requested_bytes: i64,
    pub memory_allocatable_bytes: i64,
}

/// A claim whose node has not joined yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimRow {
    pub nodeclaim: String,
    pub nodepool: String,
    pub state: String,
    pub instance_type: Option<String>,
    pub age_seconds: i64,
    pub pods_planned: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    pub nodes: usize,
    pub in_flight: usize,
    /// Nodes on their way out: disrupting (waiting for a replacement) or terminating.
    pub disrupting: usize,
    pub price_per_hour: f64,
    /// Requested over allocatable, over the nodes of ours (0 with none).
    pub cpu_utilization: f64,
    pub memory_utilization: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetStatus {
    pub nodes: Vec<NodeRow>,
    pub in_flight: Vec<ClaimRow>,
    pub totals: Totals,
}

/// The view of `claims` (live ones) and the `nodes` they became, at `now`.
pub fn fleet_status(nodes: &[ExistingNode], claims: &[NodeClaim], now: Millis) -> FleetStatus {
    let mut rows = Vec::new();
    let mut in_flight = Vec::new();
    for claim in claims.iter().filter(|c| c.state != ClaimState::Terminated) {
        let node = claim
            .instance_id()
            .and_then(|id| nodes.iter().find(|n| n.node.instance_id() == Some(id)));
        let age = now.saturating_sub(claim.launched_at.unwrap_or(claim.created_at)) / 1000;
        let Some(n) = node else {
            in_flight.push(ClaimRow {
                nodeclaim: claim.id.clone(),
                nodepool: claim.nodepool.clone(),
                state: state_name(claim),
                instance_type: claim.instance.as_ref().map(|i| i.instance_type.clone()),
                age_seconds: age,
                pods_planned: claim.pods.len(),
            });
            continue;
        };
        let mut requested = Resources::new();
        let running: Vec<_> = n.pods.iter().filter(|p| !p.terminal).collect();
        for p in &running {
            requested.add(&p.requests);
        }
        let instance = claim.instance.as_ref();
        rows.push(NodeRow {
            name: n.node.name.clone(),
            nodeclaim: claim.id.clone(),
            instance_type: instance.map(|i| i.instance_type.clone()).unwrap_or_default(),
            zone: instance.map(|i| i.zone.clone()).unwrap_or_default(),
            capacity_type: instance.map(|i| i.capacity_type.to_string()).unwrap_or_default(),
            age_seconds: age,
            price_per_hour: instance.map_or(0.0, |i| i.price),
            state: state_name(claim),
            pods: running.len(),
            cpu_requested_millis: requested.cpu(),
            cpu_allocatable_millis: n.node.allocatable.cpu(),
            memory_requested_bytes: requested.memory(),
            memory_allocatable_bytes: n.node.allocatable.memory(),
        });
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    in_flight.sort_by(|a, b| a.nodeclaim.cmp(&b.nodeclaim));
    let share = |used: i64, of: i64| if of > 0 { used as f64 / of as f64 } else { 0.0 };
    let totals = Totals {
        nodes: rows.len(),
        in_flight: in_flight.len(),
        disrupting: rows
            .iter()
            .filter(|r| r.state == "disrupting" || r.state == "terminating")
            .count(),
        price_per_hour: rows.iter().fold(0.0, |sum, r| sum + r.price_per_hour),
        cpu_utilization: share(
            rows.iter().map(|r| r.cpu_requested_millis).sum(),
            rows.iter().map(|r| r.cpu_allocatable_millis).sum(),
        ),
        memory_utilization: share(
            rows.iter().map(|r| r.memory_requested_bytes).sum(),
            rows.iter().map(|r| r.memory_allocatable_bytes).sum(),
        ),
    };
    FleetStatus {
        nodes: rows,
        in_flight,
        totals,
    }
}

fn state_name(claim: &NodeClaim) -> String {
    format!("{:?}", claim.state).to_ascii_lowercase()
}

/// `[█████░░░░░]  48%`: a bar `width` cells wide.
fn bar(used: i64, of: i64, width: usize) -> String {
    let share = if of > 0 {
        (used as f64 / of as f64).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let full = (share * width as f64).round() as usize;
    format!(
        "[{}{}] {:>3.0}%",
        "█".repeat(full),
        "░".repeat(width - full),
        share * 100.0
    )
}

fn age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// The view as a terminal table.
pub fn render(status: &FleetStatus) -> String {
    let mut out = String::new();
    let t = &status.totals;
    let _ = writeln!(
        out,
        "{} nodes, ${:.4}/h   cpu {}   memory {}{}{}",
        t.nodes,
        t.price_per_hour,
        bar((t.cpu_utilization * 1000.0) as i64, 1000, 20),
        bar((t.memory_utilization * 1000.0) as i64, 1000, 20),
        if t.in_flight > 0 {
            format!("   {} in flight", t.in_flight)
        } else {
            String::new()
        },
        if t.disrupting > 0 {
            format!("   {} disrupting", t.disrupting)
        } else {
            String::new()
        }
    );
    if !status.nodes.is_empty() {
        let _ = writeln!(
            out,
            "{:<44} {:<14} {:<11} {:<9} {:>5} {:>8} {:<12} {:>4}  {:<17} MEMORY",
            "NODE", "TYPE", "ZONE", "CAPACITY", "AGE", "$/H", "STATE", "PODS", "CPU"
        );
    }
    for r in &status.nodes {
        let _ = writeln!(
            out,
            "{:<44} {:<14} {:<11} {:<9} {:>5} {:>8.4} {:<12} {:>4}  {}  {}",
            r.name,
            r.instance_type,
            r.zone,
            r.capacity_type,
            age(r.age_seconds),
            r.price_per_hour,
            r.state,
            r.pods,
            bar(r.cpu_requested_millis, r.cpu_allocatable_millis, 10),
            bar(r.memory_requested_bytes, r.memory_allocatable_bytes, 10),
        );
    }
    for c in &status.in_flight {
        let _ = writeln!(
            out,
            "  in flight: nodeclaim/{} ({}, {}{}, {}, {} pods planned)",
            c.nodeclaim,
            c.nodepool,
            c.state,
            c.instance_type
                .as_ref()
                .map(|t| format!(" {t}"))
                .unwrap_or_default(),
            age(c.age_seconds),
            c.pods_planned
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::{kubelet_node, launched_claim, pod};

    #[test]
    fn a_node_shows_its_claims_type_price_and_what_its_pods_request() {
        let mut claim = launched_claim("default-1", 0);
        claim.state = ClaimState::Initialized;
        let mut node = kubelet_node(&claim, "node-1", 60_000);
        node.allocatable =
            Resources::from_quantities([("cpu", "2"), ("memory", "8Gi"), ("pods", "29")]).expect("valid");
        let pods = vec![
            pod("a").cpu("500m").memory("1Gi").on_node("node-1").build(),
            pod("b").cpu("500m").memory("1Gi").on_node("node-1").build(),
        ];
        let mut waiting = launched_claim("default-2", 0);
        waiting.state = ClaimState::Launched;
        waiting.instance.as_mut().expect("launched").instance_id = "i-waiting".into();
        let status = fleet_status(&[ExistingNode { node, pods }], &[claim, waiting], 3_600_000);
        let [row] = status.nodes.as_slice() else {
            panic!("one node: {status:?}");
        };
        assert_eq!(row.instance_type, "m5.large");
        assert_eq!(row.pods, 2);
        assert_eq!(
            (row.cpu_requested_millis, row.cpu_allocatable_millis),
            (1000, 2000)
        );
        assert_eq!(row.state, "initialized");
        assert_eq!(status.in_flight.len(), 1);
        assert_eq!(status.totals.cpu_utilization, 0.5);
        let table = render(&status);
        assert!(table.contains("node-1") && table.contains("m5.large"), "{table}");
        assert!(table.contains("[█████░░░░░]  50%"), "{table}");
        assert!(table.contains("in flight: nodeclaim/default-2"), "{table}");
    }

    /// The whole screen, character for character: operators read it, `nodewright status`
    /// prints it, and the README shows it.
    #[test]
    fn render_snapshot() {
        let node = |claim: &NodeClaim, name: &str| {
            let mut node = kubelet_node(claim, name, 0);
            node.allocatable =
                Resources::from_quantities([("cpu", "2"), ("memory", "8Gi"), ("pods", "29")]).expect("valid");
            node
        };
        let mut a = launched_claim("default-7f3k2", 0);
        a.state = ClaimState::Initialized;
        let mut b = launched_claim("default-x9q1m", 1_800_000);
        b.state = ClaimState::Disrupting;
        let c = launched_claim("default-p2n8d", 3_570_000);
        let nodes = vec![
            ExistingNode {
                node: node(&a, "ip-10-0-1-17.ec2.internal"),
                pods: vec![
                    pod("web-0")
                        .cpu("1")
                        .memory("2Gi")
                        .on_node("ip-10-0-1-17.ec2.internal")
                        .build(),
                    pod("web-1")
                        .cpu("500m")
                        .memory("1Gi")
                        .on_node("ip-10-0-1-17.ec2.internal")
                        .build(),
                ],
            },
            ExistingNode {
                node: node(&b, "ip-10-0-2-33.ec2.internal"),
                pods: Vec::new(),
            },
        ];
        let status = fleet_status(&nodes, &[a, b, c], 3_600_000);
        let expected = "\
2 nodes, $0.1920/h   cpu [████████░░░░░░░░░░░░]  38%   memory [████░░░░░░░░░░░░░░░░]  19%   1 in flight   1 disrupting
NODE                                         TYPE           ZONE        CAPACITY    AGE      $/H STATE        PODS  CPU               MEMORY
ip-10-0-1-17.ec2.internal                    m5.large       us-east-1a  on-demand   60m   0.0960 initialized     2  [████████░░]  75%  [████░░░░░░]  38%
ip-10-0-2-33.ec2.internal                    m5.large       us-east-1a  on-demand   30m   0.0960 disrupting      0  [░░░░░░░░░░]   0%  [░░░░░░░░░░]   0%
  in flight: nodeclaim/default-p2n8d (default, launched m5.large, 30s, 0 pods planned)
";
        assert_eq!(render(&status), expected, "got:\n{}", render(&status));
    }
}
