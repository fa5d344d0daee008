//! Kubernetes manifests (k8s-openapi types) read into the core's model.
//!
//! [`pod_from_k8s`] and [`node_from_k8s`] convert objects as the kube-scheduler reads them;
//! [`workload`] expands Deployments, ReplicaSets, StatefulSets, Jobs and DaemonSets into the
//! pods their controllers would create; [`read_manifests`] reads files and directories of YAML
//! into [`Manifests`], and [`Manifests::to_input`] turns them into a scheduling round for the
//! offline planner. Conversion is strict: every error names the object and the field.
//! [`yaml`] reads and writes YAML for this crate and the others that read what people write.
//! [`label_selector_from_k8s`] reads a `metav1.LabelSelector` on its own, for callers that
//! match objects by one (the fake API server's PodDisruptionBudgets and workloads).

mod constraints;
pub mod convert;
#[cfg(feature = "schema")]
pub mod crd;
mod decode;
mod error;
mod node;
mod pdb;
mod pod;
mod read;
mod volume;
pub mod workload;
pub mod yaml;

pub use constraints::label_selector_from_k8s;
pub use convert::{Conversion, ConvertWarning, convert_documents};
pub use error::{Error, Result};
pub use node::node_from_k8s;
pub use pdb::pdb_from_k8s;
pub use pod::pod_from_k8s;
pub use read::{Manifests, Warning, read_manifests};
pub use volume::{claim_from_k8s, storage_class_from_k8s, volume_from_k8s};

#[cfg(test)]
mod testing {
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    /// Decodes a YAML fixture strictly, as [`crate::read_manifests`] does.
    pub fn k8s<T: DeserializeOwned + Serialize>(yaml: &str) -> T {
        let value: serde_json::Value = crate::yaml::from_str(yaml).expect("fixture is YAML");
        crate::decode::decode(&value, "fixture").expect("fixture matches the schema")
    }

    /// An error and its causes, joined as the CLI prints them.
    pub fn chain(err: &dyn std::error::Error) -> String {
        nodewright_core::error::chain(err)
    }
}
