//! `infra/examples/default-nodepool.yaml`, Karpenter's getting-started NodePool and
//! EC2NodeClass, as the planner reads it: both objects parse strictly, and the core's own copy
//! of the pool (the benchmark's, which cannot read YAML) is the same pool.

use nodewright_core::api::{AmiFamily, ConfigObject, Ec2NodeClass, NodePool, parse_config_object};
use nodewright_manifests::yaml;

fn getting_started() -> (NodePool, Ec2NodeClass) {
    let text = include_str!("../../../infra/examples/default-nodepool.yaml");
    let documents = yaml::all_documents(text).expect("the example is YAML");
    let objects: Vec<ConfigObject> = documents
        .iter()
        .map(|d| parse_config_object(d).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    match <[ConfigObject; 2]>::try_from(objects) {
        Ok([ConfigObject::NodePool(pool), ConfigObject::Ec2NodeClass(class)]) => (*pool, *class),
        other => panic!("expected a NodePool then an EC2NodeClass, got {other:?}"),
    }
}

#[test]
fn the_getting_started_objects_parse_as_karpenter_writes_them() {
    let (pool, class) = getting_started();
    assert_eq!(pool.name(), "default");
    assert_eq!(pool.expire_after().expect("valid"), Some(720 * 3600 * 1000));
    assert_eq!(pool.consolidate_after().expect("valid"), Some(60_000));
    assert_eq!(pool.limits().expect("valid").expect("a limit").cpu(), 1_000_000);
    assert_eq!(class.ami_family().expect("alias"), AmiFamily::AL2023);
    assert_eq!(pool.spec.template.spec.node_class_ref.name, class.name());
}

#[test]
fn the_benchmarks_pool_is_the_getting_started_pool_without_its_limit() {
    let (mut pool, _) = getting_started();
    pool.spec.limits.clear();
    assert_eq!(nodewright_core::benchmark::nodepool(), pool);
}
