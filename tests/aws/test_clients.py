from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import botocore
import pytest
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import ClientError
from moto import mock_aws

from remediate.aws.clients import (
    CallCounter,
    ClientFactory,
    ClientSettings,
    ClientSetupError,
    DryRunRefused,
    role_session_name,
)
from remediate.clock import VirtualClock
from remediate.language.model import Account
from remediate.sandbox import Sandbox, ThrottlePolicy

NO_CREDENTIALS = "account default: no AWS credentials found (set AWS_PROFILE or " \
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, run `aws sso login`, or give the account a " \
    "profile)"


@pytest.fixture
def aws_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No real AWS config, credentials, Region or instance metadata can leak in."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                 "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


@pytest.fixture
def env_credentials(aws_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")


@pytest.fixture
def aws(env_credentials: None) -> Iterator[None]:
    with mock_aws():
        yield


def write_profile(home: Path, name: str, region: str = "ap-southeast-2") -> None:
    (home / "credentials").write_text(
        f"[{name}]\naws_access_key_id = from-{name}\naws_secret_access_key = secret\n")
    (home / "config").write_text(f"[profile {name}]\nregion = {region}\n")


def test_every_client_makes_one_attempt_and_says_who_it_is(env_credentials: None) -> None:
    factory = ClientFactory(settings=ClientSettings(max_pool_connections=80, connect_timeout=3,
                                                    read_timeout=20))
    config = factory.client("ec2", "us-east-1").meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert (config.max_pool_connections, config.connect_timeout, config.read_timeout) == (
        80, 3, 20)
    assert config.user_agent_extra == "remediate/0.1.0"


def test_a_throttled_call_is_sent_once(env_credentials: None) -> None:
    with Sandbox(clock=VirtualClock()) as sandbox:
        factory = ClientFactory(session=sandbox.boto3_session())
        sandbox.set_throttle(ThrottlePolicy.random_errors(1.0))
        with pytest.raises(ClientError, match="RequestLimitExceeded"):
            factory.client("ec2", "us-east-1").describe_instances()
        assert [(c.operation, c.throttled) for c in sandbox.api_calls] == [
            ("DescribeInstances", True)]


def test_clients_are_cached_per_account_region_and_service(env_credentials: None) -> None:
    factory = ClientFactory()
    ec2 = factory.client("ec2", "us-east-1")
    assert factory.client("ec2", "us-east-1") is ec2
    assert factory("ec2", "us-east-1") is ec2
    assert factory.client("ec2", "us-west-2") is not ec2
    assert factory.client("ssm", "us-east-1") is not ec2
    assert factory.client("ec2").meta.region_name == "eu-west-1"  # AWS_DEFAULT_REGION


def test_threads_share_one_client(env_credentials: None) -> None:
    factory = ClientFactory()
    seen: list[object] = []
    start = threading.Barrier(16)

    def grab() -> None:
        start.wait()
        seen.append(factory.client("workspaces", "us-east-1"))

    threads = [threading.Thread(target=grab) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 16 and len({id(client) for client in seen}) == 1


def test_aws_region_wins_over_aws_default_region(env_credentials: None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "ca-central-1")
    factory = ClientFactory()
    assert factory.default_region() == "ca-central-1"
    assert factory.client("ec2").meta.region_name == "ca-central-1"


def test_endpoint_variables_are_honoured(env_credentials: None,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:5000")
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", "http://localhost:5001")
    factory = ClientFactory()
    assert factory.client("ec2", "us-east-1").meta.endpoint_url == "http://localhost:5001"
    assert factory.client("ssm", "us-east-1").meta.endpoint_url == "http://localhost:5000"
    explicit = ClientFactory(endpoint_url="http://127.0.0.1:9")
    assert explicit.client("ec2", "us-east-1").meta.endpoint_url == "http://127.0.0.1:9"


def test_a_profile_per_account(aws_home: Path) -> None:
    write_profile(aws_home, "prod")
    factory = ClientFactory([Account("prod", profile="prod")])
    client = factory.client("ec2", account="prod")
    assert client.meta.region_name == "ap-southeast-2"
    assert factory.session("prod").get_credentials().access_key == "from-prod"


def test_aws_profile_is_the_default_account(aws_home: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    write_profile(aws_home, "ops", region="eu-central-1")
    monkeypatch.setenv("AWS_PROFILE", "ops")
    factory = ClientFactory()
    assert factory.default_region() == "eu-central-1"
    assert factory.session().get_credentials().access_key == "from-ops"


def test_a_role_is_assumed_with_the_run_id_and_refreshable_credentials(aws: None) -> None:
    role = "arn:aws:iam::210987654321:role/remediate-operator"
    factory = ClientFactory([Account("prod", role_arn=role, external_id="ticket-42")],
                            run_id="2024-07-19T0530Z/ab12")
    credentials = factory.session("prod").get_credentials()
    assert isinstance(credentials, RefreshableCredentials)
    assert credentials.method == "assume-role"
    arn = factory.client("sts", "us-east-1", "prod").get_caller_identity()["Arn"]
    assert arn == ("arn:aws:sts::210987654321:assumed-role/remediate-operator/"
                   "remediate-2024-07-19T0530Z-ab12")
    assert factory.identity("prod") == "210987654321"
    assert credentials.access_key != "testing"


def test_role_session_names_fit_sts_rules() -> None:
    assert role_session_name("run 1/2") == "remediate-run-1-2"
    assert len(role_session_name("x" * 100)) == 64


@pytest.mark.parametrize(("account", "env", "message"), [
    (Account("default"), {}, NO_CREDENTIALS),
    (Account("prod", profile="prod"), {},
     "account prod: AWS profile 'prod' not found in ~/.aws/config or ~/.aws/credentials"),
    (Account("default"), {"AWS_PROFILE": "typo"}, "account default: AWS profile 'typo' "
     "(from AWS_PROFILE) not found in ~/.aws/config or ~/.aws/credentials"),
])
def test_credential_problems_are_one_line(aws_home: Path, monkeypatch: pytest.MonkeyPatch,
                                          account: Account, env: dict[str, str],
                                          message: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ClientSetupError) as caught:
        ClientFactory([account]).client("ec2", "us-east-1", account.name)
    assert str(caught.value) == message


@pytest.mark.parametrize(("region", "message"), [
    ("us-esat-1", "unknown AWS Region 'us-esat-1' (did you mean us-west-1 or us-east-1?)"),
    ("zz-top-0", f"unknown AWS Region 'zz-top-0'; botocore {botocore.__version__} does not "
     "know it: if it is new, upgrade boto3"),
])
def test_unknown_regions_are_refused(env_credentials: None, region: str, message: str) -> None:
    with pytest.raises(ClientSetupError) as caught:
        ClientFactory().client("ec2", region)
    assert str(caught.value) == message


def test_no_region_at_all(aws_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with pytest.raises(ClientSetupError) as caught:
        ClientFactory().client("ec2")
    assert str(caught.value) == ("no AWS Region: set AWS_REGION, pass --region, or list "
                                 "regions under the playbook's targets")


def test_an_unknown_account_name(env_credentials: None) -> None:
    with pytest.raises(ClientSetupError) as caught:
        ClientFactory([Account("prod"), Account("dev")]).client("ec2", "us-east-1", "qa")
    assert str(caught.value) == "unknown account 'qa' (this run has: dev, prod)"


def test_a_dry_run_client_refuses_every_mutating_call(aws: None) -> None:
    counter = CallCounter()
    ec2 = ClientFactory(dry_run=True, hooks=[counter]).client("ec2", "us-east-1")
    with pytest.raises(DryRunRefused) as caught:
        ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)
    assert str(caught.value) == ("dry run: refusing ec2:RunInstances, which changes AWS "
                                 "resources")
    with pytest.raises(DryRunRefused, match="ec2:DescribeKeyPairs"):
        ec2.describe_key_pairs()  # not in remediate.aws.apis: refused to be safe
    assert ec2.describe_instances()["Reservations"] == []
    assert dict(counter.counts) == {("ec2", "DescribeInstances"): 1}  # refused: never sent


def test_a_dry_run_client_lets_ec2_permission_checks_through(aws: None) -> None:
    counter = CallCounter()
    ec2 = ClientFactory(dry_run=True, hooks=[counter]).client("ec2", "us-east-1")
    with pytest.raises(ClientError) as caught:
        ec2.stop_instances(InstanceIds=["i-0123456789abcdef0"], DryRun=True)
    assert caught.value.response["Error"]["Code"] == "DryRunOperation"
    with pytest.raises(DryRunRefused):
        ec2.stop_instances(InstanceIds=["i-0123456789abcdef0"], DryRun=False)
    assert dict(counter.counts) == {("ec2", "StopInstances"): 1}
    assert counter.mutating == 0


def test_the_counter_sees_every_call_sent(aws: None) -> None:
    counter = CallCounter()
    factory = ClientFactory(hooks=[counter])
    ec2 = factory.client("ec2", "us-east-1")
    ec2.run_instances(ImageId="ami-12c6146b", MinCount=2, MaxCount=2)
    assert len(ec2.describe_instances()["Reservations"][0]["Instances"]) == 2
    factory.client("ec2", "us-west-2").describe_instances()
    assert dict(counter.counts) == {("ec2", "RunInstances"): 1, ("ec2", "DescribeInstances"): 2}
    assert (counter.total, counter.mutating) == (3, 1)


def test_importing_clients_discovery_or_reporters_does_not_import_boto3() -> None:
    code = ("import sys, remediate.aws.clients, remediate.discovery, remediate.reporters, "
            "remediate.reporters.terminal; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
