//! The embedded catalog's capacity and allocatable against Karpenter's own figures: the
//! instance-types reference page Karpenter generates for AL2023 defaults, extracted into
//! `tests/data/karpenter-allocatable.csv` (see `tests/data/README.md`).

use nodewright_core::catalog::{InstanceType, embedded};
use nodewright_core::resources::{ResourceName, Resources};

const KARPENTER: &str = include_str!("data/karpenter-allocatable.csv");

/// One type's allocatable as Karpenter documents it.
struct Reference {
    name: String,
    allocatable: Resources,
}

fn references() -> Vec<Reference> {
    let mut lines = KARPENTER.lines().filter(|l| !l.starts_with('#'));
    assert_eq!(
        lines.next(),
        Some("name,cpu,memory,ephemeral_storage,pods,extended")
    );
    lines
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), 6, "{line}");
            let mut list = vec![
                ("cpu", f[1]),
                ("memory", f[2]),
                ("ephemeral-storage", f[3]),
                ("pods", f[4]),
            ];
            list.extend(f[5].split(';').filter(|e| !e.is_empty()).map(|e| {
                e.split_once('=')
                    .unwrap_or_else(|| panic!("bad extended resource {e:?} in {line}"))
            }));
            Reference {
                name: f[0].to_string(),
                allocatable: Resources::from_quantities(list).unwrap_or_else(|e| panic!("{line}: {e}")),
            }
        })
        .collect()
}

/// The types both lists have, with ours.
fn compared() -> Vec<(Reference, &'static InstanceType)> {
    let catalog = embedded::default_catalog().expect("embedded catalog");
    references()
        .into_iter()
        .filter_map(|r| catalog.get(&r.name).map(|t| (r, t)))
        .collect()
}

fn show(r: ResourceName, amount: i64) -> String {
    r.format(amount)
}

#[test]
fn cpu_memory_and_pods_agree_with_karpenter_for_at_least_98_percent_of_types() {
    let pairs = compared();
    assert!(pairs.len() >= 700, "only {} types in common", pairs.len());
    let mut disagreements = Vec::new();
    for (reference, ours) in &pairs {
        let diffs: Vec<String> = [ResourceName::Cpu, ResourceName::Memory, ResourceName::Pods]
            .into_iter()
            .filter(|r| reference.allocatable.get(*r) != ours.allocatable.get(*r))
            .map(|r| {
                format!(
                    "{r}: karpenter {} ours {}",
                    show(r, reference.allocatable.get(r)),
                    show(r, ours.allocatable.get(r))
                )
            })
            .collect();
        if !diffs.is_empty() {
            disagreements.push(format!("{}: {}", reference.name, diffs.join("; ")));
        }
    }
    let agree = pairs.len() - disagreements.len();
    println!(
        "{agree} of {} types agree with Karpenter on cpu, memory and pods",
        pairs.len()
    );
    for d in &disagreements {
        println!("  {d}");
    }
    assert!(
        agree * 100 >= pairs.len() * 98,
        "only {agree} of {} agree:\n{}",
        pairs.len(),
        disagreements.join("\n")
    );
}

#[test]
fn ephemeral_storage_and_device_resources_agree_with_karpenter_for_every_type() {
    let others = [
        ResourceName::EphemeralStorage,
        ResourceName::NvidiaGpu,
        ResourceName::AmdGpu,
        ResourceName::AwsNeuron,
        ResourceName::AwsNeuronCore,
        ResourceName::HabanaGaudi,
        ResourceName::Efa,
    ];
    let mut disagreements = Vec::new();
    for (reference, ours) in &compared() {
        for r in others {
            let (theirs, mine) = (reference.allocatable.get(r), ours.allocatable.get(r));
            if theirs != mine {
                disagreements.push(format!(
                    "{} {r}: karpenter {} ours {}",
                    reference.name,
                    show(r, theirs),
                    show(r, mine)
                ));
            }
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

#[test]
fn pod_enis_agree_with_karpenter_except_where_its_page_predates_the_vpc_limits_table() {
    // Karpenter's page was generated before its VPC-limits table learned of some newer types
    // (c9g, hpc7g, the metal-48xl sizes) and of trunking on i4i.large, so it shows none there.
    let mut newer_table = Vec::new();
    for (reference, ours) in &compared() {
        let r = ResourceName::PodEni;
        let (theirs, mine) = (reference.allocatable.get(r), ours.allocatable.get(r));
        if theirs != mine {
            assert_eq!(theirs, 0, "{}: karpenter {theirs} ours {mine}", reference.name);
            newer_table.push(format!("{}: karpenter none, ours {mine}", reference.name));
        }
    }
    println!(
        "{} types have pod ENIs Karpenter's page does not show:",
        newer_table.len()
    );
    for d in &newer_table {
        println!("  {d}");
    }
}

fn allocatable(name: &str) -> Resources {
    embedded::default_catalog()
        .expect("embedded catalog")
        .get(name)
        .unwrap_or_else(|| panic!("{name} is in the embedded catalog"))
        .allocatable
        .clone()
}

fn assert_allocatable(name: &str, cpu: &str, memory: &str, pods: i64, ephemeral: &str) {
    let a = allocatable(name);
    assert_eq!(show(ResourceName::Cpu, a.cpu()), cpu, "{name} cpu");
    assert_eq!(show(ResourceName::Memory, a.memory()), memory, "{name} memory");
    assert_eq!(a.pods(), pods, "{name} pods");
    assert_eq!(
        show(
            ResourceName::EphemeralStorage,
            a.get(ResourceName::EphemeralStorage)
        ),
        ephemeral,
        "{name} ephemeral-storage"
    );
}

#[test]
fn a1_medium_has_exactly_karpenters_allocatable() {
    assert_allocatable("a1.medium", "940m", "1392Mi", 8, "17Gi");
}

#[test]
fn common_types_have_exactly_karpenters_allocatable() {
    assert_allocatable("m5.large", "1930m", "6903Mi", 29, "17Gi");
    assert_allocatable("c5.xlarge", "3920m", "6584Mi", 58, "17Gi");
    assert_allocatable("m6g.large", "1930m", "6844Mi", 29, "17Gi");
    assert_allocatable("t3.micro", "1930m", "548Mi", 4, "17Gi");
}

#[test]
fn p4d_24xlarge_has_exactly_karpenters_allocatable_and_devices() {
    assert_allocatable("p4d.24xlarge", "95690m", "1082712Mi", 737, "17Gi");
    let a = allocatable("p4d.24xlarge");
    assert_eq!(a.get(ResourceName::NvidiaGpu), 8);
    assert_eq!(a.get(ResourceName::Efa), 4);
    assert_eq!(a.get(ResourceName::PodEni), 62);
}
