//! A faithful fake Kubernetes API server over HTTP for tests, with a simulated kubelet and kube-scheduler.
