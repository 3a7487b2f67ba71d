"""IAM SimulatePrincipalPolicy (moto lacks it): a role's inline and attached managed
policies judged per action and resource, in the request context given."""

from __future__ import annotations

import json
from typing import Any

from remediate.sandbox import Sandbox

TAGGED_STOP = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": ["ec2:StopInstances", "ec2:StartInstances"],
    "Resource": "arn:aws:ec2:*:*:instance/*",
    "Condition": {"StringEquals": {"aws:ResourceTag/incident": "crowdstrike"}}}]}
NO_START = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Deny", "Action": "ec2:StartInstances", "Resource": "*"}]}
INSTANCES = "arn:aws:ec2:*:*:instance/*"


def simulate(sandbox: Sandbox, role: str, *context: dict[str, Any]) -> dict[str, str]:
    results = sandbox.client("iam").simulate_principal_policy(
        PolicySourceArn=role, ActionNames=["ec2:StopInstances", "ec2:StartInstances",
                                           "ec2:RebootInstances"],
        ResourceArns=[INSTANCES], ContextEntries=list(context))["EvaluationResults"]
    assert {r["EvalResourceName"] for r in results} == {INSTANCES}
    return {r["EvalActionName"]: r["EvalDecision"] for r in results}


def test_a_role_s_policies_decide_in_the_context_given(sandbox: Sandbox) -> None:
    iam = sandbox.client("iam")
    role = iam.create_role(RoleName="operator", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    iam.put_role_policy(RoleName="operator", PolicyName="stop",
                        PolicyDocument=json.dumps(TAGGED_STOP))
    tagged = {"ContextKeyName": "aws:ResourceTag/incident", "ContextKeyValues": ["crowdstrike"],
              "ContextKeyType": "string"}

    assert simulate(sandbox, role) == {"ec2:StopInstances": "implicitDeny",
                                       "ec2:StartInstances": "implicitDeny",
                                       "ec2:RebootInstances": "implicitDeny"}
    assert simulate(sandbox, role, tagged) == {"ec2:StopInstances": "allowed",
                                               "ec2:StartInstances": "allowed",
                                               "ec2:RebootInstances": "implicitDeny"}
    managed = iam.create_policy(PolicyName="no-start",
                                PolicyDocument=json.dumps(NO_START))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName="operator", PolicyArn=managed)
    assert simulate(sandbox, role, tagged) == {"ec2:StopInstances": "allowed",
                                               "ec2:StartInstances": "explicitDeny",
                                               "ec2:RebootInstances": "implicitDeny"}
    # A read: it never counts as a mutating call (nor loses its reply).
    assert [c.mutating for c in sandbox.api_calls
            if c.operation == "SimulatePrincipalPolicy"] == [False, False, False]
