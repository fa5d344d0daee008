//! nodewright's pure core: the model (pods, nodes, NodePools, EC2NodeClasses, NodeClaims),
//! quantities and requirements, the instance catalog, the scheduler, and the ports the I/O side
//! implements. Nothing here performs I/O, reads a clock or draws randomness.

pub mod api;
pub mod assemble;
pub mod catalog;
pub mod clock;
pub mod config_status;
pub mod disruption;
pub mod error;
pub mod events;
pub mod instance_profiles;
pub mod interruption;
pub mod labels;
pub mod launch_templates;
pub mod nodeclaim;
pub mod pending;
pub mod pod;
pub mod ports;
pub mod quantity;
pub mod reconcile;
pub mod requirements;
pub mod resources;
pub mod selector;
pub mod stable_hash;
pub mod status;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

pub use error::{Error, Result};
#[cfg(any(test, feature = "benchmark"))]
pub mod benchmark;
#[cfg(any(test, feature = "test-util", feature = "benchmark"))]
pub mod builders;
pub mod lifecycle;
pub mod pass;
pub mod pdb;
pub mod provisioning;
pub mod scheduler;
pub mod unavailable;
pub mod uninstall;
pub mod volumes;
pub mod wiring;
