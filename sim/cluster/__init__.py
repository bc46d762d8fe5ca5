"""SimPy components of a Kubernetes cluster with classic DRA."""
