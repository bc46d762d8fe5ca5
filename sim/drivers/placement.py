"""Placement policies: where a device driver puts a claim when it has a choice.

A driver chooses in two places. For an Immediate claim it picks the node
itself (the scheduler is not involved), and on any node it picks which of the
matching free devices to hand out. A policy decides both and is looked up by
name, so scenarios can compare packing against spreading without code:

* `first-fit`: the first node that fits (inventory order), the first devices.
* `random`: a uniformly random node that fits, random devices.
* `pack`: the node left with the fewest free devices after the allocation
  (keeps whole nodes free for large requests), the first devices.
* `spread`: the node left with the most free devices, the first devices.

Ties go to the earlier node in inventory order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from sim.drivers.registry import UnknownNameError


@dataclass(frozen=True)
class NodeCandidate:
    """A node on which a claim fits, with the numbers a policy compares."""

    node: str
    free_devices: int
    """Free devices on the node before this allocation (matching or not)."""
    needed_devices: int
    """Devices the allocation takes."""

    @property
    def free_after(self) -> int:
        """Free devices left on the node after this allocation."""
        return self.free_devices - self.needed_devices


class PlacementPolicy(Protocol):
    """Chooses a node for an Immediate claim and the devices of any claim."""

    def pick_node(self, candidates: Sequence[NodeCandidate], rng: np.random.Generator) -> str:
        """Return the node of one of the candidates (there is at least one)."""
        ...

    def pick_devices(
        self, node: str, free: Sequence[str], count: int, rng: np.random.Generator
    ) -> list[str]:
        """Return `count` distinct devices of `free` (in inventory order, at least `count` long)."""
        ...


P = TypeVar("P", bound=type[PlacementPolicy])

_POLICIES: dict[str, type[PlacementPolicy]] = {}


def register_placement_policy(name: str) -> Callable[[P], P]:
    """Return a class decorator that registers a placement policy under `name`.

    The class is instantiated without arguments for every model that uses it.

    Raises:
        ValueError: the name is empty or already taken by another class.
    """

    def decorator(cls: P) -> P:
        if not name:
            raise ValueError("a placement policy needs a non-empty name")
        existing = _POLICIES.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"placement policy name {name!r} is already registered")
        _POLICIES[name] = cls
        return cls

    return decorator


def get_placement_policy(name: str) -> PlacementPolicy:
    """Return a new instance of the placement policy registered under `name`.

    Raises:
        UnknownNameError: (a KeyError) no policy has that name; the message lists the others.
    """
    try:
        cls = _POLICIES[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown placement policy {name!r}; available: "
            f"{', '.join(available_placement_policies())}"
        ) from None
    return cls()


def available_placement_policies() -> list[str]:
    """Return the registered placement policy names, sorted."""
    return sorted(_POLICIES)


def _first_devices(free: Sequence[str], count: int) -> list[str]:
    return list(free[:count])


@register_placement_policy("first-fit")
class FirstFit:
    """The first candidate node and the first free devices."""

    def pick_node(self, candidates: Sequence[NodeCandidate], rng: np.random.Generator) -> str:
        """Return the first candidate."""
        return candidates[0].node

    def pick_devices(
        self, node: str, free: Sequence[str], count: int, rng: np.random.Generator
    ) -> list[str]:
        """Return the first `count` free devices."""
        return _first_devices(free, count)


@register_placement_policy("random")
class RandomPlacement:
    """A uniformly random candidate node and uniformly random devices."""

    def pick_node(self, candidates: Sequence[NodeCandidate], rng: np.random.Generator) -> str:
        """Return a random candidate."""
        return candidates[int(rng.integers(len(candidates)))].node

    def pick_devices(
        self, node: str, free: Sequence[str], count: int, rng: np.random.Generator
    ) -> list[str]:
        """Return `count` random free devices, in inventory order."""
        chosen = sorted(int(i) for i in rng.choice(len(free), size=count, replace=False))
        return [free[i] for i in chosen]


@register_placement_policy("pack")
class Pack:
    """The candidate left with the fewest free devices, and the first free devices."""

    def pick_node(self, candidates: Sequence[NodeCandidate], rng: np.random.Generator) -> str:
        """Return the candidate with the smallest `free_after` (earliest on ties)."""
        return min(candidates, key=lambda c: c.free_after).node

    def pick_devices(
        self, node: str, free: Sequence[str], count: int, rng: np.random.Generator
    ) -> list[str]:
        """Return the first `count` free devices."""
        return _first_devices(free, count)


@register_placement_policy("spread")
class Spread:
    """The candidate left with the most free devices, and the first free devices."""

    def pick_node(self, candidates: Sequence[NodeCandidate], rng: np.random.Generator) -> str:
        """Return the candidate with the largest `free_after` (earliest on ties)."""
        return max(candidates, key=lambda c: c.free_after).node

    def pick_devices(
        self, node: str, free: Sequence[str], count: int, rng: np.random.Generator
    ) -> list[str]:
        """Return the first `count` free devices."""
        return _first_devices(free, count)
