//! `nodewright plan --cluster`: the provisioner's next round, or with `--disruption` the
//! sweeper's next sweep, decided by the core's own functions over what the cluster and the
//! claims table say now ([`nodewright_core::pass::preview_round`], [`preview_sweep`]), and
//! printed. Nothing is launched, written or taken.

use std::io::{self, Write};

use nodewright_core::disruption::SweepPlan;
use nodewright_core::pass::{preview_round, preview_sweep};
use serde::Serialize;

use crate::live::{ConnectArgs, Live};
use crate::plan::{Output, finish, print_plan, write_rows};

pub fn run(connect: &ConnectArgs, disruption: bool, output: Output) -> anyhow::Result<()> {
    crate::live::runtime()?.block_on(async {
        let live = Live::connect(connect).await?;
        if disruption {
            let preview = preview_sweep(&live.cluster, &live.cloud, &live.store, live.clock.as_ref())
                .await
                .map_err(|e| live.explain(e))?;
            warn(&preview.invalid_config);
            let mut out = io::stdout().lock();
            let written = match output {
                Output::Table => write_sweep_table(&mut out, &preview.plan),
                Output::Json => write_sweep_json(&mut out, &preview.plan),
            };
            finish(written, "writing the disruption plan")
        } else {
            let preview = preview_round(&live.cluster, &live.cloud, &live.store, live.clock.as_ref())
                .await
                .map_err(|e| live.explain(e))?;
            warn(&preview.invalid_config);
            eprintln!(
                "cluster {}: {} pending pod(s); nothing was launched",
                live.name, preview.pods_pending
            );
            print_plan(&preview.plan, output)
        }
    })
}

fn warn(invalid: &[String]) {
    for problem in invalid {
        eprintln!("warning: {problem}");
    }
}

#[derive(Serialize)]
struct SweepJson<'a> {
    decisions: Vec<DecisionJson<'a>>,
    blocked: Vec<BlockedJson<'a>>,
    savings_per_hour: f64,
}

#[derive(Serialize)]
struct DecisionJson<'a> {
    reason: &'static str,
    nodes: Vec<CandidateJson<'a>>,
    replacements: Vec<ReplacementJson<'a>>,
    savings_per_hour: f64,
}

#[derive(Serialize)]
struct CandidateJson<'a> {
    node: &'a str,
    nodeclaim: &'a str,
    nodepool: &'a str,
    instance_type: Option<&'a str>,
    price: f64,
    pods: Vec<String>,
}

#[derive(Serialize)]
struct ReplacementJson<'a> {
    nodepool: &'a str,
    instance_type: &'a str,
    zone: &'a str,
    capacity_type: nodewright_core::catalog::CapacityType,
    price: f64,
    pods: &'a [String],
}

#[derive(Serialize)]
struct BlockedJson<'a> {
    node: &'a str,
    reason: &'a str,
}

fn write_sweep_json(out: &mut impl Write, plan: &SweepPlan) -> io::Result<()> {
    let json = SweepJson {
        decisions: plan
            .decisions
            .iter()
            .map(|d| DecisionJson {
                reason: d.reason.as_str(),
                nodes: d
                    .candidates
                    .iter()
                    .map(|c| CandidateJson {
                        node: &c.node,
                        nodeclaim: &c.claim.id,
                        nodepool: &c.claim.nodepool,
                        instance_type: c.claim.instance.as_ref().map(|i| i.instance_type.as_str()),
                        price: c.price,
                        pods: c.pods.iter().map(|p| p.key()).collect(),
                    })
                    .collect(),
                replacements: d
                    .replacements
                    .iter()
                    .map(|r| ReplacementJson {
                        nodepool: &r.nodepool,
                        instance_type: &r.chosen.instance_type,
                        zone: &r.chosen.zone,
                        capacity_type: r.chosen.capacity_type,
                        price: r.chosen.price,
                        pods: &r.pods,
                    })
                    .collect(),
                savings_per_hour: d.savings_per_hour + 0.0,
            })
            .collect(),
        blocked: plan
            .blocked
            .iter()
            .map(|p| BlockedJson {
                node: &p.node,
                reason: &p.reason,
            })
            .collect(),
        savings_per_hour: total_savings(plan),
    };
    serde_json::to_writer_pretty(&mut *out, &json)?;
    writeln!(out)
}

fn total_savings(plan: &SweepPlan) -> f64 {
    // `+ 0.0`: an empty sum is -0.0, which would print as such.
    plan.decisions.iter().map(|d| d.savings_per_hour).sum::<f64>() + 0.0
}

fn write_sweep_table(out: &mut impl Write, plan: &SweepPlan) -> io::Result<()> {
    if !plan.decisions.is_empty() {
        let mut rows = Vec::new();
        for d in &plan.decisions {
            let replacement = if d.replacements.is_empty() {
                "-".to_string()
            } else {
                d.replacements
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {} ${:.4}/h",
                            r.chosen.instance_type, r.chosen.zone, r.chosen.price
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            for (i, c) in d.candidates.iter().enumerate() {
                // The decision's replacement and saving are shown once, on its first node.
                let first = i == 0;
                rows.push(vec![
                    d.reason.as_str().to_string(),
                    c.node.clone(),
                    c.claim.id.clone(),
                    c.claim
                        .instance
                        .as_ref()
                        .map_or_else(String::new, |i| i.instance_type.clone()),
                    format!("{:.4}", c.price),
                    c.pods.len().to_string(),
                    if first { replacement.clone() } else { String::new() },
                    if first {
                        format!("{:.4}", d.savings_per_hour + 0.0)
                    } else {
                        String::new()
                    },
                ]);
            }
        }
        let header = [
            "REASON",
            "NODE",
            "NODECLAIM",
            "TYPE",
            "$/H",
            "PODS",
            "REPLACEMENT",
            "SAVES $/H",
        ];
        write_rows(out, &header, &rows, &[4, 5, 7])?;
        writeln!(out)?;
    }
    if !plan.blocked.is_empty() {
        let rows: Vec<Vec<String>> = plan
            .blocked
            .iter()
            .map(|p| vec![p.node.clone(), p.reason.clone()])
            .collect();
        write_rows(out, &["PROTECTED NODE", "WHY"], &rows, &[])?;
        writeln!(out)?;
    }
    let nodes: usize = plan.decisions.iter().map(|d| d.candidates.len()).sum();
    writeln!(
        out,
        "{} disruption(s) of {nodes} node(s), saving ${:.4}/h; {} node(s) protected",
        plan.decisions.len(),
        total_savings(plan),
        plan.blocked.len()
    )
}

#[cfg(test)]
mod tests {
    use nodewright_core::builders::launched_claim;
    use nodewright_core::catalog::CapacityType;
    use nodewright_core::disruption::{Candidate, Decision, Protected, Reason};

    use super::*;

    fn candidate(id: &str, node: &str) -> Candidate {
        Candidate {
            claim: launched_claim(id, 0),
            node: node.into(),
            pods: Vec::new(),
            price: 0.096,
            capacity_type: CapacityType::OnDemand,
            empty: true,
            settled: true,
            underutilized_allowed: true,
            disruptable: true,
            blocked_by: None,
            expired: false,
            drifted: false,
            disruption_cost: 0.0,
        }
    }

    fn plan() -> SweepPlan {
        SweepPlan {
            pod_events: Vec::new(),
            decisions: vec![Decision {
                reason: Reason::Empty,
                candidates: vec![candidate("default-a", "node-a"), candidate("default-b", "node-b")],
                replacements: Vec::new(),
                savings_per_hour: 0.192,
            }],
            blocked: vec![Protected {
                node: "node-c".into(),
                reason: "pod default/db-0 has karpenter.sh/do-not-disrupt".into(),
            }],
        }
    }

    #[test]
    fn the_table_names_each_node_its_reason_and_the_saving() {
        let mut out = Vec::new();
        write_sweep_table(&mut out, &plan()).expect("written");
        let text = String::from_utf8(out).expect("UTF-8");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("REASON  NODE    NODECLAIM  TYPE"), "{text}");
        assert!(
            lines[1].starts_with("empty   node-a  default-a  m5.large  0.0960"),
            "{text}"
        );
        assert!(lines[1].ends_with("  -               0.1920"), "{text}");
        // The decision's replacement and saving are on its first node only.
        assert!(lines[2].ends_with("m5.large  0.0960     0"), "{text}");
        assert!(text.contains("node-c          pod default/db-0 has"), "{text}");
        assert_eq!(
            lines.last().copied(),
            Some("1 disruption(s) of 2 node(s), saving $0.1920/h; 1 node(s) protected")
        );
    }

    #[test]
    fn the_json_lists_decisions_with_their_nodes_and_the_protected_nodes() {
        let mut out = Vec::new();
        write_sweep_json(&mut out, &plan()).expect("written");
        let json: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(json["decisions"][0]["reason"], "empty");
        assert_eq!(json["decisions"][0]["nodes"][1]["node"], "node-b");
        assert_eq!(json["decisions"][0]["nodes"][1]["nodeclaim"], "default-b");
        assert_eq!(json["decisions"][0]["savings_per_hour"], 0.192);
        assert_eq!(json["blocked"][0]["node"], "node-c");
        assert_eq!(json["savings_per_hour"], 0.192);
        let mut out = Vec::new();
        write_sweep_json(&mut out, &SweepPlan::default()).expect("written");
        let json: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(json["savings_per_hour"].to_string(), "0.0");
    }
}
