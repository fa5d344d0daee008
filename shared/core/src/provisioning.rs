//! One provisioning round: read the cluster and the claims, plan, launch, record.
//!
//! The round is generic over the ports so that the provisioner Lambda, the simulator and the
//! tests run the same code. Crash safety: a claim row is written (`Launching`) before the cloud
//! is asked for an instance and completed (`Launched`) after; reconciliation settles whatever a
//! crash in between leaves behind.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::StreamExt;

use crate::api::{Ec2NodeClass, NodePool};
use crate::catalog::CapacityType;
use crate::nodeclaim::{AuditRecord, ClaimState, LaunchedInstance, NodeClaim};
use crate::pod::{Millis, Pod};
use crate::ports::{ClaimStore, Cloud, Cluster, ErrorKind, LaunchRequest, PortError, PortResult};
use crate::scheduler::{self, ExistingNode, Input, Plan, PlannedClaim, PoolInput, Unschedulable};
use crate::unavailable::UnavailableOfferings;
use crate::wiring::Ports;

/// Settings of a round.
#[derive(Debug, Clone)]
pub struct RoundConfig {
    /// Who takes the lease (the Lambda request id, or `simulator`).
    pub holder: String,
    pub lease_ttl_ms: Millis,
    /// Re-plans after insufficient capacity within one round.
    pub max_replans: usize,
    pub actor: String,
    /// Launches in flight at once: a burst of hundreds of nodes fits in one invocation.
    pub launch_concurrency: usize,
}

impl Default for RoundConfig {
    fn default() -> Self {
        RoundConfig {
            holder: "provisioner".into(),
            lease_ttl_ms: 10 * 60 * 1000,
            max_replans: 3,
            actor: "provisioner".into(),
            launch_concurrency: 16,
        }
    }
}

/// One launched claim, for the round's summary.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchSummary {
    pub claim_id: String,
    pub nodepool: String,
    pub instance_id: String,
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: CapacityType,
    pub price: f64,
    pub pods: usize,
}

/// A launch that found no capacity in any of its offerings.
#[derive(Debug, Clone, PartialEq)]
pub struct OutOfCapacity {
    pub nodepool: String,
    pub pods: usize,
    /// The offerings EC2 reported unavailable (now skipped for three minutes).
    pub offerings: Vec<crate::ports::OfferingKey>,
}

/// What a round did.
/// A pod and where the round expects it to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Nomination {
    /// `namespace/name`.
    pub pod: String,
    /// `nodeclaim/<id>` or `node/<name>`, as Karpenter's Nominated events name them.
    pub target: String,
}

impl Nomination {
    fn of(pods: &[String], target: String) -> impl Iterator<Item = Nomination> + '_ {
        pods.iter().map(move |pod| Nomination {
            pod: pod.clone(),
            target: target.clone(),
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct RoundReport {
    /// False when another round held the lease and this one did nothing.
    pub ran: bool,
    pub pods_pending: usize,
    pub pods_absorbed_in_flight: usize,
    pub pods_on_existing_nodes: usize,
    pub launched: Vec<LaunchSummary>,
    /// Where each placed pod goes, for the pods' events.
    pub nominated: Vec<Nomination>,
    pub unschedulable: Vec<Unschedulable>,
    /// Launches that failed for a reason other than capacity (logged, retried next round).
    pub failures: Vec<String>,
    /// The kind of each of `failures`, in the same order (for the functions' metrics).
    pub failure_kinds: Vec<ErrorKind>,
    /// Configuration objects that failed validation and were skipped.
    pub invalid_config: Vec<String>,
    /// Launches EC2 had no capacity for; their pods were re-planned on other offerings.
    pub out_of_capacity: Vec<OutOfCapacity>,
    /// Planned launches not started because the invocation's deadline came first.
    pub deferred: usize,
    pub cost_per_hour: f64,
    pub lower_bound_per_hour: f64,
    /// USD per hour of every live claim's running instance once the round is done: the
    /// round's launches and the claims it planned over, less instances already terminated.
    pub fleet_cost_per_hour: f64,
}

/// What a round plans over, read from the cluster and the store.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub pools: Vec<PoolInput>,
    pub nodes: Vec<ExistingNode>,
    /// Pods that must leave nodes being terminated: planned like pending pods, so that their
    /// new capacity is launched while they drain, not after.
    pub reschedulable: Vec<crate::pod::Pod>,
    /// The store's live claims.
    pub claims: Vec<NodeClaim>,
    pub daemonsets: Vec<crate::pod::Pod>,
}

/// Folds the volumes' zones into the pods that have persistent volumes (listing the cluster's
/// volumes only when some pod has one) and takes out those that must wait for a volume, each
/// with why.
pub async fn constrain_by_volumes<C: Cluster>(
    cluster: &C,
    pods: &mut Vec<Pod>,
) -> PortResult<Vec<Unschedulable>> {
    if pods.iter().all(|p| p.volume_claims.is_empty()) {
        return Ok(Vec::new());
    }
    let volumes = cluster.list_volumes().await?;
    Ok(crate::volumes::constrain_pending(&volumes, pods)
        .into_iter()
        .map(|(pod, why)| Unschedulable {
            pod: pod.key(),
            reason: why.0,
        })
        .collect())
}

/// The namespaces' labels when some pod's affinity selects namespaces by label (listed only
/// then), else none.
pub async fn namespace_labels_for<'a, C: Cluster>(
    cluster: &C,
    mut pods: impl Iterator<Item = &'a Pod>,
) -> PortResult<BTreeMap<String, BTreeMap<String, String>>> {
    let by_label = |p: &Pod| {
        p.pod_affinity
            .iter()
            .chain(&p.pod_anti_affinity)
            .chain(p.preferred_pod_affinity.iter().map(|w| &w.term))
            .chain(p.preferred_pod_anti_affinity.iter().map(|w| &w.term))
            .any(|t| {
                t.namespace_selector
                    .as_ref()
                    .is_some_and(|s| !s.requirements.is_empty())
            })
    };
    if pods.any(by_label) {
        cluster.list_namespace_labels().await
    } else {
        Ok(BTreeMap::new())
    }
}

/// What a round plans over once the pending pods are read: the scheduler's input, and the
/// pods set aside because they wait for a volume (no launch can help them).
#[derive(Debug, Clone)]
pub struct RoundInput {
    pub input: Input,
    pub waiting_on_volumes: Vec<Unschedulable>,
    /// Pods the cluster listed as pending (the reschedulable ones not counted).
    pub pods_pending: usize,
}

/// Reads the pending pods and what planning them needs from the cluster (volumes, namespace
/// labels) into the round's input over `view`. Read-only: the provisioner's round and
/// `nodewright plan --cluster` both start here.
pub async fn round_input<C: Cluster>(cluster: &C, view: ClusterView) -> PortResult<RoundInput> {
    let mut pending = cluster.list_pending_pods().await?;
    let pods_pending = pending.len();
    let listed: std::collections::HashSet<String> = pending.iter().map(|p| p.key()).collect();
    for mut pod in view.reschedulable {
        if !listed.contains(&pod.key()) {
            pod.node_name = None;
            pending.push(pod);
        }
    }
    let (waiting_on_volumes, namespace_labels) = if pending.is_empty() {
        (Vec::new(), BTreeMap::new())
    } else {
        let waiting = constrain_by_volumes(cluster, &mut pending).await?;
        let bound = view.nodes.iter().flat_map(|n| n.pods.iter());
        (
            waiting,
            namespace_labels_for(cluster, pending.iter().chain(bound)).await?,
        )
    };
    let in_flight = in_flight_claims(&view.claims, &view.nodes);
    Ok(RoundInput {
        input: Input {
            pending,
            nodes: view.nodes,
            in_flight,
            daemonsets: view.daemonsets,
            pools: view.pools,
            unavailable: UnavailableOfferings::new(),
            namespace_labels,
            now: 0,
        },
        waiting_on_volumes,
        pods_pending,
    })
}

/// The round's decision at `now` with `unavailable` offerings left out: the plan for the pods
/// still pending, the pods waiting on volumes listed first among the unschedulable. Pure.
pub fn decide(round: &mut RoundInput, now: Millis, unavailable: UnavailableOfferings) -> Plan {
    round.input.now = now;
    round.input.unavailable = unavailable;
    let mut plan = scheduler::schedule(&round.input);
    plan.unschedulable = round
        .waiting_on_volumes
        .iter()
        .cloned()
        .chain(plan.unschedulable)
        .collect();
    plan
}

/// Plans the pending pods over `view` and launches what the plan needs, re-planning (up to
/// `max_replans` times) the pods whose launches found no capacity. Launches run
/// `launch_concurrency` at a time; none starts at or after `deadline`.
pub async fn provision<C: Cluster, K: Cloud, S: ClaimStore>(
    ports: &Ports<'_, C, K, S>,
    config: &RoundConfig,
    view: ClusterView,
    deadline: Option<Millis>,
    report: &mut RoundReport,
) -> PortResult<()> {
    report.fleet_cost_per_hour = view
        .claims
        .iter()
        .filter(|c| {
            c.termination
                .as_ref()
                .is_none_or(|t| t.instance_terminated_at.is_none())
        })
        .filter_map(|c| c.instance.as_ref())
        // From +0.0: an empty fleet costs 0, not -0 (an empty f64 sum is -0.0).
        .fold(0.0, |sum, i| sum + i.price);
    let clock = ports.clock;
    let mut round = round_input(ports.cluster, view).await?;
    report.pods_pending = round.pods_pending;
    if round.input.pending.is_empty() && round.waiting_on_volumes.is_empty() {
        return Ok(());
    }
    for attempt in 0..=config.max_replans {
        let now = clock.now();
        let plan = decide(&mut round, now, ports.unavailable().snapshot(now));
        report.pods_absorbed_in_flight = plan.in_flight.iter().map(|a| a.pods.len()).sum();
        report.pods_on_existing_nodes = plan.existing.iter().map(|a| a.pods.len()).sum();
        report.unschedulable = plan.unschedulable.clone();
        report.lower_bound_per_hour = plan.lower_bound_per_hour;
        for a in &plan.existing {
            let target = format!("node/{}", a.host);
            report.nominated.extend(Nomination::of(&a.pods, target));
        }
        for a in &plan.in_flight {
            let target = format!("nodeclaim/{}", a.host);
            report.nominated.extend(Nomination::of(&a.pods, target));
        }

        let pools = &round.input.pools;
        let outcomes: Vec<(usize, Option<PortResult<LaunchSummary>>)> =
            futures::stream::iter(plan.new_claims.iter().enumerate())
                .map(|(i, planned)| async move {
                    // A launch begun after the deadline could outlive the invocation.
                    if deadline.is_some_and(|d| clock.now() >= d) {
                        return (i, None);
                    }
                    let result = launch_claim(ports, pools, planned, config).await;
                    (i, Some(result))
                })
                .buffered(config.launch_concurrency.max(1))
                .collect()
                .await;

        let mut out_of_capacity = Vec::new();
        for (i, outcome) in outcomes {
            let planned = &plan.new_claims[i];
            match outcome {
                None => report.deferred += 1,
                Some(Ok(summary)) => {
                    // Launched pods are no longer pending for a re-plan.
                    let launched: std::collections::HashSet<&String> = planned.pods.iter().collect();
                    round.input.pending.retain(|p| !launched.contains(&p.key()));
                    let target = format!("nodeclaim/{}", summary.claim_id);
                    report.nominated.extend(Nomination::of(&planned.pods, target));
                    report.launched.push(summary);
                }
                Some(Err(e)) if e.kind == ErrorKind::InsufficientCapacity => {
                    report.out_of_capacity.push(OutOfCapacity {
                        nodepool: planned.nodepool.clone(),
                        pods: planned.pods.len(),
                        offerings: e.unavailable.clone(),
                    });
                    out_of_capacity.push(planned.pods.clone())
                }
                Some(Err(e)) => {
                    report.failure_kinds.push(e.kind);
                    report
                        .failures
                        .push(format!("launch for pool {}: {e}", planned.nodepool))
                }
            }
        }
        if out_of_capacity.is_empty() || attempt == config.max_replans || report.deferred > 0 {
            break;
        }
        // Re-plan only the pods whose launch ran out of capacity, now that those offerings are
        // marked unavailable.
        let retry: BTreeSet<String> = out_of_capacity.into_iter().flatten().collect();
        round.input.pending.retain(|p| retry.contains(&p.key()));
    }
    report.cost_per_hour = report.launched.iter().fold(0.0, |sum, l| sum + l.price);
    report.fleet_cost_per_hour += report.cost_per_hour;
    Ok(())
}

/// The pools with their node classes and catalogs (see [`crate::assemble`]); pools whose node
/// class is foreign, missing or unusable are reported in `invalid_config` and left out, and the
/// others still provision.
pub async fn pool_inputs<K: Cloud>(
    cloud: &K,
    nodepools: &[NodePool],
    nodeclasses: &[Ec2NodeClass],
    invalid_config: &mut Vec<String>,
) -> PortResult<Vec<PoolInput>> {
    let pairing = crate::assemble::pair_pools(nodepools, nodeclasses);
    invalid_config.extend(pairing.unusable.iter().map(ToString::to_string));
    let mut catalogs = BTreeMap::new();
    for nodeclass in pairing.nodeclasses() {
        match cloud.catalog(nodeclass).await {
            Ok(catalog) => {
                catalogs.insert(nodeclass.name().to_string(), Arc::new(catalog.types));
            }
            // A node class the cloud cannot use (selectors that resolve nothing, bad kubelet
            // settings) stops its own pools, not the whole round.
            Err(e) if e.kind == ErrorKind::Invalid => {
                invalid_config.push(format!("EC2NodeClass {}: {e}", nodeclass.name()));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(pairing.into_pool_inputs(&catalogs))
}

/// Live claims whose instance has not yet become a Node: their capacity is coming.
pub(crate) fn in_flight_claims(claims: &[NodeClaim], nodes: &[ExistingNode]) -> Vec<NodeClaim> {
    let registered: BTreeSet<&str> = nodes.iter().filter_map(|n| n.node.instance_id()).collect();
    claims
        .iter()
        .filter(|c| matches!(c.state, ClaimState::Launching | ClaimState::Launched))
        .filter(|c| c.instance_id().is_none_or(|id| !registered.contains(id)))
        .cloned()
        .collect()
}

pub(crate) async fn launch_claim<C, K: Cloud, S: ClaimStore>(
    ports: &Ports<'_, C, K, S>,
    pools: &[PoolInput],
    planned: &PlannedClaim,
    config: &RoundConfig,
) -> PortResult<LaunchSummary> {
    let Ports {
        cloud,
        store,
        clock,
        ids,
        ..
    } = *ports;
    let pool = pools
        .iter()
        .find(|p| p.nodepool.name() == planned.nodepool)
        .ok_or_else(|| PortError::new(ErrorKind::Invalid, format!("pool {} vanished", planned.nodepool)))?;
    let now = clock.now();
    let claim = NodeClaim {
        id: format!("{}-{}", planned.nodepool, ids.next_suffix()),
        nodepool: planned.nodepool.clone(),
        nodeclass: planned.nodeclass.clone(),
        state: ClaimState::Launching,
        version: 0,
        instance_types: planned.instance_types.clone(),
        zones: planned.zones.clone(),
        capacity_types: planned.capacity_types.clone(),
        labels: planned.labels.clone(),
        taints: planned.taints.clone(),
        startup_taints: planned.startup_taints.clone(),
        requests: planned.requests.clone(),
        pods: planned.pods.clone(),
        instance: None,
        node_name: None,
        created_at: now,
        launched_at: None,
        registered_at: None,
        initialized_at: None,
        reason: None,
        termination: None,
        disruption: crate::nodeclaim::DisruptionState {
            template_hash: Some(crate::api::template_hash(&pool.nodepool, &pool.nodeclass)),
            ..Default::default()
        },
    };
    // Written before the launch: a crash after CreateFleet leaves a row to reconcile against.
    let mut claim = store.create(&claim).await?;
    let request = LaunchRequest {
        claim: claim.clone(),
        nodeclass: pool.nodeclass.clone(),
        // Planned with the offerings out of capacity already left out: sent as they are.
        overrides: planned.launch_overrides(),
    };
    let launched = match cloud.launch(&request).await {
        Ok(l) => l,
        // A timeout or 5xx after retries: CreateFleet may have launched the instance, so the
        // claim stays Launching for reconciliation to adopt its instance or close it.
        Err(e) if e.kind == ErrorKind::Unavailable => return Err(e),
        Err(e) => {
            if e.kind == ErrorKind::InsufficientCapacity {
                let mut cache = ports.unavailable();
                for key in &e.unavailable {
                    cache.mark(key.clone(), now);
                }
            }
            claim.state = ClaimState::Terminated;
            claim.reason = Some(format!("launch failed: {e}"));
            // If this write fails the claim stays Launching and reconciliation closes it.
            let _ = store.update(&claim).await;
            return Err(e);
        }
    };
    {
        let mut cache = ports.unavailable();
        for key in &launched.unavailable {
            cache.mark(key.clone(), now);
        }
    }
    let instance = launched.instance;
    claim.state = ClaimState::Launched;
    claim.disruption.image_id = instance.image_id.clone();
    claim.disruption.launch_template = launched.launch_template.clone();
    claim.launched_at = Some(clock.now());
    claim.instance = Some(LaunchedInstance {
        instance_id: instance.id.clone(),
        instance_type: instance.instance_type.clone(),
        zone: instance.zone.clone(),
        capacity_type: instance.capacity_type,
        price: launched.price,
    });
    let claim = store.update(&claim).await?;
    let _ = store
        .audit(&AuditRecord {
            at: clock.now(),
            actor: config.actor.clone(),
            action: "launch".into(),
            claim_id: claim.id.clone(),
            reason: format!("{} pending pods", planned.pods.len()),
            delta_per_hour: launched.price,
        })
        .await;
    Ok(LaunchSummary {
        claim_id: claim.id,
        nodepool: planned.nodepool.clone(),
        instance_id: instance.id,
        instance_type: instance.instance_type,
        zone: instance.zone,
        capacity_type: instance.capacity_type,
        price: launched.price,
        pods: planned.pods.len(),
    })
}
