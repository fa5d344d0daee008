//! What the next round or sweep would decide, read and decided but not acted on.

use std::sync::Mutex;

use super::sweep::sweep_input;
use super::{read_config, round_view, seed_unavailable};
use crate::assemble::split_pods;
use crate::ports::{ClaimStore, Clock, Cloud, Cluster, PortResult};
use crate::provisioning;
use crate::unavailable::UnavailableOfferings;
use crate::wiring::lock;

/// What the provisioner's round would plan now, decided and not acted on.
#[derive(Debug, Clone, Default)]
pub struct RoundPreview {
    pub plan: crate::scheduler::Plan,
    /// Pods the cluster lists as pending.
    pub pods_pending: usize,
    /// Configuration objects that failed validation and were skipped.
    pub invalid_config: Vec<String>,
}

/// The plan the next provisioning round would make, from the same reads and the same decision
/// ([`provisioning::decide`]) as [`super::run_pass`], without acting: no lease, no reconciliation, no
/// lifecycle step, no launch, no write of any kind. (A pass's lifecycle step may first delete
/// Nodes or close claims; the preview plans over the cluster as it is.) For `nodewright plan
/// --cluster`.
pub async fn preview_round<C: Cluster, K: Cloud, S: ClaimStore>(
    cluster: &C,
    cloud: &K,
    store: &S,
    clock: &dyn Clock,
) -> PortResult<RoundPreview> {
    let unavailable = Mutex::new(UnavailableOfferings::new());
    seed_unavailable(store, &unavailable, clock.now()).await?;
    let claims = store.list_live().await?;
    let config = read_config(cluster, cloud).await?;
    let nodes = split_pods(cluster.list_nodes().await?, cluster.list_bound_pods().await?).nodes;
    let view = round_view(cluster, nodes, claims, config.pools).await?;
    let mut round = provisioning::round_input(cluster, view).await?;
    let now = clock.now();
    Ok(RoundPreview {
        plan: provisioning::decide(&mut round, now, lock(&unavailable).snapshot(now)),
        pods_pending: round.pods_pending,
        invalid_config: config.invalid,
    })
}

/// What the next sweep would decide now.
#[derive(Debug, Clone, Default)]
pub struct SweepPreview {
    pub plan: crate::disruption::SweepPlan,
    /// Configuration objects that failed validation or AMIs that could not be resolved.
    pub invalid_config: Vec<String>,
}

/// The disruptions the next sweep would decide, from the same reads and the
/// same decision ([`crate::disruption::plan_sweep`]) as [`super::run_sweep`], without acting: no
/// lease, no launch, no write. For `nodewright plan --cluster --disruption`.
pub async fn preview_sweep<C: Cluster, K: Cloud, S: ClaimStore>(
    cluster: &C,
    cloud: &K,
    store: &S,
    clock: &dyn Clock,
) -> PortResult<SweepPreview> {
    let unavailable = Mutex::new(UnavailableOfferings::new());
    let claims = store.list_live().await?;
    let mut invalid_config = Vec::new();
    let (input, _) = sweep_input(
        cluster,
        cloud,
        store,
        claims,
        &unavailable,
        clock,
        &mut invalid_config,
    )
    .await?;
    Ok(SweepPreview {
        plan: crate::disruption::plan_sweep(&input),
        invalid_config,
    })
}
