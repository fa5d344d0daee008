//! One disruption sweep under the cluster's lease, and the sweep's launch template and
//! instance profile hygiene.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::{EventsReport, LeasedReport, PassConfig, read_config, seed_unavailable, with_lease};
use crate::assemble::split_pods;
use crate::events;
use crate::lifecycle;
use crate::nodeclaim::NodeClaim;
use crate::pod::Millis;
use crate::ports::{ClaimStore, Clock, Cloud, Cluster, PortResult};
use crate::provisioning;
use crate::unavailable::UnavailableOfferings;
use crate::wiring::{Ports, lock};

/// What a sweep did.
#[derive(Debug, Default)]
pub struct SweepPassReport {
    /// False when another holder had the lease and this sweep did nothing.
    pub ran: bool,
    pub lease_conflict: Option<String>,
    pub sweep: crate::disruption::SweepReport,
    /// Nodes a voluntary disruption would have taken but something forbids.
    pub blocked: Vec<crate::disruption::Protected>,
    /// Configuration objects that failed validation and were skipped.
    pub invalid_config: Vec<String>,
    pub events: EventsReport,
    /// Launch templates deleted because no running instance came from them.
    pub launch_templates_deleted: Vec<String>,
    /// Instance profiles deleted because their node class is gone and nothing uses them.
    pub instance_profiles_deleted: Vec<String>,
    /// Template and instance profile hygiene that failed (retried next sweep).
    pub failures: Vec<String>,
}

/// Runs one disruption sweep under the cluster's lease: reads the cluster, decides
/// ([`crate::disruption::plan_sweep`]) and hands the chosen nodes to graceful termination,
/// launching replacements first where they are needed. The provisioner's pass drains them.
pub async fn run_sweep<C: Cluster, K: Cloud, S: ClaimStore>(
    ports: &Ports<'_, C, K, S>,
    config: &PassConfig,
) -> PortResult<SweepPassReport> {
    let work = |fenced: S| async move { sweep_under_lease(&ports.with_store(&fenced), config).await };
    let events_of = |r: &SweepPassReport| events::of_sweep(&r.sweep, &r.blocked);
    with_lease(ports, config, work, events_of).await
}

impl LeasedReport for SweepPassReport {
    fn held_by(holder: String) -> Self {
        SweepPassReport {
            lease_conflict: Some(holder),
            ..SweepPassReport::default()
        }
    }

    fn events_mut(&mut self) -> &mut EventsReport {
        &mut self.events
    }
}

async fn sweep_under_lease<C: Cluster, K: Cloud, S: ClaimStore>(
    ports: &Ports<'_, C, K, S>,
    config: &PassConfig,
) -> PortResult<SweepPassReport> {
    let Ports {
        cluster,
        cloud,
        store,
        clock,
        unavailable,
        ..
    } = *ports;
    let mut report = SweepPassReport {
        ran: true,
        ..SweepPassReport::default()
    };
    let claims = store.list_live().await?;
    let (input, nodeclasses) = sweep_input(
        cluster,
        cloud,
        store,
        claims,
        unavailable,
        clock,
        &mut report.invalid_config,
    )
    .await?;
    let mut plan = crate::disruption::plan_sweep(&input);
    report.blocked = std::mem::take(&mut plan.blocked);
    report.sweep = crate::disruption::apply(plan, &input.pools, ports, &config.round).await;
    prune_launch_templates(cloud, &input.claims, clock.now(), &mut report).await;
    if let Some(nodeclasses) = nodeclasses {
        prune_instance_profiles(cloud, &nodeclasses, &input.claims, clock.now(), &mut report).await;
    }
    Ok(report)
}

/// What a sweep decides over, read from the cluster: nodes as planning sees them with their
/// pods (kept to their volumes' zones), pools, DaemonSets, PodDisruptionBudgets, pending pods,
/// the AMIs node classes resolve to; and the node classes, when every one parsed (for instance
/// profile hygiene). Read-only but for `unavailable`, which takes in the store's marks as a
/// pass's does. Problems with the configuration go to `invalid_config`.
pub(super) async fn sweep_input<C: Cluster, K: Cloud, S: ClaimStore>(
    cluster: &C,
    cloud: &K,
    store: &S,
    claims: Vec<NodeClaim>,
    unavailable: &Mutex<UnavailableOfferings>,
    clock: &dyn Clock,
    invalid_config: &mut Vec<String>,
) -> PortResult<(
    crate::disruption::SweepInput,
    Option<Vec<crate::api::Ec2NodeClass>>,
)> {
    // Replacements must not be planned on an offering the interruption function found
    // interrupted.
    seed_unavailable(store, unavailable, clock.now()).await?;
    let config = read_config(cluster, cloud).await?;
    let nodeclasses = config.all_classes_read.then_some(config.nodeclasses);
    invalid_config.extend(config.invalid);
    let pools = config.pools;
    let nodes = cluster.list_nodes().await?;
    let bound = cluster.list_bound_pods().await?;
    let mut nodes = split_pods(nodes, bound).nodes;
    lifecycle::planning_view(&mut nodes, &claims, &pools);
    // Pods keep their volumes' zones wherever a consolidation would move them.
    if nodes
        .iter()
        .flat_map(|n| &n.pods)
        .any(|p| !p.volume_claims.is_empty())
    {
        let volumes = cluster.list_volumes().await?;
        crate::volumes::constrain_bound(&volumes, nodes.iter_mut().flat_map(|n| n.pods.iter_mut()));
    }
    let namespace_labels =
        provisioning::namespace_labels_for(cluster, nodes.iter().flat_map(|n| n.pods.iter())).await?;
    let pending = cluster.list_pending_pods().await?;
    let pdbs = cluster.list_pdbs().await?;
    // The AMIs node classes resolve to, for nodes whose AMI is known.
    let mut images = BTreeMap::new();
    if claims.iter().any(|c| c.disruption.image_id.is_some()) {
        for pool in &pools {
            let name = pool.nodeclass.name().to_string();
            if let std::collections::btree_map::Entry::Vacant(slot) = images.entry(name.clone()) {
                // Not knowing the AMIs only means no node drifts by its AMI this sweep.
                let resolved = match cloud.images(&pool.nodeclass).await {
                    Ok(found) => found,
                    Err(e) => {
                        invalid_config.push(format!(
                            "EC2NodeClass {name}: its AMIs could not be resolved: {e}"
                        ));
                        BTreeSet::new()
                    }
                };
                slot.insert(resolved);
            }
        }
    }
    let daemonsets = cluster
        .list_daemonsets()
        .await?
        .into_iter()
        .map(|d| d.pod)
        .collect();
    let now = clock.now();
    let input = crate::disruption::SweepInput {
        nodes,
        claims,
        pools,
        daemonsets,
        pdbs,
        pending,
        unavailable: lock(unavailable).snapshot(now),
        namespace_labels,
        images,
        now,
    };
    Ok((input, nodeclasses))
}

/// Deletes the instance profiles nodewright made for node classes that are gone (or now want
/// a profile of another name) once nothing uses them (see [`crate::instance_profiles`]). A
/// failure is reported and retried by the next sweep; it never fails the sweep.
async fn prune_instance_profiles<K: Cloud>(
    cloud: &K,
    nodeclasses: &[crate::api::Ec2NodeClass],
    claims: &[NodeClaim],
    now: Millis,
    report: &mut SweepPassReport,
) {
    let profiles = match cloud.list_instance_profiles().await {
        Ok(p) if p.is_empty() => return,
        Ok(p) => p,
        Err(e) => return report.failures.push(format!("listing instance profiles: {e}")),
    };
    let wanted: BTreeSet<String> = nodeclasses
        .iter()
        .filter_map(|nc| cloud.managed_instance_profile(nc))
        .collect();
    // Instances are listed only when some profile is a candidate.
    let candidates = crate::instance_profiles::unused(&profiles, &wanted, &[], claims, now);
    if candidates.is_empty() {
        return;
    }
    let instances = match cloud.list_instances().await {
        Ok(i) => i,
        Err(e) => return report.failures.push(format!("listing instances: {e}")),
    };
    for p in crate::instance_profiles::unused(&candidates, &wanted, &instances, claims, now) {
        match cloud.delete_instance_profile(&p.name).await {
            Ok(()) => report.instance_profiles_deleted.push(p.name),
            Err(e) => report
                .failures
                .push(format!("deleting instance profile {}: {e}", p.name)),
        }
    }
}

/// Deletes the launch templates no running instance came from (see [`crate::launch_templates`]).
/// A failure is reported and retried by the next sweep; it never fails the sweep.
async fn prune_launch_templates<K: Cloud>(
    cloud: &K,
    claims: &[NodeClaim],
    now: Millis,
    report: &mut SweepPassReport,
) {
    let templates = match cloud.list_launch_templates().await {
        Ok(t) if t.is_empty() => return,
        Ok(t) => t,
        Err(e) => return report.failures.push(format!("listing launch templates: {e}")),
    };
    // Instances are listed only when some template is old enough and no claim records it.
    let candidates = crate::launch_templates::unused(&templates, &[], claims, now);
    if candidates.is_empty() {
        return;
    }
    let instances = match cloud.list_instances().await {
        Ok(i) => i,
        Err(e) => return report.failures.push(format!("listing instances: {e}")),
    };
    for t in crate::launch_templates::unused(&candidates, &instances, claims, now) {
        match cloud.delete_launch_template(&t.id).await {
            Ok(()) => report.launch_templates_deleted.push(t.name),
            Err(e) => report
                .failures
                .push(format!("deleting launch template {}: {e}", t.name)),
        }
    }
}
