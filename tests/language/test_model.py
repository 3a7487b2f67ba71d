from __future__ import annotations

from remediate.language.model import BatchSize, Condition

SCOPE = {"steps": {"reboot": {"status": "failed", "outputs": {"healthy": False}}},
         "target": {"state": "stopped"}}


def test_conditions() -> None:
    assert Condition("equals", "steps.reboot.outputs.healthy", False).evaluate(SCOPE)
    assert Condition("in", "target.state", ["stopped", "stopping"]).evaluate(SCOPE)
    assert not Condition("not_in", "target.state", ["stopped"]).evaluate(SCOPE)
    assert Condition("not_equals", "steps.reboot.status", "succeeded").evaluate(SCOPE)
    assert Condition("exists", "steps.other.status", False).evaluate(SCOPE)
    assert not Condition("equals", "steps.other.status", "failed").evaluate(SCOPE)
    both = Condition("all", children=(Condition("exists", "target.state", True),
                                      Condition("not", children=(
                                          Condition("equals", "target.state", "running"),))))
    assert both.evaluate(SCOPE)
    assert not Condition("any", children=(Condition("equals", "target.state", "x"),)).evaluate(
        SCOPE)


def test_conditions_name_what_they_read_and_say_it_in_words() -> None:
    either = Condition("any", children=(
        Condition("equals", "steps.reboot.outputs.healthy", False),
        Condition("not", children=(Condition("in", "target.state", ["stopped"]),)),
        Condition("exists", "params.snapshot_id", True)))
    assert list(either.refs()) == ["steps.reboot.outputs.healthy", "target.state",
                                   "params.snapshot_id"]
    assert either.describe() == ("(steps.reboot.outputs.healthy is false) or "
                                 "(not (target.state is one of ['stopped'])) or "
                                 "(params.snapshot_id exists)")


def test_batch_sizes() -> None:
    assert BatchSize(count=1).resolve(1000) == 1
    assert BatchSize(percent=5).resolve(1000) == 50
    assert BatchSize(percent=5).resolve(3) == 1
    assert BatchSize(percent=25).resolve(10) == 3
    assert str(BatchSize(percent=12.5)) == "12.5%"
