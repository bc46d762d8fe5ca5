"""Finding the ResourceClaim behind a pod's claim entry, as every DRA component does it.

A pod lists its claims in `spec.resourceClaims`. An entry names either an
existing claim (`source.resourceClaimName`) or a template
(`source.resourceClaimTemplateName`). For a template entry the claim's name
depends on the Kubernetes version: 1.27 builds it as `<pod>-<entry>`; 1.28 and
later read the name that the resourceclaim controller recorded in
`pod.status.resourceClaimStatuses`, because generated names carry a random
suffix. The scheduler, the driver library, the kubelet and the controller
all use this same rule (the `resourceclaim.Name` helper of
k8s.io/dynamic-resource-allocation).
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.api.types import Pod, PodResourceClaim, ResourceClaim, is_controlled_by


class ClaimNameError(Exception):
    """The claim name of a pod claim cannot be determined (yet)."""


@dataclass(frozen=True)
class ResolvedClaim:
    """The claim name of one pod claim, and whether the claim must be owned by the pod."""

    pod_claim_name: str
    claim_name: str
    must_check_owner: bool


def resolve_claim_name(
    pod: Pod, pod_claim: PodResourceClaim, *, legacy_names: bool = False
) -> ResolvedClaim | None:
    """Return the claim that a pod claim refers to, or None when no claim is needed.

    Args:
        pod: the pod.
        pod_claim: one entry of `pod.spec.resourceClaims`.
        legacy_names: use the 1.27 rule `<pod>-<entry>` for template entries.

    Raises:
        ClaimNameError: the source is empty, or (1.28+) the controller has not
            recorded a name for a template entry yet.
    """
    source = pod_claim.source
    if source.resource_claim_name:
        return ResolvedClaim(pod_claim.name, source.resource_claim_name, False)
    if source.resource_claim_template_name:
        if legacy_names:
            return ResolvedClaim(pod_claim.name, f"{pod.metadata.name}-{pod_claim.name}", True)
        for status in pod.status.resource_claim_statuses:
            if status.name == pod_claim.name:
                if status.resource_claim_name is None:
                    return None
                return ResolvedClaim(pod_claim.name, status.resource_claim_name, True)
        raise ClaimNameError(
            f"pod {pod.metadata.namespace}/{pod.metadata.name}: the ResourceClaim for "
            f"{pod_claim.name!r} has not been created yet"
        )
    raise ClaimNameError(
        f"pod {pod.metadata.namespace}/{pod.metadata.name}: resourceClaims entry "
        f"{pod_claim.name!r} has neither resourceClaimName nor resourceClaimTemplateName"
    )


def check_owner(pod: Pod, claim: ResourceClaim, resolved: ResolvedClaim) -> bool:
    """Whether a claim may serve the pod: generated claims must be controlled by the pod."""
    if not resolved.must_check_owner:
        return True
    return claim.metadata.namespace == pod.metadata.namespace and is_controlled_by(
        claim, pod.metadata.uid
    )


def pod_uses_claim_in_containers(pod: Pod, pod_claim_name: str) -> bool:
    """Whether any container or init container lists the pod claim in `resources.claims`."""
    for container in (*pod.spec.init_containers, *pod.spec.containers):
        for ref in container.resources.claims:
            if ref.name == pod_claim_name:
                return True
    return False
