//! One pass of the provisioner: under the cluster's lease, reconcile claims with instances,
//! carry every node's lifecycle a step further, then run a provisioning round. The provisioner
//! Lambda and the simulator call [`run_pass`]; nothing else drives the lifecycle.
//!
//! The lease is taken once and released however the pass ends: normally, at the deadline (no
//! launch starts after it), or by a panic (caught, the lease released, the panic resumed).
//! Every claim write of the pass is fenced with the lease's token, so a pass that lost its
//! lease (paused past its expiry) cannot overwrite its successor's claims.

mod interruption;
mod lease;
mod preview;
mod sweep;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use crate::assemble::split_pods;
use crate::events;
use crate::lifecycle::{self, LifecyclePolicy, LifecycleReport, Observed};
use crate::nodeclaim::NodeClaim;
use crate::pod::Millis;
use crate::ports::{ClaimStore, Cloud, Cluster, PortResult};
use crate::provisioning::{self, ClusterView, RoundConfig, RoundReport};
use crate::reconcile::{self, ReconcilePolicy, ReconcileReport};
use crate::unavailable::UnavailableOfferings;
use crate::wiring::{Ports, lock};

pub use interruption::{InterruptionPassReport, run_interruptions};
pub use lease::{LEASE_MARGIN_MS, check_lease_ttl};
use lease::{Leased, leased};
pub use preview::{RoundPreview, SweepPreview, preview_round, preview_sweep};
pub use sweep::{SweepPassReport, run_sweep};

/// Settings of a pass.
#[derive(Debug, Clone, Default)]
pub struct PassConfig {
    pub round: RoundConfig,
    pub reconcile: ReconcilePolicy,
    pub lifecycle: LifecyclePolicy,
    /// No launch starts at or after this moment (the invocation's deadline less a margin).
    pub deadline: Option<Millis>,
}

/// What a pass did.
#[derive(Debug, Default)]
pub struct PassReport {
    /// False when another holder had the lease and this pass did nothing.
    pub ran: bool,
    /// Who held the lease, and until when, when this pass could not take it.
    pub lease_conflict: Option<String>,
    pub reconciled: ReconcileReport,
    pub lifecycle: LifecycleReport,
    pub round: RoundReport,
    pub events: EventsReport,
    /// NodePool and EC2NodeClass statuses written (best effort, as events).
    pub statuses: EventsReport,
}

/// The Kubernetes events an invocation recorded (best effort: the decisions stand either way).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventsReport {
    pub recorded: usize,
    pub error: Option<String>,
}

/// Records the events, at most as many as [`events::limit`] keeps.
async fn record<C: Cluster>(cluster: &C, all: Vec<events::KubeEvent>) -> EventsReport {
    let kept = events::limit(all);
    if kept.is_empty() {
        return EventsReport::default();
    }
    EventsReport::of(cluster.record_events(&kept).await)
}

impl EventsReport {
    /// What a best-effort write came to.
    fn of(result: PortResult<usize>) -> EventsReport {
        match result {
            Ok(recorded) => EventsReport {
                recorded,
                error: None,
            },
            Err(e) => EventsReport {
                recorded: 0,
                error: Some(e.to_string()),
            },
        }
    }
}

/// Runs one pass. Returns `Ok` with `ran == false` if the lease is held elsewhere.
pub async fn run_pass<C: Cluster, K: Cloud, S: ClaimStore>(
    ports: &Ports<'_, C, K, S>,
    config: &PassConfig,
) -> PortResult<PassReport> {
    let work = |fenced: S| async move { under_lease(&ports.with_store(&fenced), config).await };
    let events_of = |r: &PassReport| events::of_pass(&r.round, &r.lifecycle);
    with_lease(ports, config, work, events_of).await
}

/// A report of work done under the cluster's lease.
trait LeasedReport: Sized {
    /// The report when another holder had the lease (who, until when) and nothing was done.
    fn held_by(holder: String) -> Self;
    fn events_mut(&mut self) -> &mut EventsReport;
}

impl LeasedReport for PassReport {
    fn held_by(holder: String) -> Self {
        PassReport {
            lease_conflict: Some(holder),
            ..PassReport::default()
        }
    }

    fn events_mut(&mut self) -> &mut EventsReport {
        &mut self.events
    }
}

/// Runs `work` under the cluster's lease, then records the events its report calls for.
async fn with_lease<C, K, S, R, F, Fut>(
    ports: &Ports<'_, C, K, S>,
    config: &PassConfig,
    work: F,
    events_of: fn(&R) -> Vec<events::KubeEvent>,
) -> PortResult<R>
where
    C: Cluster,
    S: ClaimStore,
    R: LeasedReport,
    F: FnOnce(S) -> Fut,
    Fut: std::future::Future<Output = PortResult<R>>,
{
    Ok(match leased(ports.store, ports.clock, config, work).await? {
        Leased::Ran(mut report) => {
            *report.events_mut() = record(ports.cluster, events_of(&report)).await;
            report
        }
        Leased::Held(holder) => R::held_by(holder),
    })
}

async fn under_lease<C: Cluster, K: Cloud, S: ClaimStore>(
    ports: &Ports<'_, C, K, S>,
    config: &PassConfig,
) -> PortResult<PassReport> {
    let Ports {
        cluster,
        cloud,
        store,
        clock,
        unavailable,
        ..
    } = *ports;
    let mut report = PassReport {
        ran: true,
        ..PassReport::default()
    };
    report.round.ran = true;
    let actor = config.round.actor.as_str();

    let now = clock.now();
    seed_unavailable(store, unavailable, now).await?;
    let claims = store.list_live().await?;
    let instances = cloud.list_instances().await?;
    let actions = reconcile::reconcile(&claims, &instances, now, &config.reconcile);
    let reconciled = !actions.is_empty();
    report.reconciled = reconcile::apply(actions, cloud, store, now).await;
    let claims = if reconciled {
        store.list_live().await?
    } else {
        claims
    };

    let ReadConfig {
        nodepools: all_pools,
        nodeclasses,
        pools,
        invalid,
        ..
    } = read_config(cluster, cloud).await?;
    report.round.invalid_config = invalid;
    let catalogs: BTreeMap<String, std::sync::Arc<Vec<crate::catalog::InstanceType>>> = pools
        .iter()
        .map(|p| (p.nodeclass.name().to_string(), p.instance_types.clone()))
        .collect();
    let nodes = cluster.list_nodes().await?;
    let bound = cluster.list_bound_pods().await?;
    let mut nodes = split_pods(nodes, bound).nodes;

    let alive: BTreeSet<String> = instances
        .iter()
        .filter(|i| !i.state.is_gone())
        .map(|i| i.id.clone())
        .collect();
    let now = clock.now();
    let observed = Observed {
        claims: &claims,
        nodes: &nodes,
        alive_instances: &alive,
        pools: &pools,
        now,
    };
    let actions = lifecycle::decide(&observed, &config.lifecycle);
    let changed = !actions.is_empty();
    report.lifecycle = lifecycle::apply(actions, cluster, cloud, store, actor, now).await;
    let claims = if changed { store.list_live().await? } else { claims };
    let deleted: BTreeSet<&str> = report
        .lifecycle
        .nodes_deleted
        .iter()
        .map(|d| d.node.as_str())
        .collect();
    nodes.retain(|n| !deleted.contains(n.node.name.as_str()));
    let claims_now = claims.clone();
    let view = round_view(cluster, nodes, claims, pools).await?;
    provisioning::provision(ports, &config.round, view, config.deadline, &mut report.round).await?;
    // Only node classes whose selectors resolved (the others' problem is in invalid_config).
    let mut resolved = BTreeMap::new();
    for class in &nodeclasses {
        if let Ok(Some(r)) = cloud.resolve_nodeclass(class).await {
            resolved.insert(class.name().to_string(), r);
        }
    }
    let updates = crate::config_status::statuses(
        &all_pools,
        &nodeclasses,
        &catalogs,
        &resolved,
        &claims_now,
        &report.round.invalid_config,
        clock.now(),
    );
    if !updates.is_empty() {
        report.statuses = EventsReport::of(cluster.update_statuses(&updates).await);
    }
    Ok(report)
}

/// The configuration as a pass reads it.
struct ReadConfig {
    nodepools: Vec<crate::api::NodePool>,
    nodeclasses: Vec<crate::api::Ec2NodeClass>,
    /// The usable pools with their node classes and catalogs.
    pools: Vec<crate::scheduler::PoolInput>,
    /// Objects that failed validation, and pools left out for their node class.
    invalid: Vec<String>,
    /// Whether every EC2NodeClass parsed: one that does not may still want its instance
    /// profile, so none is pruned then.
    all_classes_read: bool,
}

async fn read_config<C: Cluster, K: Cloud>(cluster: &C, cloud: &K) -> PortResult<ReadConfig> {
    let (nodepools, bad_pools) = cluster.list_nodepools().await?;
    let (nodeclasses, bad_classes) = cluster.list_nodeclasses().await?;
    let all_classes_read = bad_classes.is_empty();
    let mut invalid = bad_pools;
    invalid.extend(bad_classes);
    let pools = provisioning::pool_inputs(cloud, &nodepools, &nodeclasses, &mut invalid).await?;
    Ok(ReadConfig {
        nodepools,
        nodeclasses,
        pools,
        invalid,
        all_classes_read,
    })
}

/// What a provisioning round plans over: the nodes as planning sees them (see
/// [`lifecycle::planning_view`]), the pods that must leave terminating nodes, the DaemonSets.
async fn round_view<C: Cluster>(
    cluster: &C,
    mut nodes: Vec<crate::scheduler::ExistingNode>,
    claims: Vec<NodeClaim>,
    pools: Vec<crate::scheduler::PoolInput>,
) -> PortResult<ClusterView> {
    lifecycle::planning_view(&mut nodes, &claims, &pools);
    let reschedulable = lifecycle::reschedulable_pods(&nodes, &claims);
    let daemonsets = cluster
        .list_daemonsets()
        .await?
        .into_iter()
        .map(|d| d.pod)
        .collect();
    Ok(ClusterView {
        pools,
        nodes,
        reschedulable,
        claims,
        daemonsets,
    })
}

/// Takes the offerings the store holds as out of capacity (an interrupted spot offering, marked
/// by the interruption function) into `unavailable`, so that they steer this pass or sweep too.
async fn seed_unavailable<S: ClaimStore>(
    store: &S,
    unavailable: &Mutex<UnavailableOfferings>,
    now: Millis,
) -> PortResult<()> {
    for mark in store.list_unavailable(now).await? {
        lock(unavailable).mark_until(mark.offering, mark.until);
    }
    Ok(())
}
