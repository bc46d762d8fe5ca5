"""The shared context of one simulation run: clock, API server, random streams, recorder.

Every SimPy component receives the same `World`. Components never call each
other; the only things they share through it are the API server (which they
reach through their own `APIClient`), the random streams and the recorder.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from sim.api.server import APIServer, WatchEvent, WriteRecord
from sim.cluster.config import ControlPlaneConfig
from sim.metrics.recorder import Recorder

if TYPE_CHECKING:
    from sim.cluster.client import Informer


class RandomStreams:
    """Named, independent random number generators spawned from one seed.

    Stream `name` of replication `r` is seeded by `SeedSequence([seed, r,
    crc32(name)])`, so adding a new stream never changes the numbers of the
    existing ones, and replication r of two design points sees the same
    arrivals (common random numbers).
    """

    def __init__(self, seed: int, replication: int = 0) -> None:
        self.seed = seed
        self.replication = replication
        self._streams: dict[str, np.random.Generator] = {}

    def stream(self, name: str) -> np.random.Generator:
        """Return the generator for `name`, creating it on first use."""
        generator = self._streams.get(name)
        if generator is None:
            sequence = np.random.SeedSequence(
                [self.seed, self.replication, zlib.crc32(name.encode())]
            )
            generator = np.random.Generator(np.random.PCG64(sequence))
            self._streams[name] = generator
        return generator

    def python_seed(self, name: str) -> int:
        """Return a 63-bit integer seed for libraries that take one (derived from stream `name`)."""
        return int(self.stream(name).integers(0, 2**63 - 1))


class SimulationInvariantError(RuntimeError):
    """A rule that must always hold in a correct cluster was broken.

    Carries the object, the rule and the simulated time, so that the failure can
    be traced to the write that caused it.
    """

    def __init__(self, rule: str, obj: str, time_s: float, detail: str = "") -> None:
        message = f"invariant {rule!r} broken by {obj} at t={time_s:.6f}s"
        if detail:
            message += f": {detail}"
        super().__init__(message)
        self.rule = rule
        self.obj = obj
        self.time_s = time_s


class SimTimeFilter(logging.Filter):
    """Logging filter that stamps each record with the simulated time (`record.sim_time`)."""

    def __init__(self, env: simpy.Environment) -> None:
        super().__init__()
        self._env = env

    def filter(self, record: logging.LogRecord) -> bool:
        """Add `sim_time` to the record and let it through."""
        record.sim_time = float(self._env.now)
        return True


@dataclass
class World:
    """Everything the components of one run share."""

    env: simpy.Environment
    api: APIServer
    streams: RandomStreams
    recorder: Recorder
    config: ControlPlaneConfig
    extras: dict[str, Any] = field(default_factory=dict)
    current_actor: str = ""
    """Component whose API request is being committed (set by `APIClient`)."""
    current_reason: str = ""
    """Why that component made the request, in a few words (set by `APIClient`)."""
    write_hooks: list[Callable[[WriteRecord], None]] = field(default_factory=list)
    """Called in order for every committed API write (recorder, invariant checker)."""
    shared_informers: dict[tuple[str, str], Informer] = field(default_factory=dict)
    """(process, kind) -> the informer that the controllers of one process share."""
    watch_batches: dict[float, list[tuple[Informer, WatchEvent]]] = field(default_factory=dict)
    """Delivery time -> the watch events of `watch_batch_change` due then (see `Informer`)."""
    watch_batch_change: tuple[float, int] | None = None
    """(Send time, resourceVersion) of the change whose events `watch_batches` holds."""

    def add_write_hook(self, hook: Callable[[WriteRecord], None]) -> None:
        """Call `hook` for every committed API write, after the hooks added before it."""
        self.write_hooks.append(hook)

    @classmethod
    def create(
        cls,
        config: ControlPlaneConfig | None = None,
        *,
        seed: int = 0,
        replication: int = 0,
    ) -> World:
        """Build a fresh world at simulated time 0."""
        config = config or ControlPlaneConfig()
        env = simpy.Environment()
        streams = RandomStreams(seed, replication)
        hooks: list[Callable[[WriteRecord], None]] = []

        def dispatch(record: WriteRecord) -> None:
            for hook in hooks:
                hook(record)

        api = APIServer(
            clock=lambda: float(env.now),
            seed=streams.python_seed("apiserver"),
            watch_history=config.watch_history,
            synchronous_gc=False,
            on_write=dispatch,
        )
        return cls(
            env=env,
            api=api,
            streams=streams,
            recorder=Recorder(),
            config=config,
            write_hooks=hooks,
        )

    @property
    def now(self) -> float:
        """The simulated time in seconds."""
        return float(self.env.now)

    def version_at_least(self, minor: int) -> bool:
        """Whether the simulated Kubernetes version is 1.<minor> or newer."""
        return self.config.version_tuple >= (1, minor)
