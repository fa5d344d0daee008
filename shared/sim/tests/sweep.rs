//! A sweep plans its replacements with what the whole cluster knows of capacity: the offerings
//! the claim store holds as unavailable, even in a sweeper whose own memory is fresh (the
//! sweeper is a Lambda of its own, cold or warm independently of the provisioner).

use std::sync::{Arc, Mutex};

use nodewright_core::builders::{nodeclass, nodepool, pod};
use nodewright_core::catalog::CapacityType;
use nodewright_core::labels;
use nodewright_core::pass::{PassConfig, run_pass, run_sweep};
use nodewright_core::ports::{ClaimStore, Clock, Cloud, OfferingKey};
use nodewright_core::provisioning::RoundConfig;
use nodewright_core::requirements::Operator;
use nodewright_core::unavailable::{UNAVAILABLE_FOR_MS, UnavailableOfferings};
use nodewright_core::wiring::Ports;
use nodewright_sim::{Kubelet, SeededIds, SimClaimStore, SimCloud, SimCluster, VirtualClock};
use pollster::block_on;

const START: i64 = 1_000_000;
const MINUTE: i64 = 60_000;

fn config() -> PassConfig {
    PassConfig {
        round: RoundConfig {
            holder: "test".into(),
            ..RoundConfig::default()
        },
        ..PassConfig::default()
    }
}

#[test]
fn a_cold_sweeper_plans_replacements_without_the_offerings_the_store_holds_unavailable() {
    let clock = Arc::new(VirtualClock::new(START));
    let cloud = SimCloud::new(clock.clone(), 7);
    let cluster = SimCluster::new(clock.clone(), 7);
    let store = SimClaimStore::new();
    let ids = SeededIds::new(7);
    let mut kubelet = Kubelet::new(45_000);
    // The provisioner and the sweeper are separate processes, each with its own warm record.
    let ports = |unavailable| Ports {
        cluster: &cluster,
        cloud: &cloud,
        store: &store,
        clock: clock.as_ref(),
        ids: &ids,
        unavailable,
    };
    let provisioner_memory = Mutex::new(UnavailableOfferings::new());
    cluster.apply_nodeclass(nodeclass("default"));
    cluster.apply_nodepool(
        nodepool("default")
            .on_demand_only()
            .requirement(labels::INSTANCE_TYPE, Operator::In, &["m5.large", "m5.xlarge"])
            .build(),
    );
    cluster.create_pod(pod("web").cpu("1").build()).expect("new pod");
    for _ in 0..3 {
        cluster.run_scheduler();
        block_on(run_pass(&ports(&provisioner_memory), &config())).expect("pass");
        clock.advance(MINUTE);
        kubelet
            .register_booted(&cloud, &cluster, &store)
            .expect("kubelet");
    }
    cluster.run_scheduler();
    let first = cloud.instances();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].instance.instance_type, "m5.large");

    // The node drifts (a new AMI); meanwhile m5.large ran out of capacity everywhere, as the
    // store records (the interruption function writes such marks).
    cloud.release_ami();
    let catalog = block_on(cloud.catalog(&nodeclass("default"))).expect("catalog");
    let now = clock.now();
    for o in catalog
        .get("m5.large")
        .map(|t| t.offerings.clone())
        .unwrap_or_default()
    {
        let key = OfferingKey {
            instance_type: "m5.large".into(),
            zone: o.zone,
            capacity_type: CapacityType::OnDemand,
        };
        block_on(store.mark_unavailable(&key, now + UNAVAILABLE_FOR_MS)).expect("mark");
    }

    let sweeper_memory = Mutex::new(UnavailableOfferings::new());
    let report = block_on(run_sweep(&ports(&sweeper_memory), &config())).expect("sweep");
    let replacements: Vec<&str> = report
        .sweep
        .replacements
        .iter()
        .map(|r| r.launch.instance_type.as_str())
        .collect();
    assert_eq!(replacements, ["m5.xlarge"], "{:#?}", report.sweep);
    let planned = &report.sweep.decisions[0].replacements[0];
    assert!(
        planned
            .launch_overrides()
            .iter()
            .all(|o| o.instance_type != "m5.large"),
        "{:?}",
        planned.launch_overrides()
    );
}
