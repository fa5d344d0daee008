//! The embedded catalog.
