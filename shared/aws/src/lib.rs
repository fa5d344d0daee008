//! AWS adapters implementing the core's ports with the official AWS SDK for Rust:
//! [`Ec2Cloud`] (EC2 launch, instances, live catalog), the DynamoDB claim store and the SQS
//! provision queue.
//!
//! AWS error codes are classified in [`errors`] and nowhere else.

#[cfg(feature = "ec2")]
mod cache;
#[cfg(feature = "ec2")]
pub mod catalog;
#[cfg(feature = "claims")]
pub mod claims;
pub mod clock;
pub mod config;
#[cfg(feature = "ec2")]
pub mod ec2;
pub mod emf;
pub mod errors;
#[cfg(feature = "queue")]
pub mod queue;
#[cfg(feature = "test-util")]
pub mod runtime_api;
#[cfg(feature = "secrets")]
pub mod secrets;
#[cfg(feature = "test-util")]
pub mod testing;
#[cfg(feature = "ec2")]
pub mod userdata;

pub use clock::SystemClock;
pub use config::{AwsConfig, RetryPolicy};
#[cfg(feature = "ec2")]
pub use ec2::Ec2Cloud;
