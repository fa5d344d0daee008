//! Kubernetes manifests (k8s-openapi types) read into the core's model.
