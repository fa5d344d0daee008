//! AWS adapters implementing the core's ports with the official AWS SDK for Rust.
//!
//! AWS error codes are classified in [`errors`] and nowhere else.

pub mod claims;
pub mod config;
pub mod errors;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod userdata;

pub use config::{AwsConfig, RetryPolicy};
