"""Settings of the simulated control plane, drivers and kubelets.

These pydantic models are used as they are inside scenario files, so every
field has a unit in its name or description, a default taken from Kubernetes
1.29 (or from the Kubernetes test driver for drivers), and unknown keys are
rejected. Latencies are distributions (see `sim.distributions`); a plain number
means a constant.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from sim.distributions import AnyDistribution, Constant, coerce_distribution

Dist = Annotated[AnyDistribution, BeforeValidator(coerce_distribution)]
"""A distribution field that also accepts a plain number."""


def _version_text(value: Any) -> Any:
    """Accept an unquoted YAML version such as 1.28 (a float) as the string "1.28"."""
    if isinstance(value, float):
        return f"{value:.2f}"
    return value


class StrictModel(BaseModel):
    """Base of every settings model: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SchedulerConfig(StrictModel):
    """kube-scheduler settings (defaults of KubeSchedulerConfiguration v1 in 1.29)."""

    qps: float = Field(50.0, gt=0, description="client-side API request rate limit, requests/s")
    burst: int = Field(100, ge=1, description="client-side rate limit burst, requests")
    pod_initial_backoff_s: float = Field(1.0, gt=0)
    pod_max_backoff_s: float = Field(10.0, gt=0)
    backoff_flush_interval_s: float = Field(1.0, gt=0, description="backoffQ -> activeQ sweep")
    unschedulable_flush_interval_s: float = Field(30.0, gt=0)
    pod_max_in_unschedulable_pods_s: float = Field(300.0, gt=0)
    percentage_of_nodes_to_score: int = Field(
        0, ge=0, le=100, description="0 = adaptive formula of kube-scheduler"
    )
    cycle_cost_per_pod_s: Dist = Field(
        default_factory=lambda: Constant(value=0.0005),
        description="CPU time of one scheduling cycle apart from per-node work, seconds",
    )
    cycle_cost_per_node_s: float = Field(
        2e-6, ge=0, description="CPU time per node examined in Filter and Score, seconds"
    )
    scoring_strategy: Literal["LeastAllocated", "MostAllocated"] = "LeastAllocated"
    postfilter_candidates: Literal["faithful", "intended"] = Field(
        "faithful",
        description="faithful: reproduce the 1.27-1.29 position quirk when recording "
        "PostFilter candidates; intended: record exactly the WaitForFirstConsumer claims",
    )
    device_aware_policy: str | None = Field(
        None,
        description="GPU policy of the DeviceAware filter and score plugin, which reads the "
        "gpushare driver's GPU state (beyond classic DRA); None = plugin off",
    )


class ClaimControllerConfig(StrictModel):
    """resourceclaim controller settings (kube-controller-manager)."""

    workers: int = Field(10, ge=1)
    qps: float = Field(20.0, gt=0, description="kube-controller-manager client QPS")
    burst: int = Field(30, ge=1)
    deleted_pod_memory: int = Field(500, ge=1, description="size of the deleted-pod UID LRU")
    reserve_for_finished_pods: bool = Field(
        False,
        description="reproduce the 1.28/1.29 flaw: a finished pod with spec.nodeName is still "
        "handled as a pod bound without the scheduler, so the claims just released for it "
        "are reserved for it again (or get a new PodSchedulingContext), and the controller "
        "and the release path undo each other",
    )
    recreate_claims_for_finished_pods: bool = Field(
        False,
        description="reproduce the 1.28/1.29 code path that creates a generated claim again "
        "for a finished pod after the controller deleted it, so the claim is created and "
        "deleted over and over while the pod object exists",
    )


class GarbageCollectorConfig(StrictModel):
    """Garbage collector settings (kube-controller-manager)."""

    delay_s: Dist = Field(
        default_factory=lambda: Constant(value=0.05),
        description="time from an owner's deletion to the deletion of its dependents",
    )


class PodGCConfig(StrictModel):
    """Pod garbage collector settings (kube-controller-manager)."""

    terminated_pod_threshold: int = Field(
        12_500,
        ge=0,
        description="terminated pods kept before the oldest are deleted "
        "(`--terminated-pod-gc-threshold`); 0 keeps them all",
    )
    check_period_s: float = Field(
        20.0,
        gt=0,
        description="time from the end of one count of the terminated pods to the next, seconds",
    )


class ControlPlaneConfig(StrictModel):
    """Everything about the API server, its clients and the control-plane components."""

    kubernetes_version: Annotated[
        Literal["1.27", "1.28", "1.29"], BeforeValidator(_version_text)
    ] = "1.29"
    queueing_hints: bool = Field(False, description="SchedulerQueueingHints feature gate")
    request_latency_s: Dist = Field(
        default_factory=lambda: Constant(value=0.004),
        description="time of one API request, from send to response, seconds",
    )
    watch_delay_s: Dist = Field(
        default_factory=lambda: Constant(value=0.002),
        description="time from a commit to the watch event reaching an informer, seconds",
    )
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    claim_controller: ClaimControllerConfig = Field(default_factory=ClaimControllerConfig)
    garbage_collector: GarbageCollectorConfig = Field(default_factory=GarbageCollectorConfig)
    pod_gc: PodGCConfig = Field(default_factory=PodGCConfig)
    watch_history: int = Field(
        10_000,
        ge=1000,
        description=(
            "watch events the API server keeps for watches that resume from an older "
            "resourceVersion (kube-apiserver keeps 100 to 102,400 per resource; informers "
            "here resume right after a list, so a short history suffices and saves memory)"
        ),
    )

    @property
    def version_tuple(self) -> tuple[int, int]:
        """The Kubernetes version as (major, minor), for comparisons."""
        major, minor = self.kubernetes_version.split(".")
        return int(major), int(minor)


def model_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """Return the default settings of a model as plain data (for resolved scenarios)."""
    return model().model_dump(mode="json", by_alias=True)
