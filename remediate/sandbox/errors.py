"""The AWS errors the sandbox enforces, with AWS's own codes and messages.

Each constructor names where its text comes from. Messages marked
"(approximation)" keep AWS's error code but the exact wording could not be
confirmed from a public source.
"""

from __future__ import annotations

from moto.core.exceptions import ServiceException


class SandboxError(ServiceException):
    """An AWS error response raised by a sandbox rule (serialized by moto)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)


def dry_run_operation() -> SandboxError:
    """Any EC2 request with DryRun=True that the caller may make (botocore/moto text:
    AWS checks permissions first, then answers this without doing anything)."""
    return SandboxError("DryRunOperation",
                        "Request would have succeeded, but DryRun flag is set.")


# ---- EC2 instances -------------------------------------------------------------


def invalid_filter(name: str) -> SandboxError:
    """A Describe call with a filter name the operation does not have (AWS text)."""
    return SandboxError("InvalidParameterValue", f"The filter '{name}' is invalid")


def image_not_found(image_id: str) -> SandboxError:
    """RunInstances (also with DryRun=True) from an AMI the Region does not have (AWS text,
    as moto's DescribeImages answers it)."""
    return SandboxError("InvalidAMIID.NotFound", f"The image id '[{image_id}]' does not exist")


def image_malformed(image_id: str) -> SandboxError:
    """RunInstances with an ImageId that is not an AMI id (AWS text)."""
    return SandboxError("InvalidAMIID.Malformed",
                        f'Invalid id: "{image_id}" (expecting "ami-...")')


def cannot_start(instance_id: str) -> SandboxError:
    """StartInstances on a stopping/terminated instance (seen in AWS responses)."""
    return SandboxError(
        "IncorrectInstanceState",
        f"The instance '{instance_id}' is not in a state from which it can be started.",
    )


def cannot_stop(instance_id: str) -> SandboxError:
    """StopInstances on a shutting-down/terminated instance."""
    return SandboxError(
        "IncorrectInstanceState",
        f"The instance '{instance_id}' is not in a state from which it can be stopped.",
    )


def never_running(instance_id: str) -> SandboxError:
    """StopInstances on a pending instance (cloud-custodian PR #6014, real AWS output)."""
    return SandboxError(
        "IncorrectInstanceState",
        f"Instance '{instance_id}' cannot be stopped as it has never reached the 'running' state.",
    )


def not_running_for_reboot(instance_id: str) -> SandboxError:
    """RebootInstances, or GetConsoleScreenshot ("a JPG-format screenshot of a running
    instance", its API reference), on an instance that is not running (approximation)."""
    return SandboxError(
        "IncorrectInstanceState",
        f"The instance '{instance_id}' is not in the 'running' state.",
    )


def stop_protected(instance_id: str) -> SandboxError:
    """StopInstances with DisableApiStop set (EC2 console/API text)."""
    return SandboxError(
        "OperationNotPermitted",
        f"The instance '{instance_id}' may not be stopped. "
        "Modify its 'disableApiStop' instance attribute and try again.",
    )


def one_time_spot(instance_id: str) -> SandboxError:
    """StopInstances on a one-time Spot instance (real AWS output, c7n issue #8003)."""
    return SandboxError(
        "UnsupportedOperation",
        f"You can't stop the Spot Instance '{instance_id}' because it is associated with a "
        "one-time Spot Instance request. You can only stop Spot Instances associated with "
        "persistent Spot Instance requests.",
    )


def no_root_volume(instance_id: str, root_device: str) -> SandboxError:
    """StartInstances with nothing attached at the root device (EC2 VM Import docs)."""
    return SandboxError(
        "InvalidParameterValue",
        f"Invalid value '{instance_id}' for instanceId. "
        f"Instance does not have a volume attached at root ({root_device})",
    )


def replace_root_not_running(instance_id: str) -> SandboxError:
    """CreateReplaceRootVolumeTask needs a running instance (approximation)."""
    return SandboxError(
        "IncorrectInstanceState",
        f"The instance '{instance_id}' is not in a valid state for this operation. "
        "The instance must be in the 'running' state.",
    )


def replace_root_in_progress(instance_id: str) -> SandboxError:
    """A second replace-root task while one is running (approximation)."""
    return SandboxError(
        "IncorrectState",
        f"A root volume replacement task is already in progress for instance '{instance_id}'.",
    )


# ---- EBS volumes ---------------------------------------------------------------


def zone_mismatch(volume_id: str, instance_id: str) -> SandboxError:
    """AttachVolume across AZs (real AWS output, linuxkit issue #2388)."""
    return SandboxError(
        "InvalidVolume.ZoneMismatch",
        f"The volume '{volume_id}' is not in the same availability zone as instance "
        f"'{instance_id}'",
    )


def volume_in_use(volume_id: str) -> SandboxError:
    """AttachVolume of an attached volume (real AWS output, portworx issue #42)."""
    return SandboxError("VolumeInUse", f"{volume_id} is already attached to an instance")


def volume_not_available(volume_id: str, state: str) -> SandboxError:
    """Attach/detach of a volume in the wrong state (real AWS output, terraform #9023)."""
    return SandboxError("IncorrectState", f"Volume '{volume_id}' is in the '{state}' state.")


def device_in_use(device: str) -> SandboxError:
    """AttachVolume at a taken device name (real AWS output, nanovms/ops PR #1189)."""
    return SandboxError(
        "InvalidParameterValue",
        f"Invalid value '{device}' for unixDevice. Attachment point {device} is already in use",
    )


def instance_not_running_for_attach(instance_id: str) -> SandboxError:
    """AttachVolume to a pending/stopping instance (real AWS output, amazon.aws PR #497)."""
    return SandboxError("IncorrectState", f"Instance '{instance_id}' is not 'running'.")


def root_detach(volume_id: str, instance_id: str) -> SandboxError:
    """DetachVolume of the root volume of a non-stopped instance (terraform users' output)."""
    return SandboxError(
        "IncorrectState",
        f"Unable to detach root volume '{volume_id}' from instance '{instance_id}'",
    )


def marketplace_attach(volume_id: str, instance_id: str) -> SandboxError:
    """AttachVolume of a volume with Marketplace codes to an instance not stopped ("the
    volume can be attached only to a stopped instance":
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_AttachVolume.html; the
    wording follows the detach's, below)."""
    return SandboxError(
        "IncorrectInstanceState",
        f"Unable to attach volume '{volume_id}' with Marketplace codes to instance "
        f"'{instance_id}' as the instance is not in the 'stopped' state.",
    )


def marketplace_detach(volume_id: str, instance_id: str) -> SandboxError:
    """DetachVolume of a Marketplace root volume while not stopped (StarCluster issue #238)."""
    return SandboxError(
        "IncorrectInstanceState",
        f"Unable to detach volume '{volume_id}' with Marketplace codes from instance "
        f"'{instance_id}' as the instance is not in the 'stopped' state.",
    )


# ---- SSM -----------------------------------------------------------------------


def ssm_invalid_instance(instance_ids: list[str], account_id: str) -> SandboxError:
    """SendCommand to a terminated/unknown node (SSM API reference: InvalidInstanceId)."""
    listed = ", ".join(instance_ids)
    return SandboxError(
        "InvalidInstanceId",
        f"Instances [[{listed}]] not in a valid state for account {account_id}",
    )


def ssm_unsupported_platform(document: str) -> SandboxError:
    """SendCommand of a document for another OS (SSM API: UnsupportedPlatformType)."""
    return SandboxError(
        "UnsupportedPlatformType",
        f"The document {document} does not support the platform type of the target instance.",
    )


# ---- WorkSpaces ------------------------------------------------------------------


def workspace_bad_state(workspace_id: str, state: str) -> SandboxError:
    """RestoreWorkspace from a state it does not allow.

    The code is one RestoreWorkspace declares in AWS's API model; the text is an
    approximation.
    """
    return SandboxError(
        "OperationNotSupportedException",
        f"The WorkSpace {workspace_id} cannot be restored while it is {state}.",
    )


def workspace_not_found(workspace_id: str) -> SandboxError:
    return SandboxError(
        "ResourceNotFoundException", f"The WorkSpace {workspace_id} could not be found."
    )


def too_many_requests(field_name: str, count: int, limit: int) -> SandboxError:
    """More ids in one call than the API takes (AWS's validation error format)."""
    return SandboxError(
        "ValidationException",
        f"1 validation error detected: Value with {count} elements at '{field_name}' "
        f"failed to satisfy constraint: Member must have length less than or equal to {limit}",
    )


# ---- Step Functions ----------------------------------------------------------------


def not_redrivable_reason(status: str) -> str:
    """Why an execution in ``status`` cannot be redriven: AWS's documented
    ``redriveStatusReason`` strings (DescribeExecution API reference)."""
    return f"Execution is {status} and cannot be redriven"


def execution_not_redrivable(status: str) -> SandboxError:
    """RedriveExecution on a RUNNING or SUCCEEDED execution: the code is AWS's; the
    message reuses its documented ``redriveStatusReason`` (approximation)."""
    return SandboxError("ExecutionNotRedrivable", not_redrivable_reason(status))


# ---- capacity (remediate.sandbox.capacity) -----------------------------------------


def insufficient_capacity(instance_type: str, zone: str) -> SandboxError:
    """No capacity of the type left in the AZ: StartInstances, RunInstances,
    CreateCapacityReservation or a larger ModifyCapacityReservation (code: EC2 API
    "Error codes", InsufficientInstanceCapacity, which lists these four operations).
    The text is the wording EC2's answers are commonly seen with, where EC2 names the
    other AZs of the Region; that list is summarised here (approximation: no public AWS
    page quotes the message)."""
    return SandboxError(
        "InsufficientInstanceCapacity",
        f"We currently do not have sufficient {instance_type} capacity in the Availability "
        f"Zone you requested ({zone}). Our system will be working on provisioning "
        "additional capacity. You can currently get "
        f"{instance_type} capacity by not specifying an Availability Zone in your request "
        "or choosing other Availability Zones.")


def target_reservation_unusable(instance_id: str, reservation_id: str) -> SandboxError:
    """StartInstances on an instance that targets a cancelled (or unknown) Capacity
    Reservation: AWS documents that it "can no longer launch" ("Cancel a Capacity
    Reservation"); the code and text are an approximation."""
    return SandboxError(
        "InvalidParameterValue",
        f"The instance '{instance_id}' targets Capacity Reservation '{reservation_id}', "
        "which is not active. Modify the instance's Capacity Reservation settings.")


def reservation_not_found(reservation_id: str) -> SandboxError:
    """A Capacity Reservation id the account and Region do not have (EC2 API error codes:
    InvalidCapacityReservationId.NotFound; text an approximation)."""
    return SandboxError("InvalidCapacityReservationId.NotFound",
                        f"The capacity reservation ID '{reservation_id}' does not exist")


def reservation_not_active(reservation_id: str, state: str) -> SandboxError:
    """Cancel or modify a reservation that is not active ("Cancel a Capacity
    Reservation": only ``assessing`` or ``active`` ones can be; text an approximation)."""
    return SandboxError(
        "IncorrectState",
        f"The Capacity Reservation '{reservation_id}' is in the '{state}' state.")


def reservation_below_use(reservation_id: str, used: int) -> SandboxError:
    """ModifyCapacityReservation to fewer instances than run in it (approximation)."""
    return SandboxError(
        "InvalidParameterValue",
        f"The instance count for Capacity Reservation '{reservation_id}' cannot be less than "
        f"the {used} instances running in it.")


def instance_not_stopped_for_reservation(instance_id: str) -> SandboxError:
    """ModifyInstanceCapacityReservationAttributes on an instance that is not stopped: the
    API reference says it "modifies the Capacity Reservation settings for a stopped
    instance" (text as EC2's IncorrectInstanceState answers; approximation)."""
    return SandboxError(
        "IncorrectInstanceState",
        f"The instance '{instance_id}' is not in the 'stopped' state.")


# ---- throttling ------------------------------------------------------------------


def throttled(service: str) -> SandboxError:
    """EC2: RequestLimitExceeded; SSM and WorkSpaces: ThrottlingException."""
    if service == "ec2":
        return SandboxError("RequestLimitExceeded", "Request limit exceeded.")
    return SandboxError("ThrottlingException", "Rate exceeded")


def internal_error() -> SandboxError:
    """A 500 (EC2's error-codes page: "An internal error has occurred. Retry your
    request, but if the problem persists, contact us with details...")."""
    return SandboxError("InternalError", "An internal error has occurred. Retry your request, "
                        "but if the problem persists, contact us with details by posting a "
                        "message on AWS re:Post.")


# ---- IAM (Sandbox.enforce_policy) -----------------------------------------------------

SANDBOX_PRINCIPAL = "arn:aws:iam::123456789012:user/remediate"


def not_authorized(service: str, action: str, resource: str, *,
                   explicit: bool = False) -> SandboxError:
    """A request the caller's policy does not allow (``explicit``: a Deny statement
    applies). EC2: UnauthorizedOperation ("You are not authorized to perform this
    operation.", EC2 API error codes, followed by the reason); other services:
    AccessDeniedException with IAM's reason, "User: ... is not authorized to perform:
    ACTION on resource: ARN because no identity-based policy allows the ACTION action" or
    "... with an explicit deny in an identity-based policy" (IAM User Guide, "Troubleshoot
    access denied error messages")."""
    because = ("with an explicit deny in an identity-based policy" if explicit
               else f"because no identity-based policy allows the {action} action")
    why = (f"User: {SANDBOX_PRINCIPAL} is not authorized to perform: {action} on resource: "
           f"{resource} {because}")
    if service == "ec2":
        return SandboxError("UnauthorizedOperation",
                            f"You are not authorized to perform this operation. {why}")
    return SandboxError("AccessDeniedException", why)


def idempotent_parameter_mismatch() -> SandboxError:
    """A client token used again with other parameters (AWS's text, as RunInstances
    answers it; "Ensuring idempotency in Amazon EC2 API requests")."""
    return SandboxError("IdempotentParameterMismatch",
                        "Arguments on this idempotent request are inconsistent with arguments "
                        "used in previous request(s).")
