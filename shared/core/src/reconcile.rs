//! Reconciliation of NodeClaims with the instances the cloud reports, so that no instance runs
//! without a claim and no claim waits for an instance, for longer than a grace period.
//!
//! A launch is three steps: write the claim `Launching`, launch the instance tagged with the claim
//! id, update the claim to `Launched`. A crash between any two leaves a state that [`reconcile`]
//! recognises and [`apply`] repairs on the next pass:
//!
//! | left behind                                   | action                                   |
//! |-----------------------------------------------|------------------------------------------|
//! | `Launching` claim, tagged instance exists     | adopt: record the instance, `Launched`   |
//! | `Launching` claim, no instance, past grace    | close: `Terminated`, "launch never completed" |
//! | launched (or later) claim, instance gone      | close: `Terminated`, "instance gone"     |
//! | instance with no claim, past grace            | terminate the instance                   |
//! | instance of a `Terminated` claim              | terminate the instance                   |
//!
//! [`reconcile`] is a pure decision over plain data; [`apply`] carries it out through the ports
//! and tolerates losing races: a claim that moved is left for the next pass to re-decide.
//!
//! `Terminating` claims are left alone: graceful termination ([`crate::lifecycle`]) drains
//! their nodes and terminates their instances.

use std::collections::{BTreeMap, BTreeSet};

use crate::nodeclaim::{AuditRecord, ClaimState, LaunchedInstance, NodeClaim};
use crate::pod::Millis;
use crate::ports::{ClaimStore, Cloud, ErrorKind, Instance, PortError};

/// Two minutes: a CreateFleet call and EC2's eventually consistent listing fit well inside it.
pub const DEFAULT_LAUNCH_GRACE_MS: Millis = 2 * 60 * 1000;

/// The actor named in the audit records [`apply`] writes.
pub const ACTOR: &str = "reconcile";

pub const LAUNCH_NEVER_COMPLETED: &str = "launch never completed";
pub const INSTANCE_GONE: &str = "instance gone";
pub const ORPHAN_INSTANCE: &str = "orphan instance: no live claim";
pub const DUPLICATE_INSTANCE: &str = "duplicate instance: its claim holds another";

/// How patient reconciliation is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcilePolicy {
    /// How long a launch may take to become visible. A `Launching` claim younger than this may
    /// still get its instance; an instance younger than this without a claim may belong to a
    /// launch in flight; a launched claim younger than this may not see its instance listed
    /// yet (EC2's reads are eventually consistent). Nothing younger is closed or terminated.
    pub launch_grace_ms: Millis,
    /// Instances without a live claim terminated in one pass, as a percentage of the instances
    /// alive (at least one): an empty or wrong claims table must not wipe the fleet in one go.
    /// The rest wait, reported, for the next pass; 100 lifts the bound.
    pub max_orphans_percent: u32,
}

/// Karpenter's default disruption budget, 10% of the nodes, is the model: a wrong table costs
/// at most a tenth of the fleet per minute while the operator is alerted.
pub const DEFAULT_MAX_ORPHANS_PERCENT: u32 = 10;

impl Default for ReconcilePolicy {
    fn default() -> Self {
        ReconcilePolicy {
            launch_grace_ms: DEFAULT_LAUNCH_GRACE_MS,
            max_orphans_percent: DEFAULT_MAX_ORPHANS_PERCENT,
        }
    }
}

/// One repair.
#[derive(Debug, Clone, PartialEq)]
pub enum ReconcileAction {
    /// A `Launching` claim whose tagged instance exists: record the instance and move the claim
    /// to `Launched`.
    Adopt { claim: NodeClaim, instance: Instance },
    /// A claim with no instance and none coming: move it to `Terminated`.
    Close { claim: NodeClaim, reason: String },
    /// Instances without a live claim left running this pass: more than
    /// [`ReconcilePolicy::max_orphans_percent`] of the fleet had none.
    Withhold { instances: Vec<String> },
    /// An instance no live claim accounts for, or whose claim is ending: terminate it.
    /// `claim` is the claim it belonged to, when known (for the audit's cost delta).
    Terminate {
        instance: Instance,
        claim: Option<NodeClaim>,
        reason: String,
    },
}

/// Decides the repairs that make `claims` and `instances` agree at `now`.
///
/// `claims` are the store's live claims (terminated ones may be included: their instances are
/// terminated); `instances` are every instance of the cluster the cloud lists. Instances
/// shutting down or terminated count as gone. The result is ordered by claim id, then instance
/// id, so that the same input always gives the same plan.
pub fn reconcile(
    claims: &[NodeClaim],
    instances: &[Instance],
    now: Millis,
    policy: &ReconcilePolicy,
) -> Vec<ReconcileAction> {
    let alive: BTreeMap<&str, &Instance> = instances
        .iter()
        .filter(|i| is_alive(i))
        .map(|i| (i.id.as_str(), i))
        .collect();
    // Oldest first, so that of two instances for one claim the first launched is kept.
    let mut tagged: BTreeMap<&str, Vec<&Instance>> = BTreeMap::new();
    for instance in alive.values() {
        if let Some(claim_id) = instance.claim_id.as_deref() {
            tagged.entry(claim_id).or_default().push(instance);
        }
    }
    for list in tagged.values_mut() {
        list.sort_by(|a, b| (a.launched_at, &a.id).cmp(&(b.launched_at, &b.id)));
    }

    let mut sorted: Vec<&NodeClaim> = claims.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));

    let mut actions = Vec::new();
    let mut accounted: BTreeSet<&str> = BTreeSet::new();
    for claim in &sorted {
        // A claim that recorded its instance owns that one only; one that did not (a launch
        // that crashed before step 3) owns the oldest instance tagged with its id.
        let instance = match claim.instance_id() {
            Some(id) => alive.get(id).copied(),
            None => tagged.get(claim.id.as_str()).and_then(|l| l.first().copied()),
        };
        if let Some(instance) = instance {
            accounted.insert(instance.id.as_str());
        }
        let since = claim.launched_at.unwrap_or(claim.created_at);
        let settled = now.saturating_sub(since) > policy.launch_grace_ms;
        match (claim.state, instance) {
            (ClaimState::Launching, Some(instance)) => actions.push(ReconcileAction::Adopt {
                claim: (*claim).clone(),
                instance: instance.clone(),
            }),
            // Graceful termination drains first and terminates when done (the lifecycle).
            (ClaimState::Terminating, _) => {}
            (ClaimState::Terminated, Some(instance)) => actions.push(ReconcileAction::Terminate {
                instance: instance.clone(),
                claim: Some((*claim).clone()),
                reason: format!("claim is {}", claim.state),
            }),
            (ClaimState::Terminated, None) => {}
            (state, None) if settled => actions.push(ReconcileAction::Close {
                claim: (*claim).clone(),
                reason: if state == ClaimState::Launching {
                    LAUNCH_NEVER_COMPLETED
                } else {
                    INSTANCE_GONE
                }
                .to_string(),
            }),
            _ => {}
        }
    }

    let known: BTreeMap<&str, &NodeClaim> = sorted.iter().map(|c| (c.id.as_str(), *c)).collect();
    let bound = (alive.len() * policy.max_orphans_percent.min(100) as usize)
        .div_ceil(100)
        .max(1);
    let mut orphans = 0;
    let mut withheld = Vec::new();
    for instance in alive.values() {
        if accounted.contains(instance.id.as_str()) {
            continue;
        }
        // A young instance may belong to a launch whose claim row this read did not see yet.
        if now.saturating_sub(instance.launched_at) <= policy.launch_grace_ms {
            continue;
        }
        let claim = instance.claim_id.as_deref().and_then(|id| known.get(id).copied());
        let reason = if claim.is_some() {
            DUPLICATE_INSTANCE
        } else {
            ORPHAN_INSTANCE
        };
        if orphans == bound {
            withheld.push(instance.id.clone());
            continue;
        }
        orphans += 1;
        actions.push(ReconcileAction::Terminate {
            instance: (*instance).clone(),
            claim: claim.cloned(),
            reason: reason.to_string(),
        });
    }
    if !withheld.is_empty() {
        actions.push(ReconcileAction::Withhold { instances: withheld });
    }
    actions
}

fn is_alive(instance: &Instance) -> bool {
    !instance.state.is_gone()
}

/// What [`apply`] did.
#[derive(Debug, Default)]
pub struct ReconcileReport {
    /// Claims moved to `Launched` with their instance.
    pub adopted: Vec<String>,
    /// Claims moved to `Terminated` (or found already gone).
    pub closed: Vec<String>,
    /// Instances terminated (or found already gone).
    pub terminated: Vec<String>,
    /// Claims that moved or vanished since they were read; the next pass re-decides them.
    pub stale: Vec<String>,
    /// Instances without a claim left running by the per-pass bound (logged as a warning).
    pub withheld: Vec<String>,
    /// Actions that failed otherwise (throttling, outages); the next pass retries them.
    pub failures: Vec<ReconcileFailure>,
}

/// An action [`apply`] could not carry out.
#[derive(Debug)]
pub struct ReconcileFailure {
    pub action: ReconcileAction,
    pub error: PortError,
}

/// Carries out `actions` through the ports, one at a time, and writes an audit record for each
/// adoption, closing and termination. Never stops early: each failure is recorded in the report
/// and the rest still run. A `Conflict` (someone else wrote the claim) or `NotFound` on a claim
/// update leaves the claim to the next pass; an instance already gone counts as terminated.
pub async fn apply(
    actions: Vec<ReconcileAction>,
    cloud: &impl Cloud,
    store: &impl ClaimStore,
    now: Millis,
) -> ReconcileReport {
    let mut report = ReconcileReport::default();
    for action in actions {
        let outcome = match &action {
            ReconcileAction::Adopt { claim, instance } => {
                adopt(claim, instance, store, now, &mut report).await
            }
            ReconcileAction::Close { claim, reason } => close(claim, reason, store, now, &mut report).await,
            ReconcileAction::Withhold { instances } => {
                report.withheld.extend(instances.iter().cloned());
                Ok(())
            }
            ReconcileAction::Terminate {
                instance,
                claim,
                reason,
            } => terminate(instance, claim.as_ref(), reason, cloud, store, now, &mut report).await,
        };
        if let Err(error) = outcome {
            report.failures.push(ReconcileFailure { action, error });
        }
    }
    report
}

async fn adopt(
    claim: &NodeClaim,
    instance: &Instance,
    store: &impl ClaimStore,
    now: Millis,
    report: &mut ReconcileReport,
) -> Result<(), PortError> {
    let mut next = claim.clone();
    next.state = ClaimState::Launched;
    next.instance = Some(LaunchedInstance {
        instance_id: instance.id.clone(),
        instance_type: instance.instance_type.clone(),
        zone: instance.zone.clone(),
        capacity_type: instance.capacity_type,
        // The launch response that carried the price was lost with the crash.
        price: 0.0,
    });
    next.launched_at = Some(instance.launched_at);
    next.disruption.image_id = instance.image_id.clone();
    match store.update(&next).await {
        Ok(_) => report.adopted.push(claim.id.clone()),
        Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::NotFound) => {
            report.stale.push(claim.id.clone());
            return Ok(());
        }
        Err(e) => return Err(e),
    }
    let reason = format!(
        "instance {} found for a launch that did not complete",
        instance.id
    );
    store.audit(&record(now, "adopt", &claim.id, reason, 0.0)).await
}

async fn close(
    claim: &NodeClaim,
    reason: &str,
    store: &impl ClaimStore,
    now: Millis,
    report: &mut ReconcileReport,
) -> Result<(), PortError> {
    let mut next = claim.clone();
    next.state = ClaimState::Terminated;
    next.reason = Some(reason.to_string());
    match store.update(&next).await {
        Ok(_) => report.closed.push(claim.id.clone()),
        // Nothing left to close; whoever removed it recorded why.
        Err(e) if e.kind == ErrorKind::NotFound => {
            report.closed.push(claim.id.clone());
            return Ok(());
        }
        Err(e) if e.kind == ErrorKind::Conflict => {
            report.stale.push(claim.id.clone());
            return Ok(());
        }
        Err(e) => return Err(e),
    }
    store
        .audit(&record(now, "close", &claim.id, reason.to_string(), 0.0))
        .await
}

async fn terminate(
    instance: &Instance,
    claim: Option<&NodeClaim>,
    reason: &str,
    cloud: &impl Cloud,
    store: &impl ClaimStore,
    now: Millis,
    report: &mut ReconcileReport,
) -> Result<(), PortError> {
    match cloud.terminate(&instance.id).await {
        Ok(()) => {}
        Err(e) if e.kind == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    report.terminated.push(instance.id.clone());
    let price = claim
        .and_then(|c| c.instance.as_ref())
        .filter(|i| i.instance_id == instance.id)
        .map_or(0.0, |i| i.price);
    // Untagged orphans have no claim id; the instance id keeps their audit rows apart.
    let subject = instance.claim_id.as_deref().unwrap_or(&instance.id);
    let reason = format!("{reason} (instance {})", instance.id);
    store
        .audit(&record(now, "terminate", subject, reason, -price))
        .await
}

fn record(at: Millis, action: &str, claim_id: &str, reason: String, delta: f64) -> AuditRecord {
    AuditRecord {
        at,
        actor: ACTOR.to_string(),
        action: action.to_string(),
        claim_id: claim_id.to_string(),
        reason,
        delta_per_hour: delta,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, ClaimBuilder, InstanceBuilder};

    const MINUTE: Millis = 60_000;
    const NOW: Millis = 1_700_000_000_000;

    /// A claim created now.
    fn claim(id: &str) -> ClaimBuilder {
        testing::claim(id).created_at(NOW)
    }

    /// An instance launched now.
    fn instance(id: &str) -> InstanceBuilder {
        testing::instance(id).launched_at(NOW)
    }

    /// Times relative to `NOW`, as reconciliation judges them.
    trait Ago {
        fn created_ago(self, ms: Millis) -> Self;
        /// Launched `ms` ago onto `instance_id`.
        fn on(self, instance_id: &str, ms: Millis) -> Self;
    }

    impl Ago for ClaimBuilder {
        fn created_ago(self, ms: Millis) -> Self {
            self.created_at(NOW - ms)
        }

        fn on(self, instance_id: &str, ms: Millis) -> Self {
            self.created_at(NOW - ms).launched(instance_id, NOW - ms)
        }
    }

    trait LaunchedAgo {
        fn launched_ago(self, ms: Millis) -> Self;
    }

    impl LaunchedAgo for InstanceBuilder {
        fn launched_ago(self, ms: Millis) -> Self {
            self.launched_at(NOW - ms)
        }
    }

    fn run(claims: &[NodeClaim], instances: &[Instance]) -> Vec<ReconcileAction> {
        reconcile(claims, instances, NOW, &ReconcilePolicy::default())
    }

    fn terminated_ids(actions: &[ReconcileAction]) -> Vec<&str> {
        actions
            .iter()
            .filter_map(|a| match a {
                ReconcileAction::Terminate { instance, .. } => Some(instance.id.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn nothing_to_do_when_every_claim_has_its_instance() {
        let claims = [claim("a").on("i-1", 10 * MINUTE).build()];
        let instances = [instance("i-1").claim("a").launched_ago(10 * MINUTE).build()];
        assert_eq!(run(&claims, &instances), vec![]);
    }

    #[test]
    fn adopts_the_tagged_instance_of_a_launching_claim() {
        let claims = [claim("a").created_ago(10 * MINUTE).build()];
        let instances = [instance("i-1").claim("a").launched_ago(9 * MINUTE).build()];
        let actions = run(&claims, &instances);
        assert_eq!(
            actions,
            vec![ReconcileAction::Adopt {
                claim: claims[0].clone(),
                instance: instances[0].clone(),
            }]
        );
    }

    #[test]
    fn adopts_the_oldest_of_two_instances_and_terminates_the_other_once_past_grace() {
        let claims = [claim("a").created_ago(10 * MINUTE).build()];
        let instances = [
            instance("i-2").claim("a").launched_ago(9 * MINUTE).build(),
            instance("i-1").claim("a").launched_ago(8 * MINUTE).build(),
        ];
        let actions = run(&claims, &instances);
        assert!(matches!(&actions[0], ReconcileAction::Adopt { instance, .. } if instance.id == "i-2"));
        assert!(
            matches!(&actions[1], ReconcileAction::Terminate { instance, reason, .. }
            if instance.id == "i-1" && reason == DUPLICATE_INSTANCE)
        );
        assert_eq!(actions.len(), 2);
    }

    #[test]
    fn leaves_a_young_launching_claim_without_instance_alone() {
        let claims = [claim("a").created_ago(30_000).build()];
        assert_eq!(run(&claims, &[]), vec![]);
    }

    #[test]
    fn closes_a_launching_claim_past_grace_with_no_instance() {
        let claims = [claim("a").created_ago(3 * MINUTE).build()];
        assert_eq!(
            run(&claims, &[]),
            vec![ReconcileAction::Close {
                claim: claims[0].clone(),
                reason: LAUNCH_NEVER_COMPLETED.to_string(),
            }]
        );
    }

    #[test]
    fn closes_a_launched_claim_whose_instance_is_gone() {
        let claims = [claim("a").on("i-1", 10 * MINUTE).build()];
        assert_eq!(
            run(&claims, &[]),
            vec![ReconcileAction::Close {
                claim: claims[0].clone(),
                reason: INSTANCE_GONE.to_string(),
            }]
        );
    }

    #[test]
    fn counts_a_shutting_down_instance_as_gone() {
        let claims = [claim("a")
            .on("i-1", 10 * MINUTE)
            .state(ClaimState::Initialized)
            .build()];
        let instances = [instance("i-1")
            .claim("a")
            .launched_ago(10 * MINUTE)
            .state("shutting-down")
            .build()];
        let actions = run(&claims, &instances);
        assert!(matches!(&actions[..], [ReconcileAction::Close { reason, .. }] if reason == INSTANCE_GONE));
    }

    #[test]
    fn does_not_close_a_just_launched_claim_whose_instance_is_not_listed_yet() {
        let claims = [claim("a").on("i-1", 20_000).build()];
        assert_eq!(run(&claims, &[]), vec![]);
    }

    #[test]
    fn terminates_an_old_instance_with_no_claim() {
        let instances = [instance("i-1").claim("gone").launched_ago(5 * MINUTE).build()];
        let actions = run(&[], &instances);
        assert!(
            matches!(&actions[..], [ReconcileAction::Terminate { instance, claim: None, reason }]
            if instance.id == "i-1" && reason == ORPHAN_INSTANCE)
        );
    }

    #[test]
    fn terminates_an_old_untagged_instance_of_the_cluster() {
        let instances = [instance("i-1").launched_ago(5 * MINUTE).build()];
        assert_eq!(terminated_ids(&run(&[], &instances)), vec!["i-1"]);
    }

    #[test]
    fn never_terminates_a_young_instance_without_claim() {
        let instances = [instance("i-1").claim("in-flight").launched_ago(30_000).build()];
        assert_eq!(run(&[], &instances), vec![]);
    }

    #[test]
    fn does_not_terminate_an_instance_that_is_already_shutting_down() {
        let instances = [instance("i-1")
            .launched_ago(5 * MINUTE)
            .state("shutting-down")
            .build()];
        assert_eq!(run(&[], &instances), vec![]);
    }

    #[test]
    fn an_empty_claims_table_costs_at_most_a_tenth_of_the_fleet_per_pass() {
        let instances: Vec<Instance> = (0..25)
            .map(|i| {
                instance(&format!("i-{i:02}"))
                    .claim(&format!("c{i}"))
                    .launched_ago(30 * MINUTE)
                    .build()
            })
            .collect();
        let actions = run(&[], &instances);
        let terminated = actions
            .iter()
            .filter(|a| matches!(a, ReconcileAction::Terminate { .. }))
            .count();
        assert_eq!(terminated, 3, "10% of 25, rounded up");
        assert!(
            matches!(actions.last(), Some(ReconcileAction::Withhold { instances }) if instances.len() == 22)
        );
        // The operator lifts the bound.
        let all = reconcile(
            &[],
            &instances,
            NOW,
            &ReconcilePolicy {
                max_orphans_percent: 100,
                ..ReconcilePolicy::default()
            },
        );
        assert_eq!(all.len(), 25);
        // One orphan in a small fleet still goes.
        assert_eq!(run(&[], &instances[..1]).len(), 1);
    }

    #[test]
    fn leaves_a_terminating_claim_and_its_instance_to_graceful_termination() {
        let claims = [claim("a")
            .on("i-1", 10 * MINUTE)
            .state(ClaimState::Terminating)
            .build()];
        let instances = [instance("i-1").claim("a").launched_ago(10 * MINUTE).build()];
        // Draining comes first: the instance must not go before its pods have moved.
        assert_eq!(run(&claims, &instances), vec![]);
        assert_eq!(run(&claims, &[]), vec![]);
    }

    #[test]
    fn terminates_a_late_instance_of_a_terminated_claim_even_when_young() {
        let claims = [claim("a")
            .created_ago(5 * MINUTE)
            .state(ClaimState::Terminated)
            .build()];
        let instances = [instance("i-1").claim("a").launched_ago(10_000).build()];
        assert_eq!(terminated_ids(&run(&claims, &instances)), vec!["i-1"]);
    }

    #[test]
    fn leaves_a_terminated_claim_without_instance_alone() {
        let claims = [claim("a")
            .created_ago(5 * MINUTE)
            .state(ClaimState::Terminated)
            .build()];
        assert_eq!(run(&claims, &[]), vec![]);
    }

    #[test]
    fn matches_an_instance_to_its_claim_by_recorded_id_even_without_a_tag() {
        let claims = [claim("a").on("i-1", 10 * MINUTE).build()];
        let instances = [instance("i-1").launched_ago(10 * MINUTE).build()];
        assert_eq!(run(&claims, &instances), vec![]);
    }

    #[test]
    fn orders_actions_the_same_whatever_the_input_order() {
        let claims = [
            claim("b").created_ago(5 * MINUTE).build(),
            claim("a").created_ago(5 * MINUTE).build(),
        ];
        let instances = [
            instance("i-2").launched_ago(5 * MINUTE).build(),
            instance("i-1").launched_ago(5 * MINUTE).build(),
        ];
        let mut reversed_claims = claims.clone();
        reversed_claims.reverse();
        let mut reversed_instances = instances.clone();
        reversed_instances.reverse();
        let unbounded = |c: &[NodeClaim], i: &[Instance]| {
            let policy = ReconcilePolicy {
                max_orphans_percent: 100,
                ..ReconcilePolicy::default()
            };
            reconcile(c, i, NOW, &policy)
        };
        assert_eq!(
            unbounded(&claims, &instances),
            unbounded(&reversed_claims, &reversed_instances)
        );
        assert_eq!(
            terminated_ids(&unbounded(&claims, &instances)),
            vec!["i-1", "i-2"]
        );
        // Bounded, the same one goes first whatever the order.
        assert_eq!(
            run(&claims, &instances),
            run(&reversed_claims, &reversed_instances)
        );
    }

    #[test]
    fn respects_a_longer_grace_period_from_the_policy() {
        let claims = [claim("a").created_ago(3 * MINUTE).build()];
        let policy = ReconcilePolicy {
            launch_grace_ms: 5 * MINUTE,
            ..ReconcilePolicy::default()
        };
        assert_eq!(reconcile(&claims, &[], NOW, &policy), vec![]);
    }
}
