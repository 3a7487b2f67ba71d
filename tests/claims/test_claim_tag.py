"""The claim tag's value, and what a run makes of the one it finds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from remediate.claims.tag import Claim, Verdict, judge

NOW = datetime(2024, 7, 19, 5, 30, tzinfo=UTC)
HERE = "bastion-1"


def value(run_id: str = "run-9", host: str = "bastion-2", pid: int = 77,
          minutes: float = 10) -> str:
    return Claim.of(run_id, host, pid, NOW - timedelta(hours=1),
                    NOW + timedelta(minutes=minutes)).text()


def alive(pid: int) -> bool:
    return pid == 77


def test_a_claim_reads_back_as_written_in_characters_every_tag_allows() -> None:
    claim = Claim.of("r20240719-043102-ab12cd", "ip-10-0-0-1.ec2 (eu)", 4242,
                     datetime(2024, 7, 19, 4, 31, 2, 900, tzinfo=UTC),
                     datetime(2024, 7, 19, 4, 46, 2, tzinfo=UTC))

    assert claim.text() == ("run=r20240719-043102-ab12cd host=ip-10-0-0-1.ec2--eu- pid=4242 "
                            "since=2024-07-19T04:31:02Z until=2024-07-19T04:46:02Z")
    assert Claim.parse(claim.text()) == claim


@pytest.mark.parametrize(("found", "verdict"), [
    (None, Verdict.FREE),
    ("", Verdict.FREE),
    (value(run_id="run-1"), Verdict.OURS),  # a resumed run's own, whoever wrote it
    (value(), Verdict.HELD),  # another host, not expired
    (value(minutes=-1), Verdict.STALE),  # another host, expired
    (value(host=HERE, pid=78, minutes=10), Verdict.STALE),  # this host, its process gone
    (value(host=HERE, pid=77, minutes=-60), Verdict.HELD),  # this host, alive: slow renewal
    ("someone's note", Verdict.UNREADABLE),
    ("run=x host=y pid=1 since=z until=tomorrow", Verdict.UNREADABLE),
])
def test_what_a_found_claim_means(found: str | None, verdict: Verdict) -> None:
    assert judge(found, "run-1", HERE, NOW, alive).verdict is verdict


def test_refusals_and_takeovers_name_the_other_run() -> None:
    held = judge(value(), "run-1", HERE, NOW, alive)
    stale = judge(value(minutes=-1), "run-1", HERE, NOW, alive)
    unreadable = judge("someone's note", "run-1", HERE, NOW, alive)

    assert held.refusal("k") == ("k is locked by run run-9 (pid 77 on bastion-2, started "
                                 "2024-07-19T04:30:00Z) (claim tag remediate:claim on the "
                                 "target, until 2024-07-19T05:40:00Z)")
    assert stale.takeover("k", HERE) == ("k: took over the claim of run run-9 (pid 77 on "
                                         "bastion-2, expired 2024-07-19T05:29:00Z)")
    assert unreadable.refusal("k") == (
        "k carries a tag remediate:claim=\"someone's note\" that is not a claim this version "
        "of remediate reads: delete the tag if no run works on it")
