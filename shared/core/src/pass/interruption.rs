//! A batch of interruption notices, and the pass that acts on them at once.

use std::collections::BTreeMap;

use super::{EventsReport, PassConfig, PassReport, record, run_pass};
use crate::events;
use crate::interruption::{InterruptionReport, Notice, Rebalance};
use crate::lifecycle;
use crate::nodeclaim::NodeClaim;
use crate::ports::{ClaimStore, Cloud, Cluster, PortResult};
use crate::wiring::Ports;

/// What handling a batch of interruption notices did.
#[derive(Debug, Default)]
pub struct InterruptionPassReport {
    pub interruption: InterruptionReport,
    /// The provisioning pass that drained the nodes and launched their replacements; `None`
    /// when no claim changed. `ran == false` when another pass held the lease: the notices are
    /// then to be retried (they change nothing twice), so that a pass runs for them.
    pub pass: Option<PassReport>,
    pub events: EventsReport,
}

/// Handles interruption notices: moves the affected claims of ours into graceful termination
/// (marking interrupted spot offerings unavailable in the store), then runs a pass at once so
/// that their nodes are tainted and drained and their pods' replacements launched now, not at
/// the next minute.
pub async fn run_interruptions<C: Cluster, K: Cloud, S: ClaimStore>(
    notices: &[Notice],
    rebalance: Rebalance,
    ports: &Ports<'_, C, K, S>,
    config: &PassConfig,
) -> PortResult<InterruptionPassReport> {
    let Ports {
        cluster,
        store,
        clock,
        ..
    } = *ports;
    let claims = store.list_live().await?;
    let by_instance: BTreeMap<String, NodeClaim> = claims
        .into_iter()
        .filter_map(|c| Some((c.instance_id()?.to_string(), c)))
        .collect();
    let (nodepools, _) = cluster.list_nodepools().await?;
    let grace = |pool: &str| {
        nodepools
            .iter()
            .find(|p| p.name() == pool)
            .and_then(lifecycle::termination_grace)
    };
    let now = clock.now();
    let actions = crate::interruption::plan(notices, &by_instance, rebalance, &grace, now);
    let mut report = InterruptionPassReport {
        interruption: crate::interruption::apply(actions, store, now).await,
        pass: None,
        events: EventsReport::default(),
    };
    let node_of: BTreeMap<String, String> = by_instance
        .values()
        .filter_map(|c: &NodeClaim| Some((c.id.clone(), c.node_name.clone()?)))
        .collect();
    report.events = record(cluster, events::of_interruptions(&report.interruption, &node_of)).await;
    let i = &report.interruption;
    if !i.draining.is_empty() || !i.gone.is_empty() {
        report.pass = Some(run_pass(ports, config).await?);
    }
    Ok(report)
}
