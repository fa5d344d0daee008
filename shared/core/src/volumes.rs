//! Volume topology: where a pod's persistent volumes let it run.
//!
//! A pod whose claim is bound to a zonal volume (an EBS volume's PersistentVolume carries a
//! required node affinity on its zone) can only run in that zone; an unbound claim whose
//! StorageClass binds `WaitForFirstConsumer` will get its volume wherever the pod lands, within
//! the class's `allowedTopologies`; an unbound claim of an `Immediate` class is bound by its
//! provisioner first, so the pod waits rather than being planned somewhere its volume may not
//! follow. [`Volumes::constrain`] folds these rules into the pod's required node affinity, so
//! every later check (the planner, the consolidation proof, the simulated kube-scheduler)
//! honours them without knowing about volumes.
//!
//! Where Karpenter keeps only the first term of a volume's node affinity, every term is kept
//! here (the pod's terms and the volume's are ORs, so their pairwise intersections are).

use std::collections::BTreeMap;
use std::fmt;

use crate::pod::Pod;
use crate::requirements::Requirements;

/// A volume of a pod that is backed by a PersistentVolumeClaim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PodVolumeClaim {
    /// `persistentVolumeClaim.claimName`: a claim that exists on its own.
    Claim(String),
    /// A generic ephemeral volume: its claim, `<pod>-<volume>`, is made from a template with
    /// this `storageClassName` (`None`: the default class) when the pod is created.
    Ephemeral {
        volume: String,
        storage_class: Option<String>,
    },
    /// One of a StatefulSet's `volumeClaimTemplates`: the claim `<template>-<pod>`, made when
    /// the pod is.
    Template {
        template: String,
        storage_class: Option<String>,
    },
}

impl PodVolumeClaim {
    /// The claim's name for the pod named `pod`.
    pub fn claim_name(&self, pod: &str) -> String {
        match self {
            PodVolumeClaim::Claim(name) => name.clone(),
            PodVolumeClaim::Ephemeral { volume, .. } => format!("{pod}-{volume}"),
            PodVolumeClaim::Template { template, .. } => format!("{template}-{pod}"),
        }
    }

    /// The class of the template the claim is made from, if it is made from one.
    fn template_class(&self) -> Option<Option<&str>> {
        match self {
            PodVolumeClaim::Claim(_) => None,
            PodVolumeClaim::Ephemeral { storage_class, .. }
            | PodVolumeClaim::Template { storage_class, .. } => Some(storage_class.as_deref()),
        }
    }
}

/// A PersistentVolumeClaim, as far as scheduling cares.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PersistentVolumeClaim {
    pub namespace: String,
    pub name: String,
    /// `spec.volumeName` once bound.
    pub volume_name: Option<String>,
    /// `spec.storageClassName`: `None` means the default class, `Some("")` no class.
    pub storage_class: Option<String>,
}

/// A PersistentVolume's required node affinity: an OR of terms. Empty means anywhere.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PersistentVolume {
    pub name: String,
    pub node_affinity: Vec<Requirements>,
}

/// When a StorageClass's provisioner binds a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VolumeBindingMode {
    #[default]
    Immediate,
    WaitForFirstConsumer,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct StorageClass {
    pub name: String,
    pub binding_mode: VolumeBindingMode,
    /// `allowedTopologies`: an OR of terms. Empty means anywhere.
    pub allowed_topologies: Vec<Requirements>,
    /// Annotated `storageclass.kubernetes.io/is-default-class: "true"`.
    pub default: bool,
}

/// Why a pod cannot be planned yet because of its volumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeWait(pub String);

impl fmt::Display for VolumeWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The cluster's claims, volumes and classes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Volumes {
    claims: BTreeMap<(String, String), PersistentVolumeClaim>,
    volumes: BTreeMap<String, PersistentVolume>,
    classes: BTreeMap<String, StorageClass>,
}

impl Volumes {
    pub fn new(
        claims: impl IntoIterator<Item = PersistentVolumeClaim>,
        volumes: impl IntoIterator<Item = PersistentVolume>,
        classes: impl IntoIterator<Item = StorageClass>,
    ) -> Self {
        let mut out = Volumes::default();
        for c in claims {
            out.add_claim(c);
        }
        for v in volumes {
            out.add_volume(v);
        }
        for c in classes {
            out.add_class(c);
        }
        out
    }

    pub fn add_claim(&mut self, claim: PersistentVolumeClaim) {
        self.claims
            .insert((claim.namespace.clone(), claim.name.clone()), claim);
    }

    pub fn add_volume(&mut self, volume: PersistentVolume) {
        self.volumes.insert(volume.name.clone(), volume);
    }

    pub fn add_class(&mut self, class: StorageClass) {
        self.classes.insert(class.name.clone(), class);
    }

    pub fn claim(&self, namespace: &str, name: &str) -> Option<&PersistentVolumeClaim> {
        self.claims.get(&(namespace.to_string(), name.to_string()))
    }

    pub fn volume(&self, name: &str) -> Option<&PersistentVolume> {
        self.volumes.get(name)
    }

    pub fn claims(&self) -> impl Iterator<Item = &PersistentVolumeClaim> {
        self.claims.values()
    }

    /// The class a claim asking for `name` gets: the named one, or the default when unnamed
    /// (the newest default if several are marked, as the admission plugin picks).
    pub fn class(&self, name: Option<&str>) -> Option<&StorageClass> {
        match name {
            Some(n) => self.classes.get(n),
            None => self.classes.values().rfind(|c| c.default),
        }
    }

    /// The node requirements the pod's volumes add, as an OR of terms (empty: none), or why
    /// the pod must wait.
    pub fn requirements(&self, pod: &Pod) -> Result<Vec<Requirements>, VolumeWait> {
        let mut terms: Vec<Requirements> = Vec::new();
        for volume in &pod.volume_claims {
            let add = self.claim_requirements(pod, volume)?;
            if !add.is_empty() {
                terms = cross(&terms, &add);
            }
        }
        Ok(terms)
    }

    /// Folds the volumes' requirements into the pod's required node affinity.
    pub fn constrain(&self, pod: &mut Pod) -> Result<(), VolumeWait> {
        let terms = self.requirements(pod)?;
        if !terms.is_empty() {
            pod.required_affinity = cross(&pod.required_affinity, &terms);
        }
        Ok(())
    }

    fn claim_requirements(
        &self,
        pod: &Pod,
        volume: &PodVolumeClaim,
    ) -> Result<Vec<Requirements>, VolumeWait> {
        let name = volume.claim_name(&pod.name);
        let key = format!("{}/{name}", pod.namespace);
        let (bound_to, class) = match (self.claim(&pod.namespace, &name), volume.template_class()) {
            (Some(c), _) => (c.volume_name.as_deref(), c.storage_class.as_deref()),
            // Its controller creates it from the template; plan as that claim will be.
            (None, Some(class)) => (None, class),
            (None, None) => {
                return Err(VolumeWait(format!("PersistentVolumeClaim {key} does not exist")));
            }
        };
        if let Some(name) = bound_to.filter(|n| !n.is_empty()) {
            return match self.volumes.get(name) {
                Some(pv) => Ok(pv.node_affinity.clone()),
                None => Err(VolumeWait(format!(
                    "PersistentVolume {name} of claim {key} does not exist"
                ))),
            };
        }
        // Unbound with no class: only an administrator's pre-made volume can bind it.
        if class == Some("") {
            return Err(VolumeWait(format!(
                "PersistentVolumeClaim {key} is unbound and has no StorageClass"
            )));
        }
        let Some(sc) = self.class(class) else {
            return Err(VolumeWait(match class {
                Some(n) => format!("StorageClass {n} of claim {key} does not exist"),
                None => {
                    format!("PersistentVolumeClaim {key} is unbound and there is no default StorageClass")
                }
            }));
        };
        match sc.binding_mode {
            VolumeBindingMode::WaitForFirstConsumer => Ok(sc.allowed_topologies.clone()),
            VolumeBindingMode::Immediate => Err(VolumeWait(format!(
                "PersistentVolumeClaim {key} is waiting for StorageClass {} to bind it (Immediate binding)",
                sc.name
            ))),
        }
    }
}

/// The pairwise intersections of two ORs of terms (`a` empty means no constraint).
fn cross(a: &[Requirements], b: &[Requirements]) -> Vec<Requirements> {
    if a.is_empty() {
        return b.to_vec();
    }
    a.iter()
        .flat_map(|x| b.iter().map(move |y| x.intersection(y)))
        .collect()
}

/// Constrains every pod that has volumes; returns the pods that must wait, with why, and
/// leaves the others in `pods`.
pub fn constrain_pending(volumes: &Volumes, pods: &mut Vec<Pod>) -> Vec<(Pod, VolumeWait)> {
    let mut waiting = Vec::new();
    let mut kept = Vec::with_capacity(pods.len());
    for mut pod in pods.drain(..) {
        if pod.volume_claims.is_empty() {
            kept.push(pod);
            continue;
        }
        match volumes.constrain(&mut pod) {
            Ok(()) => kept.push(pod),
            Err(why) => waiting.push((pod, why)),
        }
    }
    *pods = kept;
    waiting
}

/// Constrains pods already running: a volume that cannot be resolved leaves the pod as it is
/// (it runs, so its volume is where it is).
pub fn constrain_bound<'a>(volumes: &Volumes, pods: impl IntoIterator<Item = &'a mut Pod>) {
    for pod in pods {
        if !pod.volume_claims.is_empty() {
            let _ = volumes.constrain(pod);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::requirements::Requirement;

    fn zone(z: &[&str]) -> Requirements {
        let mut r = Requirements::new();
        r.add(crate::labels::ZONE, Requirement::is_in(z.iter().copied()));
        r
    }

    fn pod_with(claims: &[&str]) -> Pod {
        Pod {
            namespace: "db".into(),
            name: "pg-0".into(),
            volume_claims: claims
                .iter()
                .map(|c| PodVolumeClaim::Claim(c.to_string()))
                .collect(),
            ..Pod::default()
        }
    }

    fn claim(name: &str, volume: Option<&str>, class: Option<&str>) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            namespace: "db".into(),
            name: name.into(),
            volume_name: volume.map(str::to_string),
            storage_class: class.map(str::to_string),
        }
    }

    fn class(
        name: &str,
        mode: VolumeBindingMode,
        topologies: Vec<Requirements>,
        default: bool,
    ) -> StorageClass {
        StorageClass {
            name: name.into(),
            binding_mode: mode,
            allowed_topologies: topologies,
            default,
        }
    }

    #[test]
    fn a_claim_bound_to_a_zonal_volume_pins_the_pod_to_that_zone() {
        let volumes = Volumes::new(
            [claim("data", Some("pv-1"), Some("gp3"))],
            [PersistentVolume {
                name: "pv-1".into(),
                node_affinity: vec![zone(&["us-east-1b"])],
            }],
            [],
        );
        let mut pod = pod_with(&["data"]);
        volumes.constrain(&mut pod).expect("resolvable");
        assert_eq!(pod.required_affinity, vec![zone(&["us-east-1b"])]);
    }

    #[test]
    fn the_volume_zone_is_intersected_with_each_of_the_pods_own_terms() {
        let volumes = Volumes::new(
            [claim("data", Some("pv-1"), None)],
            [PersistentVolume {
                name: "pv-1".into(),
                node_affinity: vec![zone(&["us-east-1b"])],
            }],
            [],
        );
        let mut pod = pod_with(&["data"]);
        pod.required_affinity = vec![zone(&["us-east-1a", "us-east-1b"]), zone(&["us-east-1c"])];
        volumes.constrain(&mut pod).expect("resolvable");
        let labels = |z: &str| BTreeMap::from([(crate::labels::ZONE.to_string(), z.to_string())]);
        assert!(pod.matches_node_labels(&labels("us-east-1b")));
        assert!(!pod.matches_node_labels(&labels("us-east-1a")));
        assert!(!pod.matches_node_labels(&labels("us-east-1c")));
    }

    #[test]
    fn an_unbound_wait_for_first_consumer_claim_honours_the_allowed_topologies() {
        let volumes = Volumes::new(
            [claim("data", None, Some("gp3"))],
            [],
            [class(
                "gp3",
                VolumeBindingMode::WaitForFirstConsumer,
                vec![zone(&["us-east-1a", "us-east-1c"])],
                false,
            )],
        );
        let mut pod = pod_with(&["data"]);
        volumes.constrain(&mut pod).expect("resolvable");
        assert_eq!(pod.required_affinity, vec![zone(&["us-east-1a", "us-east-1c"])]);
    }

    #[test]
    fn an_unbound_claim_of_an_immediate_class_makes_the_pod_wait() {
        let volumes = Volumes::new(
            [claim("data", None, Some("io2"))],
            [],
            [class("io2", VolumeBindingMode::Immediate, vec![], false)],
        );
        let why = volumes.constrain(&mut pod_with(&["data"])).expect_err("waits");
        assert!(why.0.contains("Immediate"), "{why}");
    }

    #[test]
    fn a_missing_claim_makes_the_pod_wait_unless_a_template_will_create_it() {
        let volumes = Volumes::new(
            [],
            [],
            [class(
                "gp3",
                VolumeBindingMode::WaitForFirstConsumer,
                vec![],
                true,
            )],
        );
        let why = volumes.constrain(&mut pod_with(&["data"])).expect_err("waits");
        assert!(why.0.contains("does not exist"), "{why}");

        let mut pod = pod_with(&[]);
        pod.volume_claims.push(PodVolumeClaim::Template {
            template: "data".into(),
            storage_class: None,
        });
        volumes
            .constrain(&mut pod)
            .expect("the default class waits for its consumer");
        assert!(pod.required_affinity.is_empty());
    }

    #[test]
    fn an_unnamed_class_is_the_default_class() {
        let volumes = Volumes::new(
            [claim("data", None, None)],
            [],
            [
                class("io2", VolumeBindingMode::Immediate, vec![], false),
                class(
                    "gp3",
                    VolumeBindingMode::WaitForFirstConsumer,
                    vec![zone(&["us-east-1a"])],
                    true,
                ),
            ],
        );
        let mut pod = pod_with(&["data"]);
        volumes.constrain(&mut pod).expect("resolvable");
        assert_eq!(pod.required_affinity, vec![zone(&["us-east-1a"])]);
    }

    #[test]
    fn two_volumes_in_different_zones_leave_no_zone() {
        let volumes = Volumes::new(
            [claim("a", Some("pv-a"), None), claim("b", Some("pv-b"), None)],
            [
                PersistentVolume {
                    name: "pv-a".into(),
                    node_affinity: vec![zone(&["us-east-1a"])],
                },
                PersistentVolume {
                    name: "pv-b".into(),
                    node_affinity: vec![zone(&["us-east-1b"])],
                },
            ],
            [],
        );
        let mut pod = pod_with(&["a", "b"]);
        volumes.constrain(&mut pod).expect("resolvable");
        for z in ["us-east-1a", "us-east-1b"] {
            let labels = BTreeMap::from([(crate::labels::ZONE.to_string(), z.to_string())]);
            assert!(!pod.matches_node_labels(&labels));
        }
    }

    #[test]
    fn pods_that_must_wait_are_set_apart_with_the_reason() {
        let volumes = Volumes::default();
        let mut pods = vec![pod_with(&[]), pod_with(&["missing"])];
        let waiting = constrain_pending(&volumes, &mut pods);
        assert_eq!(pods.len(), 1);
        assert_eq!(waiting.len(), 1);
        assert!(waiting[0].1.0.contains("db/missing"));
    }
}
