//! Scenarios: what to simulate, read from YAML (the format is documented in
//! `scenarios/README.md`). Every field is checked strictly: an unknown field is an error that
//! names it, and NodePools and EC2NodeClasses go through the core's own strict parser.

mod manifests;
mod objects;
mod steps;
mod workloads;

use std::collections::BTreeSet;
use std::path::Path;

use nodewright_core::api::{self, Ec2NodeClass, NodePool};
use nodewright_core::catalog::embedded;
use nodewright_core::pdb::PodDisruptionBudget;
use nodewright_core::pod::{LabelSelector, Millis};
use nodewright_core::ports::DaemonSet;
use nodewright_core::volumes::StorageClass;
use nodewright_manifests::yaml;
use serde::Deserialize;

use crate::cloud::CloudWorld;
use crate::cluster::Workload;
use crate::error::{Error, Result};

use manifests::PdbSpec;
pub use objects::Objects;
use steps::StepSpec;
pub use steps::{DeleteNode, Interrupt, InterruptKind, Step};
use workloads::WorkloadSpec;

/// The default demo, `scenarios/inflate.yaml`, and the manifest it includes.
const INFLATE_YAML: &str = include_str!("../../../../scenarios/inflate.yaml");
const INFLATE_FILE: &str = "scenarios/inflate.yaml";
const GETTING_STARTED_INCLUDE: &str = "../infra/examples/default-nodepool.yaml";
const GETTING_STARTED_YAML: &str = include_str!("../../../../infra/examples/default-nodepool.yaml");

const DEFAULT_BOOT_DELAY: &str = "45s";
const DEFAULT_SEED: u64 = 1;

/// A scenario, read and checked.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Where it was read from, for messages.
    pub file: String,
    /// Seeds every identifier the simulation makes up (claim ids, instance ids, pod names).
    pub seed: u64,
    /// From launch to the Node registering.
    pub boot_delay_ms: Millis,
    /// When the simulation stops, from its start.
    pub end_ms: Millis,
    pub nodepools: Vec<NodePool>,
    pub nodeclasses: Vec<Ec2NodeClass>,
    pub daemonsets: Vec<DaemonSet>,
    pub pdbs: Vec<PodDisruptionBudget>,
    pub storage_classes: Vec<StorageClass>,
    /// With their initial replica counts.
    pub workloads: Vec<Workload>,
    /// In time order.
    pub steps: Vec<Step>,
    /// The subnets and images node classes select (by default: all of them can launch anything).
    pub cloud: CloudWorld,
}

impl Scenario {
    /// The embedded default: the inflate demo on Karpenter's getting-started NodePool.
    pub fn inflate() -> Result<Scenario> {
        Scenario::parse(INFLATE_YAML, INFLATE_FILE, &|path| {
            if path == GETTING_STARTED_INCLUDE {
                Ok(GETTING_STARTED_YAML.to_string())
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the embedded scenario includes only the getting-started manifest",
                ))
            }
        })
    }

    /// Reads a scenario file; `include:` paths are relative to its directory.
    pub fn from_file(path: &Path) -> Result<Scenario> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            file: file.clone(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new(""));
        Scenario::parse(&text, &file, &|include| {
            std::fs::read_to_string(dir.join(include))
        })
    }

    /// Parses scenario text; `file` names it in errors and `include` reads included files.
    pub fn parse(
        text: &str,
        file: &str,
        include: &dyn Fn(&str) -> std::io::Result<String>,
    ) -> Result<Scenario> {
        let spec: ScenarioSpec = yaml::from_str(text).map_err(|source| Error::ScenarioSyntax {
            file: file.to_string(),
            source,
        })?;
        if spec.name.trim().is_empty() {
            return Err(Error::scenario(file, "name", "must not be empty"));
        }
        let end_ms = duration(file, "end", &spec.end)?;
        if end_ms == 0 {
            return Err(Error::scenario(file, "end", "must be after the start"));
        }
        let boot_delay_ms = duration(
            file,
            "bootDelay",
            spec.boot_delay.as_deref().unwrap_or(DEFAULT_BOOT_DELAY),
        )?;

        let mut objects = Objects::default();
        for (i, object) in spec.objects.iter().enumerate() {
            objects.add_entry(object, file, &format!("objects[{i}]"), include)?;
        }

        let mut workloads = Vec::new();
        let mut names = BTreeSet::new();
        for (i, w) in spec.workloads.into_iter().enumerate() {
            let field = format!("workloads[{i}]");
            if !names.insert(w.name.clone()) {
                return Err(Error::scenario(
                    file,
                    format!("{field}.name"),
                    format!("{:?} is used twice", w.name),
                ));
            }
            if let Some(budget) = &w.pod_disruption_budget {
                let spec = PdbSpec {
                    min_available: budget.min_available.clone(),
                    max_unavailable: budget.max_unavailable.clone(),
                };
                let amount = spec.budget(file, &format!("{field}.podDisruptionBudget"))?;
                objects.pdbs.push(PodDisruptionBudget {
                    namespace: w.namespace.clone(),
                    name: w.name.clone(),
                    selector: Some(LabelSelector::match_labels(&[("app", w.name.as_str())])),
                    budget: amount,
                });
            }
            workloads.push(w.into_workload(file, &field)?);
        }

        let mut steps = Vec::new();
        for (i, s) in spec.steps.into_iter().enumerate() {
            steps.push(s.into_step(file, &format!("steps[{i}]"), &spec.end, end_ms, &names, include)?);
        }
        // Stable: steps at the same moment keep the order they were written in.
        steps.sort_by_key(|s| s.at_ms);
        check_world(&spec.cloud, file)?;

        Ok(Scenario {
            name: spec.name,
            description: spec.description.trim().to_string(),
            file: file.to_string(),
            seed: spec.seed.unwrap_or(DEFAULT_SEED),
            boot_delay_ms,
            end_ms,
            nodepools: objects.nodepools,
            nodeclasses: objects.nodeclasses,
            daemonsets: objects.daemonsets,
            pdbs: objects.pdbs,
            storage_classes: objects.storage_classes,
            workloads,
            steps,
            cloud: spec.cloud,
        })
    }
}

/// A scenario duration: a Go duration, not negative and not `Never`.
pub(super) fn duration(file: &str, field: &str, value: &str) -> Result<Millis> {
    match api::parse_duration(value) {
        Ok(Some(ms)) if ms >= 0 => Ok(ms),
        Ok(_) => Err(Error::scenario(
            file,
            field,
            format!("{value:?} is not a duration"),
        )),
        Err(e) => Err(Error::scenario(file, field, e)),
    }
}

/// Subnet ids are unique and in zones of the embedded catalog; image ids are unique.
fn check_world(world: &CloudWorld, file: &str) -> Result<()> {
    let known: BTreeSet<&str> = embedded::zones()
        .map_err(|e| Error::scenario(file, "cloud.subnets", e.to_string()))?
        .values()
        .flatten()
        .map(String::as_str)
        .collect();
    let mut ids = BTreeSet::new();
    for (i, subnet) in world.subnets.iter().flatten().enumerate() {
        let field = format!("cloud.subnets[{i}]");
        if subnet.id.is_empty() || !ids.insert(subnet.id.as_str()) {
            return Err(Error::scenario(
                file,
                format!("{field}.id"),
                format!("{:?} is empty or used twice", subnet.id),
            ));
        }
        if !known.contains(subnet.zone.as_str()) {
            return Err(Error::scenario(
                file,
                format!("{field}.zone"),
                format!(
                    "{:?} is not a zone of the embedded catalog ({})",
                    subnet.zone,
                    known.iter().copied().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    let mut ids = BTreeSet::new();
    for (i, image) in world.images.iter().flatten().enumerate() {
        if image.id.is_empty() || !ids.insert(image.id.as_str()) {
            return Err(Error::scenario(
                file,
                format!("cloud.images[{i}].id"),
                format!("{:?} is empty or used twice", image.id),
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ScenarioSpec {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    boot_delay: Option<String>,
    end: String,
    #[serde(default)]
    objects: Vec<serde_json::Value>,
    #[serde(default)]
    workloads: Vec<WorkloadSpec>,
    #[serde(default)]
    steps: Vec<StepSpec>,
    #[serde(default)]
    cloud: CloudWorld,
}
