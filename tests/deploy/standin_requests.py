"""Read an AWS SDK request off a WSGI environ: who signed it, for which service, and which operation it calls.

The SDK speaks four wire protocols: JSON (the operation in X-Amz-Target), query (Action= in the query or the
form body), S3's REST-XML (the operation is the method, the path and the sub-resource in the query) and
REST-JSON (method and path, e.g. Lambda). The body is read once and put back for moto.
"""

from __future__ import annotations

import html
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

# SigV4 signing names whose IAM service prefix differs.
IAM_PREFIX = {"monitoring": "cloudwatch", "email": "ses", "execute-api": "execute-api"}

CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")

# S3 sub-resources of a bucket: query key -> IAM action for (GET, PUT, DELETE).
S3_BUCKET_SUBRESOURCES: dict[str, tuple[str | None, str | None, str | None]] = {
    "location": ("GetBucketLocation", None, None),
    "policy": ("GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy"),
    "policyStatus": ("GetBucketPolicyStatus", None, None),
    "tagging": ("GetBucketTagging", "PutBucketTagging", "PutBucketTagging"),
    "notification": ("GetBucketNotification", "PutBucketNotification", None),
    "encryption": ("GetEncryptionConfiguration", "PutEncryptionConfiguration", "PutEncryptionConfiguration"),
    "versioning": ("GetBucketVersioning", "PutBucketVersioning", None),
    "acl": ("GetBucketAcl", "PutBucketAcl", None),
    "cors": ("GetBucketCORS", "PutBucketCORS", "PutBucketCORS"),
    "lifecycle": ("GetLifecycleConfiguration", "PutLifecycleConfiguration", "PutLifecycleConfiguration"),
    "publicAccessBlock": ("GetBucketPublicAccessBlock", "PutBucketPublicAccessBlock", "PutBucketPublicAccessBlock"),
    "ownershipControls": ("GetBucketOwnershipControls", "PutBucketOwnershipControls", "PutBucketOwnershipControls"),
    "logging": ("GetBucketLogging", "PutBucketLogging", None),
    "website": ("GetBucketWebsite", "PutBucketWebsite", "DeleteBucketWebsite"),
    "object-lock": ("GetBucketObjectLockConfiguration", "PutBucketObjectLockConfiguration", None),
    "replication": ("GetReplicationConfiguration", "PutReplicationConfiguration", "PutReplicationConfiguration"),
    "accelerate": ("GetAccelerateConfiguration", "PutAccelerateConfiguration", None),
    "requestPayment": ("GetBucketRequestPayment", "PutBucketRequestPayment", None),
    "uploads": ("ListBucketMultipartUploads", None, None),
    "versions": ("ListBucketVersions", None, None),
}

# S3 sub-resources of an object: query key -> IAM action for (GET, PUT, DELETE).
S3_OBJECT_SUBRESOURCES: dict[str, tuple[str | None, str | None, str | None]] = {
    "tagging": ("GetObjectTagging", "PutObjectTagging", "DeleteObjectTagging"),
    "acl": ("GetObjectAcl", "PutObjectAcl", None),
    "retention": ("GetObjectRetention", "PutObjectRetention", None),
    "legal-hold": ("GetObjectLegalHold", "PutObjectLegalHold", None),
    "attributes": ("GetObjectAttributes", None, None),
}

# REST-JSON paths the rehearsal and the guide's commands call: service -> [(method, pattern, operation)]; the
# pattern's named groups become request parameters.
REST_JSON_ROUTES: dict[str, list[tuple[str, re.Pattern[str], str]]] = {
    "lambda": [
        ("POST", re.compile(r"^/2015-03-31/functions/(?P<FunctionName>[^/]+)/invocations$"), "InvokeFunction"),
        (
            "GET",
            re.compile(r"^/2015-03-31/functions/(?P<FunctionName>[^/]+)/configuration$"),
            "GetFunctionConfiguration",
        ),
        ("GET", re.compile(r"^/2015-03-31/functions/(?P<FunctionName>[^/]+)$"), "GetFunction"),
        ("GET", re.compile(r"^/2015-03-31/functions/?$"), "ListFunctions"),
    ],
    "quicksight": [
        ("GET", re.compile(r"^/accounts/(?P<AwsAccountId>\d+)/namespaces/(?P<Namespace>[^/]+)/users/?$"), "ListUsers"),
    ],
}


@dataclass
class AwsRequest:
    """One SDK request, as far as authorisation needs it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    access_key: str | None = None
    region: str = "us-east-1"
    signing_name: str = ""
    protocol: str = "rest-json"  # json | query | rest-xml | rest-json
    operation: str | None = None  # the API operation (for S3: the IAM action it needs)
    params: dict[str, Any] = field(default_factory=dict)
    bucket: str | None = None
    key: str | None = None

    @property
    def service(self) -> str:
        """The IAM service prefix (s3, elasticmapreduce, cloudwatch, ...)."""
        return IAM_PREFIX.get(self.signing_name, self.signing_name)

    @property
    def action(self) -> str | None:
        return f"{self.service}:{self.operation}" if self.operation else None

    def param(self, name: str) -> Any:
        return self.params.get(name)


def read_request(environ: dict[str, Any], endpoint_host: str, with_body: bool = True) -> AwsRequest:
    """Parse the environ; the body is read (and put back) unless it is an S3 object's payload."""
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    request = AwsRequest(
        method=environ.get("REQUEST_METHOD", "GET").upper(),
        path=_utf8(environ.get("PATH_INFO", "") or "/"),
        query=query,
        headers=headers,
        body=b"",
    )
    _read_signature(request)
    if request.signing_name != "s3" or _s3_needs_body(request):
        request.body = _buffer_body(environ) if with_body else b""
    _read_operation(request, endpoint_host)
    return request


def _utf8(wsgi_text: str) -> str:
    # WSGI hands the path over as latin-1 text of the raw bytes.
    try:
        return wsgi_text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return wsgi_text


def _read_signature(request: AwsRequest) -> None:
    source = request.headers.get("authorization", "")
    if not source and "X-Amz-Credential" in request.query:
        source = "Credential=" + request.query["X-Amz-Credential"][0]
    match = CREDENTIAL.search(source)
    if match:
        request.access_key, request.region, request.signing_name = match.group(1), match.group(2), match.group(3)


def _s3_needs_body(request: AwsRequest) -> bool:
    return request.method == "POST" and "delete" in request.query


def _buffer_body(environ: dict[str, Any]) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = environ.get("CONTENT_LENGTH") or ""
    if length.isdigit():
        body = stream.read(int(length))
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def _read_operation(request: AwsRequest, endpoint_host: str) -> None:
    target = request.headers.get("x-amz-target")
    if target:
        request.protocol = "json"
        request.operation = target.rsplit(".", 1)[-1]
        request.params = _json(request.body)
        return
    if request.signing_name == "s3":
        request.protocol = "rest-xml"
        _read_s3(request, endpoint_host)
        return
    params = {key: values[0] for key, values in request.query.items()}
    if "form-urlencoded" in request.headers.get("content-type", "") and request.body:
        form = parse_qs(request.body.decode("utf-8"), keep_blank_values=True)
        params.update({key: values[0] for key, values in form.items()})
    if "Action" in params:
        request.protocol = "query"
        request.operation = params.pop("Action")
        params.pop("Version", None)
        request.params = params
        return
    request.protocol = "rest-json"
    request.params = _json(request.body)
    _read_rest_json(request)


def _json(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _read_rest_json(request: AwsRequest) -> None:
    for method, pattern, operation in REST_JSON_ROUTES.get(request.signing_name, []):
        match = pattern.match(request.path)
        if match and method == request.method:
            request.operation = operation
            for name, value in match.groupdict().items():
                request.params.setdefault(name, unquote(value))
            return


def _read_s3(request: AwsRequest, endpoint_host: str) -> None:
    host = request.headers.get("host", "").rsplit(":", 1)[0]
    parts = request.path.lstrip("/").split("/", 1)
    if host.endswith("." + endpoint_host) or (host.endswith(".localhost") and endpoint_host == "localhost"):
        # Virtual-hosted style: the bucket is the host's first label.
        request.bucket = host[: -len(endpoint_host) - 1]
        request.key = request.path.lstrip("/") or None
    else:
        request.bucket = parts[0] or None
        request.key = parts[1] if len(parts) > 1 and parts[1] else None
    request.operation = _s3_operation(request)


def _s3_operation(request: AwsRequest) -> str | None:
    method, query = request.method, request.query
    if request.bucket is None:
        return "ListAllMyBuckets" if method == "GET" else None
    if request.key is None:
        return _s3_bucket_operation(method, query)
    return _s3_object_operation(method, query, request.headers)


def _by_method(method: str, actions: tuple[str | None, str | None, str | None]) -> str | None:
    return {"GET": actions[0], "HEAD": actions[0], "PUT": actions[1], "DELETE": actions[2]}.get(method)


def _s3_bucket_operation(method: str, query: dict[str, list[str]]) -> str | None:
    for name, actions in S3_BUCKET_SUBRESOURCES.items():
        if name in query:
            return _by_method(method, actions)
    if method == "POST" and "delete" in query:
        return "DeleteObject"
    return {"GET": "ListBucket", "HEAD": "ListBucket", "PUT": "CreateBucket", "DELETE": "DeleteBucket"}.get(method)


def _s3_object_operation(method: str, query: dict[str, list[str]], headers: dict[str, str]) -> str | None:
    versioned = "versionId" in query
    for name, actions in S3_OBJECT_SUBRESOURCES.items():
        if name in query:
            action = _by_method(method, actions)
            if action and versioned and action.startswith(("GetObject", "PutObject", "DeleteObject")):
                action = action.replace("Object", "ObjectVersion", 1)
            return action
    if "uploadId" in query:
        return {"GET": "ListMultipartUploadParts", "PUT": "PutObject", "POST": "PutObject"}.get(
            method, "AbortMultipartUpload" if method == "DELETE" else None
        )
    if method == "POST":
        if "uploads" in query:
            return "PutObject"
        if "restore" in query:
            return "RestoreObject"
        if "select" in query:
            return "GetObject"
        return None
    if method in ("GET", "HEAD"):
        return "GetObjectVersion" if versioned else "GetObject"
    if method == "PUT":
        return "PutObject"
    if method == "DELETE":
        return "DeleteObjectVersion" if versioned else "DeleteObject"
    return None


def s3_copy_source(request: AwsRequest) -> tuple[str, str] | None:
    """The (bucket, key) a CopyObject or UploadPartCopy reads, from its x-amz-copy-source header."""
    source = request.headers.get("x-amz-copy-source")
    if not source:
        return None
    source = unquote(source.split("?", 1)[0]).lstrip("/")
    bucket, _, key = source.partition("/")
    return bucket, key


def s3_deleted_keys(request: AwsRequest) -> list[str]:
    """The keys a DeleteObjects request names."""
    return [html.unescape(key.decode()) for key in re.findall(rb"<Key>(.*?)</Key>", request.body, re.S)]


def members(params: dict[str, Any], name: str) -> list[dict[str, str]]:
    """A query-protocol list of structures: Name.member.N.Field=value -> [{Field: value}, ...]."""
    found: dict[int, dict[str, str]] = {}
    pattern = re.compile(rf"^{re.escape(name)}\.(?:member\.)?(\d+)\.(\w+)$")
    for key, value in params.items():
        match = pattern.match(key)
        if match:
            found.setdefault(int(match.group(1)), {})[match.group(2)] = value
    return [found[index] for index in sorted(found)]


def values(params: dict[str, Any], name: str) -> list[str]:
    """A query-protocol list of strings: Name.member.N=value -> [value, ...]."""
    pattern = re.compile(rf"^{re.escape(name)}\.(?:member\.)?(\d+)$")
    found = {int(m.group(1)): value for key, value in params.items() if (m := pattern.match(key))}
    return [found[index] for index in sorted(found)]
