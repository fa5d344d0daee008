//! The embedded us-east-1 catalog: its size, offerings, spot model, labels and requirements,
//! and `Catalog::build` as the live catalog will call it.

use std::collections::{BTreeMap, HashMap};

use nodewright_core::api::AmiFamily;
use nodewright_core::catalog::ec2::InstanceTypeInfo;
use nodewright_core::catalog::{CapacityType, Catalog, InstanceType, NodeSettings, Prices, embedded};
use nodewright_core::labels;
use nodewright_core::requirements::{Operator, Requirement, Requirements};
use nodewright_core::selector::parse_label_selector;

fn catalog() -> &'static Catalog {
    embedded::default_catalog().expect("embedded catalog")
}

fn instance_type(name: &str) -> &'static InstanceType {
    catalog()
        .get(name)
        .unwrap_or_else(|| panic!("{name} is in the embedded catalog"))
}

fn requiring(key: &str, operator: Operator, values: &[&str]) -> Requirements {
    let mut r = Requirements::new();
    r.add(
        key,
        Requirement::new(operator, values).expect("valid requirement"),
    );
    r
}

#[test]
fn embedded_catalog_holds_at_least_700_us_east_1_types_sorted_by_name() {
    let c = catalog();
    assert_eq!(c.region, "us-east-1");
    assert!(c.types.len() >= 700, "only {} types", c.types.len());
    assert!(c.types.windows(2).all(|w| w[0].name < w[1].name));
    assert_eq!(
        c.zones(),
        [
            "us-east-1a",
            "us-east-1b",
            "us-east-1c",
            "us-east-1d",
            "us-east-1e",
            "us-east-1f"
        ]
    );
}

#[test]
fn every_type_is_offered_on_demand_and_offerings_are_cheapest_first() {
    for t in &catalog().types {
        assert!(
            t.cheapest(CapacityType::OnDemand).is_some(),
            "{} has no on-demand offering",
            t.name
        );
        assert!(
            t.offerings.windows(2).all(|w| w[0].price <= w[1].price),
            "{} offerings are not sorted",
            t.name
        );
        assert_eq!(t.cheapest_offering(), t.offerings.first());
    }
}

#[test]
fn spot_offerings_are_cheaper_than_on_demand_in_every_zone() {
    for t in &catalog().types {
        let on_demand = t.cheapest(CapacityType::OnDemand).expect("on-demand").price;
        for o in t
            .offerings
            .iter()
            .filter(|o| o.capacity_type == CapacityType::Spot)
        {
            assert!(
                o.price > 0.0 && o.price < on_demand,
                "{} {}: {}",
                t.name,
                o.zone,
                o.price
            );
            let saving = 1.0 - o.price / on_demand;
            assert!(
                (0.5..=0.75).contains(&saving),
                "{} {}: saving {saving}",
                t.name,
                o.zone
            );
        }
    }
}

#[test]
fn spot_prices_are_the_same_on_every_build() {
    let again = embedded::catalog(&NodeSettings::default()).expect("embedded catalog");
    for (a, b) in catalog().types.iter().zip(&again.types) {
        assert_eq!(a.offerings, b.offerings, "{}", a.name);
    }
    let m5 = instance_type("m5.large");
    let spot = m5
        .cheapest(CapacityType::Spot)
        .expect("m5.large is offered as spot");
    assert_eq!(
        spot.price,
        embedded::modelled_spot_price("m5.large", &spot.zone, 0.096)
    );
}

#[test]
fn types_without_spot_support_get_only_on_demand_offerings() {
    let infos = embedded::instance_types().expect("instance types");
    let on_demand_only: Vec<&InstanceTypeInfo> = infos
        .iter()
        .filter(|i| !i.supports_usage_class("spot") && catalog().get(&i.instance_type).is_some())
        .collect();
    assert!(!on_demand_only.is_empty());
    for info in on_demand_only {
        let t = instance_type(&info.instance_type);
        assert!(
            t.offerings
                .iter()
                .all(|o| o.capacity_type == CapacityType::OnDemand),
            "{}",
            t.name
        );
        assert!(
            !t.requirements
                .get(labels::CAPACITY_TYPE)
                .expect("capacity type")
                .has("spot")
        );
    }
}

#[test]
fn a_gpu_type_carries_karpenters_gpu_labels() {
    let t = instance_type("p4d.24xlarge");
    let expected: BTreeMap<&str, &str> = [
        (labels::INSTANCE_TYPE, "p4d.24xlarge"),
        (labels::ARCH, "amd64"),
        (labels::OS, "linux"),
        (labels::REGION, "us-east-1"),
        (labels::INSTANCE_CATEGORY, "p"),
        (labels::INSTANCE_FAMILY, "p4d"),
        (labels::INSTANCE_GENERATION, "4"),
        (labels::INSTANCE_SIZE, "24xlarge"),
        (labels::INSTANCE_CPU, "96"),
        (labels::INSTANCE_CPU_MANUFACTURER, "intel"),
        (labels::INSTANCE_CPU_SUSTAINED_CLOCK_SPEED_MHZ, "3000"),
        (labels::INSTANCE_MEMORY, "1179648"),
        (labels::INSTANCE_HYPERVISOR, "nitro"),
        (labels::INSTANCE_ENCRYPTION_IN_TRANSIT_SUPPORTED, "true"),
        (labels::INSTANCE_EBS_BANDWIDTH, "19000"),
        (labels::INSTANCE_NETWORK_BANDWIDTH, "400000"),
        (labels::INSTANCE_LOCAL_NVME, "8000"),
        (labels::INSTANCE_CAPABILITY_FLEX, "false"),
        (labels::INSTANCE_GPU_NAME, "a100"),
        (labels::INSTANCE_GPU_MANUFACTURER, "nvidia"),
        (labels::INSTANCE_GPU_COUNT, "8"),
        (labels::INSTANCE_GPU_MEMORY, "40960"),
    ]
    .into_iter()
    .collect();
    let actual: BTreeMap<&str, &str> = t.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(actual, expected);
}

#[test]
fn an_inferentia_type_carries_accelerator_labels() {
    let t = instance_type("inf2.xlarge");
    assert_eq!(t.labels[labels::INSTANCE_ACCELERATOR_NAME], "inferentia2");
    assert_eq!(t.labels[labels::INSTANCE_ACCELERATOR_MANUFACTURER], "aws");
    assert_eq!(t.labels[labels::INSTANCE_ACCELERATOR_COUNT], "1");
    assert_eq!(t.labels[labels::INSTANCE_NETWORK_BANDWIDTH], "2083");
}

#[test]
fn a_cpu_type_refuses_pods_that_require_a_gpu() {
    let t = instance_type("m5.large");
    assert!(!t.labels.contains_key(labels::INSTANCE_GPU_NAME));
    let gpu = labels::INSTANCE_GPU_NAME;
    assert!(
        t.requirements
            .compatible(&requiring(gpu, Operator::In, &["a100"]))
            .is_err()
    );
    assert!(
        t.requirements
            .compatible(&requiring(gpu, Operator::Exists, &[] as &[&str]))
            .is_err()
    );
    assert!(
        t.requirements
            .compatible(&requiring(gpu, Operator::NotIn, &["a100"]))
            .is_ok()
    );
    assert!(
        t.requirements
            .compatible(&requiring(gpu, Operator::DoesNotExist, &[] as &[&str]))
            .is_ok()
    );
}

#[test]
fn requirements_offer_exactly_the_zones_and_capacity_types_of_the_offerings() {
    for t in &catalog().types {
        let zones = t.requirements.get(labels::ZONE).expect("zone requirement");
        let capacity = t
            .requirements
            .get(labels::CAPACITY_TYPE)
            .expect("capacity type requirement");
        for o in &t.offerings {
            assert!(zones.has(&o.zone), "{} {}", t.name, o.zone);
            assert!(
                capacity.has(o.capacity_type.as_str()),
                "{} {}",
                t.name,
                o.capacity_type
            );
        }
        let mut offered: Vec<&str> = t.offerings.iter().map(|o| o.zone.as_str()).collect();
        offered.sort_unstable();
        offered.dedup();
        assert_eq!(zones.values(), offered.as_slice(), "{}", t.name);
        for (k, v) in &t.labels {
            assert!(
                t.requirements.get(k).is_some_and(|r| r.has(v)),
                "{} {k}={v}",
                t.name
            );
        }
    }
}

#[test]
fn graviton_and_mac_types_are_told_apart() {
    assert_eq!(instance_type("m6g.large").labels[labels::ARCH], "arm64");
    assert_eq!(
        instance_type("c7i-flex.large").labels[labels::INSTANCE_CAPABILITY_FLEX],
        "true"
    );
    assert!(
        catalog().get("mac1.metal").is_none(),
        "Mac types cannot be Kubernetes nodes"
    );
}

#[test]
fn a_label_selector_picks_types_by_labels_and_offerings() {
    let selector = parse_label_selector(
        "karpenter.k8s.aws/instance-family=m5,karpenter.k8s.aws/instance-size in (large,xlarge),karpenter.sh/capacity-type=spot",
    )
    .expect("valid selector");
    let names: Vec<&str> = catalog()
        .types
        .iter()
        .filter(|t| t.matches_selector(&selector))
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names, ["m5.large", "m5.xlarge"]);
    let nowhere = parse_label_selector("topology.kubernetes.io/zone=us-east-1z").expect("valid selector");
    assert!(!instance_type("m5.large").matches_selector(&nowhere));
}

#[test]
fn node_class_settings_change_allocatable() {
    let settings = NodeSettings {
        ami_family: AmiFamily::Bottlerocket,
        ..NodeSettings::default()
    };
    let bottlerocket = embedded::catalog(&settings).expect("catalog");
    let a = &bottlerocket.get("m5.large").expect("m5.large").allocatable;
    assert_eq!(a.pods(), 29);
    let mut settings = NodeSettings::default();
    settings.kubelet.max_pods = Some(110);
    let dense = embedded::catalog(&settings).expect("catalog");
    assert_eq!(dense.get("m5.large").expect("m5.large").allocatable.pods(), 110);
}

#[test]
fn a_malformed_kubelet_override_is_blamed_on_the_setting_not_the_embedded_data() {
    let mut settings = NodeSettings::default();
    settings
        .kubelet
        .kube_reserved
        .insert("memory".into(), "lots".into());
    let err = embedded::catalog(&settings).expect_err("malformed").to_string();
    assert!(err.contains("kubeReserved") && err.contains("lots"), "{err}");
    assert!(!err.contains("embedded catalog is damaged"), "{err}");
}

/// A description with just what the catalog needs, as an adapter might build from the SDK.
fn described(name: &str, arch: &str, usage: &[&str]) -> InstanceTypeInfo {
    let json = format!(
        r#"{{"InstanceType": "{name}", "VCpuInfo": {{"DefaultVCpus": 2}}, "MemoryInfo": {{"SizeInMiB": 8192}},
            "ProcessorInfo": {{"SupportedArchitectures": ["{arch}"], "Manufacturer": "Intel"}},
            "NetworkInfo": {{"DefaultNetworkCardIndex": 0, "Ipv4AddressesPerInterface": 10,
                             "NetworkCards": [{{"NetworkCardIndex": 0, "MaximumNetworkInterfaces": 3}}]}},
            "SupportedUsageClasses": {usage:?}}}"#
    );
    serde_json::from_str(&json).expect("valid description")
}

#[test]
fn build_makes_offerings_only_where_there_is_a_price_and_support() {
    let infos = vec![
        described("x1.large", "x86_64", &["on-demand", "spot"]),
        described("x1.xlarge", "x86_64", &["on-demand"]),
        described("x1.mac", "x86_64_mac", &["on-demand"]),
        described("x1.unpriced", "arm64", &["on-demand", "spot"]),
    ];
    let zones: HashMap<String, Vec<String>> = ["x1.large", "x1.xlarge", "x1.mac", "x1.unpriced"]
        .iter()
        .map(|n| {
            (
                n.to_string(),
                vec!["eu-west-1a".to_string(), "eu-west-1b".to_string()],
            )
        })
        .collect();
    let mut prices = Prices::default();
    for (name, price) in [("x1.large", 0.1), ("x1.xlarge", 0.2), ("x1.mac", 1.0)] {
        prices.on_demand.insert(name.to_string(), price);
    }
    // Spot in one zone only; a spot price for a type without spot support is ignored.
    for name in ["x1.large", "x1.xlarge"] {
        prices.spot.insert(
            name.to_string(),
            HashMap::from([("eu-west-1b".to_string(), 0.03)]),
        );
    }
    let facts = embedded::static_facts().expect("facts");
    let c = Catalog::build(
        "eu-west-1",
        &infos,
        &zones,
        &prices,
        facts,
        &NodeSettings::default(),
    )
    .expect("catalog");
    let names: Vec<&str> = c.types.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["x1.large", "x1.xlarge"]);
    let large = c.get("x1.large").expect("x1.large");
    let offered: Vec<(&str, CapacityType, f64)> = large
        .offerings
        .iter()
        .map(|o| (o.zone.as_str(), o.capacity_type, o.price))
        .collect();
    assert_eq!(
        offered,
        [
            ("eu-west-1b", CapacityType::Spot, 0.03),
            ("eu-west-1a", CapacityType::OnDemand, 0.1),
            ("eu-west-1b", CapacityType::OnDemand, 0.1),
        ]
    );
    assert_eq!(large.labels[labels::REGION], "eu-west-1");
    let xlarge = c.get("x1.xlarge").expect("x1.xlarge");
    assert!(xlarge.cheapest(CapacityType::Spot).is_none());
}

#[test]
fn build_names_the_type_whose_description_is_incomplete() {
    let mut info = described("x1.large", "x86_64", &["on-demand"]);
    info.vcpu_info = None;
    let zones = HashMap::from([("x1.large".to_string(), vec!["eu-west-1a".to_string()])]);
    let prices = Prices {
        on_demand: HashMap::from([("x1.large".to_string(), 0.1)]),
        ..Prices::default()
    };
    let facts = embedded::static_facts().expect("facts");
    let err = Catalog::build(
        "eu-west-1",
        &[info],
        &zones,
        &prices,
        facts,
        &NodeSettings::default(),
    )
    .expect_err("no vCPUs");
    assert!(err.to_string().contains("x1.large"), "{err}");
}

#[test]
fn retaining_offerings_narrows_zone_and_capacity_type_requirements_and_drops_emptied_types() {
    let mut c = catalog().clone();
    let before = c.types.len();
    // us-east-1a only, and no spot for m5.large; t2.micro nowhere.
    c.retain_offerings(|name, o| {
        o.zone == "us-east-1a"
            && name != "t2.micro"
            && !(name == "m5.large" && o.capacity_type == CapacityType::Spot)
    });
    assert_eq!(c.zones(), ["us-east-1a"]);
    assert!(c.get("t2.micro").is_none());
    assert!(c.types.len() < before);
    let m5 = c.get("m5.large").expect("m5.large");
    let zone = m5.requirements.get(labels::ZONE).expect("zone");
    assert!(zone.has("us-east-1a") && !zone.has("us-east-1b"));
    let capacity = m5.requirements.get(labels::CAPACITY_TYPE).expect("capacity type");
    assert!(capacity.has("on-demand") && !capacity.has("spot"));
    assert!(!m5.matches_selector(&requiring(labels::ZONE, Operator::In, &["us-east-1b"])));
}
