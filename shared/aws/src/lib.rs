//! AWS adapters implementing the core's ports with the official AWS SDK for Rust:
//! [`Ec2Cloud`] (EC2 launch, instances, live catalog) and the DynamoDB claim store.
//!
//! AWS error codes are classified in [`errors`] and nowhere else.

mod cache;
pub mod catalog;
pub mod claims;
pub mod config;
pub mod ec2;
pub mod errors;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod userdata;

pub use config::{AwsConfig, RetryPolicy};
pub use ec2::Ec2Cloud;
