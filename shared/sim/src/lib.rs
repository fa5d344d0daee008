//! An in-memory cloud and cluster with a virtual clock, behind the core's ports.
