//! Volumes: StorageClasses, and the claims and zonal volumes made as the EBS CSI driver and
//! the PV controller make them.

use nodewright_core::labels;
use nodewright_core::pod::Pod;
use nodewright_core::requirements::{Requirement, Requirements};
use nodewright_core::volumes::{
    PersistentVolume, PersistentVolumeClaim, PodVolumeClaim, StorageClass, VolumeBindingMode,
};

use super::{ClusterState, SimCluster};

impl SimCluster {
    /// Creates or replaces a StorageClass (by name).
    pub fn apply_storage_class(&self, class: StorageClass) {
        self.state().volumes.add_class(class);
    }

    /// The volume a claim is bound to, and its zone: `(volume, zone)`.
    pub fn claim_volume(&self, namespace: &str, claim: &str) -> Option<(String, String)> {
        let state = self.state();
        let name = state.volumes.claim(namespace, claim)?.volume_name.clone()?;
        let zone = state
            .volumes
            .volume(&name)?
            .node_affinity
            .first()?
            .get(labels::ZONE)?
            .values()
            .first()?
            .clone();
        Some((name, zone))
    }
}

impl ClusterState {
    /// The EBS CSI driver and the PV controller: a pod's claims that do not exist yet are made
    /// from their templates, and each unbound claim of a `WaitForFirstConsumer` class gets a
    /// volume in the zone of the node the pod is bound to (an `Immediate` class's claim was
    /// bound when made, see [`Self::make_claims`]). Claims outlive their pods, as a
    /// StatefulSet's do.
    pub(super) fn provision_volumes(&mut self, key: &str, node: &str) {
        let Some(pod) = self.pods.get(key).map(|e| e.pod.clone()) else {
            return;
        };
        let Some(zone) = self
            .nodes
            .get(node)
            .and_then(|n| n.labels.get(labels::ZONE))
            .cloned()
        else {
            return;
        };
        self.make_claims(&pod);
        for v in &pod.volume_claims {
            let name = v.claim_name(&pod.name);
            let Some(claim) = self.volumes.claim(&pod.namespace, &name).cloned() else {
                continue;
            };
            let waits = self
                .volumes
                .class(claim.storage_class.as_deref())
                .is_some_and(|c| c.binding_mode == VolumeBindingMode::WaitForFirstConsumer);
            if claim.volume_name.is_none() && waits {
                self.bind_claim(claim, &zone);
            }
        }
    }

    /// Claims made from the pod's templates where missing; an `Immediate` class's is bound at
    /// once, in the first zone its class allows (or the region's first).
    pub(super) fn make_claims(&mut self, pod: &Pod) {
        for v in &pod.volume_claims {
            let PodVolumeClaim::Template { storage_class, .. } = v else {
                continue;
            };
            let name = v.claim_name(&pod.name);
            if self.volumes.claim(&pod.namespace, &name).is_some() {
                continue;
            }
            let claim = PersistentVolumeClaim {
                namespace: pod.namespace.clone(),
                name,
                volume_name: None,
                storage_class: storage_class.clone(),
            };
            self.volumes.add_claim(claim.clone());
            let immediate = self.volumes.class(storage_class.as_deref()).and_then(|c| {
                (c.binding_mode == VolumeBindingMode::Immediate).then(|| {
                    c.allowed_topologies
                        .iter()
                        .find_map(|t| t.get(labels::ZONE).and_then(|r| r.values().first().cloned()))
                        .unwrap_or_else(|| FIRST_ZONE.to_string())
                })
            });
            if let Some(zone) = immediate {
                self.bind_claim(claim, &zone);
            }
        }
    }

    /// A new zonal volume (`pv-<namespace>-<claim>`) for the claim, and the claim bound to it.
    fn bind_claim(&mut self, mut claim: PersistentVolumeClaim, zone: &str) {
        let name = format!("pv-{}-{}", claim.namespace, claim.name);
        let mut affinity = Requirements::new();
        affinity.add(labels::ZONE, Requirement::is_in([zone]));
        self.volumes.add_volume(PersistentVolume {
            name: name.clone(),
            node_affinity: vec![affinity],
        });
        claim.volume_name = Some(name);
        self.volumes.add_claim(claim);
    }
}

/// Where an `Immediate` class with no allowed topologies makes its volumes: the simulated
/// region's first zone.
const FIRST_ZONE: &str = "us-east-1a";
