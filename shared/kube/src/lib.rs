//! Kubernetes adapter on kube-rs, and EKS authentication.
