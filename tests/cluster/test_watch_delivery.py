"""Informers that share delivery timers deliver watch events as one timer per event would.

`Informer` lets the watch events of one change that fall due at the same
instant share one SimPy timer. That must not move a delivery past any other
SimPy event: each run here is compared with `OneTimerPerEvent`, which gives
every (informer, event) pair its own timer, so that SimPy orders all of them
by time and then by creation.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.api.errors import APIError
from sim.api.server import WatchEvent
from sim.api.types import ObjectMeta, ResourceClass
from sim.cluster.client import Informer
from sim.cluster.config import ControlPlaneConfig
from sim.cluster.world import World
from sim.distributions import Constant, Distribution, Empirical

KIND = "ResourceClass"

# Binary fractions add without rounding, so that commits, watch deliveries and other
# timers often fall due at exactly the same instant.
STEPS_S = (0.0, 0.25, 0.5)


class OneTimerPerEvent(Informer):
    """An informer that schedules one timer per watch event (the reference order)."""

    def _on_watch_event(self, event: WatchEvent) -> None:
        now = float(self._env.now)
        deliver_at = max(now + self._delay.sample(self._rng), self._last_delivery)
        self._last_delivery = deliver_at
        timer = self._env.timeout(deliver_at - now)
        timer.callbacks.append(lambda _timer: self._deliver(event))


def _resource_class(name: str, generation: int = 0) -> ResourceClass:
    return ResourceClass(
        metadata=ObjectMeta(name=name, labels={"generation": str(generation)}),
        driver_name="gpu.example.com",
    )


def _start_informers(
    world: World, informer_class: type[Informer], delays: list[Distribution], log: list[Any]
) -> list[Informer]:
    informers: list[Informer] = []
    for number, delay in enumerate(delays):
        component = f"component-{number}"
        informer = informer_class(world, KIND, component, watch_delay_s=delay)
        informer.add_handler(
            on_add=lambda obj, c=component: log.append(
                (world.env.now, c, "add", obj.metadata.name)
            ),
            on_update=lambda _old, new, c=component: log.append(
                (world.env.now, c, "update", new.metadata.name, new.metadata.labels["generation"])
            ),
            on_delete=lambda obj, c=component: log.append(
                (world.env.now, c, "delete", obj.metadata.name)
            ),
        )
        informer.start()
        informers.append(informer)
    return informers


def _cache_names(informers: list[Informer]) -> list[list[str]]:
    return [sorted(informer.cache) for informer in informers]


def _caches_after_same_instant_commits(informer_class: type[Informer]) -> list[Any]:
    """Commit two objects at t=1 from two processes; return the cache one reads at t=1.5.

    The first writer's read at t=1.5 is scheduled after the watch event of its
    own commit and before the second commit, so only the first object is there.
    """
    world = World.create(ControlPlaneConfig(watch_delay_s=Constant(value=0.5)))
    env = world.env
    informers = _start_informers(world, informer_class, [Constant(value=0.5)], [])
    seen: list[Any] = []

    def first_writer() -> Generator[simpy.Event, Any, None]:
        yield env.timeout(1)
        world.api.create(_resource_class("first"))
        yield env.timeout(0.5)
        seen.append(_cache_names(informers))

    def second_writer() -> Generator[simpy.Event, Any, None]:
        yield env.timeout(1)
        world.api.create(_resource_class("second"))

    env.process(first_writer())
    env.process(second_writer())
    env.run(until=2)
    return seen


@pytest.mark.parametrize("informer_class", [Informer, OneTimerPerEvent])
def test_commits_at_one_instant_keep_timer_order(informer_class: type[Informer]) -> None:
    assert _caches_after_same_instant_commits(informer_class) == [[["first"]]]


def _run(
    informer_class: type[Informer],
    seed: int,
    delays: list[Distribution],
    writers: list[list[tuple[float, str, int]]],
) -> tuple[list[Any], list[Any]]:
    """Run writer processes against informers; return the handler log and the observations.

    Each writer step waits, then creates, updates or deletes one of a few
    objects, or records what every informer has cached.
    """
    world = World.create(ControlPlaneConfig(), seed=seed)
    env = world.env
    log: list[Any] = []
    observations: list[Any] = []
    informers = _start_informers(world, informer_class, delays, log)

    def writer(steps: list[tuple[float, str, int]]) -> Generator[simpy.Event, Any, None]:
        for generation, (wait_s, action, number) in enumerate(steps):
            if wait_s > 0:
                yield env.timeout(wait_s)
            name = f"class-{number}"
            try:
                if action == "create":
                    world.api.create(_resource_class(name, generation))
                elif action == "update":
                    world.api.update(_resource_class(name, generation))
                elif action == "delete":
                    world.api.delete(KIND, name)
                else:
                    observations.append((env.now, _cache_names(informers)))
            except APIError as error:
                observations.append((env.now, action, name, error.code))

    for steps in writers:
        env.process(writer(steps))
    env.run()
    return log, observations


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    delays=st.lists(
        st.sampled_from(
            [
                Constant(value=0.0),
                Constant(value=0.25),
                Empirical(values=STEPS_S),
                Empirical(values=(0.25, 0.5)),
            ]
        ),
        min_size=1,
        max_size=3,
    ),
    writers=st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(STEPS_S),
                st.sampled_from(["create", "update", "delete", "observe"]),
                st.integers(0, 2),
            ),
            max_size=8,
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_shared_timers_match_one_timer_per_event(
    seed: int, delays: list[Distribution], writers: list[list[tuple[float, str, int]]]
) -> None:
    shared = _run(Informer, seed, delays, writers)
    reference = _run(OneTimerPerEvent, seed, delays, writers)
    assert shared[0] == reference[0]
    assert shared[1] == reference[1]
