//! PersistentVolumeClaims, PersistentVolumes and StorageClasses into the core's model
//! ([`nodewright_core::volumes`]): only what decides where a pod with volumes may run.

use k8s_openapi::api::core::v1 as k8s;
use k8s_openapi::api::storage::v1::StorageClass as K8sStorageClass;
use nodewright_core::requirements::{Requirement, Requirements};
use nodewright_core::volumes::{PersistentVolume, PersistentVolumeClaim, StorageClass, VolumeBindingMode};

use crate::constraints::node_term;
use crate::error::{At, Error, Result};
use crate::pod::namespace_of;

const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

pub fn claim_from_k8s(pvc: &k8s::PersistentVolumeClaim) -> Result<PersistentVolumeClaim> {
    let namespace = namespace_of(&pvc.metadata).to_string();
    let name = pvc.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        return Err(Error::invalid(
            &format!("PersistentVolumeClaim {namespace}/"),
            "metadata.name",
            "is required",
        ));
    }
    let spec = pvc.spec.as_ref();
    Ok(PersistentVolumeClaim {
        namespace,
        name,
        volume_name: spec.and_then(|s| s.volume_name.clone()).filter(|v| !v.is_empty()),
        storage_class: spec.and_then(|s| s.storage_class_name.clone()),
    })
}

/// A volume's `spec.nodeAffinity.required`, each term an AND of its expressions.
pub fn volume_from_k8s(pv: &k8s::PersistentVolume) -> Result<PersistentVolume> {
    let name = pv.metadata.name.clone().unwrap_or_default();
    let object = format!("PersistentVolume {name}");
    if name.is_empty() {
        return Err(Error::invalid(&object, "metadata.name", "is required"));
    }
    let at = At {
        object: &object,
        prefix: "",
    };
    let mut node_affinity = Vec::new();
    let required = pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref());
    for (i, term) in required
        .map(|r| r.node_selector_terms.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let expressions = term.match_expressions.as_deref().unwrap_or_default();
        if expressions.is_empty() {
            continue;
        }
        node_affinity.push(node_term(
            at,
            &format!("spec.nodeAffinity.required.nodeSelectorTerms[{i}]"),
            expressions,
        )?);
    }
    Ok(PersistentVolume { name, node_affinity })
}

pub fn storage_class_from_k8s(sc: &K8sStorageClass) -> Result<StorageClass> {
    let name = sc.metadata.name.clone().unwrap_or_default();
    let object = format!("StorageClass {name}");
    if name.is_empty() {
        return Err(Error::invalid(&object, "metadata.name", "is required"));
    }
    let binding_mode = match sc.volume_binding_mode.as_deref() {
        None | Some("Immediate") => VolumeBindingMode::Immediate,
        Some("WaitForFirstConsumer") => VolumeBindingMode::WaitForFirstConsumer,
        Some(other) => {
            return Err(Error::invalid(
                &object,
                "volumeBindingMode",
                format!("unknown mode {other:?} (expected Immediate or WaitForFirstConsumer)"),
            ));
        }
    };
    let mut allowed_topologies = Vec::new();
    for term in sc.allowed_topologies.iter().flatten() {
        let mut requirements = Requirements::new();
        for e in term.match_label_expressions.iter().flatten() {
            requirements.add(&e.key, Requirement::is_in(e.values.iter().cloned()));
        }
        if !requirements.is_empty() {
            allowed_topologies.push(requirements);
        }
    }
    let default = sc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
        .is_some_and(|v| v == "true");
    Ok(StorageClass {
        name,
        binding_mode,
        allowed_topologies,
        default,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::k8s;
    use nodewright_core::labels::ZONE;
    use std::collections::BTreeMap;

    #[test]
    fn an_ebs_volumes_zone_affinity_is_read_under_the_current_zone_key() {
        let pv: k8s::PersistentVolume = k8s(r#"
apiVersion: v1
kind: PersistentVolume
metadata: {name: pvc-1234}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  csi: {driver: ebs.csi.aws.com, volumeHandle: vol-0123}
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: topology.ebs.csi.aws.com/zone, operator: In, values: [us-east-1c]}
"#);
        let pv = volume_from_k8s(&pv).expect("valid");
        let labels = |z: &str| BTreeMap::from([(ZONE.to_string(), z.to_string())]);
        let term = pv.node_affinity[0].normalized();
        assert!(term.matches_labels(&labels("us-east-1c")));
        assert!(!term.matches_labels(&labels("us-east-1a")));
    }

    #[test]
    fn a_storage_class_reads_its_binding_mode_topologies_and_default_mark() {
        let sc: K8sStorageClass = k8s(r#"
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: gp3
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: ebs.csi.aws.com
volumeBindingMode: WaitForFirstConsumer
allowedTopologies:
  - matchLabelExpressions:
      - {key: topology.kubernetes.io/zone, values: [us-east-1a, us-east-1b]}
"#);
        let sc = storage_class_from_k8s(&sc).expect("valid");
        assert_eq!(sc.binding_mode, VolumeBindingMode::WaitForFirstConsumer);
        assert!(sc.default);
        assert_eq!(sc.allowed_topologies.len(), 1);
        assert!(
            sc.allowed_topologies[0]
                .matches_labels(&BTreeMap::from([(ZONE.to_string(), "us-east-1b".to_string())]))
        );
    }

    #[test]
    fn an_unknown_binding_mode_is_an_error_naming_the_field() {
        let sc: K8sStorageClass = k8s(
            "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: x}\nprovisioner: p\nvolumeBindingMode: Later\n",
        );
        let err = storage_class_from_k8s(&sc).expect_err("invalid").to_string();
        assert!(err.contains("volumeBindingMode"), "{err}");
    }
}
