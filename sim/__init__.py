"""dra-sim: a discrete-event simulator of Kubernetes scheduling with classic DRA.

Classic Dynamic Resource Allocation (`resource.k8s.io/v1alpha2`, Kubernetes
1.27-1.29) lets pods ask for devices through ResourceClaims that resource
drivers allocate after negotiating a node with kube-scheduler. dra-sim models
the API server, the scheduler, the resourceclaim controller, the drivers and
the kubelets in simulated time.
"""

__version__ = "0.1.0"
