//! The simulation loop: virtual time in one-second ticks, and in each tick what a cluster with
//! nodewright would do in that second.

mod reporting;
mod sampling;
mod steps;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use nodewright_core::interruption::{Notice, Rebalance};
use nodewright_core::pass::{self, PassConfig};
use nodewright_core::pod::Millis;
use nodewright_core::ports::Clock;
use nodewright_core::provisioning::RoundConfig;
use nodewright_core::unavailable::UnavailableOfferings;
use nodewright_core::wiring::Ports;

use crate::cloud::SimCloud;
use crate::cluster::SimCluster;
use crate::error::Result;
use crate::ids::{SeededIds, SplitMix64};
use crate::kubelet::Kubelet;
use crate::report::{Event, Replacement, Report, TimelineEvent};
use crate::scenario::Scenario;
use crate::store::SimClaimStore;
use nodewright_core::clock::VirtualClock;

use reporting::round4;
pub use sampling::Sample;

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
            let nodes: BTreeSet<&String> = pass.bound.iter().map(|b| &b.node).collect();
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

    /// The in-memory cluster, cloud and store, wired as the functions wire the real ones.
    fn ports(&self) -> Ports<'_, SimCluster, SimCloud, SimClaimStore> {
        Ports {
            cluster: &self.cluster,
            cloud: &self.cloud,
            store: &self.store,
            clock: self.clock.as_ref(),
            ids: &self.ids,
            unavailable: &self.unavailable,
        }
    }

    fn round(&mut self) {
        let result = pollster::block_on(pass::run_pass(&self.ports(), &self.config));
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

    fn handle_interruptions(&mut self, notices: &[Notice]) {
        if notices.is_empty() {
            return;
        }
        let result = pollster::block_on(pass::run_interruptions(
            notices,
            Rebalance::Record,
            &self.ports(),
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
        let result = pollster::block_on(pass::run_sweep(&self.ports(), &self.config));
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
                .filter(|r| r.decision == i)
                .map(|r| &r.launch)
                .map(|l| Replacement {
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
