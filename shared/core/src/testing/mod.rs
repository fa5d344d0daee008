//! The test kit every crate's tests share (feature `test-util`; never in a production build):
//!
//! - fixtures with defaults to change: [`claim`] (a NodeClaim), [`instance`] (an EC2
//!   instance as the cloud reports it), [`node`] (a Node, or an existing node with its pods);
//!   pods, NodePools and node classes come from [`crate::builders`];
//! - [`VirtualClock`] for time that moves only when told to;
//! - [`plan_check`]: the checker that a scheduling plan breaks no hard constraint of its
//!   input, for the property tests and for the plans the CLI prints.
//!
//! ```
//! use nodewright_core::nodeclaim::ClaimState;
//! use nodewright_core::testing::{claim, instance};
//! let launching = claim("default-a").created_at(1_000).build();
//! let launched = claim("default-b").launched("i-0b", 2_000).build();
//! let orphan = instance("i-0c").launched_at(500).build();
//! assert_eq!(launching.state, ClaimState::Launching);
//! assert_eq!(launched.instance_id(), Some("i-0b"));
//! assert_eq!(orphan.claim_id, None);
//! ```

mod claims;
mod instances;
mod nodes;
pub mod plan_check;

pub use crate::clock::VirtualClock;
pub use claims::{ClaimBuilder, claim};
pub use instances::{InstanceBuilder, instance};
pub use nodes::{NodeBuilder, node};
