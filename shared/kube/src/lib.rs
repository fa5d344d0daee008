//! Kubernetes adapter on kube-rs, and EKS authentication.
//!
//! [`KubeCluster`] implements the core's `Cluster` port over the Kubernetes API; [`eks`] makes
//! the bearer tokens and reads the endpoint and CA that reach an EKS cluster. kube-rs errors are
//! classified in [`errors`] and nowhere else.

pub mod cluster;
pub mod eks;
pub mod errors;

pub use cluster::{ConfigSource, KubeCluster, PAGE_SIZE, is_pending_unschedulable};
pub use eks::{
    ClusterInfo, EksConfigSource, check_endpoint, config_for, describe_cluster, describe_cluster_cached,
};
