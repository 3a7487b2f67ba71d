"""The hook where moto dispatches every request (in-process and server mode).

Patches ``BaseResponse.call_action`` so each request first applies due state
changes, is logged, and may be throttled before moto's handler runs. Requests
are serialized under the world's lock: moto's backends are not thread-safe.

A mutating call may also *take effect and lose its reply* (``Sandbox.lose_replies``):
moto handles it, then the client gets a 500 ``InternalError`` instead of the answer,
as AWS may answer during a large event.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable
from dataclasses import replace

from moto.core.common_types import TYPE_RESPONSE
from moto.core.responses import ActionResult, BaseResponse

from remediate.sandbox import ec2_dry_run, errors, policy_check
from remediate.sandbox.patcher import Patcher
from remediate.sandbox.state import ApiCall, World, maybe_current


def _error(response: BaseResponse, error: errors.SandboxError) -> TYPE_RESPONSE:
    """``error`` serialized as the service's protocol has it."""
    with warnings.catch_warnings():
        # Models don't declare every error shape (WorkSpaces has no
        # ThrottlingException); AWS sends them anyway.
        warnings.simplefilter("ignore", UserWarning)
        status, headers, body = response.serialized(ActionResult(error))
    # AWS's JSON protocols (SSM, WorkSpaces) carry the request id in a header
    # (the query protocol, in the body); moto's Step Functions interpreter
    # fails on an error without one (States.Runtime, KeyError('RequestId')).
    headers.setdefault("x-amzn-RequestId", str(uuid.uuid4()))
    return status, headers, body


def _idempotent(world: World, response: BaseResponse,
                handle: Callable[[BaseResponse], TYPE_RESPONSE]) -> TYPE_RESPONSE:
    """An EC2 request with a client token: the first answer again for a repeat, else
    handled and its answer kept (:mod:`remediate.sandbox.idempotency`)."""
    key = world.tokens.key(response.current_account, response.region,
                           response._get_action(), response.querystring)
    if key is None:
        return handle(response)
    try:
        replayed = world.tokens.replay(key, response.querystring)
    except errors.SandboxError as exc:
        return _error(response, exc)
    if replayed is not None:
        return replayed
    answer = handle(response)
    world.tokens.remember(key, response.querystring, answer)
    return answer


def install(patcher: Patcher) -> None:
    original = BaseResponse.call_action

    def call_action(self: BaseResponse) -> TYPE_RESPONSE:
        world = maybe_current()
        if world is None:
            return original(self)
        service = self.service_name or ""
        operation = self._get_action() or ""
        with world.lock:
            now = world.clock.now()
            world.timeline.run_due(now)
            admitted = world.throttle is None or world.throttle.admit(
                service, operation, self.region, self.querystring, now, self.current_account
            )
            dry_run = service == "ec2" and self.querystring.get("DryRun") == ["true"]
            call = ApiCall(service, operation, not admitted, now, dry_run,
                           request=self.body if isinstance(self.body, str) and self.body
                           else self.querystring)
            world.calls.append(call)
            fault = world.take_fault(operation) if admitted else None
            denial = (policy_check.denial(world, self, service, operation, dry_run)
                      if admitted and fault is None and world.policy is not None else None)
            if not admitted or fault is not None or denial is not None or dry_run:
                # Like AWS: throttling, then the permission check (the enforced policy;
                # faults inject denials), then a DryRun request is validated and stops
                # before any rule or state change.
                return _error(self, errors.throttled(service) if not admitted
                              else errors.SandboxError(*fault) if fault is not None
                              else denial if denial is not None
                              else ec2_dry_run.refusal(service, operation, self)
                              or errors.dry_run_operation())
            lose = call.mutating and world.loses_reply(operation)
            index = len(world.calls) - 1
            response = (_idempotent(world, self, original) if service == "ec2"
                        else original(self))
            if lose and 200 <= int(response[0]) < 300:
                # It took effect; the caller never learns so.
                world.calls[index] = replace(call, reply_lost=True)
                _status, headers, body = _error(self, errors.internal_error())
                return 500, headers, body
            return response

    patcher.set(BaseResponse, "call_action", call_action)
