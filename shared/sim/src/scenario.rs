//! Scenarios: what to simulate, read from YAML (the format is documented in
//! `scenarios/README.md`). Every field is checked strictly: an unknown field is an error that
//! names it, and NodePools and EC2NodeClasses go through the core's own strict parser.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use nodewright_core::api::{self, ConfigObject, Ec2NodeClass, NodePool, ObjectMeta};
use nodewright_core::catalog::embedded;
use nodewright_core::pdb::{Budget, IntOrPercent, PodDisruptionBudget};
use nodewright_core::pod::{
    AffinityTerm, InclusionPolicy, LabelSelector, Millis, Pod, TaintEffect, Toleration, TolerationOperator,
    TopologySpread, WhenUnsatisfiable,
};
use nodewright_core::ports::DaemonSet;
use nodewright_core::quantity::Quantity;
use nodewright_core::requirements::{self, NodeSelectorRequirement, Requirements};
use nodewright_core::resources::{ResourceName, Resources};
use nodewright_core::volumes::{PodVolumeClaim, StorageClass, VolumeBindingMode};
use serde::Deserialize;

use crate::cloud::{CloudWorld, OfferingPattern};
use crate::cluster::Workload;
use crate::error::{Error, Result};

/// The default demo, `scenarios/inflate.yaml`, and the manifest it includes.
const INFLATE_YAML: &str = include_str!("../../../scenarios/inflate.yaml");
const INFLATE_FILE: &str = "scenarios/inflate.yaml";
const GETTING_STARTED_INCLUDE: &str = "../infra/examples/default-nodepool.yaml";
const GETTING_STARTED_YAML: &str = include_str!("../../../infra/examples/default-nodepool.yaml");

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

/// Things that happen at one moment of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// From the start of the simulation.
    pub at_ms: Millis,
    /// Workload name → replicas.
    pub scale: BTreeMap<String, u32>,
    /// Offerings that run out of capacity from now on.
    pub out_of_capacity: Vec<OfferingPattern>,
    /// Outages (declared with the same pattern) that end now.
    pub restore_capacity: Vec<OfferingPattern>,
    /// Instances launched from now on that match never register (a blocked security group,
    /// broken user data).
    pub fail_registration: Vec<OfferingPattern>,
    /// Registration failures (declared with the same pattern) that end now.
    pub restore_registration: Vec<OfferingPattern>,
    /// `kubectl delete node`, by name or the oldest `count` nodes.
    pub delete_node: Option<DeleteNode>,
    /// Manifests applied now (a changed NodePool or EC2NodeClass makes its nodes drift).
    pub apply: Objects,
    /// EC2 interrupts matching instances now.
    pub interrupt: Option<Interrupt>,
    /// EKS publishes a new release of its optimized AMIs: node classes selecting `@latest`
    /// aliases resolve to it, and their nodes drift.
    pub release_ami: bool,
}

/// An interruption: EC2 sends `kind`'s event for up to `count` running instances matching the
/// pattern (oldest first), and takes spot ones (`kind: spot`) away two minutes later.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Interrupt {
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub instance_type: Option<String>,
    #[serde(default)]
    pub capacity_type: Option<nodewright_core::catalog::CapacityType>,
    #[serde(default = "one_instance")]
    pub count: usize,
    pub kind: InterruptKind,
}

fn one_instance() -> usize {
    1
}

/// `spot` (a spot interruption warning), `rebalance`, `scheduled` (an AWS Health scheduled
/// change) or `stop` (the instance is stopping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InterruptKind {
    Spot,
    Rebalance,
    Scheduled,
    Stop,
}

/// Which nodes a `deleteNode` step deletes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteNode {
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub count: Option<usize>,
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
        let spec: ScenarioSpec = serde_yaml::from_str(text).map_err(|source| Error::ScenarioSyntax {
            file: file.to_string(),
            source,
        })?;
        let duration = |field: &str, value: &str| -> Result<Millis> {
            match api::parse_duration(value) {
                Ok(Some(ms)) if ms >= 0 => Ok(ms),
                Ok(_) => Err(Error::scenario(
                    file,
                    field,
                    format!("{value:?} is not a duration"),
                )),
                Err(e) => Err(Error::scenario(file, field, e)),
            }
        };
        if spec.name.trim().is_empty() {
            return Err(Error::scenario(file, "name", "must not be empty"));
        }
        let end_ms = duration("end", &spec.end)?;
        if end_ms == 0 {
            return Err(Error::scenario(file, "end", "must be after the start"));
        }
        let boot_delay_ms = duration(
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
                    selector: None,
                    _unhealthy_pod_eviction_policy: None,
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
            let field = format!("steps[{i}]");
            let at_ms = duration(&format!("{field}.at"), &s.at)?;
            if at_ms > end_ms {
                return Err(Error::scenario(
                    file,
                    format!("{field}.at"),
                    format!("{} is after end ({})", s.at, spec.end),
                ));
            }
            if let Some(unknown) = s.scale.keys().find(|n| !names.contains(*n)) {
                return Err(Error::scenario(
                    file,
                    format!("{field}.scale.{unknown}"),
                    "no workload of that name",
                ));
            }
            if let Some(d) = &s.delete_node
                && d.node.is_some() == d.count.is_some()
            {
                return Err(Error::scenario(
                    file,
                    format!("{field}.deleteNode"),
                    "give either node (a name) or count (oldest first)",
                ));
            }
            let mut applied = Objects::default();
            for (j, object) in s.apply.iter().enumerate() {
                applied.add_entry(object, file, &format!("{field}.apply[{j}]"), include)?;
            }
            if s.scale.is_empty()
                && applied.is_empty()
                && s.out_of_capacity.is_empty()
                && s.restore_capacity.is_empty()
                && s.fail_registration.is_empty()
                && s.restore_registration.is_empty()
                && s.delete_node.is_none()
                && s.interrupt.is_none()
                && !s.release_ami
            {
                return Err(Error::scenario(
                    file,
                    field,
                    "does nothing: give scale, apply, outOfCapacity, restoreCapacity, \
                     failRegistration, restoreRegistration, deleteNode, interrupt or releaseAmi",
                ));
            }
            steps.push(Step {
                at_ms,
                scale: s.scale,
                out_of_capacity: s.out_of_capacity,
                restore_capacity: s.restore_capacity,
                fail_registration: s.fail_registration,
                restore_registration: s.restore_registration,
                delete_node: s.delete_node,
                apply: applied,
                interrupt: s.interrupt,
                release_ami: s.release_ami,
            });
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
    objects: Vec<serde_yaml::Value>,
    #[serde(default)]
    workloads: Vec<WorkloadSpec>,
    #[serde(default)]
    steps: Vec<StepSpec>,
    #[serde(default)]
    cloud: CloudWorld,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StepSpec {
    at: String,
    #[serde(default)]
    scale: BTreeMap<String, u32>,
    #[serde(default)]
    out_of_capacity: Vec<OfferingPattern>,
    #[serde(default)]
    restore_capacity: Vec<OfferingPattern>,
    #[serde(default)]
    fail_registration: Vec<OfferingPattern>,
    #[serde(default)]
    restore_registration: Vec<OfferingPattern>,
    #[serde(default)]
    delete_node: Option<DeleteNode>,
    #[serde(default)]
    apply: Vec<serde_yaml::Value>,
    #[serde(default)]
    interrupt: Option<Interrupt>,
    #[serde(default)]
    release_ami: bool,
}

// ---------------------------------------------------------------------------------------------
// Objects: NodePools, EC2NodeClasses, DaemonSets

/// Manifests: NodePools, EC2NodeClasses, DaemonSets, PodDisruptionBudgets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Objects {
    pub nodepools: Vec<NodePool>,
    pub nodeclasses: Vec<Ec2NodeClass>,
    pub daemonsets: Vec<DaemonSet>,
    pub pdbs: Vec<PodDisruptionBudget>,
    pub storage_classes: Vec<StorageClass>,
}

impl Objects {
    /// `Kind name` of each object, for the timeline.
    pub fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .nodepools
            .iter()
            .map(|p| format!("NodePool {}", p.name()))
            .collect();
        out.extend(
            self.nodeclasses
                .iter()
                .map(|c| format!("EC2NodeClass {}", c.name())),
        );
        out.extend(
            self.daemonsets
                .iter()
                .map(|d| format!("DaemonSet {}/{}", d.namespace, d.name)),
        );
        out.extend(
            self.pdbs
                .iter()
                .map(|b| format!("PodDisruptionBudget {}/{}", b.namespace, b.name)),
        );
        out.extend(
            self.storage_classes
                .iter()
                .map(|c| format!("StorageClass {}", c.name)),
        );
        out
    }

    fn is_empty(&self) -> bool {
        self.nodepools.is_empty()
            && self.nodeclasses.is_empty()
            && self.daemonsets.is_empty()
            && self.pdbs.is_empty()
            && self.storage_classes.is_empty()
    }
}

impl Objects {
    /// One entry of `objects`: `{include: path}` or an inline manifest.
    fn add_entry(
        &mut self,
        entry: &serde_yaml::Value,
        file: &str,
        field: &str,
        include: &dyn Fn(&str) -> std::io::Result<String>,
    ) -> Result<()> {
        let Some(map) = entry.as_mapping() else {
            return Err(Error::scenario(
                file,
                field,
                "expected a manifest or {include: path}",
            ));
        };
        let Some(path) = map.get("include") else {
            let text = serde_yaml::to_string(entry).map_err(|source| Error::ScenarioSyntax {
                file: file.to_string(),
                source,
            })?;
            return self.add_document(&text, file, field);
        };
        let Some(path) = path.as_str().filter(|_| map.len() == 1) else {
            return Err(Error::scenario(
                file,
                field,
                "include takes a path and nothing beside it",
            ));
        };
        let text = include(path).map_err(|source| Error::Include {
            file: file.to_string(),
            path: path.to_string(),
            source,
        })?;
        for (i, doc) in documents(&text).iter().enumerate() {
            self.add_document(doc, file, &format!("{field} ({path}, document {})", i + 1))?;
        }
        Ok(())
    }

    fn add_document(&mut self, text: &str, file: &str, field: &str) -> Result<()> {
        let value: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|source| Error::ScenarioSyntax {
                file: format!("{file}: {field}"),
                source,
            })?;
        let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        let config = |source| Error::Config {
            file: format!("{file}: {field}"),
            source,
        };
        match kind {
            "NodePool" | "EC2NodeClass" => match api::parse_config_object(text, kind).map_err(config)? {
                ConfigObject::NodePool(p) => self.nodepools.push(*p),
                ConfigObject::Ec2NodeClass(c) => self.nodeclasses.push(*c),
            },
            "DaemonSet" => {
                let manifest: DaemonSetManifest =
                    serde_yaml::from_value(value).map_err(|source| Error::ScenarioSyntax {
                        file: format!("{file}: {field}"),
                        source,
                    })?;
                self.daemonsets.push(manifest.into_daemonset(file, field)?);
            }
            "PodDisruptionBudget" => {
                let manifest: PdbManifest =
                    serde_yaml::from_value(value).map_err(|source| Error::ScenarioSyntax {
                        file: format!("{file}: {field}"),
                        source,
                    })?;
                self.pdbs.push(manifest.into_pdb(file, field)?);
            }
            "StorageClass" => {
                let manifest: StorageClassManifest =
                    serde_yaml::from_value(value).map_err(|source| Error::ScenarioSyntax {
                        file: format!("{file}: {field}"),
                        source,
                    })?;
                self.storage_classes.push(manifest.into_class(file, field)?);
            }
            other => {
                return Err(Error::scenario(
                    file,
                    format!("{field}.kind"),
                    format!(
                        "{other:?} is not supported (NodePool, EC2NodeClass, DaemonSet, \
                         PodDisruptionBudget or StorageClass)"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A `policy/v1 PodDisruptionBudget`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PdbManifest {
    api_version: String,
    metadata: ObjectMeta,
    spec: PdbSpec,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PdbSpec {
    #[serde(default)]
    min_available: Option<serde_yaml::Value>,
    #[serde(default)]
    max_unavailable: Option<serde_yaml::Value>,
    #[serde(default)]
    selector: Option<PdbSelector>,
    /// Accepted unread: the simulator evicts only healthy (bound) pods through budgets.
    #[serde(default, rename = "unhealthyPodEvictionPolicy")]
    _unhealthy_pod_eviction_policy: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PdbSelector {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
    #[serde(default)]
    match_expressions: Vec<NodeSelectorRequirement>,
}

impl PdbSpec {
    /// `minAvailable` or `maxUnavailable`, exactly one.
    fn budget(&self, file: &str, field: &str) -> Result<Budget> {
        let at = |f: &str| format!("{field}.{f}");
        let amount = |v: &serde_yaml::Value, f: &str| {
            let raw = match v {
                serde_yaml::Value::Number(n) => n.to_string(),
                serde_yaml::Value::String(s) => s.clone(),
                _ => String::new(),
            };
            IntOrPercent::parse(&raw).map_err(|e| Error::scenario(file, at(f), e))
        };
        match (&self.min_available, &self.max_unavailable) {
            (Some(v), None) => Ok(Budget::MinAvailable(amount(v, "minAvailable")?)),
            (None, Some(v)) => Ok(Budget::MaxUnavailable(amount(v, "maxUnavailable")?)),
            _ => Err(Error::scenario(
                file,
                field,
                "give exactly one of minAvailable and maxUnavailable",
            )),
        }
    }
}

impl PdbManifest {
    fn into_pdb(self, file: &str, field: &str) -> Result<PodDisruptionBudget> {
        let at = |f: &str| format!("{field}.{f}");
        if self.api_version != "policy/v1" {
            return Err(Error::scenario(
                file,
                at("apiVersion"),
                format!("{:?}: expected policy/v1", self.api_version),
            ));
        }
        let budget = self.spec.budget(file, &at("spec"))?;
        let selector = self.spec.selector.unwrap_or_default();
        let mut requirements = requirements::from_selector_requirements(&selector.match_expressions)
            .map_err(|e| Error::scenario(file, at("spec.selector.matchExpressions"), e.to_string()))?;
        for (k, v) in &selector.match_labels {
            requirements.add(k, requirements::Requirement::is_in([v.as_str()]));
        }
        Ok(PodDisruptionBudget {
            namespace: self.metadata.namespace.unwrap_or_else(default_namespace),
            name: self.metadata.name,
            selector: Some(LabelSelector { requirements }),
            budget,
        })
    }
}

/// A `storage.k8s.io/v1 StorageClass`: what decides where its volumes are made.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StorageClassManifest {
    api_version: String,
    #[serde(rename = "kind")]
    _kind: String,
    metadata: ObjectMeta,
    #[serde(rename = "provisioner")]
    _provisioner: String,
    #[serde(default)]
    volume_binding_mode: Option<String>,
    #[serde(default)]
    allowed_topologies: Vec<TopologyTermSpec>,
    /// Accepted unread: they do not change where a volume can be used.
    #[serde(default, rename = "parameters")]
    _parameters: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "reclaimPolicy")]
    _reclaim_policy: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "allowVolumeExpansion")]
    _allow_volume_expansion: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "mountOptions")]
    _mount_options: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TopologyTermSpec {
    #[serde(default)]
    match_label_expressions: Vec<TopologyRequirementSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopologyRequirementSpec {
    key: String,
    values: Vec<String>,
}

impl StorageClassManifest {
    fn into_class(self, file: &str, field: &str) -> Result<StorageClass> {
        let at = |f: &str| format!("{field}.{f}");
        if self.api_version != "storage.k8s.io/v1" {
            return Err(Error::scenario(
                file,
                at("apiVersion"),
                format!("{:?}: expected storage.k8s.io/v1", self.api_version),
            ));
        }
        let binding_mode = match self.volume_binding_mode.as_deref() {
            None | Some("Immediate") => VolumeBindingMode::Immediate,
            Some("WaitForFirstConsumer") => VolumeBindingMode::WaitForFirstConsumer,
            Some(other) => {
                return Err(Error::scenario(
                    file,
                    at("volumeBindingMode"),
                    format!("{other:?}: expected Immediate or WaitForFirstConsumer"),
                ));
            }
        };
        let allowed_topologies = self
            .allowed_topologies
            .iter()
            .map(|t| {
                let mut r = Requirements::new();
                for e in &t.match_label_expressions {
                    r.add(&e.key, requirements::Requirement::is_in(e.values.iter().cloned()));
                }
                r
            })
            .filter(|r| !r.is_empty())
            .collect();
        Ok(StorageClass {
            default: self
                .metadata
                .annotations
                .get("storageclass.kubernetes.io/is-default-class")
                .is_some_and(|v| v == "true"),
            name: self.metadata.name,
            binding_mode,
            allowed_topologies,
        })
    }
}

/// The documents of a multi-document YAML file, without the empty ones.
fn documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            docs.push(String::new());
        } else if let Some(doc) = docs.last_mut() {
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.retain(|d| {
        d.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    docs
}

/// The parts of an `apps/v1 DaemonSet` that decide its pods' overhead and placement; the rest
/// of the manifest (images, volumes, probes, update strategy…) does not matter to scheduling
/// and is accepted unread.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DaemonSetManifest {
    api_version: String,
    metadata: ObjectMeta,
    spec: DaemonSetSpec,
}

#[derive(Debug, Deserialize)]
struct DaemonSetSpec {
    template: PodTemplate,
}

#[derive(Debug, Deserialize)]
struct PodTemplate {
    #[serde(default)]
    metadata: Option<TemplateMetadata>,
    spec: PodSpec,
}

#[derive(Debug, Default, Deserialize)]
struct TemplateMetadata {
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    #[serde(default)]
    containers: Vec<Container>,
    #[serde(default)]
    init_containers: Vec<Container>,
    #[serde(default)]
    overhead: BTreeMap<String, Quantity>,
    #[serde(default)]
    node_selector: BTreeMap<String, String>,
    #[serde(default)]
    tolerations: Vec<TolerationSpec>,
    #[serde(default)]
    priority: Option<i32>,
}

#[derive(Debug, Deserialize)]
struct Container {
    #[serde(default)]
    resources: ContainerResources,
}

#[derive(Debug, Default, Deserialize)]
struct ContainerResources {
    #[serde(default)]
    requests: BTreeMap<String, Quantity>,
    #[serde(default)]
    limits: BTreeMap<String, Quantity>,
}

impl ContainerResources {
    /// Requests, with a limit standing in for a missing request as the API server defaults it.
    fn effective(&self, file: &str, field: &str) -> Result<Resources> {
        let mut merged = self.limits.clone();
        merged.extend(self.requests.iter().map(|(k, v)| (k.clone(), *v)));
        resources(&merged, file, field)
    }
}

impl DaemonSetManifest {
    fn into_daemonset(self, file: &str, field: &str) -> Result<DaemonSet> {
        if self.api_version != "apps/v1" {
            return Err(Error::scenario(
                file,
                format!("{field}.apiVersion"),
                format!("expected apps/v1, got {:?}", self.api_version),
            ));
        }
        let name = self.metadata.name.clone();
        if name.is_empty() {
            return Err(Error::scenario(
                file,
                format!("{field}.metadata.name"),
                "is required",
            ));
        }
        let namespace = self
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let spec = self.spec.template.spec;
        let at = |f: &str| format!("{field}.spec.template.spec.{f}");
        let mut requests = Resources::new();
        for (i, c) in spec.containers.iter().enumerate() {
            requests.add(
                &c.resources
                    .effective(file, &at(&format!("containers[{i}].resources")))?,
            );
        }
        for (i, c) in spec.init_containers.iter().enumerate() {
            requests.max_with(
                &c.resources
                    .effective(file, &at(&format!("initContainers[{i}].resources")))?,
            );
        }
        requests.add(&resources(&spec.overhead, file, &at("overhead"))?);
        requests.set(ResourceName::Pods, 1);
        let tolerations = spec
            .tolerations
            .iter()
            .enumerate()
            .map(|(i, t)| t.to_toleration(file, &at(&format!("tolerations[{i}]"))))
            .collect::<Result<Vec<_>>>()?;
        let pod = Pod {
            namespace: namespace.clone(),
            name: name.clone(),
            labels: self.spec.template.metadata.unwrap_or_default().labels,
            requests,
            node_selector: Requirements::from_labels(&spec.node_selector),
            tolerations,
            owner_kind: Some("DaemonSet".into()),
            owner_name: Some(name.clone()),
            priority: spec.priority.unwrap_or(0),
            ..Pod::default()
        };
        Ok(DaemonSet { namespace, name, pod })
    }
}

// ---------------------------------------------------------------------------------------------
// Workloads

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WorkloadSpec {
    name: String,
    #[serde(default = "default_namespace")]
    namespace: String,
    /// Replicas at the start.
    #[serde(default)]
    replicas: u32,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// Pod annotations; `karpenter.sh/do-not-disrupt: "true"` holds graceful termination.
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    /// A PodDisruptionBudget over the workload's pods: `{minAvailable: N|"P%"}` or
    /// `{maxUnavailable: N|"P%"}`.
    #[serde(default)]
    pod_disruption_budget: Option<WorkloadPdbSpec>,
    #[serde(default)]
    requests: BTreeMap<String, Quantity>,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    node_selector: BTreeMap<String, String>,
    /// Required node affinity: OR of terms.
    #[serde(default)]
    node_affinity: Vec<NodeSelectorTerm>,
    #[serde(default)]
    tolerations: Vec<TolerationSpec>,
    /// Spread constraints over the workload's own pods.
    #[serde(default)]
    topology_spread: Vec<SpreadSpec>,
    /// Required anti-affinity to the workload's own pods.
    #[serde(default)]
    pod_anti_affinity: Vec<AntiAffinitySpec>,
    /// A persistent volume per replica from each template, as a StatefulSet's
    /// `volumeClaimTemplates`: the workload becomes a StatefulSet (pods `<name>-<ordinal>`,
    /// each keeping its claims, and so its volumes' zone, when it is recreated).
    #[serde(default)]
    volume_claim_templates: Vec<ClaimTemplateSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClaimTemplateSpec {
    name: String,
    /// The class; none means the default class.
    #[serde(default)]
    storage_class_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WorkloadPdbSpec {
    #[serde(default)]
    min_available: Option<serde_yaml::Value>,
    #[serde(default)]
    max_unavailable: Option<serde_yaml::Value>,
}

fn default_namespace() -> String {
    "default".into()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NodeSelectorTerm {
    #[serde(default)]
    match_expressions: Vec<NodeSelectorRequirement>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
enum WhenUnsatisfiableSpec {
    #[default]
    DoNotSchedule,
    ScheduleAnyway,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SpreadSpec {
    topology_key: String,
    #[serde(default = "one")]
    max_skew: i32,
    #[serde(default)]
    when_unsatisfiable: WhenUnsatisfiableSpec,
    #[serde(default)]
    min_domains: Option<i32>,
}

fn one() -> i32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AntiAffinitySpec {
    topology_key: String,
}

#[derive(Debug, Clone, Copy, Deserialize)]
enum TolerationOperatorSpec {
    Exists,
    Equal,
}

/// A pod toleration as Kubernetes writes it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TolerationSpec {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    operator: Option<TolerationOperatorSpec>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    effect: Option<TaintEffect>,
    /// Only delays eviction from NoExecute taints, which the simulation never applies.
    #[serde(default, rename = "tolerationSeconds")]
    _toleration_seconds: Option<i64>,
}

impl TolerationSpec {
    fn to_toleration(&self, file: &str, field: &str) -> Result<Toleration> {
        let operator = match self.operator.unwrap_or(TolerationOperatorSpec::Equal) {
            TolerationOperatorSpec::Exists => {
                if self.value.as_deref().is_some_and(|v| !v.is_empty()) {
                    return Err(Error::scenario(
                        file,
                        format!("{field}.value"),
                        "must be empty with operator Exists",
                    ));
                }
                TolerationOperator::Exists
            }
            TolerationOperatorSpec::Equal => {
                if self.key.as_deref().is_none_or(str::is_empty) {
                    return Err(Error::scenario(
                        file,
                        format!("{field}.key"),
                        "is required with operator Equal",
                    ));
                }
                TolerationOperator::Equal
            }
        };
        Ok(Toleration {
            key: self.key.clone().filter(|k| !k.is_empty()),
            operator,
            value: self.value.clone(),
            effect: self.effect,
        })
    }
}

impl WorkloadSpec {
    fn into_workload(self, file: &str, field: &str) -> Result<Workload> {
        let at = |f: &str| format!("{field}.{f}");
        if self.name.is_empty() || self.name.contains('/') {
            return Err(Error::scenario(
                file,
                at("name"),
                format!("{:?} is not a valid name", self.name),
            ));
        }
        let mut labels = BTreeMap::from([("app".to_string(), self.name.clone())]);
        labels.extend(self.labels);
        let own_pods = LabelSelector {
            requirements: Requirements::from_labels(&labels),
        };
        let mut requests = resources(&self.requests, file, &at("requests"))?;
        requests.set(ResourceName::Pods, 1);
        let required_affinity = self
            .node_affinity
            .iter()
            .enumerate()
            .map(|(i, t)| {
                requirements::from_selector_requirements(&t.match_expressions)
                    .map_err(|e| Error::scenario(file, at(&format!("nodeAffinity[{i}]")), e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let tolerations = self
            .tolerations
            .iter()
            .enumerate()
            .map(|(i, t)| t.to_toleration(file, &at(&format!("tolerations[{i}]"))))
            .collect::<Result<Vec<_>>>()?;
        let mut topology_spread = Vec::new();
        for (i, s) in self.topology_spread.into_iter().enumerate() {
            if s.max_skew < 1 {
                return Err(Error::scenario(
                    file,
                    at(&format!("topologySpread[{i}].maxSkew")),
                    "must be at least 1",
                ));
            }
            topology_spread.push(TopologySpread {
                max_skew: s.max_skew,
                topology_key: s.topology_key,
                when_unsatisfiable: match s.when_unsatisfiable {
                    WhenUnsatisfiableSpec::DoNotSchedule => WhenUnsatisfiable::DoNotSchedule,
                    WhenUnsatisfiableSpec::ScheduleAnyway => WhenUnsatisfiable::ScheduleAnyway,
                },
                selector: own_pods.clone(),
                min_domains: s.min_domains,
                node_affinity_policy: InclusionPolicy::Honor,
                node_taints_policy: InclusionPolicy::Ignore,
            });
        }
        let pod_anti_affinity = self
            .pod_anti_affinity
            .into_iter()
            .map(|a| AffinityTerm {
                selector: own_pods.clone(),
                namespaces: Vec::new(),
                namespace_selector: None,
                topology_key: a.topology_key,
            })
            .collect();
        let volume_claims = self
            .volume_claim_templates
            .into_iter()
            .map(|t| PodVolumeClaim::Template {
                template: t.name,
                storage_class: t.storage_class_name,
            })
            .collect::<Vec<_>>();
        let stateful = !volume_claims.is_empty();
        let deletion_cost = match self.annotations.get(nodewright_core::labels::POD_DELETION_COST) {
            None => 0,
            Some(v) => v.trim().parse::<i32>().map_err(|_| {
                Error::scenario(
                    file,
                    at(&format!(
                        "annotations.{}",
                        nodewright_core::labels::POD_DELETION_COST
                    )),
                    format!("{v:?} is not a 32-bit integer"),
                )
            })?,
        };
        let template = Pod {
            namespace: self.namespace.clone(),
            deletion_cost,
            volume_claims,
            labels,
            requests,
            node_selector: Requirements::from_labels(&self.node_selector),
            required_affinity,
            tolerations,
            topology_spread,
            pod_anti_affinity,
            priority: self.priority,
            do_not_disrupt: self
                .annotations
                .get(nodewright_core::labels::DO_NOT_DISRUPT)
                .is_some_and(|v| v == "true"),
            ..Pod::default()
        };
        Ok(Workload {
            namespace: self.namespace,
            name: self.name,
            replicas: self.replicas,
            stateful,
            template,
        })
    }
}

/// A resource list in scheduler units; negative or unrepresentable amounts are errors.
fn resources(list: &BTreeMap<String, Quantity>, file: &str, field: &str) -> Result<Resources> {
    let mut out = Resources::new();
    for (name, q) in list {
        let text = q.to_string();
        if q.is_negative() {
            return Err(Error::scenario(
                file,
                format!("{field}.{name}"),
                format!("{text} is negative"),
            ));
        }
        out.add_named(name, *q, &text)
            .map_err(|e| Error::scenario(file, format!("{field}.{name}"), e.to_string()))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_multi_document_yaml_and_drops_empty_documents() {
        let docs = documents("# header\n---\na: 1\n---\n# only a comment\n--- \nb: 2\n");
        assert_eq!(docs, vec!["a: 1\n".to_string(), "b: 2\n".to_string()]);
    }
}
