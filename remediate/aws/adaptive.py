"""How fast to spend one of AWS's buckets, learned from AWS's answers.

The documented buckets (:mod:`remediate.aws.apis`) are where pacing starts, not a
promise: AWS Support raises or lowers an account's limits, and other tools in the
same account (Auto Scaling, CI, a console) spend the same buckets. So each bucket of
a run (per account, Region and API: :class:`remediate.aws.ratelimit.RateLimiter`,
shared by every worker and client of the process, unlike botocore's adaptive mode,
which learns per client object) refills at a *learned* rate, by CUBIC's rule
(RFC 9438, the rule botocore's adaptive mode also uses, on rates rather than windows):

- **Multiplicative decrease.** A throttled request remembers the rate it was sent at
  as ``W`` (the limit found) and cuts the rate to ``DECREASE * W`` (at least
  :data:`FLOOR` of the documented rate). Requests already on their way when the rate
  was cut answer from the old rate: their throttles do not cut it again.
- **Recovery, then probing.** ``t`` seconds after the cut the rate is
  ``W * (1 - (1 - DECREASE) * ((K - t) / K) ** 3)`` until :data:`K`: back near ``W``
  quickly, flat as it gets there; then ``W`` for :data:`HOLD` seconds; then
  ``W * (1 + (1 - DECREASE) * (u / K) ** 3)``, ``u`` seconds into probing: ever faster
  past it. A limit that was lowered is found again with one throttle per
  ~``K + HOLD`` seconds (~1-2% of a busy bucket's calls); one that was raised (or a
  neighbour that left) within a few ``K``.
- **Only a busy bucket probes.** Past ``max(W, documented)`` the rate grows only while
  the bucket is busy (spent as fast as it fills): an idle bucket learns nothing, and
  must not come back from a pause at a rate nobody tried.

Before any throttle, ``W`` is the documented rate and the clock stands at ``K``: a busy
bucket holds the documented rate for ``HOLD`` seconds, then probes past it, which
costs one throttle per minute or so when the documented rate is the real one (<1%
of its calls).
"""

from __future__ import annotations

from typing import Final

DECREASE: Final = 0.7
"""Rate kept after a throttle (CUBIC's beta, botocore's too)."""
K: Final = 40.0
"""Seconds after a cut until the rate is back at the limit found (CUBIC's K, fixed
rather than derived from the window, so a slow bucket cycles as slowly as a fast one)."""
HOLD: Final = 30.0
"""Seconds at the limit found before probing past it."""
FLOOR: Final = 0.05
"""The rate never falls below this fraction of the documented rate."""


class AdaptiveRate:
    """One bucket's refill rate, starting at ``documented`` (tokens a second)."""

    def __init__(self, documented: float, now: float) -> None:
        self.documented = documented
        self.rate = documented
        self.limit = documented
        """W: the rate AWS last throttled (the documented one until it does)."""
        self._at = now
        self._since = K
        self._cut_at = float("-inf")

    def _curve(self, since: float) -> float:
        if since < K:
            return self.limit * (1.0 - (1.0 - DECREASE) * ((K - since) / K) ** 3)
        probing = max(0.0, since - K - HOLD)
        return self.limit * (1.0 + (1.0 - DECREASE) * (probing / K) ** 3)

    def _since_for(self, rate: float) -> float:
        """When, after the cut, the curve reaches ``rate`` (at or above ``limit``): the
        start of the hold at ``limit``, else that far into probing."""
        if rate <= self.limit:
            return K
        return K + HOLD + K * ((rate / self.limit - 1.0) / (1.0 - DECREASE)) ** (1 / 3)

    def advance(self, now: float, busy: bool) -> float:
        """The rate at ``now``; ``busy``: the bucket was empty when spent (demand at
        least the rate), the only time there is anything to learn past what is known."""
        elapsed = now - self._at
        if elapsed <= 0:
            return self.rate
        self._at = now
        self._since += elapsed
        rate = max(FLOOR * self.documented, self._curve(self._since))
        ceiling = max(self.limit, self.documented)
        if not busy and rate > ceiling:
            rate = max(ceiling, self.rate)
            self._since = self._since_for(rate)
        self.rate = rate
        return rate

    def throttled(self, now: float, sent_at: float) -> bool:
        """AWS throttled a request sent at ``sent_at``: cut the rate, unless it was sent
        before the last cut (its answer tells nothing new). True if it was cut."""
        self.advance(now, busy=False)
        if sent_at <= self._cut_at:
            return False
        self.limit = self.rate
        self.rate = max(FLOOR * self.documented, self.rate * DECREASE)
        self._since = 0.0
        self._cut_at = now
        return True
