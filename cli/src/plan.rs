//! `nodewright plan`: the nodes a set of manifests needs, planned offline with the scheduler
//! the provisioner runs and the embedded us-east-1 catalog.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Context;
use nodewright_core::catalog::CapacityType;
use nodewright_core::scheduler::{Plan, PlannedClaim};
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Manifest files or directories (YAML or JSON, read recursively): pods, workloads, nodes,
    /// namespaces, PersistentVolumeClaims, PersistentVolumes, StorageClasses, NodePools and
    /// EC2NodeClasses; other kinds are skipped with a warning.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true, num_args = 1..)]
    files: Vec<PathBuf>,

    /// How to print the plan.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Table,
    Json,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let manifests = nodewright_manifests::read_manifests(&args.files)?;
    for warning in &manifests.warnings {
        eprintln!("warning: {warning}");
    }
    let plan = manifests.plan()?;
    let mut out = io::stdout().lock();
    let written = match args.output {
        Output::Table => write_table(&mut out, &plan),
        Output::Json => write_json(&mut out, &plan),
    };
    match written {
        // `nodewright plan | head` closes the pipe early; that is not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing the plan"),
    }
}

/// Claim names: `<nodepool>-<n>`, counting from 1 within each pool in plan order.
fn claim_names(claims: &[PlannedClaim]) -> Vec<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    claims
        .iter()
        .map(|c| {
            let n = counts.entry(c.nodepool.as_str()).or_default();
            *n += 1;
            format!("{}-{n}", c.nodepool)
        })
        .collect()
}

#[derive(Serialize)]
struct PlanJson<'a> {
    nodeclaims: Vec<ClaimJson<'a>>,
    existing: Vec<ExistingJson<'a>>,
    unschedulable: Vec<UnschedulableJson<'a>>,
    cost_per_hour: f64,
    lower_bound_per_hour: f64,
}

#[derive(Serialize)]
struct ClaimJson<'a> {
    name: String,
    nodepool: &'a str,
    instance_types: &'a [String],
    zones: &'a [String],
    capacity_types: &'a [CapacityType],
    chosen: ChosenJson<'a>,
    pods: &'a [String],
}

#[derive(Serialize)]
struct ChosenJson<'a> {
    instance_type: &'a str,
    zone: &'a str,
    capacity_type: CapacityType,
    price: f64,
}

#[derive(Serialize)]
struct ExistingJson<'a> {
    node: &'a str,
    pods: &'a [String],
}

#[derive(Serialize)]
struct UnschedulableJson<'a> {
    pod: &'a str,
    reason: &'a str,
}

fn write_json(out: &mut impl Write, plan: &Plan) -> io::Result<()> {
    let json = PlanJson {
        nodeclaims: plan
            .new_claims
            .iter()
            .zip(claim_names(&plan.new_claims))
            .map(|(c, name)| ClaimJson {
                name,
                nodepool: &c.nodepool,
                instance_types: &c.instance_types,
                zones: &c.zones,
                capacity_types: &c.capacity_types,
                chosen: ChosenJson {
                    instance_type: &c.chosen.instance_type,
                    zone: &c.chosen.zone,
                    capacity_type: c.chosen.capacity_type,
                    price: c.chosen.price,
                },
                pods: &c.pods,
            })
            .collect(),
        existing: plan
            .existing
            .iter()
            .map(|(node, pods)| ExistingJson { node, pods })
            .collect(),
        unschedulable: plan
            .unschedulable
            .iter()
            .map(|u| UnschedulableJson {
                pod: &u.pod,
                reason: &u.reason,
            })
            .collect(),
        cost_per_hour: positive_zero(plan.cost_per_hour),
        lower_bound_per_hour: positive_zero(plan.lower_bound_per_hour),
    };
    serde_json::to_writer_pretty(&mut *out, &json)?;
    writeln!(out)
}

/// Rust sums an empty list of `f64` to `-0.0`; a plan with no claims costs `0`.
fn positive_zero(dollars: f64) -> f64 {
    dollars + 0.0
}

/// Alternatives shown per claim in the table; the JSON lists them all.
const ALTERNATIVES: usize = 3;

fn write_table(out: &mut impl Write, plan: &Plan) -> io::Result<()> {
    if !plan.new_claims.is_empty() {
        let rows: Vec<Vec<String>> = plan
            .new_claims
            .iter()
            .zip(claim_names(&plan.new_claims))
            .map(|(c, name)| {
                let others: Vec<&str> = c
                    .instance_types
                    .iter()
                    .filter(|t| **t != c.chosen.instance_type)
                    .map(String::as_str)
                    .collect();
                let mut alternatives = others
                    .iter()
                    .take(ALTERNATIVES)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ");
                if others.len() > ALTERNATIVES {
                    alternatives.push_str(&format!(" (+{} more)", others.len() - ALTERNATIVES));
                }
                vec![
                    name,
                    c.nodepool.clone(),
                    c.chosen.instance_type.clone(),
                    c.chosen.zone.clone(),
                    c.chosen.capacity_type.to_string(),
                    format!("{:.4}", c.chosen.price),
                    c.pods.len().to_string(),
                    alternatives,
                ]
            })
            .collect();
        let header = [
            "NODECLAIM",
            "NODEPOOL",
            "INSTANCE TYPE",
            "ZONE",
            "CAPACITY",
            "$/H",
            "PODS",
            "ALTERNATIVES",
        ];
        write_rows(out, &header, &rows, &[5, 6])?;
        writeln!(out)?;
    }
    if !plan.existing.is_empty() {
        let rows: Vec<Vec<String>> = plan
            .existing
            .iter()
            .map(|(node, pods)| vec![node.clone(), pods.len().to_string(), pods.join(", ")])
            .collect();
        write_rows(out, &["EXISTING NODE", "TAKES", "PODS"], &rows, &[1])?;
        writeln!(out)?;
    }
    if !plan.unschedulable.is_empty() {
        let rows: Vec<Vec<String>> = plan
            .unschedulable
            .iter()
            .map(|u| vec![u.pod.clone(), u.reason.clone()])
            .collect();
        write_rows(out, &["UNSCHEDULABLE POD", "REASON"], &rows, &[])?;
        writeln!(out)?;
    }
    let above = if plan.lower_bound_per_hour > 0.0 {
        format!(
            " ({:.1}% above)",
            (plan.cost_per_hour / plan.lower_bound_per_hour - 1.0) * 100.0
        )
    } else {
        String::new()
    };
    writeln!(
        out,
        "{} new node(s) at ${:.4}/h; lower bound ${:.4}/h{above}; {} pod(s) on existing nodes; {} unschedulable",
        plan.new_claims.len(),
        positive_zero(plan.cost_per_hour),
        positive_zero(plan.lower_bound_per_hour),
        plan.existing.iter().map(|(_, pods)| pods.len()).sum::<usize>(),
        plan.unschedulable.len(),
    )
}

/// Aligned columns; the columns in `right` (numbers) line up on the right.
fn write_rows(
    out: &mut impl Write,
    header: &[&str],
    rows: &[Vec<String>],
    right: &[usize],
) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let padded: Vec<String> = cells
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if right.contains(&i) {
                    format!("{cell:>w$}")
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    writeln!(out, "{}", line(&mut header.iter().copied()))?;
    for row in rows {
        writeln!(out, "{}", line(&mut row.iter().map(String::as_str)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use nodewright_core::scheduler::{ChosenOffering, Unschedulable};

    use super::*;

    fn claim(nodepool: &str, chosen: &str, types: &[&str], pods: &[&str]) -> PlannedClaim {
        PlannedClaim {
            nodepool: nodepool.into(),
            nodeclass: "default".into(),
            instance_types: types.iter().map(|t| t.to_string()).collect(),
            zones: vec!["us-east-1a".into(), "us-east-1b".into()],
            capacity_types: vec![CapacityType::OnDemand],
            chosen: ChosenOffering {
                instance_type: chosen.into(),
                zone: "us-east-1a".into(),
                capacity_type: CapacityType::OnDemand,
                price: 0.0765,
            },
            pods: pods.iter().map(|p| p.to_string()).collect(),
            requests: Default::default(),
            labels: Default::default(),
            taints: Vec::new(),
            startup_taints: Vec::new(),
        }
    }

    fn plan() -> Plan {
        Plan {
            new_claims: vec![
                claim(
                    "default",
                    "c6a.large",
                    &["c6a.large", "c5a.large", "c6i.large", "m6a.large", "m5.large"],
                    &["shop/web-0", "shop/web-1"],
                ),
                claim("batch", "m5.large", &["m5.large"], &["shop/report-0"]),
                claim("default", "c6a.large", &["c6a.large"], &["shop/web-2"]),
            ],
            existing: vec![("ip-10-0-1-10".into(), vec!["shop/api-0".into()])],
            in_flight: Vec::new(),
            unschedulable: vec![Unschedulable {
                pod: "shop/huge".into(),
                reason: "no instance type has 512 cpu".into(),
            }],
            cost_per_hour: 0.2295,
            lower_bound_per_hour: 0.17,
        }
    }

    #[test]
    fn an_empty_plan_costs_zero_not_negative_zero() {
        let empty = Plan {
            cost_per_hour: -0.0,
            ..Plan::default()
        };
        let mut out = Vec::new();
        write_json(&mut out, &empty).expect("written");
        let text = String::from_utf8(out).expect("UTF-8");
        assert!(text.contains("\"cost_per_hour\": 0.0"), "{text}");
        let mut out = Vec::new();
        write_table(&mut out, &empty).expect("written");
        let text = String::from_utf8(out).expect("UTF-8");
        assert!(text.starts_with("0 new node(s) at $0.0000/h"), "{text}");
    }

    #[test]
    fn claims_are_numbered_within_their_pool_in_plan_order() {
        assert_eq!(
            claim_names(&plan().new_claims),
            ["default-1", "batch-1", "default-2"]
        );
    }

    #[test]
    fn json_has_the_documented_shape() {
        let mut out = Vec::new();
        write_json(&mut out, &plan()).expect("written");
        let json: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(
            json["nodeclaims"][0],
            serde_json::json!({
                "name": "default-1",
                "nodepool": "default",
                "instance_types": ["c6a.large", "c5a.large", "c6i.large", "m6a.large", "m5.large"],
                "zones": ["us-east-1a", "us-east-1b"],
                "capacity_types": ["on-demand"],
                "chosen": {"instance_type": "c6a.large", "zone": "us-east-1a", "capacity_type": "on-demand", "price": 0.0765},
                "pods": ["shop/web-0", "shop/web-1"],
            })
        );
        assert_eq!(
            json["existing"],
            serde_json::json!([{"node": "ip-10-0-1-10", "pods": ["shop/api-0"]}])
        );
        assert_eq!(
            json["unschedulable"],
            serde_json::json!([{"pod": "shop/huge", "reason": "no instance type has 512 cpu"}])
        );
        assert_eq!(json["cost_per_hour"], 0.2295);
        assert_eq!(json["lower_bound_per_hour"], 0.17);
    }

    #[test]
    fn table_lists_claims_existing_nodes_unschedulable_pods_and_totals() {
        let mut out = Vec::new();
        write_table(&mut out, &plan()).expect("written");
        let text = String::from_utf8(out).expect("UTF-8");
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("NODECLAIM  NODEPOOL  INSTANCE TYPE"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("default-1  default   c6a.large      us-east-1a  on-demand  0.0765     2"),
            "{text}"
        );
        assert!(
            lines[1].ends_with("c5a.large, c6i.large, m6a.large (+1 more)"),
            "{text}"
        );
        assert!(text.contains("ip-10-0-1-10       1  shop/api-0"), "{text}");
        assert!(
            text.contains("shop/huge          no instance type has 512 cpu"),
            "{text}"
        );
        assert_eq!(
            lines.last().copied(),
            Some(
                "3 new node(s) at $0.2295/h; lower bound $0.1700/h (35.0% above); 1 pod(s) on existing nodes; 1 unschedulable"
            )
        );
    }
}
