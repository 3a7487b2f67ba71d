from __future__ import annotations

from remediate.sandbox.timeline import Timeline


def test_events_run_in_deadline_order_with_their_own_deadline() -> None:
    timeline = Timeline()
    seen: list[tuple[str, float]] = []
    timeline.schedule("b", 20, lambda t: seen.append(("b", t)))
    timeline.schedule("a", 10, lambda t: seen.append(("a", t)))
    assert timeline.run_due(5) == 0
    assert timeline.run_due(100) == 2
    assert seen == [("a", 10), ("b", 20)]


def test_rescheduling_a_key_cancels_the_earlier_event() -> None:
    timeline = Timeline()
    seen: list[str] = []
    timeline.schedule("k", 10, lambda t: seen.append("first"))
    timeline.schedule("k", 20, lambda t: seen.append("second"))
    timeline.run_due(100)
    assert seen == ["second"]


def test_follow_ups_scheduled_while_running_are_applied_too() -> None:
    timeline = Timeline()
    seen: list[float] = []

    def first(at: float) -> None:
        seen.append(at)
        timeline.schedule("next", at + 5, seen.append)

    timeline.schedule("first", 10, first)
    timeline.run_due(30)
    assert seen == [10, 15]
    assert timeline.next_deadline() is None
