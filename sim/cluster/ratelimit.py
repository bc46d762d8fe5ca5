"""Token-bucket rate limiting, as client-go's QPS/burst limiter and work-queue bucket do it."""

from __future__ import annotations

import math


class TokenBucket:
    """A token bucket that hands out reservations.

    The bucket holds at most `burst` tokens and refills at `rate` tokens per
    second. `reserve(now)` takes one token and returns how long the caller must
    wait before it may act; the token count may go negative, which queues the
    callers in order, like `golang.org/x/time/rate` reservations.
    """

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1 (got rate={rate}, burst={burst})")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = 0.0

    def reserve(self, now: float) -> float:
        """Take one token and return the wait in seconds before it is valid (0 if available)."""
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
            self._last = now
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate


class ItemExponentialBackoff:
    """Per-key exponential backoff: base * 2^failures, capped (client-go's item limiter)."""

    def __init__(self, base_delay_s: float = 0.005, max_delay_s: float = 1000.0) -> None:
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._failures: dict[str, int] = {}

    def when(self, key: str) -> float:
        """Count one more failure of `key` and return its backoff in seconds."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        # 2**failures overflows float for very large counts; the cap is reached long before.
        if failures > 60:
            return self.max_delay_s
        return min(self.base_delay_s * math.pow(2, failures), self.max_delay_s)

    def forget(self, key: str) -> None:
        """Reset the failure count of `key`."""
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        """Return how many failures of `key` were counted since the last `forget`."""
        return self._failures.get(key, 0)
