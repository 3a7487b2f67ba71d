"""Build a broken fleet through boto3: the targets of a rehearsal.

Every target is a Windows Server 2019 instance in a boot loop (running, status
``impaired``) whose root volume holds the bad channel file, tagged
``incident=crowdstrike-2024-07-19`` (except the kinds a triage must tell apart:
healthy ones, and guests broken otherwise, see :class:`FleetSpec`). Instances are
launched with RunInstances batches (one call per Region, AZ and kind), so 10,000
targets take one call per group, not one per instance.

Each Region also gets AWS's public SSM parameters for its Windows AMIs
(:data:`WINDOWS_PARAMETERS`; moto ships only Amazon Linux's), pointing at that
Region's own images, so ``resolve:ssm:`` rescue images resolve there as in AWS.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final, cast

from remediate.sandbox.state import RecoveryKey, World

ROOT_VOLUME_GIB: Final = 30
"""Size of every target's root volume (a first snapshot's duration grows with it)."""

INCIDENT_TAG = ("incident", "crowdstrike-2024-07-19")
KIND_TAG = "sandbox:kind"
WORKSPACE_FIXES = ("reboot", "restore", "rebuild", "stopped", "stopped-reboot")
_BATCH = 1000
_WITHOUT_CHANNEL_FILE = frozenset({"healthy", "boot_loop_other", "black_screen"})
_GUESTS = {"boot_loop_other": "boot-loop", "black_screen": "black"}
"""Kinds whose guest is broken for another reason (``InstanceFacts.guest``)."""
DEFAULT_ACCOUNT = "123456789012"
"""moto's default account: the sandbox's fake credentials act in it."""
_LATEST_WINDOWS = "/aws/service/ami-windows-latest/"
WINDOWS_PARAMETERS = {
    f"{_LATEST_WINDOWS}Windows_Server-2019-English-Full-Base": "target_ami",
    f"{_LATEST_WINDOWS}Windows_Server-2022-English-Full-Base": "rescue_windows_ami",
}
"""AWS's public parameter -> the :class:`RegionSetup` image it names in each Region."""


@dataclass(frozen=True)
class FleetSpec:
    """How many targets of each kind to build, spread over ``azs`` AZs per Region.

    ``plain`` counts ordinary targets; ``reboot_fixable`` targets lose the
    channel file after ``reboots_to_fix`` reboots; ``bitlocker`` targets' root
    volumes are BitLocker-encrypted, so an offline repair cannot open them (it
    fails on the rescue instance, and the target is rolled back); ``healthy`` instances
    boot (no channel file); ``boot_loop_other`` ones crash-loop on another bug check and
    ``black_screen`` ones hang with nothing on screen (both without the channel file: no
    route of the incident's repairs them; :mod:`remediate.sandbox.console`); ``with_eip`` of
    the plain targets get an Elastic IP (the others only have an auto-assigned public IP).
    WorkSpaces are built in the first Region, their condition cycling through
    ``workspace_mix`` (``reboot``/``restore``/``rebuild``: what repairs them;
    ``stopped``: a healthy STOPPED WorkSpace; ``stopped-reboot``: an AutoStop one in
    the boot loop, stopped, which starts UNHEALTHY and a reboot repairs).
    """

    plain: int = 8
    instance_store: int = 0
    spot_one_time: int = 0
    spot_persistent: int = 0
    stop_protected: int = 0
    encrypted_bad_key: int = 0
    encrypted: int = 0
    """Targets whose root volume is encrypted with the Region's usable key
    (:attr:`RegionSetup.kms_key_id`: enabled, KMS's default key policy)."""
    marketplace: int = 0
    hibernation: int = 0
    reboot_fixable: int = 0
    reboots_to_fix: int = 2
    bitlocker: int = 0
    healthy: int = 0
    boot_loop_other: int = 0
    black_screen: int = 0
    with_eip: int = 0
    workspaces: int = 0
    workspace_mix: tuple[str, ...] = WORKSPACE_FIXES
    azs: int = 2
    regions: tuple[str, ...] = ("us-east-1",)
    placements: tuple[tuple[str, str, int], ...] = ()
    """Where each target goes, as (kind, Region, AZ index), in order; replaces the
    counts above (a forecast rebuilds the fleet a dry run found, see
    :mod:`remediate.forecast.model`)."""
    account: str = DEFAULT_ACCOUNT
    """The account the fleet is built in (``Sandbox.client(..., account=)`` reaches it)."""
    dhmc: bool = True
    """Whether Default Host Management Configuration is on in the fleet's account and
    Regions (UpdateServiceSetting; False: ResetServiceSetting, AWS's default), so that
    rescue instances launched without an instance profile register with SSM."""

    def kind_counts(self) -> dict[str, int]:
        if self.placements:
            return dict(Counter(kind for kind, _, _ in self.placements))
        return {
            "plain": self.plain,
            "instance_store": self.instance_store,
            "spot_one_time": self.spot_one_time,
            "spot_persistent": self.spot_persistent,
            "stop_protected": self.stop_protected,
            "encrypted_bad_key": self.encrypted_bad_key,
            "encrypted": self.encrypted,
            "marketplace": self.marketplace,
            "hibernation": self.hibernation,
            "reboot_fixable": self.reboot_fixable,
            "bitlocker": self.bitlocker,
            "healthy": self.healthy,
            "boot_loop_other": self.boot_loop_other,
            "black_screen": self.black_screen,
        }

    @property
    def targets(self) -> int:
        return sum(self.kind_counts().values())


@dataclass(frozen=True)
class Target:
    instance_id: str
    region: str
    availability_zone: str
    kind: str
    root_volume_id: str
    root_device_name: str
    image_id: str
    elastic_ip: str | None = None
    account: str = DEFAULT_ACCOUNT


@dataclass(frozen=True)
class Workspace:
    workspace_id: str
    region: str
    directory_id: str
    fixed_by: str
    """``reboot``, ``restore``, ``rebuild``, ``stopped`` or ``stopped-reboot``."""


@dataclass(frozen=True)
class RegionSetup:
    """Per-Region scaffolding: network, the AMIs, the KMS key."""

    region: str
    vpc_id: str
    subnets: Mapping[str, str]
    """AZ name -> subnet id."""
    security_group_id: str
    target_ami: str
    """"Windows Server 2019" image the targets run."""
    rescue_windows_ami: str
    """"Windows Server 2022": a rescue image distinct from the targets' image."""
    rescue_linux_ami: str
    marketplace_ami: str
    bad_kms_key_id: str
    """A KMS key pending deletion (encrypted_bad_key targets use it)."""
    kms_key_id: str = ""
    """An enabled KMS key with KMS's default key policy (encrypted targets use it)."""


@dataclass(frozen=True)
class Fleet:
    """What :func:`build_fleet` made."""

    targets: tuple[Target, ...]
    workspaces: tuple[Workspace, ...]
    regions: Mapping[str, RegionSetup]
    tag: tuple[str, str] = INCIDENT_TAG
    build_seconds: float = 0.0
    account: str = DEFAULT_ACCOUNT

    def instance_ids(self, kind: str | None = None) -> list[str]:
        return [t.instance_id for t in self.targets if kind is None or t.kind == kind]

    def by_kind(self, kind: str) -> list[Target]:
        return [t for t in self.targets if t.kind == kind]

    def target(self, instance_id: str) -> Target:
        return next(t for t in self.targets if t.instance_id == instance_id)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


@dataclass
class _Launch:
    kind: str
    region: str
    az: str
    count: int


@dataclass
class _Builder:
    world: World
    client: Callable[[str, str], Any]
    spec: FleetSpec
    setups: dict[str, RegionSetup] = field(default_factory=dict)

    def build(self) -> Fleet:
        for region in self.spec.regions:
            self.setups[region] = self._setup_region(region)
        targets: list[Target] = []
        for launch in self._plan():
            targets.extend(self._launch(launch))
        targets = self._assign_eips(targets)
        workspaces = self._workspaces() if self.spec.workspaces else []
        return Fleet(tuple(targets), tuple(workspaces), dict(self.setups),
                     account=self.spec.account)

    # ---- per-Region scaffolding ------------------------------------------------

    def _setup_region(self, region: str) -> RegionSetup:
        ec2 = self.client("ec2", region)
        zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][
            : max(2, self.spec.azs)
        ]
        vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        prefix = min(20, 16 + math.ceil(math.log2(len(zones))))
        size = 2 ** (32 - prefix)
        subnets: dict[str, str] = {}
        for index, zone in enumerate(zones):
            third = (index * size) // 256
            subnet = ec2.create_subnet(
                VpcId=vpc_id, CidrBlock=f"10.0.{third}.0/{prefix}", AvailabilityZone=zone
            )["Subnet"]["SubnetId"]
            ec2.modify_subnet_attribute(SubnetId=subnet, MapPublicIpOnLaunch={"Value": True})
            subnets[zone] = subnet
        group = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])[
            "SecurityGroups"
        ][0]["GroupId"]
        kms = self.client("kms", region)
        key = kms.create_key(Description="sandbox: key pending deletion")["KeyMetadata"]
        kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
        usable = kms.create_key(Description="sandbox: key of encrypted targets")["KeyMetadata"]
        setup = RegionSetup(
            region=region,
            vpc_id=vpc_id,
            subnets=subnets,
            security_group_id=group,
            target_ami=self._image(ec2, region, "Windows_Server-2019-English-Full-Base", True),
            rescue_windows_ami=self._image(
                ec2, region, "Windows_Server-2022-English-Full-Base", True
            ),
            rescue_linux_ami=self._image(ec2, region, "al2023-ami-rescue-x86_64", False),
            marketplace_ami=self._image(
                ec2, region, "Windows_Server-2019-Marketplace-Product", True, marketplace=True
            ),
            bad_kms_key_id=key["Arn"],
            kms_key_id=usable["Arn"],
        )
        self._public_parameters(setup)
        self._host_management(region)
        return setup

    def _host_management(self, region: str) -> None:
        """DHMC on (the sandbox's default role) or off, as the spec says."""
        from remediate.sandbox.ssm_settings import DEFAULT_ROLE, DHMC_SETTING

        ssm = self.client("ssm", region)
        if self.spec.dhmc:
            ssm.update_service_setting(SettingId=DHMC_SETTING, SettingValue=DEFAULT_ROLE)
        else:
            ssm.reset_service_setting(SettingId=DHMC_SETTING)

    def _public_parameters(self, setup: RegionSetup) -> None:
        """AWS's own ``/aws/service/ami-windows-latest/...`` parameters, which
        PutParameter refuses to create (reserved names): written into moto's backend,
        each a new version of the parameter if it exists already."""
        from moto.ssm.models import Parameter, ssm_backends

        parameters = ssm_backends[self.spec.account][setup.region]._parameters
        with self.world.lock:
            for name, image in WINDOWS_PARAMETERS.items():
                versions = parameters[name]
                versions.append(cast(Any, Parameter)(
                    account_id=self.spec.account, name=name, value=getattr(setup, image),
                    parameter_type="String", description=None, allowed_pattern=None,
                    keyid=None, last_modified_date=self.world.clock.wall(),
                    version=len(versions) + 1, data_type="aws:ec2:image"))

    def _image(
        self, ec2: Any, region: str, name: str, windows: bool, marketplace: bool = False
    ) -> str:
        from moto.ec2.models import ec2_backends

        image_id: str = ec2.register_image(Name=name, Description=name)["ImageId"]
        ami = ec2_backends[self.spec.account][region].amis[image_id]
        ami.platform = "windows" if windows else None
        ami.root_device_name = "/dev/sda1" if windows else "/dev/xvda"
        ami.root_device_type = "ebs"
        if marketplace:
            ami.product_codes = {"sandboxmarketplace0000001"}
        with self.world.lock:  # an existing image's snapshot is long complete
            ami.ebs_snapshot.status = "completed"
            self.world.timeline.cancel(("snapshot", ami.ebs_snapshot.id))
        return image_id

    # ---- targets -------------------------------------------------------------------

    def _plan(self) -> list[_Launch]:
        if self.spec.placements:
            return self._placed()
        slots = [
            (region, az)
            for region in self.spec.regions
            for az in list(self.setups[region].subnets)[: self.spec.azs]
        ]
        launches: dict[tuple[str, str, str], _Launch] = {}
        cycle = itertools.cycle(slots)
        for kind, count in self.spec.kind_counts().items():
            for _ in range(count):
                region, az = next(cycle)
                key = (kind, region, az)
                if key not in launches:
                    launches[key] = _Launch(kind, region, az, 0)
                launches[key].count += 1
        return list(launches.values())

    def _placed(self) -> list[_Launch]:
        launches: dict[tuple[str, str, str], _Launch] = {}
        for kind, region, index in self.spec.placements:
            zones = list(self.setups[region].subnets)
            az = zones[index % len(zones)]
            launches.setdefault((kind, region, az), _Launch(kind, region, az, 0)).count += 1
        return list(launches.values())

    def _launch(self, launch: _Launch) -> list[Target]:
        setup = self.setups[launch.region]
        ec2 = self.client("ec2", launch.region)
        made: list[Target] = []
        remaining = launch.count
        while remaining:
            count = min(remaining, _BATCH)
            remaining -= count
            response = ec2.run_instances(**self._run_args(launch, setup, count))
            made.extend(self._register(launch, response["Instances"]))
        return made

    def _run_args(self, launch: _Launch, setup: RegionSetup, count: int) -> dict[str, Any]:
        kind = launch.kind
        ebs: dict[str, Any] = {"VolumeSize": ROOT_VOLUME_GIB, "VolumeType": "gp3",
                               "DeleteOnTermination": True}
        mappings: list[dict[str, Any]] = [{"DeviceName": "/dev/sda1", "Ebs": ebs}]
        args: dict[str, Any] = {
            "ImageId": setup.marketplace_ami if kind == "marketplace" else setup.target_ami,
            "InstanceType": "m5d.large" if kind == "instance_store" else "m5.large",
            "MinCount": count,
            "MaxCount": count,
            "SubnetId": setup.subnets[launch.az],
            "BlockDeviceMappings": mappings,
            "TagSpecifications": [
                {"ResourceType": kind_of, "Tags": self._tags(launch.kind)}
                for kind_of in ("instance", "volume")
            ],
        }
        if kind == "instance_store":
            mappings.append({"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"})
        elif kind in ("spot_one_time", "spot_persistent"):
            persistent = kind == "spot_persistent"
            args["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {
                    "SpotInstanceType": "persistent" if persistent else "one-time",
                    "InstanceInterruptionBehavior": "stop" if persistent else "terminate",
                },
            }
        elif kind == "stop_protected":
            args["DisableApiStop"] = True
        elif kind == "encrypted_bad_key":
            ebs.update(Encrypted=True, KmsKeyId=setup.bad_kms_key_id)
        elif kind == "encrypted":
            ebs.update(Encrypted=True, KmsKeyId=setup.kms_key_id)
        elif kind == "hibernation":
            ebs.update(Encrypted=True)
            args["HibernationOptions"] = {"Configured": True}
        return args

    @staticmethod
    def _tags(kind: str) -> list[dict[str, str]]:
        return [
            {"Key": INCIDENT_TAG[0], "Value": INCIDENT_TAG[1]},
            {"Key": KIND_TAG, "Value": kind},
        ]

    def _register(self, launch: _Launch, instances: Iterable[Mapping[str, Any]]) -> list[Target]:
        from moto.ec2.models import ec2_backends

        from remediate.sandbox.ec2_instances import settle_running

        backend = ec2_backends[self.spec.account][launch.region]
        setup = self.setups[launch.region]
        made = []
        with self.world.lock:
            for described in instances:
                instance = backend.get_instance(described["InstanceId"])
                root = instance.block_device_mapping[instance.root_device_name]
                if launch.kind not in _WITHOUT_CHANNEL_FILE:
                    self.world.bad_volumes.add(root.volume_id)
                guest = _GUESTS.get(launch.kind)
                if guest is not None:
                    self.world.facts(instance.id).guest = guest
                if launch.kind == "marketplace":
                    self.world.marketplace_volumes.add(root.volume_id)
                    cast(Any, instance).product_codes = [
                        {"ProductCodeId": code, "ProductCodeType": "marketplace"}
                        for code in sorted(backend.amis[setup.marketplace_ami].product_codes)
                    ]
                if launch.kind == "reboot_fixable":
                    self.world.facts(instance.id).reboot_fix_after = self.spec.reboots_to_fix
                if launch.kind == "bitlocker":
                    self.world.bitlocker_volumes[root.volume_id] = RecoveryKey.of(root.volume_id)
                settle_running(self.world, instance)
                made.append(
                    Target(
                        instance_id=instance.id,
                        region=launch.region,
                        availability_zone=launch.az,
                        kind=launch.kind,
                        root_volume_id=root.volume_id,
                        root_device_name=instance.root_device_name,
                        image_id=instance.image_id,
                        account=self.spec.account,
                    )
                )
        return made

    def _assign_eips(self, targets: list[Target]) -> list[Target]:
        wanted = self.spec.with_eip
        result = []
        for target in targets:
            if wanted and target.kind == "plain":
                ec2 = self.client("ec2", target.region)
                address = ec2.allocate_address(Domain="vpc")
                ec2.associate_address(
                    AllocationId=address["AllocationId"], InstanceId=target.instance_id
                )
                target = Target(**{**asdict(target), "elastic_ip": address["PublicIp"]})
                wanted -= 1
            result.append(target)
        return result

    # ---- WorkSpaces ----------------------------------------------------------------

    def _workspaces(self) -> list[Workspace]:
        from remediate.sandbox.workspaces import set_condition

        region = self.spec.regions[0]
        setup = self.setups[region]
        ds = self.client("ds", region)
        directory_id = ds.create_directory(
            Name="corp.example.com",
            Password="SandboxPassw0rd!",
            Size="Small",
            VpcSettings={"VpcId": setup.vpc_id, "SubnetIds": list(setup.subnets.values())[:2]},
        )["DirectoryId"]
        ws = self.client("workspaces", region)
        ws.register_workspace_directory(DirectoryId=directory_id)
        fixes = list(
            itertools.islice(itertools.cycle(self.spec.workspace_mix), self.spec.workspaces)
        )
        made: list[Workspace] = []
        for start in range(0, len(fixes), 25):
            batch = fixes[start : start + 25]
            requests = [
                {
                    "DirectoryId": directory_id,
                    "UserName": f"user{start + offset:05d}",
                    "BundleId": "wsb-sandbox01",
                    "WorkspaceProperties": {
                        "RunningMode": "AUTO_STOP" if fix.startswith("stopped") else "ALWAYS_ON"
                    },
                    "Tags": [{"Key": INCIDENT_TAG[0], "Value": INCIDENT_TAG[1]}],
                }
                for offset, fix in enumerate(batch)
            ]
            pending = ws.create_workspaces(Workspaces=requests)["PendingRequests"]
            for described, fix in zip(pending, batch, strict=True):
                set_condition(self.world, region, described["WorkspaceId"], fix)
                made.append(Workspace(described["WorkspaceId"], region, directory_id, fix))
        return made


def build_fleet(world: World, client: Callable[[str, str], Any], spec: FleetSpec) -> Fleet:
    """Build ``spec`` through boto3 clients made by ``client(service, region)``."""
    import time

    started = time.perf_counter()
    fleet = _Builder(world, client, spec).build()
    return dataclasses.replace(fleet, build_seconds=time.perf_counter() - started)
