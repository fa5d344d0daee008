//! `nodewright history`: the audit trail the functions write to the claims table (every launch,
//! disruption, termination and reconciliation, with its $/h), read over a time range and
//! filtered by node, claim or reason.

use std::collections::BTreeMap;
use std::io::{self, Write};

use anyhow::{anyhow, bail};
use nodewright_core::config_status::rfc3339;
use nodewright_core::nodeclaim::{AuditRecord, NodeClaim};
use nodewright_core::pod::Millis;
use serde::Serialize;

use crate::live::{ConnectArgs, Live};
use crate::plan::{Output, finish, write_rows};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  nodewright history --cluster prod
  nodewright history --cluster prod --since 2h --reason underutilized
  nodewright history --cluster prod --since 2026-12-01T00:00:00Z --until 2026-12-02T00:00:00Z -o json
  nodewright history --cluster prod --node ip-10-0-1-17.ec2.internal")]
pub struct Args {
    #[command(flatten)]
    connect: ConnectArgs,

    /// From when: a duration back from now (`30m`, `2h`, `7d`) or an RFC 3339 time
    /// (`2026-12-01T18:00:00Z`). Records are kept 90 days.
    #[arg(long, value_name = "WHEN", default_value = "24h")]
    since: String,

    /// Until when (included), in the same forms as --since; default: now.
    #[arg(long, value_name = "WHEN")]
    until: Option<String>,

    /// Only the records of the claim that became this node (name or instance id). Claims are
    /// kept a day after they end, so older nodes cannot be matched.
    #[arg(long, value_name = "NAME", conflicts_with = "claim")]
    node: Option<String>,

    /// Only the records of this NodeClaim.
    #[arg(long, value_name = "ID")]
    claim: Option<String>,

    /// Only records whose reason contains this text, in any case (`empty`, `underutilized`,
    /// `drifted`, `pending pods`, …).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,

    /// How to print the records.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    crate::live::runtime()?.block_on(async {
        let live = Live::connect(&args.connect).await?;
        let now = live.clock.now();
        let since = parse_when(&args.since, now).map_err(|e| anyhow!("--since {e}"))?;
        let until = match &args.until {
            Some(text) => parse_when(text, now).map_err(|e| anyhow!("--until {e}"))?,
            None => now,
        };
        if until < since {
            bail!("--until {} is before --since {}", rfc3339(until), rfc3339(since));
        }
        let records = live
            .store
            .audit_records(since, until)
            .await
            .map_err(|e| live.explain(e))?;
        let claims = live.store.all_claims().await.map_err(|e| live.explain(e))?;
        let filter = Filter {
            claims: match &args.node {
                Some(node) => Some(claims_of_node(&claims, node)?),
                None => args.claim.clone().map(|c| vec![c]),
            },
            reason: args.reason.as_ref().map(|r| r.to_lowercase()),
        };
        let nodes: BTreeMap<&str, &str> = claims
            .iter()
            .filter_map(|c| Some((c.id.as_str(), c.node_name.as_deref()?)))
            .collect();
        let rows: Vec<Row> = records
            .iter()
            .filter(|r| filter.keeps(r))
            .map(|r| Row {
                at: rfc3339(r.at),
                action: &r.action,
                nodeclaim: &r.claim_id,
                node: nodes.get(r.claim_id.as_str()).copied(),
                reason: &r.reason,
                delta_per_hour: r.delta_per_hour + 0.0,
                actor: &r.actor,
            })
            .collect();
        let mut out = io::stdout().lock();
        let written = match args.output {
            Output::Table => write_table(&mut out, &rows, since, until),
            Output::Json => serde_json::to_writer_pretty(&mut out, &rows)
                .map_err(io::Error::from)
                .and_then(|()| writeln!(out)),
        };
        finish(written, "writing the history")
    })
}

/// A time from `--since`/`--until`: a duration before `now` or an RFC 3339 time.
fn parse_when(text: &str, now: Millis) -> Result<Millis, String> {
    if let Ok(Some(ago)) = nodewright_core::api::parse_duration(text) {
        return Ok(now.saturating_sub(ago));
    }
    let at: k8s_openapi::jiff::Timestamp = text.parse().map_err(|_| {
        format!("{text:?}: expected a duration such as 30m, 2h or 7d, or an RFC 3339 time such as 2026-12-01T18:00:00Z")
    })?;
    Ok(at.as_millisecond())
}

/// The claims that became `node` (by node name or instance id).
fn claims_of_node(claims: &[NodeClaim], node: &str) -> anyhow::Result<Vec<String>> {
    let ids: Vec<String> = claims
        .iter()
        .filter(|c| c.node_name.as_deref() == Some(node) || c.instance_id() == Some(node))
        .map(|c| c.id.clone())
        .collect();
    if ids.is_empty() {
        bail!(
            "no claim in the table became node {node}: check the name (`kubectl get nodes`), or use --claim (a claim's row is kept a day after it ends)"
        );
    }
    Ok(ids)
}

struct Filter {
    /// Keep only these claims' records.
    claims: Option<Vec<String>>,
    /// Lowercase text the reason must contain.
    reason: Option<String>,
}

impl Filter {
    fn keeps(&self, r: &AuditRecord) -> bool {
        self.claims.as_ref().is_none_or(|ids| ids.contains(&r.claim_id))
            && self
                .reason
                .as_ref()
                .is_none_or(|text| r.reason.to_lowercase().contains(text))
    }
}

#[derive(Serialize)]
struct Row<'a> {
    at: String,
    action: &'a str,
    nodeclaim: &'a str,
    node: Option<&'a str>,
    reason: &'a str,
    delta_per_hour: f64,
    actor: &'a str,
}

fn write_table(out: &mut impl Write, rows: &[Row<'_>], since: Millis, until: Millis) -> io::Result<()> {
    if !rows.is_empty() {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.at.clone(),
                    r.action.to_string(),
                    r.nodeclaim.to_string(),
                    r.node.unwrap_or("-").to_string(),
                    format!("{:+.4}", r.delta_per_hour),
                    r.reason.to_string(),
                ]
            })
            .collect();
        write_rows(
            out,
            &["TIME", "ACTION", "NODECLAIM", "NODE", "$/H", "REASON"],
            &cells,
            &[4],
        )?;
        writeln!(out)?;
    }
    let net = rows.iter().map(|r| r.delta_per_hour).sum::<f64>() + 0.0;
    writeln!(
        out,
        "{} record(s) from {} to {}; net {:+.4} $/h",
        rows.len(),
        rfc3339(since),
        rfc3339(until),
        net
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_780_000_000_000;

    #[test]
    fn since_takes_a_duration_back_from_now_or_a_time() {
        assert_eq!(parse_when("2h", NOW), Ok(NOW - 7_200_000));
        assert_eq!(parse_when("30m", NOW), Ok(NOW - 1_800_000));
        assert_eq!(parse_when("2026-12-01T18:00:00Z", NOW), Ok(1_796_148_000_000));
        assert_eq!(
            parse_when("2026-12-01T19:00:00+01:00", NOW),
            Ok(1_796_148_000_000)
        );
        let err = parse_when("yesterday", NOW).expect_err("not a time");
        assert!(err.contains("RFC 3339"), "{err}");
    }

    #[test]
    fn filters_keep_the_claims_and_reasons_asked_for() {
        let record = |claim: &str, reason: &str| AuditRecord {
            at: NOW,
            actor: "sweeper".into(),
            action: "disrupt".into(),
            claim_id: claim.into(),
            reason: reason.into(),
            delta_per_hour: -0.1,
        };
        let filter = Filter {
            claims: Some(vec!["default-a".into()]),
            reason: Some("underutilized".into()),
        };
        assert!(filter.keeps(&record("default-a", "Underutilized: 2 nodes")));
        assert!(!filter.keeps(&record("default-b", "underutilized")));
        assert!(!filter.keeps(&record("default-a", "empty")));
    }
}
