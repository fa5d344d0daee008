//! Uninstalling nodewright from a cluster: every node it launched is drained and terminated,
//! then its launch templates and instance profiles are deleted. What is left (the stack, the
//! cluster's manifests) is `sam delete`'s and `kubectl delete`'s; [`LEFT_FOR_SAM_DELETE`] says
//! what.
//!
//! One call of [`run_step`] is one step, decided from what it observes ([`decide`]) and carried
//! out through the ports ([`apply`]), so it can be run again at any time — after a crash, a
//! timeout or a `--force` given later — and makes whatever progress is possible now:
//!
//! 1. Under the cluster's lease, held by [`UninstallConfig::holder`] from step to step (the
//!    provisioner, sweeper and interruption functions find it held and do nothing, so nothing
//!    is launched for the pods being evicted, nor anything disrupted meanwhile).
//! 2. Every live claim enters graceful termination with the reason `uninstall` (its pool's
//!    `terminationGracePeriod`, or the `--force` deadline if sooner, as its deadline).
//! 3. Graceful termination carries them on: the lifecycle's own state machine
//!    ([`crate::lifecycle`]) taints, evicts through the Eviction API (a PodDisruptionBudget's
//!    refusal waits for the next step), terminates, deletes the Node, closes the claim.
//! 4. Instances of ours (the cluster and claim tags) that no live claim records are terminated
//!    at once: nothing of ours drains them.
//! 5. Launch templates and instance profiles nothing needs any more are deleted.
//!
//! Once nothing is left the lease is held on for [`UninstallConfig::hold_after_done_ms`]: the
//! functions stay deployed until `sam delete`, and would otherwise launch again for the pods the
//! drains left pending. [`hand_back`] releases it early (an uninstall called off). If the caller
//! stops before the end, the lease expires after [`UninstallConfig::lease_ttl_ms`] and the
//! functions carry on as before.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::NodePool;
use crate::assemble::split_pods;
use crate::launch_templates::LAUNCH_TEMPLATE_TAG;
use crate::lifecycle::{self, HeldEviction, LifecyclePolicy, LifecycleReport};
use crate::nodeclaim::{ClaimState, NodeClaim};
use crate::pod::Millis;
use crate::ports::{
    ClaimStore, Clock, Cloud, Cluster, ErrorKind, Instance, InstanceProfile, InstanceState, LaunchTemplate,
    PortResult,
};

/// The reason uninstalled claims are terminated with (audit log, events).
pub const REASON: &str = "uninstall";

/// Who holds the lease while an uninstall runs.
pub const DEFAULT_HOLDER: &str = "nodewright-uninstall";

/// What `sam delete` (and `kubectl delete -f infra/`) still has to remove once
/// [`UninstallReport::done`] — none of it launches anything by then.
pub const LEFT_FOR_SAM_DELETE: &[&str] = &[
    "the stack (sam delete): the four functions, their schedules, queues, log groups and roles, the claims table (every claim closed), the node role and its access entry",
    "the cluster (kubectl delete -f infra/): the webhook registration, the RBAC, and the NodePool and EC2NodeClass CRDs with their objects",
];

/// Settings of an uninstall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UninstallConfig {
    /// The lease holder; the same for every step of one uninstall.
    pub holder: String,
    /// How long the lease lasts after each step: the caller runs the next one sooner.
    pub lease_ttl_ms: Millis,
    /// Who the audit log names.
    pub actor: String,
    /// `--force`: from this moment on, drains stop waiting for pods a PodDisruptionBudget or
    /// `karpenter.sh/do-not-disrupt` holds, and their nodes are terminated with them. `None`
    /// waits as long as it takes.
    pub force_after: Option<Millis>,
    /// How long the lease stays held once nothing is left, keeping the still-deployed functions
    /// from launching again until `sam delete` removes them.
    pub hold_after_done_ms: Millis,
}

impl Default for UninstallConfig {
    fn default() -> Self {
        UninstallConfig {
            holder: DEFAULT_HOLDER.to_string(),
            lease_ttl_ms: 5 * 60_000,
            actor: DEFAULT_HOLDER.to_string(),
            force_after: None,
            hold_after_done_ms: 24 * 60 * 60_000,
        }
    }
}

/// What one step looks at.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The store's live claims.
    pub claims: &'a [NodeClaim],
    /// The cloud's instances of this cluster (not terminated).
    pub instances: &'a [Instance],
    pub launch_templates: &'a [LaunchTemplate],
    pub instance_profiles: &'a [InstanceProfile],
    pub nodepools: &'a [NodePool],
    pub now: Millis,
}

/// What one step does besides carrying graceful termination on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Claims as they must be stored: moved into graceful termination, or given the `--force`
    /// deadline.
    pub terminate: Vec<NodeClaim>,
    /// Instances no live claim records.
    pub orphans: Vec<String>,
    pub delete_launch_templates: Vec<LaunchTemplate>,
    pub delete_instance_profiles: Vec<InstanceProfile>,
}

/// Decides a step: pure, ordered by claim id, instance id and name.
pub fn decide(observed: &Observed<'_>, config: &UninstallConfig) -> Plan {
    let now = observed.now;
    let mut claims: Vec<&NodeClaim> = observed
        .claims
        .iter()
        .filter(|c| c.state != ClaimState::Terminated)
        .collect();
    claims.sort_by(|a, b| a.id.cmp(&b.id));
    let sooner = |deadline: Option<Millis>| match (deadline, config.force_after) {
        (Some(d), Some(f)) => Some(d.min(f)),
        (d, f) => d.or(f),
    };
    let mut terminate = Vec::new();
    for claim in &claims {
        if claim.state != ClaimState::Terminating {
            let grace = observed
                .nodepools
                .iter()
                .find(|p| p.name() == claim.nodepool)
                .and_then(lifecycle::termination_grace);
            let mut next = lifecycle::start_termination(claim, REASON, grace, now);
            if let Some(t) = next.termination.as_mut() {
                t.deadline = sooner(t.deadline);
            }
            terminate.push(next);
        } else if let Some(t) = &claim.termination
            && sooner(t.deadline) != t.deadline
        {
            // Already draining (for this uninstall or another reason): `--force` shortens it.
            let mut next = (*claim).clone();
            if let Some(t) = next.termination.as_mut() {
                t.deadline = sooner(t.deadline);
            }
            terminate.push(next);
        }
    }

    let recorded: BTreeSet<&str> = claims.iter().filter_map(|c| c.instance_id()).collect();
    let mut orphans: Vec<String> = observed
        .instances
        .iter()
        .filter(|i| !i.state.is_gone())
        .filter(|i| !recorded.contains(i.id.as_str()))
        .map(|i| i.id.clone())
        .collect();
    orphans.sort();

    let live: Vec<NodeClaim> = claims.iter().map(|c| (*c).clone()).collect();
    let mut delete_launch_templates: Vec<LaunchTemplate> = observed
        .launch_templates
        .iter()
        .filter(|t| template_needed_by(t, observed.instances, &live).is_none())
        .cloned()
        .collect();
    delete_launch_templates.sort_by(|a, b| a.name.cmp(&b.name));
    let mut delete_instance_profiles: Vec<InstanceProfile> = observed
        .instance_profiles
        .iter()
        .filter(|p| !crate::instance_profiles::in_use(p, observed.instances, &live))
        .cloned()
        .collect();
    delete_instance_profiles.sort_by(|a, b| a.name.cmp(&b.name));
    Plan {
        terminate,
        orphans,
        delete_launch_templates,
        delete_instance_profiles,
    }
}

/// What still needs the template: an instance launched from it, or a live claim recording it.
fn template_needed_by(
    template: &LaunchTemplate,
    instances: &[Instance],
    claims: &[NodeClaim],
) -> Option<String> {
    if let Some(i) = instances.iter().find(|i| {
        i.state != InstanceState::Terminated && i.tags.get(LAUNCH_TEMPLATE_TAG) == Some(&template.id)
    }) {
        return Some(format!("instance {} was launched from it", i.id));
    }
    claims
        .iter()
        .find(|c| c.disruption.launch_template.as_deref() == Some(template.name.as_str()))
        .map(|c| format!("claim {} records it", c.id))
}

/// What is left after a step, and why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Remaining {
    pub instances: Vec<Leftover>,
    /// Claims not yet closed.
    pub claims: Vec<Leftover>,
    pub launch_templates: Vec<Leftover>,
    pub instance_profiles: Vec<Leftover>,
    /// Pods a drain is waiting for (a PodDisruptionBudget, do-not-disrupt).
    pub blocked_pods: Vec<HeldEviction>,
}

/// Something an uninstall has not removed yet (an instance or claim by id, a launch template or
/// instance profile by name), and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Leftover {
    pub name: String,
    pub why: String,
}

impl Leftover {
    fn new(name: &str, why: String) -> Leftover {
        Leftover {
            name: name.to_string(),
            why,
        }
    }
}

impl Remaining {
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
            && self.claims.is_empty()
            && self.launch_templates.is_empty()
            && self.instance_profiles.is_empty()
    }
}

/// What a step did and what is left.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UninstallReport {
    /// Who held the lease, when this step could not take it (it did nothing then).
    pub lease_conflict: Option<String>,
    /// Nothing of nodewright's is left in the cloud: the rest is [`LEFT_FOR_SAM_DELETE`].
    pub done: bool,
    /// Claims moved into graceful termination (or given the `--force` deadline) this step.
    pub draining: Vec<String>,
    /// Graceful termination's progress this step: evictions, terminations, Nodes deleted.
    pub lifecycle: LifecycleReport,
    pub orphans_terminated: Vec<String>,
    pub launch_templates_deleted: Vec<String>,
    pub instance_profiles_deleted: Vec<String>,
    pub remaining: Remaining,
    /// Steps that failed; the next step retries them.
    pub failures: Vec<String>,
}

impl UninstallReport {
    /// One line for a CLI's progress display.
    pub fn progress_line(&self) -> String {
        if let Some(holder) = &self.lease_conflict {
            return format!("waiting for the lease ({holder})");
        }
        if self.done {
            return "done: no instance, launch template or instance profile of nodewright's is left".into();
        }
        let r = &self.remaining;
        let mut line = format!(
            "{} instances, {} claims, {} launch templates, {} instance profiles left",
            r.instances.len(),
            r.claims.len(),
            r.launch_templates.len(),
            r.instance_profiles.len()
        );
        if !r.blocked_pods.is_empty() {
            line.push_str(&format!("; {} pods cannot be evicted yet", r.blocked_pods.len()));
        }
        if !self.failures.is_empty() {
            line.push_str(&format!(
                "; {} steps failed and will be retried",
                self.failures.len()
            ));
        }
        line
    }
}

/// One step of uninstalling nodewright from the cluster the ports stand for.
///
/// How a CLI drives it (`nodewright uninstall --cluster NAME [--force-after DURATION]`): build
/// the ports for the cluster, then loop — call `run_step` with the same [`UninstallConfig`]
/// (`force_after` set to now + the duration for `--force`), print
/// [`UninstallReport::progress_line`] (and `remaining.blocked_pods` while they hold a drain),
/// stop when `done` (then print [`LEFT_FOR_SAM_DELETE`]: the lease stays held until
/// `hold_after_done_ms` has passed, or until [`hand_back`] for a `--abort`), otherwise sleep a few seconds (well
/// under `lease_ttl_ms`) and call again. A step whose lease is held elsewhere does nothing and
/// says so (`lease_conflict`): a running pass holds it for at most its function's timeout.
/// Interrupting the loop is safe: running it again resumes where it stopped.
///
/// `Err` only when a listing fails (nothing was decided); failures of single actions are in the
/// report and retried by the next step.
pub async fn run_step<C: Cluster, K: Cloud, S: ClaimStore>(
    cluster: &C,
    cloud: &K,
    store: &S,
    clock: &dyn Clock,
    config: &UninstallConfig,
) -> PortResult<UninstallReport> {
    let lease = match store
        .acquire_lease(&config.holder, clock.now(), config.lease_ttl_ms)
        .await
    {
        Ok(lease) => lease,
        Err(e) if e.kind == ErrorKind::Conflict => {
            return Ok(UninstallReport {
                lease_conflict: Some(e.message),
                ..UninstallReport::default()
            });
        }
        Err(e) => return Err(e),
    };
    let fenced = store.fenced(&lease);
    let report = step(cluster, cloud, &fenced, clock, config).await;
    match &report {
        // Held between steps so that no pass launches for the evicted pods, and on after the
        // end until the stack is deleted.
        Ok(r) if r.done => {
            if let Err(e) = store
                .acquire_lease(&config.holder, clock.now(), config.hold_after_done_ms)
                .await
            {
                let mut r = r.clone();
                r.failures
                    .push(format!("holding the lease until the stack is deleted: {e}"));
                return Ok(r);
            }
        }
        Ok(_) => {}
        // Nothing was decided: the functions need not wait for this step.
        Err(_) => {
            let _ = store.release_lease(&lease).await;
        }
    }
    report
}

/// Hands the cluster back to the functions: releases the lease an uninstall holds (one called
/// off, or finished but not followed by `sam delete`). Nothing it did is undone; the next pass
/// launches for whatever is pending.
pub async fn hand_back<S: ClaimStore>(
    store: &S,
    clock: &dyn Clock,
    config: &UninstallConfig,
) -> PortResult<()> {
    let lease = store
        .acquire_lease(&config.holder, clock.now(), config.lease_ttl_ms)
        .await?;
    store.release_lease(&lease).await
}

async fn step<C: Cluster, K: Cloud, S: ClaimStore>(
    cluster: &C,
    cloud: &K,
    store: &S,
    clock: &dyn Clock,
    config: &UninstallConfig,
) -> PortResult<UninstallReport> {
    let mut report = UninstallReport::default();
    let claims = store.list_live().await?;
    let instances = cloud.list_instances().await?;
    let launch_templates = cloud.list_launch_templates().await?;
    let instance_profiles = cloud.list_instance_profiles().await?;
    let (nodepools, _) = cluster.list_nodepools().await?;
    let now = clock.now();
    let plan = decide(
        &Observed {
            claims: &claims,
            instances: &instances,
            launch_templates: &launch_templates,
            instance_profiles: &instance_profiles,
            nodepools: &nodepools,
            now,
        },
        config,
    );
    apply(plan, cluster, cloud, store, config, now, &mut report).await?;

    // What is left, observed again.
    let claims = store.list_live().await?;
    let instances = cloud.list_instances().await?;
    let launch_templates = cloud.list_launch_templates().await?;
    let instance_profiles = cloud.list_instance_profiles().await?;
    report.remaining = remaining(
        &claims,
        &instances,
        &launch_templates,
        &instance_profiles,
        &report.lifecycle,
    );
    report.done = report.remaining.is_empty();
    Ok(report)
}

/// Carries out a step's plan, then one step of graceful termination for every draining claim.
pub async fn apply<C: Cluster, K: Cloud, S: ClaimStore>(
    plan: Plan,
    cluster: &C,
    cloud: &K,
    store: &S,
    config: &UninstallConfig,
    now: Millis,
    report: &mut UninstallReport,
) -> PortResult<()> {
    for claim in plan.terminate {
        match store.update(&claim).await {
            Ok(_) => report.draining.push(claim.id),
            // Moved meanwhile: the next step decides again from what it is now.
            Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::NotFound) => {}
            Err(e) => report.failures.push(format!("draining {}: {e}", claim.id)),
        }
    }

    // Graceful termination, by the lifecycle's own decisions over the claims as stored now.
    let claims = store.list_live().await?;
    let instances = cloud.list_instances().await?;
    let nodes = split_pods(cluster.list_nodes().await?, cluster.list_bound_pods().await?).nodes;
    let alive: BTreeSet<String> = instances
        .iter()
        .filter(|i| !i.state.is_gone())
        .map(|i| i.id.clone())
        .collect();
    let actions = lifecycle::decide(
        &lifecycle::Observed {
            claims: &claims,
            nodes: &nodes,
            alive_instances: &alive,
            // Every claim is terminating: nothing is registered or launched, so no catalog.
            pools: &[],
            now,
        },
        &LifecyclePolicy::default(),
    );
    report.lifecycle = lifecycle::apply(actions, cluster, cloud, store, &config.actor, now).await;
    report.failures.extend(report.lifecycle.failures.iter().cloned());

    for id in plan.orphans {
        match cloud.terminate(&id).await {
            Ok(()) => report.orphans_terminated.push(id),
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => report.failures.push(format!("terminating {id}: {e}")),
        }
    }
    for t in plan.delete_launch_templates {
        match cloud.delete_launch_template(&t.id).await {
            Ok(()) => report.launch_templates_deleted.push(t.name),
            Err(e) => report
                .failures
                .push(format!("deleting launch template {}: {e}", t.name)),
        }
    }
    for p in plan.delete_instance_profiles {
        match cloud.delete_instance_profile(&p.name).await {
            Ok(()) => report.instance_profiles_deleted.push(p.name),
            Err(e) => report
                .failures
                .push(format!("deleting instance profile {}: {e}", p.name)),
        }
    }
    Ok(())
}

/// What is left and why: pure, from what the step observed after acting.
pub fn remaining(
    claims: &[NodeClaim],
    instances: &[Instance],
    launch_templates: &[LaunchTemplate],
    instance_profiles: &[InstanceProfile],
    lifecycle: &LifecycleReport,
) -> Remaining {
    let live: Vec<NodeClaim> = claims
        .iter()
        .filter(|c| c.state != ClaimState::Terminated)
        .cloned()
        .collect();
    let blocked_on: BTreeMap<&str, usize> =
        lifecycle
            .eviction_blocked
            .iter()
            .fold(BTreeMap::new(), |mut m, held| {
                *m.entry(held.node.as_str()).or_default() += 1;
                m
            });
    let claim_of: BTreeMap<&str, &NodeClaim> =
        live.iter().filter_map(|c| Some((c.instance_id()?, c))).collect();
    let mut out = Remaining {
        blocked_pods: lifecycle.eviction_blocked.clone(),
        ..Remaining::default()
    };
    for c in &live {
        let why = match c
            .node_name
            .as_deref()
            .and_then(|n| blocked_on.get(n).map(|k| (n, k)))
        {
            Some((node, count)) => format!("draining {node}: {count} pods cannot be evicted yet"),
            None if c.state == ClaimState::Terminating => "terminating".to_string(),
            None => format!("{} (entering termination)", c.state),
        };
        out.claims.push(Leftover::new(&c.id, why));
    }
    for i in instances.iter().filter(|i| i.state != InstanceState::Terminated) {
        let why = if i.state == InstanceState::ShuttingDown {
            "shutting down".to_string()
        } else if let Some(c) = claim_of.get(i.id.as_str()) {
            format!("its claim {} is draining", c.id)
        } else {
            "no claim: being terminated".to_string()
        };
        out.instances.push(Leftover::new(&i.id, why));
    }
    for t in launch_templates {
        let why = template_needed_by(t, instances, &live).unwrap_or_else(|| "to be deleted".to_string());
        out.launch_templates.push(Leftover::new(&t.name, why));
    }
    for p in instance_profiles {
        let why = if crate::instance_profiles::in_use(p, instances, &live) {
            "an instance of its node class still runs".to_string()
        } else {
            "to be deleted".to_string()
        };
        out.instance_profiles.push(Leftover::new(&p.name, why));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::{launched_claim, nodepool};
    use crate::nodeclaim::Termination;
    use crate::testing;

    fn instance(id: &str, template: Option<&str>) -> Instance {
        let instance = testing::instance(id).instance_profile("p-default");
        match template {
            Some(template) => instance.tag(LAUNCH_TEMPLATE_TAG, template).build(),
            None => instance.build(),
        }
    }

    #[test]
    fn every_claim_drains_orphans_go_and_only_unneeded_templates_and_profiles_are_deleted() {
        let now = 1_000_000;
        let mut pool = nodepool("default").build();
        pool.spec.template.spec.termination_grace_period = Some("10m".into());
        let a = launched_claim("default-a", 0);
        let mut draining = launched_claim("default-b", 0);
        draining.state = ClaimState::Terminating;
        draining.termination = Some(Termination {
            started_at: 0,
            deadline: None,
            instance_terminated_at: None,
        });
        let claims = [a.clone(), draining.clone()];
        let a_instance = a.instance_id().unwrap_or_default().to_string();
        let instances = [instance(&a_instance, Some("lt-used")), instance("i-orphan", None)];
        let templates = [
            LaunchTemplate {
                id: "lt-used".into(),
                name: "nodewright/demo/used".into(),
                created_at: now,
            },
            LaunchTemplate {
                id: "lt-idle".into(),
                name: "nodewright/demo/idle".into(),
                created_at: now,
            },
        ];
        let profiles = [
            InstanceProfile {
                name: "p-default".into(),
                nodeclass: Some("default".into()),
                roles: vec!["NodeRole".into()],
                created_at: now,
            },
            InstanceProfile {
                name: "p-gone".into(),
                nodeclass: Some("gone".into()),
                roles: vec![],
                created_at: now,
            },
        ];
        let pools = [pool];
        let observed = Observed {
            claims: &claims,
            instances: &instances,
            launch_templates: &templates,
            instance_profiles: &profiles,
            nodepools: &pools,
            now,
        };
        let plan = decide(&observed, &UninstallConfig::default());
        assert_eq!(plan.terminate.len(), 1, "the draining claim is left as it is");
        let t = &plan.terminate[0];
        assert_eq!(
            (t.id.as_str(), t.state, t.reason.as_deref()),
            ("default-a", ClaimState::Terminating, Some(REASON))
        );
        assert_eq!(
            t.termination.as_ref().and_then(|t| t.deadline),
            Some(now + 600_000),
            "the pool's grace"
        );
        assert_eq!(plan.orphans, ["i-orphan"]);
        let names: Vec<&str> = plan
            .delete_launch_templates
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(names, ["nodewright/demo/idle"]);
        let names: Vec<&str> = plan
            .delete_instance_profiles
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["p-gone"]);

        // --force: deadlines no later than it, the draining claim's too.
        let forced = UninstallConfig {
            force_after: Some(now + 60_000),
            ..UninstallConfig::default()
        };
        let plan = decide(&observed, &forced);
        let deadlines: Vec<(&str, Option<Millis>)> = plan
            .terminate
            .iter()
            .map(|c| (c.id.as_str(), c.termination.as_ref().and_then(|t| t.deadline)))
            .collect();
        assert_eq!(
            deadlines,
            [
                ("default-a", Some(now + 60_000)),
                ("default-b", Some(now + 60_000))
            ]
        );
        // Deciding again over what the forced step wrote changes nothing more.
        let written: Vec<NodeClaim> = plan.terminate.clone();
        let again = decide(
            &Observed {
                claims: &written,
                ..observed
            },
            &forced,
        );
        assert!(again.terminate.is_empty(), "{:?}", again.terminate);
    }
}
