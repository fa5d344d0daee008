//! Karpenter's own scheduling suite, restated for nodewright's scheduler.
//!
//! The cases come from kubernetes-sigs/karpenter `pkg/controllers/provisioning/scheduling`
//! (`suite_test.go`, `topology_test.go`, `instance_selection_test.go`) and the NodePool cases of
//! `pkg/controllers/provisioning/suite_test.go`. Each is one scheduling round over the embedded
//! us-east-1 catalog: Karpenter's fake cloud (three zones, a handful of instance types) becomes
//! us-east-1a..f and the real EC2 types, and "the pod's node" becomes the claim the plan puts
//! it on (its candidate instance types, zones, labels and chosen offering). Rounds Karpenter
//! runs one after another are given here as existing nodes and in-flight claims.

#[path = "karpenter_suite/support.rs"]
mod support;

#[path = "karpenter_suite/constraints.rs"]
mod constraints;

#[path = "karpenter_suite/topology.rs"]
mod topology;

#[path = "karpenter_suite/affinity.rs"]
mod affinity;

#[path = "karpenter_suite/nodes.rs"]
mod nodes;

#[path = "karpenter_suite/instances.rs"]
mod instances;
