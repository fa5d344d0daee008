//! Cleaning up after nodewright on the embedded cloud and cluster: the instance profile of a
//! deleted EC2NodeClass goes once nothing uses it, and uninstalling drains and terminates every
//! node (through the lifecycle's graceful termination, respecting PodDisruptionBudgets) and
//! deletes the instance profiles.

mod support;

use nodewright_core::builders::{nodeclass, nodepool, pod};
use nodewright_core::instance_profiles::GRACE_MS;
use nodewright_core::pdb::{Budget, IntOrPercent, PodDisruptionBudget};
use nodewright_core::pod::{LabelSelector, Node, TaintEffect};
use nodewright_core::ports::{ClaimStore, Clock};
use nodewright_core::testing;
use nodewright_core::uninstall::{REASON, UninstallConfig, UninstallReport, hand_back, run_step};
use nodewright_sim::{PodStatus, Workload};
use pollster::block_on;
use support::World;

const MINUTE: i64 = 60_000;

/// What these tests do and read in the world.
impl World {
    fn workload(&self, name: &str, replicas: u32, template: nodewright_core::pod::Pod) {
        self.cluster.apply_workload(Workload {
            namespace: "default".into(),
            name: name.into(),
            replicas,
            stateful: false,
            template,
        });
    }

    fn running(&self) -> Vec<String> {
        self.cloud
            .instances()
            .into_iter()
            .filter(|i| i.terminated_at.is_none())
            .map(|i| i.instance.id)
            .collect()
    }

    fn profiles(&self) -> Vec<String> {
        self.cloud.instance_profiles().into_keys().collect()
    }

    /// Nodes of nodewright's (the claim label).
    fn our_nodes(&self) -> Vec<Node> {
        self.cluster
            .nodes()
            .into_iter()
            .filter(|n| n.labels.contains_key("nodewright.io/nodeclaim"))
            .collect()
    }
}

/// Two node classes, `default` and `batch` (tainted, for the `jobs` workload), each with a node.
fn two_classes() -> World {
    let mut w = World::new(5);
    w.cluster.apply_nodeclass(nodeclass("default"));
    w.cluster.apply_nodeclass(nodeclass("batch"));
    w.cluster
        .apply_nodepool(nodepool("default").on_demand_only().build());
    let mut batch = nodepool("batch")
        .on_demand_only()
        .taint("batch", None, TaintEffect::NoSchedule)
        .build();
    batch.spec.template.spec.node_class_ref.name = "batch".into();
    w.cluster.apply_nodepool(batch);
    w.workload("web", 2, pod("web").label("app", "web").cpu("1").build());
    w.workload(
        "jobs",
        1,
        pod("jobs")
            .cpu("1")
            .node_selector("karpenter.sh/nodepool", "batch")
            .tolerate("batch", None, Some(TaintEffect::NoSchedule))
            .build(),
    );
    for _ in 0..4 {
        w.minute();
    }
    assert!(
        w.cluster.pods().iter().all(|(_, s)| *s == PodStatus::Bound),
        "{:?}",
        w.cluster.pods()
    );
    w
}

#[test]
fn the_profile_of_a_deleted_node_class_goes_once_its_last_instance_is_gone() {
    let mut w = two_classes();
    assert_eq!(w.profiles(), ["nodewright_sim_batch", "nodewright_sim_default"]);

    // The batch class is deleted while its node still runs: long past the grace, the sweeper
    // keeps the profile that node runs with.
    w.workload("jobs", 0, pod("jobs").cpu("1").build());
    assert!(w.cluster.delete_nodeclass("batch"));
    w.clock.advance(GRACE_MS);
    w.minute();
    let report = w.sweep();
    assert!(report.instance_profiles_deleted.is_empty(), "{report:?}");
    assert_eq!(w.profiles(), ["nodewright_sim_batch", "nodewright_sim_default"]);

    // Its node goes (kubectl delete node): then the profile goes, and only it.
    let batch_node = w
        .our_nodes()
        .into_iter()
        .find(|n| n.labels.get("karpenter.sh/nodepool").map(String::as_str) == Some("batch"))
        .expect("the batch node");
    assert!(w.cluster.delete_node_as_user(&batch_node.name));
    for _ in 0..3 {
        w.minute();
    }
    assert!(w.our_nodes().iter().all(|n| n.name != batch_node.name));
    let report = w.sweep();
    assert_eq!(
        report.instance_profiles_deleted,
        ["nodewright_sim_batch"],
        "{report:?}"
    );
    assert_eq!(w.profiles(), ["nodewright_sim_default"]);
    assert!(w.sweep().instance_profiles_deleted.is_empty(), "once");
}

/// Runs uninstall steps a minute apart (the kube-scheduler binding in between) until done.
fn uninstall(w: &mut World, config: &UninstallConfig, steps: usize) -> Vec<UninstallReport> {
    let mut reports = Vec::new();
    for _ in 0..steps {
        let report =
            block_on(run_step(&w.cluster, &w.cloud, &w.store, w.clock.as_ref(), config)).expect("step");
        let done = report.done;
        reports.push(report);
        if done {
            break;
        }
        w.clock.advance(MINUTE);
        w.cluster.run_scheduler();
    }
    reports
}

/// Three web replicas under a PodDisruptionBudget of one at a time, spread over nodewright's
/// nodes, and a node of a managed node group (not nodewright's) with room for them.
fn cluster_with_a_pdb() -> World {
    let mut w = World::new(5);
    w.cluster.apply_nodeclass(nodeclass("default"));
    w.cluster
        .apply_nodepool(nodepool("default").on_demand_only().build());
    w.workload(
        "web",
        3,
        pod("web").label("app", "web").cpu("1").hostname_spread(1).build(),
    );
    w.cluster.apply_pdb(PodDisruptionBudget {
        namespace: "default".into(),
        name: "web".into(),
        selector: Some(LabelSelector::match_labels(&[("app", "web")])),
        budget: Budget::MaxUnavailable(IntOrPercent::Int(1)),
    });
    for _ in 0..4 {
        w.minute();
    }
    assert!(w.our_nodes().len() >= 2, "{:?}", w.our_nodes());
    assert!(w.cluster.pods().iter().all(|(_, s)| *s == PodStatus::Bound));
    w
}

#[test]
fn uninstall_drains_every_node_respecting_the_pdb_and_leaves_no_instance_or_profile() {
    let mut w = cluster_with_a_pdb();
    let managed = Node {
        name: "managed-1".into(),
        ..support_node("managed-1", 8_000)
    };
    w.cluster.register_node(managed).expect("a managed node");
    let launched = w.running();
    assert!(!launched.is_empty());
    assert_eq!(w.profiles(), ["nodewright_sim_default"]);

    let reports = uninstall(&mut w, &UninstallConfig::default(), 30);
    let last = reports.last().expect("a step");
    assert!(last.done, "{:#?}", last);
    // Nothing of nodewright's is left in the cloud or the cluster.
    assert!(w.running().is_empty(), "{:?}", w.running());
    assert!(w.profiles().is_empty());
    assert!(w.our_nodes().is_empty());
    assert!(block_on(w.store.list_live()).expect("claims").is_empty());
    // Every pod was evicted, one at a time as the budget allows, and runs on the managed node.
    assert_eq!(w.cluster.pdb_violations(), 0);
    let evicted: usize = reports.iter().map(|r| r.lifecycle.evicted.len()).sum();
    assert_eq!(evicted, 3);
    assert!(
        reports.iter().any(|r| r
            .lifecycle
            .eviction_blocked
            .iter()
            .any(|held| held.reason == "PodDisruptionBudget")),
        "the budget held a drain at least once"
    );
    assert!(
        w.cluster
            .pods()
            .iter()
            .all(|(p, s)| *s == PodStatus::Bound && p.node_name.as_deref() == Some("managed-1"))
    );
    // Through graceful termination, audited with the reason.
    let terminated: Vec<_> = w
        .store
        .audit_log()
        .into_iter()
        .filter(|a| a.action == "terminate")
        .collect();
    assert_eq!(terminated.len(), launched.len());
    assert!(terminated.iter().all(|a| a.reason == REASON), "{terminated:?}");
    // Nothing was launched for the evicted pods meanwhile: the lease kept the passes out.
    assert_eq!(w.cloud.instances().len(), launched.len());
    // The still-deployed functions launch nothing for the pods left behind until the stack is
    // deleted: the lease stays held after the end.
    let before = w.cloud.instances().len();
    w.workload("big", 1, pod("big").cpu("10").build());
    w.minute();
    assert!(
        w.cluster
            .pods()
            .iter()
            .any(|(p, s)| p.name.starts_with("big") && matches!(s, PodStatus::Unschedulable { .. })),
        "a pod only a new node could take"
    );
    assert_eq!(w.cloud.instances().len(), before);
    // Unless the uninstall is called off: the functions have the cluster back.
    block_on(hand_back(&w.store, w.clock.as_ref(), &UninstallConfig::default())).expect("hand back");
    let lease = block_on(w.store.acquire_lease("someone", w.clock.now(), MINUTE)).expect("free");
    block_on(w.store.release_lease(&lease)).expect("release");

    // Running it again finds nothing to do.
    let again = uninstall(&mut w, &UninstallConfig::default(), 1);
    assert!(again[0].done && again[0].draining.is_empty() && again[0].lifecycle.evicted.is_empty());
}

#[test]
fn without_room_elsewhere_the_pdb_holds_the_drain_until_force_and_a_pass_meanwhile_does_nothing() {
    let mut w = cluster_with_a_pdb();
    let config = UninstallConfig::default();
    let reports = uninstall(&mut w, &config, 5);
    let last = reports.last().expect("a step");
    assert!(!last.done);
    // One replica left; the next two wait for it to run again, which nothing will provide.
    assert_eq!(
        reports.iter().map(|r| r.lifecycle.evicted.len()).sum::<usize>(),
        1
    );
    assert!(
        last.remaining
            .blocked_pods
            .iter()
            .any(|held| held.reason == "PodDisruptionBudget"),
        "{last:#?}"
    );
    assert!(
        last.remaining
            .claims
            .iter()
            .any(|left| left.why.contains("cannot be evicted")),
        "{last:#?}"
    );
    assert!(
        last.progress_line().contains("cannot be evicted"),
        "{}",
        last.progress_line()
    );
    // The provisioner's pass finds the lease held and launches nothing for the pending replica.
    let before = w.cloud.instances().len();
    w.minute();
    assert_eq!(w.cloud.instances().len(), before);

    // --force: from its deadline on, the nodes go with their pods.
    let forced = UninstallConfig {
        force_after: Some(w.clock.now() + 2 * MINUTE),
        ..config
    };
    let reports = uninstall(&mut w, &forced, 10);
    assert!(reports.last().is_some_and(|r| r.done), "{:#?}", reports.last());
    assert!(w.running().is_empty());
    assert!(w.profiles().is_empty());
    assert!(w.our_nodes().is_empty());
}

fn support_node(name: &str, cpu_milli: i64) -> Node {
    testing::node(name)
        .instance_type("m5.2xlarge")
        .cpu(&format!("{cpu_milli}m"))
        .memory("32Gi")
        .build()
}
