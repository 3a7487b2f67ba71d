"""The executor on a clock that moves between two readings, like the real one.

Regression: the scheduler once spun at 100% CPU here (a token bucket answered
"ready at <a later reading of the clock>", which looked like the future).

Tests elsewhere run the executor on a virtual clock, where time stands still
between two readings; an operator's run does not.
"""

from __future__ import annotations

from e2e_support import plan_on_a_moving_clock


def test_a_plan_finishes_on_a_clock_that_moves_between_readings() -> None:
    assert plan_on_a_moving_clock() == 0
