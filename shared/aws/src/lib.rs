//! AWS adapters implementing the core's ports with the official AWS SDK for Rust:
//! [`Ec2Cloud`] (EC2 launch, instances, live catalog), the DynamoDB claim store and the SQS
//! provision queue.
//!
//! AWS error codes are classified in [`errors`] and nowhere else.

mod cache;
pub mod catalog;
pub mod claims;
pub mod clock;
pub mod config;
pub mod ec2;
pub mod emf;
pub mod errors;
pub mod queue;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod userdata;

pub use clock::SystemClock;
pub use config::{AwsConfig, RetryPolicy};
pub use ec2::Ec2Cloud;
