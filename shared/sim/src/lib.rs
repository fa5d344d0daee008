//! An in-memory cloud and cluster with a virtual clock, behind the core's ports.
//!
//! The fakes ([`SimCloud`], [`SimCluster`], [`SimClaimStore`]) keep state, record their calls,
//! take an injected next error and enforce the rules of the real services (versioned writes,
//! legal claim transitions, lease ownership, launch idempotency per claim). Around them,
//! [`Simulation`] plays a [`Scenario`] in virtual time: a simulated kubelet registers launched
//! instances as Nodes, a simulated kube-scheduler binds pods or marks them Unschedulable, and
//! the core's own passes run as the Lambdas run them: the disruption sweep every minute and the
//! provisioner's pass (reconciliation, node lifecycle, provisioning round). The output is a [`Report`]: a timeline and a cost and latency summary.
//!
//! [`kube_scheduler`] is the simulated kube-scheduler on its own, over the core's pods and
//! nodes; the fake API server schedules with it too.

mod baseline;
mod calls;
mod clock;
mod cloud;
mod cluster;
mod error;
mod ids;
pub mod kube_scheduler;
mod kubelet;
mod report;
mod scenario;
mod simulation;
mod store;

pub use baseline::{BASELINE_CONSOLIDATE_AFTER, Baseline, DEFAULT_BASELINE_TYPE, baseline};
pub use calls::{Call, CloudOp, ClusterOp, StoreOp};
pub use clock::VirtualClock;
pub use cloud::{
    CapacityFailure, CloudWorld, ImageArch, OfferingPattern, SimCloud, SimImage, SimInstance, SimProfile,
    SimSubnet,
};
pub use cluster::{PodRecord, PodStatus, SchedulingPass, SimCluster, Workload};
pub use error::{Error, Result};
pub use ids::SeededIds;
pub use kubelet::{Kubelet, Registration};
pub use report::{Event, Latency, Replacement, Report, Summary, TimelineEvent, format_offset};
pub use scenario::{DeleteNode, Interrupt, InterruptKind, Objects, Scenario, Step};
pub use simulation::{Sample, Simulation, simulate};
pub use store::SimClaimStore;
