//! The live catalog read from moto's EC2: instance types, zones, spot prices, the embedded
//! on-demand prices standing in for the Pricing API, and the caches' lifetimes on a test clock.
//! moto's spot prices are placeholders, so these tests check our assembly, not the numbers.

use std::sync::Arc;

use nodewright_aws::Ec2Cloud;
use nodewright_aws::catalog::{INSTANCE_TYPES_TTL, SPOT_PRICES_TTL};
use nodewright_aws::testing::{
    FleetError, Moto, TestClock, aws_config, claim, getting_started_nodeclass, offering,
};
use nodewright_core::catalog::CapacityType::{OnDemand, Spot};
use nodewright_core::ports::{Cloud, ErrorKind, LaunchRequest};
use nodewright_core::unavailable::UNAVAILABLE_FOR_MS;

const CLUSTER: &str = "demo";
const START: i64 = 1_750_000_000_000;

fn cloud(moto: &Moto) -> (Ec2Cloud, Arc<TestClock>) {
    let clock = TestClock::at(START);
    (
        Ec2Cloud::new(&moto.sdk_config(), aws_config(CLUSTER), clock.clone()),
        clock,
    )
}

#[tokio::test]
async fn the_catalog_has_ec2s_types_in_their_zones_with_spot_and_embedded_on_demand_prices() {
    let moto = Moto::start();
    let (cloud, _) = cloud(&moto);
    let catalog = cloud
        .catalog(&getting_started_nodeclass(CLUSTER))
        .await
        .expect("catalog");
    assert_eq!(catalog.region, "us-east-1");
    assert!(catalog.types.len() > 500, "{} types", catalog.types.len());
    let m5 = catalog.get("m5.large").expect("m5.large");
    assert_eq!(m5.capacity.cpu(), 2000);
    assert_eq!(
        m5.labels.get("kubernetes.io/arch").map(String::as_str),
        Some("amd64")
    );
    let on_demand: Vec<_> = m5
        .offerings
        .iter()
        .filter(|o| o.capacity_type == OnDemand)
        .collect();
    assert!(on_demand.len() >= 3, "{:?}", m5.offerings);
    assert!(
        on_demand.iter().all(|o| o.price == 0.096),
        "the embedded us-east-1 price: {on_demand:?}"
    );
    assert!(m5.offerings.iter().any(|o| o.capacity_type == Spot));
    assert!(catalog.zones().contains(&"us-east-1a".to_string()));
    let graviton = catalog.get("m6g.large").expect("m6g.large");
    assert_eq!(
        graviton.labels.get("kubernetes.io/arch").map(String::as_str),
        Some("arm64")
    );
}

#[tokio::test]
async fn kubelet_settings_of_the_nodeclass_change_allocatable() {
    let moto = Moto::start();
    let (cloud, _) = cloud(&moto);
    let default = cloud
        .catalog(&getting_started_nodeclass(CLUSTER))
        .await
        .expect("catalog");
    let mut nc = getting_started_nodeclass(CLUSTER);
    nc.spec.kubelet = serde_json::json!({"maxPods": 8}).as_object().cloned();
    let limited = cloud.catalog(&nc).await.expect("catalog");
    let pods = |c: &nodewright_core::catalog::Catalog| c.get("m5.xlarge").expect("m5.xlarge").capacity.pods();
    assert_eq!(pods(&limited), 8);
    assert_ne!(pods(&default), 8);
}

#[tokio::test]
async fn catalog_inputs_are_cached_for_their_time_to_live() {
    let moto = Moto::start();
    let (cloud, clock) = cloud(&moto);
    let nc = getting_started_nodeclass(CLUSTER);
    cloud.catalog(&nc).await.expect("first build");

    // Within five minutes nothing is asked again: a failing EC2 does not matter.
    moto.fail_next("ec2", "DescribeSpotPriceHistory", "UnauthorizedOperation", 1);
    clock.advance(SPOT_PRICES_TTL - 1);
    cloud.catalog(&nc).await.expect("served from the caches");

    // At five minutes the spot prices are fetched again (and here fail).
    clock.advance(1);
    let err = cloud.catalog(&nc).await.expect_err("spot prices refreshed");
    assert_eq!(err.kind, ErrorKind::Unauthorized);
    cloud.catalog(&nc).await.expect("the failure was not cached");

    // Instance types live six hours.
    moto.fail_next("ec2", "DescribeInstanceTypes", "UnauthorizedOperation", 1);
    clock.set(START + INSTANCE_TYPES_TTL - 1);
    // (spot prices, zones and on-demand prices expire before that and are fetched again)
    cloud.catalog(&nc).await.expect("instance types still cached");
    clock.set(START + INSTANCE_TYPES_TTL);
    let err = cloud.catalog(&nc).await.expect_err("instance types refreshed");
    assert_eq!(err.kind, ErrorKind::Unauthorized);
}

#[tokio::test]
async fn offerings_out_of_capacity_leave_the_catalog_for_three_minutes() {
    let moto = Moto::start();
    moto.create_network(CLUSTER).await;
    let (cloud, clock) = cloud(&moto);
    let nc = getting_started_nodeclass(CLUSTER);
    let offered = |c: &nodewright_core::catalog::Catalog| {
        c.get("m5.large")
            .expect("m5.large")
            .offerings
            .iter()
            .any(|o| o.zone == "us-east-1a" && o.capacity_type == Spot)
    };
    assert!(offered(&cloud.catalog(&nc).await.expect("catalog")));

    moto.fleet_errors(&[FleetError::ice("m5.large")], Some(1));
    let launched = cloud
        .launch(&LaunchRequest {
            claim: claim("default-ice"),
            nodeclass: nc.clone(),
            overrides: vec![
                offering("m5.large", "us-east-1a", Spot, 0.03),
                offering("c5.large", "us-east-1a", Spot, 0.04),
            ],
        })
        .await
        .expect("launch");
    assert_eq!(launched.instance.instance_type, "c5.large");

    assert!(!offered(&cloud.catalog(&nc).await.expect("catalog")));
    clock.advance(UNAVAILABLE_FOR_MS);
    assert!(offered(&cloud.catalog(&nc).await.expect("catalog")));
}
