"""An AWS stand-in that enforces IAM as AWS does: moto in server mode, in this process, behind a WSGI middleware
that judges every request (after `enforce()`) by its action, resource ARN and context keys with a real IAM policy
simulator (tests/deploy/iam_simulator.py), against the policies moto's IAM holds for the caller's role.

moto's own enforcement cannot do this: for every service but S3, SQS, IAM and STS it judges against `*`, so it
refuses every Allow scoped to an ARN. Components reach the stand-in through AWS_ENDPOINT_URL only.

Resource policies: the trust policy (AssumeRole), the KMS key policy, the secret's policy, the bucket policy and
the queue policy are all kept by moto, and each is given to the simulator with the requests on its resource.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from xml.sax.saxutils import escape

import boto3
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.sts.models import sts_backends
from werkzeug.serving import BaseWSGIServer, make_server

from tests.deploy.iam_simulator import Decision, Simulator
from tests.deploy.standin_permissions import IMPLIED_PERMISSIONS, MotoView, Need, needs, parse_document
from tests.deploy.standin_requests import AwsRequest, read_request

ADMIN_USER = "rehearsal-admin"
ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"
# Services that say on whose behalf they assume a role (the confused-deputy keys of their trust policies).
SOURCE_ACCOUNT_SERVICES = {"elasticmapreduce.amazonaws.com"}
SUMMARY_HEADER = ["principal", "calls made", "refused"]

__all__ = [
    "IMPLIED_PERMISSIONS",
    "SUMMARY_HEADER",
    "AccessRefused",
    "AwsStandIn",
    "Credentials",
    "Refusal",
    "Signal",
    "Tally",
]


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str = ""

    def env(self) -> dict[str, str]:
        values = {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}
        if self.session_token:
            values["AWS_SESSION_TOKEN"] = self.session_token
        return values


@dataclass(frozen=True)
class Refusal:
    principal: str
    action: str
    resource: str
    context: dict[str, Any]
    message: str = ""
    implied: bool = False


@dataclass(frozen=True)
class Signal:
    principal: str
    stack: str
    logical_id: str
    unique_id: str
    status: str
    stack_arn: str = ""


@dataclass
class Tally:
    made: int = 0
    refused: int = 0


@dataclass(frozen=True)
class Principal:
    arn: str  # the role or user: what calls are counted under
    session_arn: str  # the caller the simulator sees (an assumed-role session for a role)
    account: str
    kind: str  # AssumedRole | User


class AccessRefused(PermissionError):
    pass


class _QuietHandler(MotoRequestHandler):
    # One line per request on stderr would bury a failing test's own output.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@dataclass
class _Outcome:
    refusal: Refusal | None = None
    code: str = "AccessDenied"
    needs: list[Need] = field(default_factory=list)


class AwsStandIn:
    """moto in server mode on a free port of `host`, judging every request once `enforce()` is called."""

    def __init__(self, host: str = "127.0.0.1", region: str = "us-east-1") -> None:
        self.host = host
        self.region = region
        self.endpoint = ""
        self.admin = Credentials("", "")
        self.calls: dict[str, dict[str, Tally]] = defaultdict(lambda: defaultdict(Tally))
        self.checks: dict[str, dict[str, Tally]] = defaultdict(lambda: defaultdict(Tally))
        self.refusals: list[Refusal] = []
        self.signals: list[Signal] = []
        self._enforcing = False
        self._keys: dict[str, Principal] = {}
        self._policies: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._simulator: Simulator | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._moto: DomainDispatcherApplication | None = None
        self._saved_env: str | None = None

    # --- life ---

    def __enter__(self) -> AwsStandIn:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        # moto ships AWS's managed policies (AdministratorAccess, AmazonSSMManagedInstanceCore, ...) but loads them
        # only when asked, and only into IAM backends made after the asking: hence the reset.
        self._saved_env = os.environ.get("MOTO_IAM_LOAD_MANAGED_POLICIES")
        os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
        moto_api_backend.reset()
        self._simulator = Simulator()
        try:
            self._serve()
            self._make_admin()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._simulator is not None:
            self._simulator.close()
            self._simulator = None
        if self._saved_env is None:
            os.environ.pop("MOTO_IAM_LOAD_MANAGED_POLICIES", None)
        else:
            os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = self._saved_env

    def _serve(self) -> None:
        self._moto = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(self.host, 0, self._app, threaded=True, request_handler=_QuietHandler)
        self.endpoint = f"http://{self.host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="aws-standin", daemon=True)
        self._thread.start()

    def _make_admin(self) -> None:
        iam = self.client("iam", Credentials("setup", "setup"))
        user = iam.create_user(UserName=ADMIN_USER)["User"]
        iam.attach_user_policy(UserName=ADMIN_USER, PolicyArn=ADMIN_POLICY)
        key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
        self.admin = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
        self._keys[key["AccessKeyId"]] = Principal(user["Arn"], user["Arn"], DEFAULT_ACCOUNT_ID, "User")

    # --- the API the rehearsal uses ---

    def client(self, service: str, credentials: Credentials | None = None) -> Any:
        credentials = credentials or self.admin
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token or None,
        )

    def assume(
        self, role_arn: str, service: str, session_name: str, context: dict[str, Any] | None = None
    ) -> Credentials:
        """AssumeRole as the service principal: the role's trust policy is judged first, then moto's STS."""
        account = role_arn.split(":")[4] or DEFAULT_ACCOUNT_ID
        view = MotoView(account, self.region)
        role = view.role(role_arn)
        if role is None:
            raise AccessRefused(f"{service} cannot assume {role_arn}: no such role")
        request_context: dict[str, Any] = {"aws:PrincipalServiceName": service, "aws:SecureTransport": True}
        if service in SOURCE_ACCOUNT_SERVICES:
            request_context["aws:SourceAccount"] = account
        request_context.update(context or {})
        trust = parse_document(role.assume_role_policy_document)
        decision = self._sim().judge(service, "sts:AssumeRole", role_arn, account, request_context, {}, trust)
        self._tally(self.calls, service, "sts:AssumeRole", decision.allowed)
        if not decision.allowed:
            message = f"{service} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
            self._refuse(Refusal(service, "sts:AssumeRole", role_arn, request_context, message))
            raise AccessRefused(f"{message} ({decision.result}: the role's trust policy does not name {service})")
        session = sts_backends[account]["aws"].assume_role(
            region_name=self.region,
            role_session_name=session_name,
            role_arn=role_arn,
            policy="",
            duration=3600,
            external_id="",
        )
        with self._lock:
            self._keys[session.access_key_id] = Principal(role_arn, session.arn, account, "AssumedRole")
        return Credentials(session.access_key_id, session.secret_access_key, session.session_token)

    def enforce(self) -> None:
        """From now on every request is judged, against the policies moto's IAM holds now."""
        with self._lock:
            self._policies.clear()
            for principal in self._keys.values():
                self._policies[principal.arn] = self._read_policies(principal)
            self._enforcing = True

    def check(self, principal_arn: str, action: str, resource: str, context: dict[str, Any] | None = None) -> bool:
        """Judge and record one permission AWS checks beyond a called action (see IMPLIED_PERMISSIONS)."""
        principal = self._principal_for(principal_arn)
        need = Need(action, resource, dict(context or {}), implied=True)
        return self._judge_implied(principal, need, MotoView(principal.account, self.region)) is None

    def summary(self) -> list[list[str]]:
        """A table for docs/DEPLOY.md: the header, then one row per principal (calls made, refused)."""
        with self._lock:
            rows = [
                [principal, str(sum(t.made for t in actions.values())), str(sum(t.refused for t in actions.values()))]
                for principal, actions in sorted(self.calls.items())
            ]
        return [SUMMARY_HEADER, *rows]

    # --- the middleware ---

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self._moto is not None
        if environ.get("PATH_INFO", "").startswith("/moto-api"):
            return self._moto(environ, start_response)
        request = read_request(environ, self.host)
        if request.service == "cloudformation" and request.operation == "SignalResource":
            return self._signal(request, environ, start_response)
        if not self._enforcing:
            return self._moto(environ, start_response)
        outcome = self._judge_request(request)
        if outcome.refusal is not None:
            return _deny(request, outcome, environ, start_response)
        return self._moto(environ, start_response)

    def _judge_request(self, request: AwsRequest) -> _Outcome:
        principal = self._keys.get(request.access_key or "")
        action = request.action or f"{request.service or '?'}:{request.method} {request.path}"
        if principal is None:
            message = f"The security token included in the request is invalid (access key {request.access_key})"
            refusal = Refusal(f"unknown key {request.access_key}", action, "*", {}, message)
            self._refuse(refusal)
            return _Outcome(refusal, "InvalidClientTokenId")
        view = MotoView(principal.account, request.region)
        needed = needs(request, view)
        if not needed:
            message = f"the stand-in cannot name the IAM action of {request.method} {request.path} ({principal.arn})"
            refusal = Refusal(principal.arn, action, "*", {}, message)
            self._tally(self.calls, principal.arn, action, False)
            self._refuse(refusal)
            return _Outcome(refusal)
        refusal = self._judge_call(principal, [need for need in needed if not need.implied], view)
        if refusal is None:
            refusal = next(
                (r for need in needed if need.implied and (r := self._judge_implied(principal, need, view))), None
            )
        assert request.action is not None
        self._tally(self.calls, principal.arn, request.action, refusal is None)
        return _Outcome(refusal, needs=needed)

    def _judge_call(self, principal: Principal, called: list[Need], view: MotoView) -> Refusal | None:
        for need in called:
            context, decision = self._decide(principal, need, view)
            if not decision.allowed:
                refusal = Refusal(
                    principal.arn, need.action, need.resource, context, _message(principal, need, decision)
                )
                self._refuse(refusal)
                return refusal
        return None

    def _judge_implied(self, principal: Principal, need: Need, view: MotoView) -> Refusal | None:
        context, decision = self._decide(principal, need, view)
        self._tally(self.checks, principal.arn, need.action, decision.allowed)
        if decision.allowed:
            return None
        message = _message(principal, need, decision)
        refusal = Refusal(principal.arn, need.action, need.resource, context, message, implied=True)
        self._refuse(refusal)
        return refusal

    def _decide(self, principal: Principal, need: Need, view: MotoView) -> tuple[dict[str, Any], Decision]:
        context = self._global_context(principal, view.region)
        context.update(need.context)
        resource_policy = view.resource_policy(need.action, need.resource)
        decision = self._sim().judge(
            principal.session_arn,
            need.action,
            need.resource,
            principal.account,
            context,
            self._policies_of(principal),
            resource_policy,
        )
        return context, decision

    def _signal(self, request: AwsRequest, environ: dict[str, Any], start_response: Any) -> Any:
        principal = self._keys.get(request.access_key or "")
        account = principal.account if principal else DEFAULT_ACCOUNT_ID
        stack = request.param("StackName") or ""
        stack_arn = MotoView(account, request.region).stack_arn(stack)
        if self._enforcing:
            outcome = self._judge_request(request)
            if outcome.refusal is not None:
                return _deny(request, outcome, environ, start_response)
        name = principal.arn if principal else f"unknown key {request.access_key}"
        signal = Signal(
            name,
            stack,
            request.param("LogicalResourceId") or "",
            request.param("UniqueId") or "",
            request.param("Status") or "",
            stack_arn,
        )
        with self._lock:
            self.signals.append(signal)
        body = (
            '<SignalResourceResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">'
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></SignalResourceResponse>"
        )
        return _respond(start_response, 200, "text/xml", body, {})

    # --- principals and their policies ---

    def _sim(self) -> Simulator:
        if self._simulator is None:
            raise RuntimeError("the AWS stand-in is not started")
        return self._simulator

    def _principal_for(self, arn: str) -> Principal:
        with self._lock:
            known = next((p for p in self._keys.values() if p.arn == arn), None)
        if known is not None:
            return known
        account = arn.split(":")[4]
        if ":role/" in arn:
            session = f"arn:aws:sts::{account}:assumed-role/{arn.rsplit('/', 1)[-1]}/rehearsal"
            return Principal(arn, session, account, "AssumedRole")
        return Principal(arn, arn, account, "User")

    def _policies_of(self, principal: Principal) -> dict[str, Any]:
        with self._lock:
            cached = self._policies.get(principal.arn)
        if cached is None:
            cached = self._read_policies(principal)
            with self._lock:
                self._policies[principal.arn] = cached
        return cached

    def _read_policies(self, principal: Principal) -> dict[str, Any]:
        """Inline and attached managed policies (and, for a user, its groups'), as moto's IAM holds them."""
        view = MotoView(principal.account, self.region)
        holders: list[Any] = []
        if principal.kind == "AssumedRole":
            role = view.role(principal.arn)
            holders = [role] if role else []
        else:
            user = next((u for u in list(view.iam.users.values()) if u.arn == principal.arn), None)
            if user is not None:
                holders = [user, *view.iam.get_groups_for_user(user.name)]
        policies: dict[str, Any] = {}
        for holder in holders:
            for name, document in holder.policies.items():
                policies[f"{holder.name}/{name}"] = parse_document(document)
            for arn, managed in holder.managed_policies.items():
                version = next((v for v in managed.versions if v.is_default), managed.versions[-1])
                policies[arn] = parse_document(version.document)
        return policies

    def _global_context(self, principal: Principal, region: str) -> dict[str, Any]:
        now = datetime.now(UTC)
        context: dict[str, Any] = {
            # The SDK speaks TLS to real AWS; here it speaks plain HTTP to loopback.
            "aws:SecureTransport": True,
            "aws:PrincipalArn": principal.arn,
            "aws:PrincipalAccount": principal.account,
            "aws:PrincipalType": principal.kind,
            "aws:RequestedRegion": region,
            "aws:CurrentTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "aws:EpochTime": str(int(time.time())),
            "aws:ViaAWSService": False,
        }
        if principal.kind == "User":
            context["aws:username"] = principal.arn.rsplit("/", 1)[-1]
        return context

    # --- records ---

    def _tally(self, table: dict[str, dict[str, Tally]], principal: str, action: str, allowed: bool) -> None:
        with self._lock:
            tally = table[principal][action]
            tally.made += 1
            tally.refused += 0 if allowed else 1

    def _refuse(self, refusal: Refusal) -> None:
        with self._lock:
            self.refusals.append(refusal)


def _message(principal: Principal, need: Need, decision: Decision) -> str:
    if decision.result == "ExplicitlyDenied":
        why = "with an explicit deny"
    elif decision.result == "Error":
        errors = decision.errors.get("message") if isinstance(decision.errors, dict) else decision.errors
        why = f"because the simulator rejected the request: {errors}"
    else:
        why = f"because no policy allows the {need.action} action"
    return (
        f"User: {principal.session_arn} is not authorized to perform: {need.action} on resource: {need.resource} "
        f"{why} (role {principal.arn})"
    )


JSON_CODES = {"AccessDenied": "AccessDeniedException", "InvalidClientTokenId": "UnrecognizedClientException"}


def _deny(request: AwsRequest, outcome: _Outcome, environ: dict[str, Any], start_response: Any) -> Any:
    """An AWS-shaped refusal for the request's protocol, so that the SDK raises ClientError."""
    assert outcome.refusal is not None
    _drain(environ)
    message, code, request_id = outcome.refusal.message, outcome.code, str(uuid.uuid4())
    headers = {"x-amzn-RequestId": request_id, "Connection": "close"}
    if request.protocol in ("json", "rest-json"):
        json_code = JSON_CODES.get(code, code)
        headers["x-amzn-ErrorType"] = json_code
        if request.service == "sqs":
            headers["x-amzn-query-error"] = f"{code};Sender"
        body = json.dumps({"__type": json_code, "message": message, "Message": message})
        return _respond(
            start_response, 400 if request.protocol == "json" else 403, "application/x-amz-json-1.1", body, headers
        )
    if request.protocol == "rest-xml":
        code = "InvalidAccessKeyId" if code == "InvalidClientTokenId" else code
        body = (
            ""
            if request.method == "HEAD"
            else (
                '<?xml version="1.0" encoding="UTF-8"?>'
                f"<Error><Code>{code}</Code><Message>{escape(message)}</Message><RequestId>{request_id}</RequestId></Error>"
            )
        )
        return _respond(start_response, 403, "application/xml", body, headers)
    if request.service == "ec2":
        code = "UnauthorizedOperation" if code == "AccessDenied" else "AuthFailure"
        body = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{escape(message)}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
        return _respond(start_response, 403, "text/xml", body, headers)
    body = (
        "<ErrorResponse><Error><Type>Sender</Type>"
        f"<Code>{code}</Code><Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return _respond(start_response, 403, "text/xml", body, headers)


def _drain(environ: dict[str, Any]) -> None:
    # An unread body would be taken for the next request on a kept-alive connection.
    stream, length = environ.get("wsgi.input"), environ.get("CONTENT_LENGTH") or ""
    if stream is not None and length.isdigit():
        remaining = int(length)
        while remaining > 0:
            chunk = stream.read(min(remaining, 1 << 16))
            if not chunk:
                break
            remaining -= len(chunk)


def _respond(start_response: Any, status: int, content_type: str, body: str, headers: dict[str, str]) -> list[bytes]:
    payload = body.encode()
    reasons = {200: "OK", 400: "Bad Request", 403: "Forbidden"}
    start_response(
        f"{status} {reasons[status]}",
        [("Content-Type", content_type), ("Content-Length", str(len(payload))), *headers.items()],
    )
    return [payload]
