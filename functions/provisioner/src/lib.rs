//! The provisioner Lambda: one provisioning round per invocation.
