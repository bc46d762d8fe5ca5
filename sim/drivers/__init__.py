"""Built-in driver models: the driver-specific half of a simulated DRA resource driver.

`sim.cluster.driver.DriverController` runs the protocol of the driver helper
library; a model decides where claims go. Models are looked up by name:

* `node-local`: the Kubernetes DRA test driver (claims per node), the model
  of the scheduler_perf benchmarks.
* `devices`: named devices with attributes per node, with a placement policy,
  reading the parameters of the public demo drivers.
* `network-attached`: one pool of units reachable from a set of nodes.
* `gpushare`: GPUs shared in thousandths, placed by a GPU policy
  (`sim.drivers.gpu_policies`).

Importing this package registers them.
"""

from sim.drivers import devices, gpushare, network_attached, node_local
from sim.drivers.placement import (
    available_placement_policies,
    get_placement_policy,
    register_placement_policy,
)
from sim.drivers.registry import (
    available_driver_models,
    build_driver_model,
    get_driver_model,
    register_driver_model,
)

__all__ = [
    "available_driver_models",
    "available_placement_policies",
    "build_driver_model",
    "devices",
    "get_driver_model",
    "get_placement_policy",
    "gpushare",
    "network_attached",
    "node_local",
    "register_driver_model",
    "register_placement_policy",
]
