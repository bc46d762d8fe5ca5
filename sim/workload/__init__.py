"""Pod sources: synthetic arrival processes, Kubernetes manifests and trace imports."""
