"""Run services: one per run, finished once per place, re-created on resume."""

from __future__ import annotations

import pytest

from remediate.actions.contract import RunService
from remediate.executor.runtime import Services, class_path, load_class
from remediate.journal import Journal


class Pool(RunService):
    pass


def test_a_service_is_created_once_and_remembered_per_place() -> None:
    journal = Journal.memory()
    services = Services("run-1", journal)

    first = services.get(Pool, "default", "us-east-1")
    again = services.get(Pool, "default", "eu-west-1")

    assert first is again and first.run_id == "run-1"
    assert services.places == [("default", "us-east-1", Pool), ("default", "eu-west-1", Pool)]
    assert journal.services("run-1") == [("default", "us-east-1", class_path(Pool)),
                                         ("default", "eu-west-1", class_path(Pool))]


def test_a_resumed_run_re_creates_the_services_it_used() -> None:
    journal = Journal.memory()
    Services("run-1", journal).get(Pool, "default", "us-east-1")

    resumed = Services("run-1", journal)
    resumed.restore()

    assert resumed.places == [("default", "us-east-1", Pool)]
    assert isinstance(resumed.instances[Pool], Pool)


def test_only_run_services_are_loaded_back() -> None:
    assert load_class(class_path(Pool)) is Pool
    with pytest.raises(TypeError, match=r"^remediate\.journal:Journal is not a RunService$"):
        load_class("remediate.journal:Journal")
