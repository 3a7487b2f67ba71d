from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from remediate import discovery
from remediate.actions.contract import Target
from remediate.aws.clients import CallCounter, ClientFactory
from remediate.aws.retry import RetryPolicy
from remediate.clock import VirtualClock
from remediate.discovery import (
    DiscoveryError,
    Overrides,
    describe,
    discover,
    parse_pairs,
    select,
)
from remediate.language.model import Account, TargetSelector
from remediate.sandbox import FleetSpec, Sandbox, ThrottlePolicy

AMI = "ami-12c6146b"
Made = dict[str, list[str]]  # instance ids by group


@pytest.fixture(scope="module", autouse=True)
def aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    home = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
            env.delenv(name, raising=False)
        env.setenv("AWS_CONFIG_FILE", str(home / "config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "credentials"))
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield


@pytest.fixture(scope="class")
def fleet() -> Iterator[Made]:
    """Instances in two Regions: web (Team=web), api (Team=api), untagged, one terminated."""
    with mock_aws():
        made: dict[str, list[str]] = {}

        def launch(region: str, name: str, count: int, tags: dict[str, str],
                   instance_type: str = "t3.micro") -> None:
            ec2 = boto3.client("ec2", region_name=region)
            spec = [{"ResourceType": "instance",
                     "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []
            ids = [i["InstanceId"] for i in ec2.run_instances(
                ImageId=AMI, MinCount=count, MaxCount=count, InstanceType=instance_type,
                TagSpecifications=spec)["Instances"]]
            made.setdefault(name, []).extend(ids)

        launch("us-east-1", "web", 3, {"Team": "web", "Env": "prod"})
        launch("us-east-1", "api", 2, {"Team": "api"}, "m5.large")
        launch("eu-west-1", "web", 2, {"Team": "web"})
        launch("eu-west-1", "plain", 1, {})
        launch("eu-west-1", "gone", 1, {"Team": "web"})
        boto3.client("ec2", region_name="eu-west-1").terminate_instances(
            InstanceIds=made["gone"])
        yield made


def ec2_selector(**fields: Any) -> TargetSelector:
    return TargetSelector(kind="ec2-instance", **fields)


def ids(targets: list[Target]) -> list[str]:
    return [t.id for t in targets]


class TestEc2:
    """Read-only searches of one fleet (built once: moto is slow to set up)."""

    def test_tags_across_regions_sorted_without_terminated(self, fleet: Made) -> None:
        found = discover(ec2_selector(tags={"Team": ("web",)}, regions=("us-east-1", "eu-west-1")),
                         ClientFactory())
        assert [(t.region, t.kind, t.account) for t in found] == (
            [("eu-west-1", "ec2-instance", "default")] * 2 + [("us-east-1", "ec2-instance",
                                                                "default")] * 3)
        assert found == sorted(found, key=lambda t: (t.account, t.region, t.id))
        assert set(ids(found)) == set(fleet["web"])

    def test_tag_values_are_alternatives_and_a_bare_key_means_any_value(self,
                                                                         fleet: Made) -> None:
        both = discover(ec2_selector(tags={"Team": ("web", "api")}, regions=("us-east-1",)),
                        ClientFactory())
        assert len(both) == 5
        env = discover(ec2_selector(tags={"Env": ()}, regions=("us-east-1", "eu-west-1")),
                       ClientFactory())
        assert set(ids(env)) == set(fleet["web"][:3])

    def test_user_filters_go_to_aws(self, fleet: Made) -> None:
        found = discover(ec2_selector(filters={"instance-type": ("m5.large",)}), ClientFactory())
        assert set(ids(found)) == set(fleet["api"])

    def test_a_state_filter_replaces_the_default(self, fleet: Made) -> None:
        found = discover(ec2_selector(filters={"instance-state-name": ("terminated",)},
                                      regions=("eu-west-1",)), ClientFactory())
        assert ids(found) == fleet["gone"]

    def test_ids_are_searched_in_every_region(self, fleet: Made) -> None:
        wanted = (fleet["plain"][0], fleet["api"][1])
        found = discover(ec2_selector(ids=wanted, regions=("us-east-1", "eu-west-1")),
                         ClientFactory())
        assert [(t.region, t.id) for t in found] == [("eu-west-1", wanted[0]),
                                                     ("us-east-1", wanted[1])]

    def test_ids_not_found_are_reported_not_fatal(self, fleet: Made) -> None:
        heard: list[str] = []
        dead, gone = "i-0000000000000dead", fleet["gone"][0]
        found = discover(ec2_selector(ids=(fleet["web"][0], dead, gone)), ClientFactory(),
                         warn=heard.append)
        assert ids(found) == [fleet["web"][0]]
        assert heard == [f"2 of the 3 ids named were not found in us-east-1 or do not match the "
                         f"selector: {', '.join(sorted([dead, gone]))}"]

    def test_command_line_overrides_win(self, fleet: Made) -> None:
        playbook = ec2_selector(tags={"Team": ("api",)}, regions=("us-east-1",))
        overrides = Overrides(tags=parse_pairs(["Team=web"], "--tag", split=False),
                              regions=("eu-west-1",))
        found = discover(playbook, ClientFactory(), overrides)
        assert set(ids(found)) == set(fleet["web"][3:])
        only = discover(playbook, ClientFactory(), Overrides(target_ids=(fleet["api"][0],)))
        assert ids(only) == [fleet["api"][0]]

    def test_limit_applies_last_and_always_picks_the_same(self, fleet: Made) -> None:
        selector = ec2_selector(tags={"Team": ("web",)}, regions=("us-east-1", "eu-west-1"))
        everything = discover(selector, ClientFactory())
        first = discover(selector, ClientFactory(), Overrides(limit=3))
        assert first == everything[:3]
        assert discover(selector, ClientFactory(), Overrides(limit=3)) == first
        assert len(discover(selector, ClientFactory(), Overrides(limit=50))) == 5

    def test_pages_are_followed(self, fleet: Made, monkeypatch: pytest.MonkeyPatch) -> None:
        ec2 = boto3.client("ec2", region_name="ap-south-1")
        launched = [ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]
                    ["InstanceId"] for _ in range(7)]
        monkeypatch.setattr(discovery, "EC2_PAGE_SIZE", 5)  # AWS's smallest page
        counter = CallCounter()
        found = discover(ec2_selector(regions=("ap-south-1",)), ClientFactory(hooks=[counter]))
        assert sorted(ids(found)) == sorted(launched)
        assert counter.counts[("ec2", "DescribeInstances")] == 2

    def test_nothing_matched_names_the_selector(self, fleet: Made) -> None:
        selector = ec2_selector(tags={"Team": ("db", "cache")}, filters={"instance-type": (
            "m5.large",)}, regions=("us-east-1", "eu-west-1"))
        with pytest.raises(DiscoveryError) as caught:
            discover(selector, ClientFactory())
        assert str(caught.value) == ("no targets matched kind ec2-instance, tags Team=db|cache, "
                                     "filters instance-type=m5.large in eu-west-1, us-east-1")

    def test_accounts_each_get_their_own_search(self, fleet: Made) -> None:
        selector = ec2_selector(tags={"Team": ("api",)},
                                accounts=(Account("blue"), Account("green")))
        found = discover(selector, ClientFactory(selector.accounts))
        assert [t.account for t in found] == ["blue", "blue", "green", "green"]
        assert {t.key for t in found} == {f"{a}/us-east-1/{i}" for a in ("blue", "green")
                                          for i in fleet["api"]}


def make_workspaces(region: str, users: list[str], tags: dict[str, dict[str, str]]) -> list[str]:
    ec2 = boto3.client("ec2", region_name=region)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{n}.0/24",
                                 AvailabilityZone=f"{region}{az}")["Subnet"]["SubnetId"]
               for n, az in ((1, "a"), (2, "b"))]
    directory = boto3.client("ds", region_name=region).create_directory(
        Name="corp.example.com", Password="Passw0rd!Passw0rd", Size="Small",
        VpcSettings={"VpcId": vpc, "SubnetIds": subnets})["DirectoryId"]
    ws = boto3.client("workspaces", region_name=region)
    ws.register_workspace_directory(DirectoryId=directory)
    made = ws.create_workspaces(Workspaces=[
        {"DirectoryId": directory, "UserName": user, "BundleId": "wsb-1",
         "Tags": [{"Key": k, "Value": v} for k, v in tags.get(user, {}).items()]}
        for user in users])["PendingRequests"]
    return [w["WorkspaceId"] for w in made]


def test_workspaces_by_tag_filter_and_id() -> None:
    with mock_aws():
        a, b, c = make_workspaces("us-east-1", ["ann", "bob", "cid"],
                                  {"ann": {"Team": "ops"}, "cid": {"Team": "ops"}})
        (d,) = make_workspaces("eu-west-1", ["dee"], {"dee": {"Team": "ops"}})
        counter = CallCounter()
        clients = ClientFactory(hooks=[counter])
        both = ("us-east-1", "eu-west-1")
        selector = TargetSelector(kind="workspace", tags={"Team": ("ops",)}, regions=both)
        found = discover(selector, clients)
        assert [(t.region, t.id, t.kind) for t in found] == [
            ("eu-west-1", d, "workspace"), *sorted(("us-east-1", i, "workspace") for i in (a, c))]
        assert counter.counts[("workspaces", "DescribeTags")] == 4

        counter.counts.clear()
        by_user = discover(TargetSelector(kind="workspace", filters={"user-name": ("bob",)},
                                          regions=both), clients)
        assert ids(by_user) == [b]
        assert counter.counts[("workspaces", "DescribeTags")] == 0  # no tag selector: no calls

        assert ids(discover(TargetSelector(kind="workspace", ids=(c,)), clients)) == [c]


def test_unknown_workspace_filters_fail_before_any_call() -> None:
    counter = CallCounter()
    with pytest.raises(DiscoveryError) as caught:
        discover(TargetSelector(kind="workspace", filters={"owner": ("x",)}),
                 ClientFactory(hooks=[counter]))
    assert str(caught.value) == ("unknown WorkSpaces filter 'owner' (known: directory-id, "
                                 "user-name, bundle-id, state, computer-name, ip-address, "
                                 "running-mode)")
    assert counter.total == 0


def test_an_unknown_kind() -> None:
    with pytest.raises(DiscoveryError) as caught:
        discover(TargetSelector(kind="rds-instance"), ClientFactory())
    assert str(caught.value) == ("cannot discover targets of kind 'rds-instance' (known: "
                                 "ec2-instance, workspace)")


def test_the_sandbox_fleet_is_found_through_throttling() -> None:
    clock = VirtualClock()
    with Sandbox(clock=clock) as sandbox:
        fleet = sandbox.build_fleet(FleetSpec(plain=6, workspaces=3,
                                              regions=("us-east-1", "us-west-2")))
        sandbox.set_throttle(ThrottlePolicy.random_errors(0.4, seed=7))
        clients = ClientFactory(session=sandbox.boto3_session())
        selector = ec2_selector(tags={"incident": ("crowdstrike-2024-07-19",)},
                                regions=("us-east-1", "us-west-2"))
        found = discover(selector, clients, clock=clock)
        assert sorted(ids(found)) == sorted(fleet.instance_ids())
        assert any(call.throttled for call in sandbox.api_calls)
        assert clock.now() > 0  # the retries waited, on the virtual clock
        workspaces = discover(TargetSelector(kind="workspace", regions=("us-east-1",),
                                             tags={"incident": ("crowdstrike-2024-07-19",)}),
                              clients, clock=clock)
        assert sorted(ids(workspaces)) == sorted(w.workspace_id for w in fleet.workspaces)


def test_throttling_that_never_ends_fails_discovery_and_says_where() -> None:
    clock = VirtualClock()
    with Sandbox(clock=clock) as sandbox:
        sandbox.set_throttle(ThrottlePolicy.random_errors(1.0))
        with pytest.raises(DiscoveryError) as caught:
            discover(ec2_selector(regions=("us-east-1",)),
                     ClientFactory(session=sandbox.boto3_session()), clock=clock)
        assert str(caught.value).startswith(
            "account default, us-east-1: DescribeInstances failed: RequestLimitExceeded")
        assert len(sandbox.api_calls) == RetryPolicy().max_attempts


@pytest.mark.parametrize(("items", "split", "expected"), [
    (["Team=web", "Team=api", "Env"], False, {"Team": ("web", "api"), "Env": ()}),
    (["instance-type=m5.large,m5.xlarge"], True, {"instance-type": ("m5.large", "m5.xlarge")}),
    (["a=b=c"], False, {"a": ("b=c",)}),
])
def test_parse_pairs(items: list[str], split: bool, expected: dict[str, tuple[str, ...]]) -> None:
    assert parse_pairs(items, "--x", split=split) == expected


@pytest.mark.parametrize(("items", "option", "split", "message"), [
    (["=web"], "--tag", False, "--tag expects KEY=VALUE (or KEY), got '=web'"),
    (["Team="], "--tag", False, "--tag expects KEY=VALUE (or KEY), got 'Team='"),
    (["instance-type"], "--filter", True,
     "--filter expects NAME=VALUE[,VALUE...], got 'instance-type'"),
])
def test_parse_pairs_errors(items: list[str], option: str, split: bool, message: str) -> None:
    with pytest.raises(DiscoveryError) as caught:
        parse_pairs(items, option, split=split)
    assert str(caught.value) == message


def test_select_and_describe() -> None:
    playbook = ec2_selector(ids=("i-1",), tags={"Team": ("web",), "Env": ("prod",)},
                            filters={"instance-type": ("t3.micro",)}, regions=("us-east-1",),
                            accounts=(Account("prod"),))
    chosen = select(playbook, Overrides(tags={"Team": ("api",)}, regions=("eu-west-1",)))
    assert chosen.tags == {"Team": ("api",), "Env": ("prod",)}
    assert chosen.ids == ("i-1",) and chosen.regions == ("eu-west-1",)
    assert describe(chosen) == ("kind ec2-instance, ids i-1, tags Env=prod, Team=api, "
                                "filters instance-type=t3.micro in eu-west-1 (accounts prod)")


def test_limit_must_be_positive() -> None:
    with pytest.raises(DiscoveryError, match=r"^--limit must be at least 1, got 0$"):
        discover(ec2_selector(), ClientFactory(), Overrides(limit=0))
