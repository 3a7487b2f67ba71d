"""Fragments of ``control.pause`` (a Wait state) and ``control.fail`` (a Fail state)."""

from __future__ import annotations

from remediate.export import asl
from remediate.export.fragment import AslStep, Fragment


def pause(step: AslStep) -> Fragment:
    seconds = round(step.params["duration"])
    done = step.name("done")
    states = {done: step.done({"waited": step.params["duration"]})}
    if seconds <= 0:
        return Fragment(done, states)
    states[step.name("wait")] = asl.wait(seconds, done)
    return Fragment(step.name("wait"), states)


def fail(step: AslStep) -> Fragment:
    message = step.params["message"]
    return Fragment(step.name("fail"), {step.name("fail"): step.failure(
        message if isinstance(message, asl.Ref) else str(message))})
