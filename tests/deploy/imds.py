"""An EC2 instance-metadata service (IMDSv2 only) for sandboxed hosts, each answered by its source address.

    with InstanceMetadataService("10.200.0.1") as imds:
        imds.register("10.200.0.11", "i-0web1", "pronostico-web-role", lambda: web_credentials)
        # in the sandbox: AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.endpoint

It serves what botocore's InstanceMetadataFetcher and IMDSRegionProvider read (and so boto3 and the AWS CLI):
a session token from PUT /latest/api/token, then the role name and its credentials, and the region through
the availability zone; plus the instance id, the identity document and iam/info, which scripts read. As on an
instance launched with HttpTokens: required, a GET without a valid token is refused with 401. A token is good
only from the address it was issued to, since every sandboxed host shares this one server.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol

TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
MAX_TOKEN_TTL = 21600
DEFAULT_ACCOUNT = "123456789012"  # moto's default account


class Credentials(Protocol):
    @property
    def access_key_id(self) -> str: ...

    @property
    def secret_access_key(self) -> str: ...

    @property
    def session_token(self) -> str: ...


@dataclass(frozen=True)
class StaticCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: dt.datetime | None = None


@dataclass(frozen=True)
class Instance:
    instance_id: str
    role_name: str
    credentials: Callable[[], Credentials]
    region: str
    account_id: str
    private_ip: str
    instance_type: str
    image_id: str
    launched: dt.datetime

    @property
    def availability_zone(self) -> str:
        return f"{self.region}a"

    @property
    def instance_profile_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:instance-profile/{self.role_name}"


def timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def credentials_document(instance: Instance) -> dict[str, str]:
    credentials = instance.credentials()
    now = dt.datetime.now(dt.UTC)
    # botocore refreshes ahead of Expiration; an hour keeps it from refreshing on every call.
    expiration = getattr(credentials, "expiration", None) or now + dt.timedelta(hours=1)
    return {"Code": "Success", "LastUpdated": timestamp(now), "Type": "AWS-HMAC",
            "AccessKeyId": credentials.access_key_id, "SecretAccessKey": credentials.secret_access_key,
            "Token": credentials.session_token, "Expiration": timestamp(expiration)}


def identity_document(instance: Instance) -> dict[str, Any]:
    return {"accountId": instance.account_id, "architecture": "x86_64",
            "availabilityZone": instance.availability_zone, "billingProducts": None, "devpayProductCodes": None,
            "marketplaceProductCodes": None, "imageId": instance.image_id, "instanceId": instance.instance_id,
            "instanceType": instance.instance_type, "kernelId": None, "pendingTime": timestamp(instance.launched),
            "privateIp": instance.private_ip, "ramdiskId": None, "region": instance.region, "version": "2017-09-30"}


def iam_info(instance: Instance) -> dict[str, str]:
    return {"Code": "Success", "LastUpdated": timestamp(instance.launched),
            "InstanceProfileArn": instance.instance_profile_arn,
            "InstanceProfileId": "AIPA" + hashlib.sha1(instance.role_name.encode()).hexdigest()[:17].upper()}


def metadata(instance: Instance, path: str) -> tuple[str, str] | None:
    """(content type, body) of a metadata path, with its trailing slash removed; None when there is none."""
    credentials_prefix = "latest/meta-data/iam/security-credentials"
    text = {
        "latest/meta-data/instance-id": instance.instance_id,
        "latest/meta-data/instance-type": instance.instance_type,
        "latest/meta-data/ami-id": instance.image_id,
        "latest/meta-data/local-ipv4": instance.private_ip,
        "latest/meta-data/placement/region": instance.region,
        "latest/meta-data/placement/availability-zone": instance.availability_zone,
        credentials_prefix: instance.role_name,
    }
    if path in text:
        return "text/plain", text[path]
    documents: dict[str, Callable[[Instance], dict[str, Any]]] = {
        f"{credentials_prefix}/{instance.role_name}": credentials_document,
        "latest/meta-data/iam/info": iam_info,
        "latest/dynamic/instance-identity/document": identity_document,
    }
    if path in documents:
        return "application/json", json.dumps(documents[path](instance), indent=2)
    return None


class InstanceMetadataService:
    def __init__(self, host: str, *, region: str = "us-east-1", account_id: str = DEFAULT_ACCOUNT) -> None:
        self.host = host
        self.region = region
        self.account_id = account_id
        self.requests: list[tuple[str, str, str, int]] = []  # (client address, method, path, status)
        self._instances: dict[str, Instance] = {}
        self._tokens: dict[str, tuple[str, float]] = {}  # token -> (client address, monotonic expiry)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """The value for AWS_EC2_METADATA_SERVICE_ENDPOINT."""
        if self._server is None:
            raise RuntimeError("the metadata service is not running: call start() first")
        return f"http://{self.host}:{self._server.server_address[1]}/"

    def register(self, client_ip: str, instance_id: str, role_name: str, credentials: Callable[[], Credentials],
                 *, region: str | None = None, instance_type: str = "t3.small",
                 image_id: str = "ami-0123456789abcdef0") -> None:
        instance = Instance(instance_id, role_name, credentials, region or self.region, self.account_id,
                            client_ip, instance_type, image_id, dt.datetime.now(dt.UTC))
        with self._lock:
            self._instances[client_ip] = instance

    def instance_at(self, client_ip: str) -> Instance | None:
        with self._lock:
            return self._instances.get(client_ip)

    def issue_token(self, client_ip: str, ttl: int) -> str:
        token = secrets.token_urlsafe(42)
        with self._lock:
            self._tokens[token] = (client_ip, time.monotonic() + ttl)
        return token

    def token_valid(self, token: str, client_ip: str) -> bool:
        with self._lock:
            issued = self._tokens.get(token)
        return issued is not None and issued[0] == client_ip and time.monotonic() < issued[1]

    def record(self, client_ip: str, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append((client_ip, method, path, status))

    def start(self) -> InstanceMetadataService:
        self._server = ThreadingHTTPServer((self.host, 0), handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="imds", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> InstanceMetadataService:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def handler_for(service: InstanceMetadataService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # the SDKs keep connections open between the token and the GETs

        def do_PUT(self) -> None:
            self._drain()
            if self.path.split("?")[0].strip("/") != "latest/api/token":
                self._answer(405 if self._instance() else 404, "text/plain", "")
                return
            if self._instance() is None:
                self._answer(404, "text/plain", "")
                return
            # A proxied request carries X-Forwarded-For; IMDS refuses to issue it a token.
            if self.headers.get("X-Forwarded-For"):
                self._answer(403, "text/plain", "")
                return
            ttl = self.headers.get(TOKEN_TTL_HEADER, "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= MAX_TOKEN_TTL:
                self._answer(400, "text/plain", "")
                return
            token = service.issue_token(self.client_address[0], int(ttl))
            self._answer(200, "text/plain", token, {TOKEN_TTL_HEADER: ttl})

        def do_GET(self) -> None:
            instance = self._instance()
            if instance is None:
                self._answer(404, "text/plain", "")
                return
            path = self.path.split("?")[0].strip("/")
            if path == "latest/api/token":
                self._answer(405, "text/plain", "")
                return
            if not service.token_valid(self.headers.get(TOKEN_HEADER, ""), self.client_address[0]):
                self._answer(401, "text/plain", "")
                return
            found = metadata(instance, path)
            if found is None:
                self._answer(404, "text/plain", "")
                return
            self._answer(200, *found)

        def _instance(self) -> Instance | None:
            return service.instance_at(self.client_address[0])

        def _drain(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)

        def _answer(self, status: int, content_type: str, body: str, headers: dict[str, str] | None = None) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            service.record(self.client_address[0], self.command, self.path, status)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
