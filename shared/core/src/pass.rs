//! One pass of the provisioner: under the cluster's lease, reconcile claims with instances,
//! carry every node's lifecycle a step further, then run a provisioning round. The provisioner
//! Lambda and the simulator call [`run_pass`]; nothing else drives the lifecycle.
//!
//! The lease is taken once and released however the pass ends: normally, at the deadline (no
//! launch starts after it), or by a panic (caught, the lease released, the panic resumed).
//! Every claim write of the pass is fenced with the lease's token, so a pass that lost its
//! lease (paused past its expiry) cannot overwrite its successor's claims.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use crate::assemble::split_pods;
use crate::events;
use crate::lifecycle::{self, LifecyclePolicy, LifecycleReport, Observed};
use crate::nodeclaim::NodeClaim;
use crate::pod::Millis;
use crate::ports::{ClaimStore, Clock, Cloud, Cluster, ErrorKind, Lease, PortError, PortResult};
use crate::provisioning::{self, ClusterView, IdSource, RoundConfig, RoundReport};
use crate::reconcile::{self, ReconcilePolicy, ReconcileReport};
use crate::unavailable::UnavailableOfferings;

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
    cluster: &C,
    cloud: &K,
    store: &S,
    clock: &dyn Clock,
    ids: &dyn IdSource,
    unavailable: &Mutex<UnavailableOfferings>,
    config: &PassConfig,
) -> PortResult<PassReport> {
    let run = |fenced: S| async move {
        under_lease(cluster, cloud, &fenced, clock, ids, unavailable, config).await
    };
    Ok(match leased(store, clock, config, run).await? {
        Leased::Ran(mut report) => {
            report.events = record(cluster, events::of_pass(&report)).await;
            report
        }
        Leased::Held(holder) => PassReport {
            lease_conflict: Some(holder),
            ..PassReport::default()
        },
    })
}

/// What running under the lease came to.
enum Leased<T> {
    Ran(T),
    /// Another holder had the lease (who, until when).
    Held(String),
}

/// Takes the cluster's lease, runs `work` with the store fenced by it, and releases the lease
/// however `work` ends — a panic is caught, the lease released, and the panic resumed.
async fn leased<S, F, Fut, T>(
    store: &S,
    clock: &dyn Clock,
    config: &PassConfig,
    work: F,
) -> PortResult<Leased<T>>
where
    S: ClaimStore,
    F: FnOnce(S) -> Fut,
    Fut: Future<Output = PortResult<T>>,
{
    let lease = match store
        .acquire_lease(&config.round.holder, clock.now(), config.round.lease_ttl_ms)
        .await
    {
        Ok(lease) => lease,
        Err(e) if e.kind == ErrorKind::Conflict => return Ok(Leased::Held(e.message)),
        Err(e) => return Err(e),
    };
    let outcome = CatchUnwind(Box::pin(work(store.fenced(&lease)))).await;
    release(store, &lease).await;
    match outcome {
        Ok(result) => result.map(Leased::Ran),
        Err(panic) => resume_unwind(panic),
    }
}

/// The lease expires on its own if releasing fails; the pass's result matters more.
async fn release<S: ClaimStore>(store: &S, lease: &Lease) {
    let _ = store.release_lease(lease).await;
}

async fn under_lease<C: Cluster, K: Cloud, S: ClaimStore>(
    cluster: &C,
    cloud: &K,
    store: &S,
    clock: &dyn Clock,
    ids: &dyn IdSource,
    unavailable: &Mutex<UnavailableOfferings>,
    config: &PassConfig,
) -> PortResult<PassReport> {
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
        .map(|(n, _)| n.as_str())
        .collect();
    nodes.retain(|n| !deleted.contains(n.node.name.as_str()));
    let claims_now = claims.clone();
    let view = round_view(cluster, nodes, claims, pools).await?;
    provisioning::provision(
        cluster,
        cloud,
        store,
        clock,
        ids,
        unavailable,
        &config.round,
        view,
        config.deadline,
        &mut report.round,
    )
    .await?;
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
/// ([`provisioning::decide`]) as [`run_pass`], without acting: no lease, no reconciliation, no
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
/// same decision ([`crate::disruption::plan_sweep`]) as [`run_sweep`], without acting: no
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

/// What a sweep did.
#[derive(Debug, Default)]
pub struct SweepPassReport {
    /// False when another holder had the lease and this sweep did nothing.
    pub ran: bool,
    pub lease_conflict: Option<String>,
    pub sweep: crate::disruption::SweepReport,
    /// Nodes a voluntary disruption would have taken but something forbids: (node, why).
    pub blocked: Vec<(String, String)>,
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
    cluster: &C,
    cloud: &K,
    store: &S,
    clock: &dyn Clock,
    ids: &dyn IdSource,
    unavailable: &Mutex<UnavailableOfferings>,
    config: &PassConfig,
) -> PortResult<SweepPassReport> {
    let run = |fenced: S| async move {
        sweep_under_lease(cluster, cloud, &fenced, clock, ids, unavailable, config).await
    };
    Ok(match leased(store, clock, config, run).await? {
        Leased::Ran(mut report) => {
            report.events = record(cluster, events::of_sweep(&report)).await;
            report
        }
        Leased::Held(holder) => SweepPassReport {
            lease_conflict: Some(holder),
            ..SweepPassReport::default()
        },
    })
}

async fn sweep_under_lease<C: Cluster, K: Cloud, S: ClaimStore>(
    cluster: &C,
    cloud: &K,
    store: &S,
    clock: &dyn Clock,
    ids: &dyn IdSource,
    unavailable: &Mutex<UnavailableOfferings>,
    config: &PassConfig,
) -> PortResult<SweepPassReport> {
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
    report.sweep = crate::disruption::apply(
        plan,
        &input.pools,
        cloud,
        store,
        clock,
        ids,
        unavailable,
        &config.round,
    )
    .await;
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
async fn sweep_input<C: Cluster, K: Cloud, S: ClaimStore>(
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

/// Takes the offerings the store holds as out of capacity (an interrupted spot offering, marked
/// by the interruption function) into `unavailable`, so that they steer this pass or sweep too.
async fn seed_unavailable<S: ClaimStore>(
    store: &S,
    unavailable: &Mutex<UnavailableOfferings>,
    now: Millis,
) -> PortResult<()> {
    for (key, until) in store.list_unavailable(now).await? {
        lock(unavailable).mark_until(key, until);
    }
    Ok(())
}

fn lock(m: &Mutex<UnavailableOfferings>) -> std::sync::MutexGuard<'_, UnavailableOfferings> {
    // A poisoned cache is still a valid cache: every write to it is a single insert.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What handling a batch of interruption notices did.
#[derive(Debug, Default)]
pub struct InterruptionPassReport {
    pub interruption: crate::interruption::InterruptionReport,
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
#[allow(clippy::too_many_arguments)]
pub async fn run_interruptions<C: Cluster, K: Cloud, S: ClaimStore>(
    notices: &[crate::interruption::Notice],
    rebalance: crate::interruption::Rebalance,
    cluster: &C,
    cloud: &K,
    store: &S,
    clock: &dyn Clock,
    ids: &dyn IdSource,
    unavailable: &Mutex<UnavailableOfferings>,
    config: &PassConfig,
) -> PortResult<InterruptionPassReport> {
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
        report.pass = Some(run_pass(cluster, cloud, store, clock, ids, unavailable, config).await?);
    }
    Ok(report)
}

/// Polls a future, catching a panic so that the lease can be released before it goes on.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// Refuses a lease shorter than the invocation it guards: a lease that expires while its
/// holder still runs lets a second pass act on the cluster at the same time.
pub fn check_lease_ttl(lease_ttl_ms: Millis, function_timeout_ms: Millis) -> PortResult<()> {
    if lease_ttl_ms < function_timeout_ms + LEASE_MARGIN_MS {
        return Err(PortError::new(
            ErrorKind::Invalid,
            format!(
                "the lease TTL ({} s) must be at least the function timeout ({} s) plus {} s",
                lease_ttl_ms / 1000,
                function_timeout_ms / 1000,
                LEASE_MARGIN_MS / 1000
            ),
        ));
    }
    Ok(())
}

/// How much longer than the function timeout a lease lasts: clock skew and the release write.
pub const LEASE_MARGIN_MS: Millis = 30_000;
