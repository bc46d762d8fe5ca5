"""dra-sim: a discrete-event simulator of Kubernetes scheduling with classic DRA.

Classic Dynamic Resource Allocation (`resource.k8s.io/v1alpha2`, Kubernetes
1.27-1.29) lets pods ask for devices through ResourceClaims that resource
drivers allocate after negotiating a node with kube-scheduler. dra-sim models
the API server, the scheduler, the resourceclaim controller, the drivers and
the kubelets in simulated time.

The public Python API:

    from sim import load_scenario, simulate
    results = simulate(load_scenario("scenarios/quickstart.yaml"))
    results.pods        # pandas DataFrame, one row per pod
    results.summary     # dict of summary metrics

The names are imported on first use, so that `import sim.api` (the plain
Kubernetes object model) does not load the simulation engine.
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Results", "__version__", "load_scenario", "simulate"]

if TYPE_CHECKING:
    from sim.results import Results, simulate
    from sim.scenario import load_scenario


def __getattr__(name: str) -> Any:
    if name == "load_scenario":
        from sim.scenario import load_scenario

        return load_scenario
    if name in ("simulate", "Results"):
        from sim import results

        return getattr(results, name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
