"""Probability distributions for latencies, durations and other random inputs.

A scenario writes a distribution either as a plain number (a constant) or as a
mapping with a `type` key, for example `{type: exponential, mean: 0.02}`. The
unit is part of the name of the field that holds the distribution
(`request_latency_s`, `run_duration_s`), and every parameter is in that unit.

Each distribution samples from a `numpy.random.Generator` that the caller
owns, so that every component draws from its own named stream and runs stay
reproducible.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Distribution(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def sample(self, rng: np.random.Generator) -> float:
        """Draw one value."""
        raise NotImplementedError

    def mean(self) -> float:
        """Return the expected value (of the truncated distribution where truncation applies)."""
        raise NotImplementedError


class Constant(_Distribution):
    """Always the same value."""

    type: Literal["constant"] = "constant"
    value: float = Field(ge=0)

    def sample(self, rng: np.random.Generator) -> float:
        """Return the constant; the generator is not advanced."""
        return self.value

    def mean(self) -> float:
        """Return the constant."""
        return self.value


class Uniform(_Distribution):
    """Uniform between `low` and `high`."""

    type: Literal["uniform"] = "uniform"
    low: float = Field(ge=0)
    high: float = Field(ge=0)

    @model_validator(mode="after")
    def _check_bounds(self) -> Uniform:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self

    def sample(self, rng: np.random.Generator) -> float:
        """Draw a value in [low, high)."""
        return float(rng.uniform(self.low, self.high))

    def mean(self) -> float:
        """Return (low + high) / 2."""
        return (self.low + self.high) / 2


class Exponential(_Distribution):
    """Exponential with the given mean (rate 1/mean)."""

    type: Literal["exponential"] = "exponential"
    mean_value: float = Field(alias="mean", gt=0)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def sample(self, rng: np.random.Generator) -> float:
        """Draw an exponential value."""
        return float(rng.exponential(self.mean_value))

    def mean(self) -> float:
        """Return the mean."""
        return self.mean_value


class Normal(_Distribution):
    """Normal truncated to [`min`, `max`] by resampling (min defaults to 0)."""

    type: Literal["normal"] = "normal"
    mean_value: float = Field(alias="mean")
    std: float = Field(ge=0)
    min: float = 0.0
    max: float = math.inf

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _check_bounds(self) -> Normal:
        if self.max <= self.min:
            raise ValueError(f"max ({self.max}) must be > min ({self.min})")
        if self.std == 0 and not self.min <= self.mean_value <= self.max:
            raise ValueError("with std 0 the mean must lie within [min, max]")
        return self

    def sample(self, rng: np.random.Generator) -> float:
        """Draw from the normal distribution, resampling values outside [min, max]."""
        if self.std == 0:
            return self.mean_value
        for _ in range(1000):
            value = float(rng.normal(self.mean_value, self.std))
            if self.min <= value <= self.max:
                return value
        # The interval holds almost no probability mass; clipping keeps the run going.
        return float(min(max(self.mean_value, self.min), self.max))

    def mean(self) -> float:
        """Return the mean of the truncated normal distribution."""
        if self.std == 0:
            return self.mean_value
        from scipy.stats import truncnorm

        a = (self.min - self.mean_value) / self.std
        b = (self.max - self.mean_value) / self.std
        return float(truncnorm.mean(a, b, loc=self.mean_value, scale=self.std))


class LogNormal(_Distribution):
    """Log-normal given by the median and the shape `sigma` of the underlying normal."""

    type: Literal["lognormal"] = "lognormal"
    median: float = Field(gt=0)
    sigma: float = Field(ge=0)

    def sample(self, rng: np.random.Generator) -> float:
        """Draw a log-normal value."""
        return float(rng.lognormal(math.log(self.median), self.sigma))

    def mean(self) -> float:
        """Return median * exp(sigma^2 / 2)."""
        return self.median * math.exp(self.sigma**2 / 2)


class Empirical(_Distribution):
    """Uniform choice from a list of observed values."""

    type: Literal["empirical"] = "empirical"
    values: tuple[float, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_values(self) -> Empirical:
        if any(v < 0 for v in self.values):
            raise ValueError("values must be >= 0")
        return self

    def sample(self, rng: np.random.Generator) -> float:
        """Pick one of the values uniformly at random."""
        return float(self.values[int(rng.integers(len(self.values)))])

    def mean(self) -> float:
        """Return the average of the values."""
        return float(np.mean(self.values))


AnyDistribution = Annotated[
    Constant | Uniform | Exponential | Normal | LogNormal | Empirical,
    Field(discriminator="type"),
]
"""A distribution in a scenario file, selected by its `type` key."""


def coerce_distribution(value: Any) -> Any:
    """Turn a plain number into `{type: constant, value: ...}` before validation."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"type": "constant", "value": value}
    return value


Distribution = Constant | Uniform | Exponential | Normal | LogNormal | Empirical
"""Any concrete distribution instance."""


def constant(value: float) -> Constant:
    """Return a constant distribution."""
    return Constant(value=value)
