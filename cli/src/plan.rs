//! `nodewright plan`: the nodes a set of manifests needs, planned offline with the scheduler
//! the provisioner runs and the embedded us-east-1 catalog; or, with `--cluster`, the plan the
//! provisioner's next round would make against the live cluster and its claims table
//! (`--disruption`: what the next sweep would disrupt), launching nothing.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Context;
use nodewright_core::catalog::CapacityType;
use nodewright_core::scheduler::{Plan, PlannedClaim};
use serde::Serialize;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  nodewright plan -f infra/examples/default-nodepool.yaml -f infra/examples/plan/
  nodewright plan --cluster prod --region eu-west-1 -o json
  nodewright plan --cluster prod --disruption")]
pub struct Args {
    /// Manifest files or directories (YAML or JSON, read recursively): pods, workloads, nodes,
    /// namespaces, PersistentVolumeClaims, PersistentVolumes, StorageClasses, NodePools and
    /// EC2NodeClasses; other kinds are skipped with a warning.
    #[arg(short = 'f', long = "filename", value_name = "PATH", num_args = 1..)]
    #[cfg_attr(not(feature = "live"), arg(required = true))]
    #[cfg_attr(
        feature = "live",
        arg(required_unless_present = "cluster", conflicts_with = "cluster")
    )]
    files: Vec<PathBuf>,

    /// Plan against this live cluster and its claims table instead of manifests.
    #[cfg(feature = "live")]
    #[command(flatten)]
    live: LiveArgs,

    /// How to print the plan.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub(crate) output: Output,
}

impl Args {
    /// The live cluster to plan against, and whether to plan its next sweep, when `--cluster`
    /// is given.
    #[cfg(feature = "live")]
    pub(crate) fn live_target(&self) -> Option<(crate::live::ConnectArgs, bool)> {
        let cluster = self.live.cluster.clone()?;
        let connect = crate::live::ConnectArgs {
            cluster,
            region: self.live.region.clone(),
            kubeconfig: self.live.kubeconfig.clone(),
            table: self.live.table.clone(),
        };
        Some((connect, self.live.disruption))
    }
}

/// `--cluster` and what goes with it; optional here, unlike in `status` and `history`.
#[cfg(feature = "live")]
#[derive(Debug, clap::Args)]
struct LiveArgs {
    /// The live cluster to plan against (the EKS cluster and the stack's `ClusterName`).
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,

    /// The AWS region; default: the environment or profile.
    #[arg(long, value_name = "REGION", requires = "cluster")]
    region: Option<String>,

    /// Reach the API server with this kubeconfig instead of EKS and your AWS credentials.
    #[arg(long, value_name = "PATH", requires = "cluster")]
    kubeconfig: Option<PathBuf>,

    /// The claims table; default `nodewright-<cluster>-claims`.
    #[arg(long, value_name = "TABLE", requires = "cluster")]
    table: Option<String>,

    /// Show what the next disruption sweep would do instead: the nodes it would take, why,
    /// their replacements and the $/h saved; and the nodes something protects.
    #[arg(long, requires = "cluster")]
    disruption: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    Table,
    Json,
}

/// Plans the manifests' pending pods (`--cluster` goes to [`crate::live_plan`] instead).
pub fn run(args: &Args) -> anyhow::Result<()> {
    let manifests = nodewright_manifests::read_manifests(&args.files)?;
    for warning in &manifests.warnings {
        eprintln!("warning: {warning}");
    }
    let plan = manifests.plan()?;
    print_plan(&plan, args.output)
}

/// Prints a plan to stdout as the table or the JSON document.
pub(crate) fn print_plan(plan: &Plan, output: Output) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    let written = match output {
        Output::Table => write_table(&mut out, plan),
        Output::Json => write_json(&mut out, plan),
    };
    finish(written, "writing the plan")
}

/// A write's result; `nodewright plan | head` closes the pipe early, which is not a failure.
pub(crate) fn finish(written: io::Result<()>, what: &'static str) -> anyhow::Result<()> {
    match written {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context(what),
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
    /// Claims launched but not yet nodes that take pending pods: only a live plan has them,
    /// so an offline plan's document keeps its shape.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    in_flight: Vec<InFlightJson<'a>>,
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
struct InFlightJson<'a> {
    nodeclaim: &'a str,
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
            .map(|a| ExistingJson {
                node: &a.host,
                pods: &a.pods,
            })
            .collect(),
        in_flight: plan
            .in_flight
            .iter()
            .filter(|a| !a.pods.is_empty())
            .map(|a| InFlightJson {
                nodeclaim: &a.host,
                pods: &a.pods,
            })
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
            .map(|a| vec![a.host.clone(), a.pods.len().to_string(), a.pods.join(", ")])
            .collect();
        write_rows(out, &["EXISTING NODE", "TAKES", "PODS"], &rows, &[1])?;
        writeln!(out)?;
    }
    let in_flight: Vec<Vec<String>> = plan
        .in_flight
        .iter()
        .filter(|a| !a.pods.is_empty())
        .map(|a| vec![a.host.clone(), a.pods.len().to_string(), a.pods.join(", ")])
        .collect();
    if !in_flight.is_empty() {
        write_rows(out, &["IN-FLIGHT NODECLAIM", "TAKES", "PODS"], &in_flight, &[1])?;
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
        plan.existing.iter().map(|a| a.pods.len()).sum::<usize>(),
        plan.unschedulable.len(),
    )
}

/// Aligned columns; the columns in `right` (numbers) line up on the right.
pub(crate) fn write_rows(
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
    use nodewright_core::scheduler::Assignment;

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
            overrides: Vec::new(),
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
            existing: vec![Assignment::new("ip-10-0-1-10", &["shop/api-0"])],
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
