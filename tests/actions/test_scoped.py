"""Scoped permissions: checked when declared, kept in one canonical form, rendered."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from remediate.actions import scoped
from remediate.actions.scoped import ANY, Condition, Scoped, ec2_arn, resource_tag

RESCUE = resource_tag("remediate:role", "rescue")
INSTANCES = ec2_arn("instance")


def test_arns_follow_aws_formats() -> None:
    assert (ec2_arn("instance"), ec2_arn("image"), ec2_arn("snapshot")) == (
        "arn:aws:ec2:*:*:instance/*", "arn:aws:ec2:*::image/*", "arn:aws:ec2:*::snapshot/*")
    assert scoped.arn("iam", "role/*", region="") == "arn:aws:iam::*:role/*"
    assert scoped.arn("ssm", "document/AWS-RunShellScript") == (
        "arn:aws:ssm:*:*:document/AWS-RunShellScript")


def test_resources_conditions_and_values_are_kept_sorted() -> None:
    one = Scoped("ec2:RunInstances", (ec2_arn("volume"), INSTANCES),
                 (RESCUE, scoped.created_by("RunInstances")))
    other = Scoped("ec2:RunInstances", (INSTANCES, ec2_arn("volume"), INSTANCES),
                   (scoped.created_by("RunInstances"), RESCUE))
    assert one == other and hash(one) == hash(other)
    assert one.resources == ("arn:aws:ec2:*:*:instance/*", "arn:aws:ec2:*:*:volume/*")
    assert scoped.only("aws:TagKeys", "b", "a", "b").values == ("a", "b")


def test_a_plain_permission_is_broad() -> None:
    assert Scoped("ec2:DescribeInstances").resources == ANY
    assert Scoped("ec2:DescribeInstances").broad
    assert not Scoped("ec2:TerminateInstances", (INSTANCES,), (RESCUE,)).broad
    assert not Scoped("ec2:TerminateInstances", ANY, (RESCUE,)).broad


def test_covers_more_resources_under_fewer_conditions() -> None:
    tagged = Scoped("ssm:SendCommand", (INSTANCES,), (RESCUE,))
    anywhere = Scoped("ssm:SendCommand", (INSTANCES,))
    assert anywhere.covers(tagged) and not tagged.covers(anywhere)
    assert Scoped("ssm:SendCommand").covers(tagged)
    assert not Scoped("ec2:TerminateInstances").covers(tagged)
    assert not Scoped("ssm:SendCommand", (ec2_arn("volume"),)).covers(tagged)
    assert tagged.covers(tagged)


def test_condition_block_is_iam_json() -> None:
    grant = Scoped("kms:CreateGrant", (scoped.arn("kms", "key/*"),),
                   (scoped.is_true("kms:GrantIsForAWSResource"),
                    scoped.equals("aws:ResourceTag/team", "sre", "ops"), RESCUE))
    assert grant.condition_block() == {
        "Bool": {"kms:GrantIsForAWSResource": "true"},
        "StringEquals": {"aws:ResourceTag/remediate:role": "rescue",
                         "aws:ResourceTag/team": ["ops", "sre"]}}
    assert grant.describe() == {"action": "kms:CreateGrant",
                                "resources": ["arn:aws:kms:*:*:key/*"],
                                "conditions": grant.condition_block()}


def test_text_says_what_on_which_resources_and_when() -> None:
    assert Scoped("ec2:TerminateInstances", (INSTANCES,), (RESCUE,)).text() == (
        "ec2:TerminateInstances on arn:aws:ec2:*:*:instance/* if "
        "aws:ResourceTag/remediate:role = rescue")
    assert Scoped("ec2:CreateTags", (ec2_arn("volume"),),
                  (scoped.only("aws:TagKeys", "remediate:run-id", "remediate:root-of"),
                   scoped.created_by("RunInstances"))).text() == (
        "ec2:CreateTags on arn:aws:ec2:*:*:volume/* if aws:TagKeys all in "
        "[remediate:root-of, remediate:run-id] and ec2:CreateAction = RunInstances")
    assert Scoped("ec2:DescribeImages").text() == "ec2:DescribeImages on any resource"
    assert Scoped("ec2:StopInstances", (INSTANCES,), on_targets=True).text() == (
        "ec2:StopInstances on arn:aws:ec2:*:*:instance/* of the playbook's targets "
        "(their tags)")
    assert Scoped("ec2:ModifyInstanceAttribute", (INSTANCES,),
                  (scoped.absent("ec2:Attribute/UserData"),
                   scoped.present("aws:ResourceTag/team"))).text() == (
        "ec2:ModifyInstanceAttribute on arn:aws:ec2:*:*:instance/* if aws:ResourceTag/team "
        "is present and ec2:Attribute/UserData is absent")
    assert Scoped("iam:PassRole", (scoped.arn("iam", "role/*", region=""),),
                  needs="instance_profile").text() == (
        "iam:PassRole on arn:aws:iam::*:role/* (only with instance_profile)")


def test_a_grant_on_the_targets_is_bound_to_their_tags() -> None:
    stop = Scoped("ec2:StopInstances", (INSTANCES,), on_targets=True)
    assert not stop.broad and stop.label == "OnTargets"
    team = (resource_tag("team", "sre", "ops"), resource_tag("incident"))
    assert stop.bound(team) == Scoped("ec2:StopInstances", (INSTANCES,), team,
                                      label="OnTargets")
    assert stop.bound(team).condition_block() == {
        "StringEquals": {"aws:ResourceTag/team": ["ops", "sre"]},
        "Null": {"aws:ResourceTag/incident": "false"}}
    # No tag selects the targets: any instance.
    assert stop.bound(()).conditions == () and not stop.bound(()).on_targets
    # A tag value IAM would read as a policy variable is escaped.
    assert resource_tag("owner", "${aws:username}").values == ("${$}{aws:username}",)
    rescue_only = Scoped("ec2:TerminateInstances", (INSTANCES,), (RESCUE,))
    assert rescue_only.bound(team) is rescue_only


def test_a_grant_anywhere_covers_one_on_the_targets_only() -> None:
    anywhere = Scoped("ec2:StopInstances", (INSTANCES,))
    targets = Scoped("ec2:StopInstances", (INSTANCES,), on_targets=True)
    assert anywhere.covers(targets) and not targets.covers(anywhere)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Condition("StringNotEquals", "aws:TagKeys", ("a",)),
     "condition operator 'StringNotEquals' is not one of Bool, ForAllValues:StringEquals, "
     "Null, StringEquals, StringLike"),
    (lambda: scoped.equals("ec2:ResourceTag/remediate:role", "rescue"),
     "condition key 'ec2:ResourceTag/remediate:role' is not a known AWS condition key "
     "(aws:TagKeys, ec2:Attribute, ec2:CreateAction, iam:PassedToService, "
     "kms:GrantIsForAWSResource, kms:ViaService, or aws:ResourceTag/NAME or "
     "aws:RequestTag/NAME or ec2:Attribute/NAME)"),
    (lambda: scoped.equals("aws:ResourceTag/", "rescue"),
     "condition key 'aws:ResourceTag/' is not a known AWS condition key "
     "(aws:TagKeys, ec2:Attribute, ec2:CreateAction, iam:PassedToService, "
     "kms:GrantIsForAWSResource, kms:ViaService, or aws:ResourceTag/NAME or "
     "aws:RequestTag/NAME or ec2:Attribute/NAME)"),
    (lambda: scoped.equals("ec2:CreateAction"), "condition on ec2:CreateAction has no values"),
    (lambda: Scoped("TerminateInstances"),
     "'TerminateInstances' is not an IAM action (service:Operation)"),
    (lambda: Scoped("ec2:TerminateInstances", ()), "ec2:TerminateInstances: no resources"),
    (lambda: Scoped("ec2:TerminateInstances", ("*", INSTANCES)),
     "ec2:TerminateInstances: '*' already names every resource"),
    (lambda: Scoped("ec2:TerminateInstances", ("instance/*",)),
     "ec2:TerminateInstances: 'instance/*' is not an ARN "
     "(arn:aws:SERVICE:REGION:ACCOUNT:RESOURCE)"),
    (lambda: Scoped("ec2:TerminateInstances", (INSTANCES,),
                    (RESCUE, resource_tag("remediate:role", "target"))),
     "ec2:TerminateInstances: a condition key is given twice"),
    (lambda: scoped.Condition("Null", "ec2:Attribute", ("yes",)),
     "Null on ec2:Attribute takes 'true' or 'false'"),
    (lambda: Scoped("ec2:StopInstances", on_targets=True),
     "ec2:StopInstances: on the targets names their resource type's ARN"),
    (lambda: Scoped("ec2:StopInstances", (INSTANCES,), label="on targets"),
     "ec2:StopInstances: label 'on targets' is not alphanumeric"),
])
def test_a_wrong_declaration_fails_when_declared(make: Callable[[], object],
                                                 message: str) -> None:
    with pytest.raises(ValueError) as raised:
        make()
    assert str(raised.value) == message
