//! The simulation loop: virtual time in one-second ticks, and in each tick what a cluster with
//! nodewright would do in that second.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use nodewright_core::catalog::CapacityType;
use nodewright_core::interruption::{Kind, Notice, Rebalance, SPOT_NOTICE_MS};
use nodewright_core::lifecycle::LifecycleReport;
use nodewright_core::pass::{self, PassConfig};
use nodewright_core::pod::Millis;
use nodewright_core::ports::{Clock, Cloud};
use nodewright_core::provisioning::{RoundConfig, RoundReport};
use nodewright_core::unavailable::UnavailableOfferings;

use crate::clock::VirtualClock;
use crate::cloud::OfferingPattern;
use crate::cloud::SimCloud;
use crate::cluster::{PodStatus, SimCluster};
use crate::error::Result;
use crate::ids::{SeededIds, SplitMix64};
use crate::kubelet::Kubelet;
use crate::report::{Event, Latency, Replacement, Report, Summary, TimelineEvent, format_offset};
use crate::scenario::{Interrupt, InterruptKind, Scenario};
use crate::store::SimClaimStore;

/// Virtual time starts here (2026-01-01T00:00:00Z), so that timestamps look like real ones.
const START: Millis = 1_767_225_600_000;
const TICK_MS: Millis = 1_000;
/// The webhook → SQS → provisioner path runs a round at most this often.
const DEBOUNCE_MS: Millis = 10_000;
/// The EventBridge backstop runs a round every minute whatever happened.
const BACKSTOP_MS: Millis = 60_000;
const ACTOR: &str = "simulator";

/// Runs a scenario to its end.
pub fn simulate(scenario: Scenario) -> Result<Report> {
    Simulation::new(scenario).run()
}

/// A scenario being played, one tick per virtual second. Each tick, in order: the scenario's
/// steps due by now; the kubelet registers booted instances; the kube-scheduler binds what fits
/// and marks the rest Unschedulable (which fires the webhook); the emptiness sweep removes
/// nodes empty for their pool's `consolidateAfter` to graceful termination; the provisioner runs
/// [`pass::run_pass`] (reconcile, lifecycle, provisioning round) if the webhook fired and the last round is at least 10 s old, or
/// the minute's backstop is due. The same scenario gives the same report on every run.
#[derive(Debug)]
pub struct Simulation {
    scenario: Scenario,
    clock: Arc<VirtualClock>,
    cloud: SimCloud,
    cluster: SimCluster,
    store: SimClaimStore,
    ids: SeededIds,
    unavailable: Mutex<UnavailableOfferings>,
    config: PassConfig,
    kubelet: Kubelet,
    /// Steps applied so far.
    steps_done: usize,
    /// When (from the start) the next tick runs.
    next_tick_ms: Millis,
    webhook_fired: bool,
    last_round: Option<Millis>,
    next_backstop: Millis,
    /// What the last round could not provision, so that repeats are not reported again.
    last_unprovisionable: Vec<(String, usize)>,
    last_invalid_config: Vec<String>,
    /// Capacity failures of the cloud already reported.
    capacity_failures_seen: usize,
    timeline: Vec<TimelineEvent>,
    rounds: usize,
    pods_evicted: usize,
    pdb_violations: usize,
    /// Pods whose blocked eviction is on the timeline already: repeats every pass are not.
    blocked_reported: BTreeSet<String>,
    /// Nodes disrupted, by reason.
    disruptions: BTreeMap<String, usize>,
    /// Spot instances EC2 takes back, and when.
    reclaims: Vec<(String, Millis)>,
    /// Nodes of interrupted instances (their pods' time unbound is measured).
    interrupted_nodes: BTreeSet<String>,
    peak_nodes: usize,
    peak_pods_bound: usize,
    /// How often (virtual time) [`Simulation::samples`] records the fleet; `None`: never.
    sample_every_ms: Option<Millis>,
    /// When (from the start) the next sample is due.
    next_sample_ms: Millis,
    samples: Vec<Sample>,
}

/// The fleet at one moment of virtual time, as a chart plots it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Sample {
    /// From the start of the simulation.
    pub at_ms: Millis,
    /// Nodes in the cluster (registered, draining ones included).
    pub nodes: usize,
    /// Workload pods not bound to a node (daemon pods are not counted).
    pub pending_pods: usize,
    /// USD per hour of every instance not yet terminated, launched or booting ones included:
    /// what the fleet is billed at this moment.
    pub cost_per_hour: f64,
}

impl Simulation {
    /// Sets up the cluster (objects and workloads at their initial replicas) at time 0.
    pub fn new(scenario: Scenario) -> Self {
        let clock = Arc::new(VirtualClock::new(START));
        let mut seeds = SplitMix64::new(scenario.seed);
        let cloud = SimCloud::new(clock.clone(), seeds.next_u64());
        cloud.set_world(scenario.cloud.clone());
        let cluster = SimCluster::new(clock.clone(), seeds.next_u64());
        let ids = SeededIds::new(seeds.next_u64());
        for p in &scenario.nodepools {
            cluster.apply_nodepool(p.clone());
        }
        for c in &scenario.nodeclasses {
            cluster.apply_nodeclass(c.clone());
        }
        for d in &scenario.daemonsets {
            cluster.apply_daemonset(d.clone());
        }
        for b in &scenario.pdbs {
            cluster.apply_pdb(b.clone());
        }
        for c in &scenario.storage_classes {
            cluster.apply_storage_class(c.clone());
        }
        for w in &scenario.workloads {
            cluster.apply_workload(w.clone());
        }
        let kubelet = Kubelet::new(scenario.boot_delay_ms);
        Simulation {
            scenario,
            clock,
            cloud,
            cluster,
            store: SimClaimStore::new(),
            ids,
            unavailable: Mutex::new(UnavailableOfferings::new()),
            config: PassConfig {
                round: RoundConfig {
                    holder: ACTOR.into(),
                    actor: ACTOR.into(),
                    ..RoundConfig::default()
                },
                ..PassConfig::default()
            },
            kubelet,
            steps_done: 0,
            next_tick_ms: 0,
            webhook_fired: false,
            last_round: None,
            next_backstop: START + BACKSTOP_MS,
            last_unprovisionable: Vec::new(),
            last_invalid_config: Vec::new(),
            capacity_failures_seen: 0,
            timeline: Vec::new(),
            rounds: 0,
            pods_evicted: 0,
            pdb_violations: 0,
            blocked_reported: BTreeSet::new(),
            disruptions: BTreeMap::new(),
            reclaims: Vec::new(),
            interrupted_nodes: BTreeSet::new(),
            peak_nodes: 0,
            peak_pods_bound: 0,
            sample_every_ms: None,
            next_sample_ms: 0,
            samples: Vec::new(),
        }
    }

    /// Records a [`Sample`] after the tick at the start and every `every_ms` of virtual time
    /// after it (rounded up to whole ticks), and after the last tick. Reading the fleet changes
    /// nothing, so a sampled run reports exactly what an unsampled one does.
    pub fn sample_every(&mut self, every_ms: Millis) {
        self.sample_every_ms = Some(every_ms.max(TICK_MS));
        self.next_sample_ms = self.next_tick_ms;
    }

    /// The samples recorded so far, in time order.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The fleet now: nodes, pending workload pods, and what the running instances cost.
    pub fn sample(&self) -> Sample {
        let pending_pods = self
            .cluster
            .pods()
            .iter()
            .filter(|(p, s)| *s != PodStatus::Bound && !p.is_daemon())
            .count();
        Sample {
            at_ms: self.elapsed_ms(),
            nodes: self.cluster.node_count(),
            pending_pods,
            // `+ 0.0` turns the empty fleet's -0.0 (an empty float sum) into 0.
            cost_per_hour: round4(self.running_cost_per_hour()) + 0.0,
        }
    }

    /// USD per hour of the instances not terminated.
    fn running_cost_per_hour(&self) -> f64 {
        self.cloud
            .instances()
            .iter()
            .filter(|i| i.terminated_at.is_none())
            .map(|i| i.price)
            .sum()
    }

    /// The fleet as `nodewright status` shows it, now.
    pub fn status(&self) -> nodewright_core::status::FleetStatus {
        let pods = self.cluster.pods();
        let nodes: Vec<nodewright_core::scheduler::ExistingNode> = self
            .cluster
            .nodes()
            .into_iter()
            .map(|node| nodewright_core::scheduler::ExistingNode {
                pods: pods
                    .iter()
                    .filter(|(p, _)| p.node_name.as_deref() == Some(node.name.as_str()))
                    .map(|(p, _)| p.clone())
                    .collect(),
                node,
            })
            .collect();
        nodewright_core::status::fleet_status(&nodes, &self.store.claims(), self.clock.now())
    }

    /// The scenario's length, from its start.
    pub fn end_ms(&self) -> Millis {
        self.scenario.end_ms
    }

    /// Plays the scenario to its end and reports.
    pub fn run(self) -> Result<Report> {
        self.run_sampled().map(|(report, _)| report)
    }

    /// Plays the scenario to its end and reports, with the samples [`Simulation::sample_every`]
    /// asked for (none if it was not called).
    pub fn run_sampled(mut self) -> Result<(Report, Vec<Sample>)> {
        self.run_until(self.scenario.end_ms)?;
        self.clock.advance_to(START + self.scenario.end_ms);
        // An end between two ticks: the last sample is at the end itself.
        if self.sample_every_ms.is_some() && self.samples.last().is_none_or(|s| s.at_ms < self.elapsed_ms()) {
            let last = self.sample();
            self.samples.push(last);
        }
        Ok((self.report(), self.samples))
    }

    /// Plays every tick up to `elapsed_ms` from the start (inclusive, and never past the
    /// scenario's end); the clock then reads the last tick's time.
    pub fn run_until(&mut self, elapsed_ms: Millis) -> Result<()> {
        let until = elapsed_ms.min(self.scenario.end_ms);
        while self.next_tick_ms <= until {
            self.clock.advance_to(START + self.next_tick_ms);
            self.next_tick_ms += TICK_MS;
            self.tick()?;
        }
        Ok(())
    }

    /// Time since the start.
    pub fn elapsed_ms(&self) -> Millis {
        self.clock.now() - START
    }

    /// One second's work, at the clock's time.
    fn tick(&mut self) -> Result<()> {
        self.apply_due_steps();

        for r in self
            .kubelet
            .register_booted(&self.cloud, &self.cluster, &self.store)?
        {
            self.record(Event::NodeRegistered {
                node: r.node,
                claim: r.claim_id,
                instance_type: r.instance_type,
                zone: r.zone,
            });
        }

        let pass = self.cluster.run_scheduler();
        if !pass.bound.is_empty() {
            let nodes: BTreeSet<&String> = pass.bound.iter().map(|(_, n)| n).collect();
            self.record(Event::PodsBound {
                pods: pass.bound.len(),
                nodes: nodes.len(),
            });
        }
        if !pass.newly_unschedulable.is_empty() {
            self.webhook_fired = true;
            self.record(Event::PodsPending {
                pods: pass.newly_unschedulable.len(),
                unschedulable: pass.unschedulable,
            });
        }

        let now = self.clock.now();
        let backstop = now >= self.next_backstop;
        if backstop {
            // The sweeper's schedule: every minute, just before the provisioner's.
            self.sweep();
        }
        let webhook = self.webhook_fired && self.last_round.is_none_or(|t| now - t >= DEBOUNCE_MS);
        if backstop {
            self.next_backstop += BACKSTOP_MS;
        }
        if backstop || webhook {
            self.webhook_fired = false;
            self.last_round = Some(now);
            self.round();
        }

        self.peak_nodes = self.peak_nodes.max(self.cluster.node_count());
        self.peak_pods_bound = self.peak_pods_bound.max(self.pods_bound());
        if let Some(every) = self.sample_every_ms {
            let elapsed = self.elapsed_ms();
            // The last tick is sampled whatever the interval, so that the series reach the end.
            if elapsed >= self.next_sample_ms || elapsed + TICK_MS > self.scenario.end_ms {
                self.samples.push(self.sample());
                while self.next_sample_ms <= elapsed {
                    self.next_sample_ms += every;
                }
            }
        }
        Ok(())
    }

    /// Workload pods bound now.
    pub fn pods_bound(&self) -> usize {
        self.cluster.workload_pods_per_node().values().sum()
    }

    fn apply_due_steps(&mut self) {
        let now = self.clock.now();
        self.reclaim_due(now);
        let elapsed = self.elapsed_ms();
        while let Some(step) = self
            .scenario
            .steps
            .get(self.steps_done)
            .filter(|s| s.at_ms <= elapsed)
        {
            let step = step.clone();
            self.steps_done += 1;
            for p in &step.out_of_capacity {
                self.cloud.set_out_of_capacity(p.clone());
                self.record(Event::OutOfCapacity {
                    offerings: p.to_string(),
                });
            }
            for p in &step.restore_capacity {
                self.cloud.restore_capacity(p);
                self.record(Event::CapacityRestored {
                    offerings: p.to_string(),
                });
            }
            if !step.apply.names().is_empty() {
                for p in &step.apply.nodepools {
                    self.cluster.apply_nodepool(p.clone());
                }
                for c in &step.apply.nodeclasses {
                    self.cluster.apply_nodeclass(c.clone());
                }
                for d in &step.apply.daemonsets {
                    self.cluster.apply_daemonset(d.clone());
                }
                for b in &step.apply.pdbs {
                    self.cluster.apply_pdb(b.clone());
                }
                for c in &step.apply.storage_classes {
                    self.cluster.apply_storage_class(c.clone());
                }
                self.record(Event::Applied {
                    objects: step.apply.names(),
                });
            }
            if step.release_ami {
                let release = self.cloud.release_ami();
                self.record(Event::AmiReleased { release });
            }
            if let Some(interrupt) = &step.interrupt {
                self.interrupt(interrupt, now);
            }
            for p in &step.fail_registration {
                self.kubelet.fail_registration(p.clone(), now);
                self.record(Event::RegistrationFailing {
                    offerings: p.to_string(),
                });
            }
            for p in &step.restore_registration {
                self.kubelet.restore_registration(p, now);
                self.record(Event::RegistrationRestored {
                    offerings: p.to_string(),
                });
            }
            if let Some(delete) = &step.delete_node {
                let mut nodes = self.cluster.nodes();
                nodes.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
                let names: Vec<String> = match (&delete.node, delete.count) {
                    (Some(name), _) => vec![name.clone()],
                    (None, Some(count)) => nodes
                        .iter()
                        .filter(|n| !n.deleting)
                        .take(count)
                        .map(|n| n.name.clone())
                        .collect(),
                    (None, None) => Vec::new(),
                };
                for node in names {
                    if self.cluster.delete_node_as_user(&node) {
                        self.record(Event::DeleteRequested { node });
                    }
                }
            }
            for (name, replicas) in &step.scale {
                // The scenario was checked to name only its own workloads.
                if let Ok(from) = self.cluster.scale(name, *replicas) {
                    self.record(Event::Scaled {
                        workload: name.clone(),
                        from,
                        to: *replicas,
                    });
                }
            }
        }
    }

    fn round(&mut self) {
        let result = pollster::block_on(pass::run_pass(
            &self.cluster,
            &self.cloud,
            &self.store,
            self.clock.as_ref(),
            &self.ids,
            &self.unavailable,
            &self.config,
        ));
        // The round's report does not list launches that ran out of capacity after its last
        // re-plan; the cloud does.
        let failures = self.cloud.capacity_failures();
        let new_failures = &failures[self.capacity_failures_seen.min(failures.len())..];
        if !new_failures.is_empty() {
            let offerings: BTreeSet<_> = new_failures.iter().flat_map(|f| f.offerings.iter()).collect();
            let event = Event::NoCapacity {
                launches: new_failures.len(),
                offerings: offerings.len(),
            };
            self.capacity_failures_seen = failures.len();
            self.record(event);
        }
        match result {
            Ok(report) if report.ran => {
                self.rounds += 1;
                self.record_lifecycle(report.lifecycle);
                self.record_round(report.round);
            }
            Ok(_) => {}
            Err(e) => self.record(Event::RoundFailed { error: e.to_string() }),
        }
    }

    /// EC2 sends the interruption's events; the interruption function acts on them at once.
    fn interrupt(&mut self, interrupt: &Interrupt, now: Millis) {
        let pattern = OfferingPattern {
            instance_type: interrupt.instance_type.clone(),
            zone: interrupt.zone.clone(),
            capacity_type: interrupt.capacity_type,
        };
        let mut running: Vec<_> = self
            .cloud
            .instances()
            .into_iter()
            .filter(|i| i.terminated_at.is_none())
            .filter(|i| {
                pattern.matches(&nodewright_core::ports::OfferingKey {
                    instance_type: i.instance.instance_type.clone(),
                    zone: i.instance.zone.clone(),
                    capacity_type: i.instance.capacity_type,
                })
            })
            .collect();
        running.sort_by(|a, b| {
            (a.instance.launched_at, &a.instance.id).cmp(&(b.instance.launched_at, &b.instance.id))
        });
        let kind = match interrupt.kind {
            InterruptKind::Spot => Kind::SpotInterruption,
            InterruptKind::Rebalance => Kind::Rebalance,
            InterruptKind::Scheduled => Kind::ScheduledChange,
            InterruptKind::Stop => Kind::Stopping,
        };
        let mut notices = Vec::new();
        for sim in running.into_iter().take(interrupt.count) {
            let id = sim.instance.id.clone();
            let node = self.node_of(&id);
            if let Some(n) = &node {
                self.interrupted_nodes.insert(n.clone());
            }
            self.record(Event::Interrupted {
                instance: id.clone(),
                node,
                interruption: format!("{:?}", interrupt.kind).to_lowercase(),
            });
            // EC2 takes back spot instances two minutes after the warning.
            if interrupt.kind == InterruptKind::Spot && sim.instance.capacity_type == CapacityType::Spot {
                self.reclaims.push((id.clone(), now + SPOT_NOTICE_MS));
            }
            notices.push(Notice {
                id: format!("sim-{id}-{}", kind.as_str()),
                kind,
                instance_ids: vec![id],
            });
        }
        self.handle_interruptions(&notices);
    }

    /// Spot instances whose two minutes are up go, and EC2 says so.
    fn reclaim_due(&mut self, now: Millis) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reclaims)
            .into_iter()
            .partition(|(_, at)| *at <= now);
        self.reclaims = later;
        let mut notices = Vec::new();
        for (id, _) in due {
            let node = self.node_of(&id);
            if pollster::block_on(self.cloud.terminate(&id)).is_ok() {
                self.record(Event::Interrupted {
                    instance: id.clone(),
                    node,
                    interruption: "reclaimed".into(),
                });
                notices.push(Notice {
                    id: format!("sim-{id}-terminated"),
                    kind: Kind::Terminated,
                    instance_ids: vec![id],
                });
            }
        }
        if !notices.is_empty() {
            self.handle_interruptions(&notices);
        }
    }

    fn node_of(&self, instance_id: &str) -> Option<String> {
        self.cluster
            .nodes()
            .into_iter()
            .find(|n| n.instance_id() == Some(instance_id))
            .map(|n| n.name)
    }

    fn handle_interruptions(&mut self, notices: &[Notice]) {
        if notices.is_empty() {
            return;
        }
        let result = pollster::block_on(pass::run_interruptions(
            notices,
            Rebalance::Record,
            &self.cluster,
            &self.cloud,
            &self.store,
            self.clock.as_ref(),
            &self.ids,
            &self.unavailable,
            &self.config,
        ));
        match result {
            Ok(report) => {
                if let Some(pass) = report.pass.filter(|p| p.ran) {
                    self.rounds += 1;
                    self.record_lifecycle(pass.lifecycle);
                    self.record_round(pass.round);
                }
            }
            Err(e) => self.record(Event::RoundFailed {
                error: format!("interruption: {e}"),
            }),
        }
    }

    fn sweep(&mut self) {
        let result = pollster::block_on(pass::run_sweep(
            &self.cluster,
            &self.cloud,
            &self.store,
            self.clock.as_ref(),
            &self.ids,
            &self.unavailable,
            &self.config,
        ));
        let report = match result {
            Ok(r) if r.ran => r.sweep,
            Ok(_) => return,
            Err(e) => {
                self.record(Event::RoundFailed {
                    error: format!("sweep: {e}"),
                });
                return;
            }
        };
        for (i, decision) in report.decisions.iter().enumerate() {
            let replacement = report
                .replacements
                .iter()
                .filter(|(d, _)| *d == i)
                .map(|(_, l)| Replacement {
                    claim: l.claim_id.clone(),
                    instance_type: l.instance_type.clone(),
                    capacity_type: l.capacity_type,
                    price_per_hour: l.price,
                })
                .next();
            *self
                .disruptions
                .entry(decision.reason.as_str().to_string())
                .or_default() += decision.candidates.len();
            self.record(Event::Disrupting {
                reason: decision.reason.as_str().to_string(),
                nodes: decision.nodes(),
                replacement,
                savings_per_hour: round4(decision.savings_per_hour),
            });
        }
        for error in report.failures {
            self.record(Event::RoundFailed {
                error: format!("sweep: {error}"),
            });
        }
    }

    fn record_lifecycle(&mut self, report: LifecycleReport) {
        for (claim, node) in report.registered {
            self.record(Event::Registered { node, claim });
        }
        for (claim, node) in report.initialized {
            self.record(Event::Initialized { node, claim });
        }
        for claim in report.registration_timeouts {
            self.record(Event::RegistrationTimeout { claim });
        }
        for (claim, reason) in report.terminating {
            self.record(Event::Terminating { claim, reason });
        }
        for (pod, node) in report.evicted {
            self.pods_evicted += 1;
            self.blocked_reported.remove(&pod);
            self.record(Event::Evicted { pod, node });
        }
        for (pod, node, by) in report.eviction_blocked {
            if self.blocked_reported.insert(pod.clone()) {
                self.record(Event::EvictionBlocked { pod, node, by });
            }
        }
        for (node, reason) in report.nodes_deleted {
            self.record(Event::NodeDeleted { node, reason });
        }
        for (claim, instance, reason) in report.terminated {
            self.record(Event::Terminated {
                claim,
                instance,
                reason,
            });
        }
        for error in report.failures {
            self.record(Event::RoundFailed { error });
        }
    }

    fn record_round(&mut self, report: RoundReport) {
        if report.invalid_config != self.last_invalid_config {
            for error in &report.invalid_config {
                self.record(Event::InvalidConfig { error: error.clone() });
            }
            self.last_invalid_config = report.invalid_config.clone();
        }
        for l in report.launched {
            self.record(Event::Launched {
                claim: l.claim_id,
                nodepool: l.nodepool,
                instance_id: l.instance_id,
                instance_type: l.instance_type,
                zone: l.zone,
                capacity_type: l.capacity_type,
                price_per_hour: l.price,
                pods: l.pods,
            });
        }
        for error in report.failures {
            self.record(Event::LaunchFailed { error });
        }
        // A round that saw no pending pods did not plan, so it says nothing about them.
        if report.pods_pending > 0 {
            let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
            for u in &report.unschedulable {
                *by_reason.entry(u.reason.clone()).or_default() += 1;
            }
            let now: Vec<(String, usize)> = by_reason.into_iter().collect();
            if now != self.last_unprovisionable {
                for (reason, pods) in &now {
                    self.record(Event::CannotProvision {
                        pods: *pods,
                        reason: reason.clone(),
                    });
                }
                self.last_unprovisionable = now;
            }
        }
    }

    fn record(&mut self, event: Event) {
        let at_ms = self.elapsed_ms();
        self.timeline.push(TimelineEvent {
            at: format_offset(at_ms),
            at_ms,
            event,
        });
    }

    /// The timeline so far and the summary as of now.
    pub fn report(&self) -> Report {
        let now = self.clock.now();
        let history = self.cluster.pod_history();
        let instances = self.cloud.instances();
        let latencies = history
            .iter()
            .filter_map(|r| Some(r.bound_at? - r.created_at))
            .collect();
        let pending_at_end = self
            .cluster
            .pods()
            .iter()
            .filter(|(p, s)| *s != PodStatus::Bound && !p.is_daemon())
            .count();
        let node_hours: f64 = instances.iter().map(|i| i.hours(now)).sum();
        let cost: f64 = instances.iter().map(|i| i.price * i.hours(now)).sum();
        Report {
            scenario: self.scenario.name.clone(),
            description: self.scenario.description.clone(),
            timeline: self.timeline.clone(),
            summary: Summary {
                duration: format_offset(now - START),
                rounds: self.rounds,
                pods_created: history.len(),
                peak_pods_bound: self.peak_pods_bound,
                pods_never_bound: history.iter().filter(|r| r.bound_at.is_none()).count(),
                pods_pending_at_end: pending_at_end,
                instances_launched: instances.len(),
                peak_nodes: self.peak_nodes,
                nodes_at_end: self.cluster.node_count(),
                node_hours: round4(node_hours),
                total_cost: round4(cost),
                time_to_bind: Latency::of(latencies),
                pods_evicted: self.pods_evicted,
                pods_disrupted_seconds: self.pods_disrupted_seconds(&history, now),
                cost_per_hour_at_end: round4(self.running_cost_per_hour()),
                disruptions: self.disruptions.clone(),
                pdb_violations: self.pdb_violations + self.cluster.pdb_violations(),
            },
        }
    }

    /// For each pod that left an interrupted node, the time until the pod its workload made
    /// in its place was bound (or now).
    fn pods_disrupted_seconds(&self, history: &[crate::cluster::PodRecord], now: Millis) -> f64 {
        let mut used = vec![false; history.len()];
        let mut total: Millis = 0;
        for left in history.iter().filter(|r| {
            r.node
                .as_ref()
                .is_some_and(|n| self.interrupted_nodes.contains(n))
                && r.deleted_at.is_some()
        }) {
            let Some(at) = left.deleted_at else { continue };
            let replacement = history.iter().enumerate().find(|(i, r)| {
                !used[*i] && r.workload.is_some() && r.workload == left.workload && r.created_at == at
            });
            if let Some((i, r)) = replacement {
                used[i] = true;
                total += r.bound_at.unwrap_or(now) - at;
            }
        }
        total as f64 / 1000.0
    }

    pub fn cluster(&self) -> &SimCluster {
        &self.cluster
    }

    pub fn cloud(&self) -> &SimCloud {
        &self.cloud
    }

    pub fn store(&self) -> &SimClaimStore {
        &self.store
    }

    pub fn clock(&self) -> &Arc<VirtualClock> {
        &self.clock
    }
}

/// Four decimals: enough for dollars and hours, and stable in JSON.
fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}
