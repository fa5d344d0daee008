//! The provisioner's pass over the embedded cloud, cluster and store: graceful termination
//! interrupted at every step is finished by the next pass with nothing done twice, and a pass
//! that panics or runs into its deadline leaves the lease free.

mod support;

use nodewright_core::api::Ec2NodeClass;
use nodewright_core::builders::{nodeclass, nodepool, pod};
use nodewright_core::catalog::Catalog;
use nodewright_core::nodeclaim::ClaimState;
use nodewright_core::pass::PassConfig;
use nodewright_core::ports::{
    ClaimStore, Clock, Cloud, ErrorKind, Instance, LaunchRequest, Launched, PortError, PortResult,
};
use nodewright_sim::{CloudOp, ClusterOp, SimClaimStore, SimCloud, StoreOp};
use pollster::block_on;
use support::{START, World};

/// The default pool (on-demand) and `pods` pending 1-CPU pods.
fn world_with_pods(pods: usize) -> World {
    let w = World::new(3);
    w.cluster.apply_nodeclass(nodeclass("default"));
    w.cluster
        .apply_nodepool(nodepool("default").on_demand_only().build());
    for i in 0..pods {
        w.cluster
            .create_pod(pod(&format!("web-{i}")).label("app", "web").cpu("1").build())
            .expect("pod");
    }
    w.cluster.run_scheduler();
    w
}

impl World {
    fn lease_is_free(&self) -> bool {
        match block_on(self.store.acquire_lease("someone-else", self.clock.now(), 60_000)) {
            Ok(lease) => {
                block_on(self.store.release_lease(&lease)).expect("release");
                true
            }
            Err(e) if e.kind == ErrorKind::Conflict => false,
            Err(e) => panic!("{e}"),
        }
    }
}

fn unavailable(what: &str) -> PortError {
    PortError::new(ErrorKind::Unavailable, format!("injected: {what}"))
}

/// Where to kill a pass: the next call of one operation fails, in the given pass of the
/// termination (0: the pass that starts it).
#[derive(Debug, Clone, Copy)]
enum Fault {
    Store(StoreOp),
    Cluster(ClusterOp),
    Cloud(CloudOp),
}

#[test]
fn graceful_termination_killed_at_any_step_is_finished_by_the_next_passes_with_nothing_done_twice() {
    let faults = [
        Fault::Store(StoreOp::Update),
        Fault::Cluster(ClusterOp::Cordon),
        Fault::Cluster(ClusterOp::Evict),
        Fault::Cloud(CloudOp::Terminate),
        Fault::Cluster(ClusterOp::DeleteNode),
        Fault::Store(StoreOp::Audit),
    ];
    for fault in faults {
        for in_pass in 0..3 {
            let mut w = world_with_pods(3);
            w.pass();
            w.minute();
            let claims = w.store.claims();
            assert!(
                claims.iter().all(|c| c.state == ClaimState::Initialized),
                "{claims:#?}"
            );
            let node = claims[0].node_name.clone().expect("registered");
            let instance = claims[0].instance_id().expect("launched").to_string();
            assert!(w.cluster.delete_node_as_user(&node));

            let mut evicted = Vec::new();
            let mut terminated = Vec::new();
            for pass in 0..8 {
                if pass == in_pass {
                    match fault {
                        Fault::Store(op) => w.store.fail_next(op, unavailable("store")),
                        Fault::Cluster(op) => w.cluster.fail_next(op, unavailable("cluster")),
                        Fault::Cloud(op) => w.cloud.fail_next(op, unavailable("cloud")),
                    }
                }
                let report = w.minute();
                evicted.extend(report.lifecycle.evicted);
                terminated.extend(report.lifecycle.terminated);
            }
            let why = format!("{fault:?} in pass {in_pass}");
            let claim = w
                .store
                .claims()
                .into_iter()
                .find(|c| c.instance_id() == Some(instance.as_str()))
                .expect("the claim");
            assert_eq!(claim.state, ClaimState::Terminated, "{why}");
            assert!(w.cluster.node(&node).is_none(), "{why}: node left");
            let sim = w
                .cloud
                .instances()
                .into_iter()
                .find(|i| i.instance.id == instance)
                .expect("instance");
            assert!(sim.terminated_at.is_some(), "{why}: instance left running");
            // Each pod moved once; the claim closed once; at most one audit record for it (a
            // failed audit write is the one thing a kill may lose).
            let mut pods: Vec<&String> = evicted.iter().map(|e| &e.pod).collect();
            pods.sort();
            pods.dedup();
            assert_eq!(pods.len(), evicted.len(), "{why}: {evicted:?}");
            assert!(evicted.len() <= 3, "{why}");
            assert_eq!(terminated.len(), 1, "{why}: {terminated:?}");
            let audits = w
                .store
                .audit_log()
                .into_iter()
                .filter(|a| a.claim_id == claim.id && a.action == "terminate")
                .count();
            assert!(audits <= 1, "{why}: {audits} audit records");
            if !matches!(fault, Fault::Store(StoreOp::Audit)) {
                assert_eq!(audits, 1, "{why}");
            }
            // Bare pods are not recreated; none is left on the node that went.
            assert!(!w.cluster.workload_pods_per_node().contains_key(&node), "{why}");
        }
    }
}

/// EC2 that panics on launch (a bug, an out-of-bounds index in an adapter).
struct PanickingCloud<'a>(&'a SimCloud);

impl Cloud for PanickingCloud<'_> {
    async fn launch(&self, _request: &LaunchRequest) -> PortResult<Launched> {
        panic!("launch panicked");
    }

    async fn terminate(&self, instance_id: &str) -> PortResult<()> {
        self.0.terminate(instance_id).await
    }

    async fn list_instances(&self) -> PortResult<Vec<Instance>> {
        self.0.list_instances().await
    }

    async fn catalog(&self, nodeclass: &Ec2NodeClass) -> PortResult<Catalog> {
        self.0.catalog(nodeclass).await
    }
}

#[test]
fn a_pass_that_panics_mid_launch_releases_the_lease_at_once() {
    let w = world_with_pods(2);
    let config = w.config();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        w.pass_with(&PanickingCloud(&w.cloud), &config)
    }));
    assert!(panicked.is_err());
    assert!(w.lease_is_free(), "the lease outlived the panic");
    // The claim written before the launch is reconciled; the next pass launches.
    let report = w.pass();
    assert!(report.ran);
}

#[test]
fn a_pass_at_its_deadline_launches_nothing_more_and_leaves_the_lease_free() {
    let w = world_with_pods(4);
    let config = PassConfig {
        deadline: Some(w.clock.now()),
        ..w.config()
    };
    let report = w.pass_with(&w.cloud, &config).expect("pass");
    assert!(report.round.launched.is_empty());
    assert!(report.round.deferred >= 1, "{:?}", report.round);
    assert!(w.lease_is_free());
    assert!(w.cloud.instances().is_empty());
    let next = w.pass();
    assert!(!next.round.launched.is_empty());
}

#[test]
fn a_launch_that_may_have_reached_ec2_leaves_its_claim_for_reconciliation() {
    let mut w = world_with_pods(1);
    w.cloud
        .fail_next(CloudOp::Launch, unavailable("timeout after retries"));
    let report = w.pass();
    assert_eq!(report.round.failures.len(), 1, "{:?}", report.round);
    let claims = w.store.claims();
    assert_eq!(claims.len(), 1);
    assert_eq!(
        claims[0].state,
        ClaimState::Launching,
        "not closed on an ambiguous error"
    );
    // No instance appeared: reconciliation closes it after its grace, and the pod gets capacity.
    for _ in 0..4 {
        w.minute();
    }
    let claims = w.store.claims();
    assert_eq!(claims[0].state, ClaimState::Terminated);
    assert!(
        claims.iter().any(|c| c.state == ClaimState::Initialized),
        "{claims:#?}"
    );
}

#[test]
fn a_definite_refusal_closes_the_claim_at_once() {
    let w = world_with_pods(1);
    w.cloud.fail_next(
        CloudOp::Launch,
        PortError::new(ErrorKind::Invalid, "injected: InvalidParameterValue"),
    );
    w.pass();
    let claims = w.store.claims();
    assert_eq!(claims[0].state, ClaimState::Terminated);
}

#[test]
fn a_store_fenced_with_a_lost_lease_refuses_claim_writes() {
    let store = SimClaimStore::new();
    let old = block_on(store.acquire_lease("a", START, 1_000)).expect("lease");
    let fenced = store.fenced(&old);
    let claim = block_on(fenced.create(&support::claim("c1"))).expect("still ours");
    // The lease expires and passes on; the old holder wakes up.
    block_on(store.acquire_lease("b", START + 2_000, 1_000)).expect("taken over");
    let err = block_on(fenced.update(&claim)).expect_err("fenced");
    assert_eq!(err.kind, ErrorKind::Conflict);
    let err = block_on(fenced.create(&support::claim("c2"))).expect_err("fenced");
    assert_eq!(err.kind, ErrorKind::Conflict);
}

#[test]
fn a_burst_of_pods_is_launched_in_one_pass() {
    let w = world_with_pods(300);
    let mut config = w.config();
    config.round.launch_concurrency = 8;
    let report = w.pass_with(&w.cloud, &config).expect("pass");
    let placed: usize = report.round.launched.iter().map(|l| l.pods).sum();
    assert_eq!(placed, 300);
    assert_eq!(report.round.deferred, 0);
}

#[test]
fn a_pool_whose_node_class_ref_names_another_kind_is_skipped_and_reported() {
    let w = world_with_pods(2);
    // Weighted above the default pool, so the scheduler would try it first were it kept.
    let mut foreign = nodepool("foreign").weight(100).build();
    let class_ref = &mut foreign.spec.template.spec.node_class_ref;
    class_ref.group = "karpenter.azure.com".into();
    class_ref.kind = "AKSNodeClass".into();
    w.cluster.apply_nodepool(foreign);

    let report = w.pass();
    assert_eq!(
        report.round.invalid_config,
        [
            "NodePool foreign: nodeClassRef refers to karpenter.azure.com AKSNodeClass, but only \
          karpenter.k8s.aws EC2NodeClass is supported"
        ]
    );
    assert!(!report.round.launched.is_empty(), "{:?}", report.round);
    assert!(
        report.round.launched.iter().all(|l| l.nodepool == "default"),
        "{:?}",
        report.round.launched
    );
    let placed: usize = report.round.launched.iter().map(|l| l.pods).sum();
    assert_eq!(placed, 2);
}

#[test]
fn an_empty_fleet_costs_zero_not_minus_zero() {
    let w = World::new(1);
    let cost = w.pass().round.fleet_cost_per_hour;
    // `-0.0 == 0.0`, but it prints as `$-0.0000`.
    assert!(cost == 0.0 && cost.is_sign_positive(), "{cost}");
}
