"""What AWS authorises for one request: the action, the resource ARN, the context keys, the resource policy, and the
permissions it checks beyond the action called (PassRole, KMS, ...), read from moto's backends.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from moto.cloudformation.models import cloudformation_backends
from moto.emr.models import emr_backends
from moto.iam.models import iam_backends
from moto.kms.models import kms_backends
from moto.kms.utils import _deserialize_ciphertext_blob
from moto.s3.models import s3_backends
from moto.secretsmanager.models import SecretsManagerBackend, secretsmanager_backends
from moto.sqs.models import sqs_backends

from tests.deploy.standin_requests import AwsRequest, s3_copy_source, s3_deleted_keys


@dataclass(frozen=True)
class ImpliedPermission:
    permission: str
    when: str
    judged_by: str
    documentation: str


# Permissions AWS checks beyond the action that was called. The stand-in judges the first rows itself when the
# triggering request comes in; the rehearsal judges the last two with AwsStandIn.check, since no request of ours
# carries them (AWS services make those calls on the roles' behalf).
IMPLIED_PERMISSIONS: tuple[ImpliedPermission, ...] = (
    ImpliedPermission(
        "iam:PassRole on the ServiceRole (iam:PassedToService elasticmapreduce.amazonaws.com)",
        "elasticmapreduce:RunJobFlow",
        "the stand-in, on the request",
        "https://docs.aws.amazon.com/emr/latest/ManagementGuide/emr-managed-policy-fullaccess-v2.html",
    ),
    ImpliedPermission(
        "iam:PassRole on the JobFlowRole instance profile's role (iam:PassedToService ec2.amazonaws.com)",
        "elasticmapreduce:RunJobFlow",
        "the stand-in, on the request",
        "https://docs.aws.amazon.com/emr/latest/ManagementGuide/emr-managed-policy-fullaccess-v2.html",
    ),
    ImpliedPermission(
        "elasticmapreduce:PutAutoTerminationPolicy on the new cluster",
        "elasticmapreduce:RunJobFlow with AutoTerminationPolicy",
        "the stand-in, on the request",
        "https://docs.aws.amazon.com/emr/latest/ManagementGuide/emr-auto-termination-policy.html",
    ),
    ImpliedPermission(
        "kms:Decrypt on the secret's key (kms:ViaService secretsmanager.<region>.amazonaws.com)",
        "secretsmanager:GetSecretValue on a secret with a KmsKeyId",
        "the stand-in, on the request",
        "https://docs.aws.amazon.com/secretsmanager/latest/userguide/security-encryption.html",
    ),
    ImpliedPermission(
        "s3:GetObject on the copy source",
        "s3:PutObject with x-amz-copy-source (CopyObject, UploadPartCopy)",
        "the stand-in, on the request",
        "https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html",
    ),
    ImpliedPermission(
        "kms:GenerateDataKey and kms:Decrypt on the platform key, for the trigger Lambda's role",
        "Lambda sends a failed asynchronous event to its KMS-encrypted dead-letter queue",
        "the rehearsal, with check()",
        "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html",
    ),
    ImpliedPermission(
        "kms:GenerateDataKey*, kms:Decrypt on the platform key for the EMR instance role; kms:CreateGrant "
        "(kms:GrantIsForAWSResource) for the EMR service role",
        "an EMR cluster encrypts its local disks and EBS volumes with the security configuration's key",
        "the rehearsal, with check()",
        "https://docs.aws.amazon.com/emr/latest/ManagementGuide/emr-encryption-enable.html",
    ),
)

NEW_CLUSTER_ID = "j-NEWCLUSTER"  # RunJobFlow is judged before moto names the cluster


@dataclass(frozen=True)
class Need:
    """One permission a request needs: the called action first, then the implied ones."""

    action: str
    resource: str
    context: dict[str, Any] = field(default_factory=dict)
    implied: bool = False


class MotoView:
    """Read-only look-ups in moto's backends for one account and region."""

    def __init__(self, account: str, region: str) -> None:
        self.account = account
        self.region = region

    @property
    def iam(self) -> Any:
        return iam_backends[self.account]["aws"]

    def role_arn(self, name_or_arn: str) -> str:
        name = name_or_arn.rsplit("/", 1)[-1]
        role = next((role for role in list(self.iam.roles.values()) if role.name == name), None)
        return role.arn if role else f"arn:aws:iam::{self.account}:role/{name}"

    def role(self, arn: str) -> Any:
        return next((role for role in list(self.iam.roles.values()) if role.arn == arn), None)

    def instance_profile_role_arns(self, name_or_arn: str) -> list[str]:
        name = name_or_arn.rsplit("/", 1)[-1]
        profile = next((p for p in list(self.iam.instance_profiles.values()) if p.name == name), None)
        return [role.arn for role in profile.roles] if profile else []

    def secret(self, secret_id: str) -> Any:
        return secretsmanager_backends[self.account][self.region].secrets.get(secret_id)

    def kms_key(self, key_id: str) -> Any:
        try:
            return kms_backends[self.account][self.region].describe_key(key_id)
        except Exception:  # moto raises its NotFoundException or a KeyError for an unknown id
            return None

    def bucket(self, name: str) -> Any:
        partition, account = s3_backends.bucket_accounts.get(name, ("aws", self.account))
        return s3_backends[account][partition].buckets.get(name)

    def stack_arn(self, name_or_arn: str) -> str:
        stacks = cloudformation_backends[self.account][self.region].stacks
        for stack in list(stacks.values()):
            if name_or_arn in (stack.name, stack.stack_id):
                return stack.stack_id
        if name_or_arn.startswith("arn:"):
            return name_or_arn
        return f"arn:aws:cloudformation:{self.region}:{self.account}:stack/{name_or_arn}/unknown"

    def cluster(self, cluster_id: str) -> Any:
        return emr_backends[self.account][self.region].clusters.get(cluster_id)

    def queue(self, name: str) -> Any:
        return sqs_backends[self.account][self.region].queues.get(name)

    def resource_policy(self, action: str, resource: str) -> Any:
        """The policy of the resource itself, where moto keeps one: trust, key, secret, bucket or queue policy."""
        text: Any = None
        if action.lower() == "sts:assumerole":
            role = self.role(resource)
            text = role.assume_role_policy_document if role else None
        elif resource.startswith("arn:aws:kms:") and ":key/" in resource:
            key = self.kms_key(resource)
            text = key.policy if key else None
        elif resource.startswith("arn:aws:secretsmanager:"):
            secret = self.secret(resource)
            text = getattr(secret, "policy", None)
        elif resource.startswith("arn:aws:s3:::"):
            bucket = self.bucket(resource[len("arn:aws:s3:::") :].split("/", 1)[0])
            text = bucket.policy if bucket else None
        elif resource.startswith("arn:aws:sqs:"):
            queue = self.queue(resource.rsplit(":", 1)[-1])
            text = queue.policy if queue else None
        return parse_document(text)


def parse_document(text: Any) -> Any:
    if text is None or text == "":
        return None
    if isinstance(text, bytes):
        text = text.decode()
    if isinstance(text, str):
        text = text.strip()
        return json.loads(text if text.startswith("{") else unquote(text))
    return text


def tag_context(prefix: str, tags: dict[str, str], service: str | None = None) -> dict[str, Any]:
    """aws:RequestTag/<k> or aws:ResourceTag/<k> (and the service's own alias, e.g. elasticmapreduce:ResourceTag)."""
    context: dict[str, Any] = {}
    for key, value in tags.items():
        context[f"aws:{prefix}/{key}"] = value
        if service:
            context[f"{service}:{prefix}/{key}"] = value
    if prefix == "RequestTag" and tags:
        context["aws:TagKeys"] = list(tags)
    return context


def needs(request: AwsRequest, view: MotoView) -> list[Need]:
    """The permissions the request needs, the called action first; empty if the action cannot be named."""
    if request.action is None:
        return []
    handler = SERVICES.get(request.service, _generic)
    return handler(request, view)


def _arn(view: MotoView, service: str, resource: str) -> str:
    return f"arn:aws:{service}:{view.region}:{view.account}:{resource}"


def _s3(request: AwsRequest, view: MotoView) -> list[Need]:
    assert request.action is not None
    bucket, key = request.bucket, request.key
    if bucket is None:
        return [Need(request.action, "*")]
    if request.operation == "DeleteObject" and key is None:
        return [Need("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{name}") for name in s3_deleted_keys(request)] or [
            Need("s3:DeleteObject", f"arn:aws:s3:::{bucket}/*")
        ]
    if key is None:
        context = {f"s3:{name}": request.query[name][0] for name in ("prefix", "delimiter") if name in request.query}
        return [Need(request.action, f"arn:aws:s3:::{bucket}", context)]
    result = [Need(request.action, f"arn:aws:s3:::{bucket}/{key}")]
    source = s3_copy_source(request) if request.operation == "PutObject" else None
    if source:
        result.append(Need("s3:GetObject", f"arn:aws:s3:::{source[0]}/{source[1]}", implied=True))
    return result


SECRET_WIDE_OPERATIONS = {"ListSecrets", "GetRandomPassword", "BatchGetSecretValue"}


def _secret_arn(view: MotoView, secret_id: str) -> tuple[str, Any]:
    secret = view.secret(secret_id)
    if secret is not None:
        return secret.arn, secret
    if secret_id.startswith("arn:"):
        return secret_id, None
    return _arn(view, "secretsmanager", f"secret:{secret_id}-??????"), None


def _secret_context(arn: str, secret: Any) -> dict[str, Any]:
    context: dict[str, Any] = {"secretsmanager:SecretId": arn}
    tags = {tag["Key"]: tag["Value"] for tag in (getattr(secret, "tags", None) or [])}
    context.update(tag_context("ResourceTag", tags, "secretsmanager"))
    return context


def _secretsmanager(request: AwsRequest, view: MotoView) -> list[Need]:
    assert request.action is not None
    if request.operation == "BatchGetSecretValue":
        result = [Need(request.action, "*")]
        for secret_id in request.param("SecretIdList") or []:
            result.extend(_secret_read(view, secret_id, implied=True))
        return result
    if request.operation == "GetSecretValue":
        return _secret_read(view, request.param("SecretId") or "", implied=False)
    if request.operation in SECRET_WIDE_OPERATIONS:
        return [Need(request.action, "*")]
    if request.operation == "CreateSecret":
        name = request.param("Name") or ""
        tags = {tag["Key"]: tag["Value"] for tag in request.param("Tags") or []}
        return [
            Need(request.action, _arn(view, "secretsmanager", f"secret:{name}-??????"), tag_context("RequestTag", tags))
        ]
    arn, secret = _secret_arn(view, request.param("SecretId") or "")
    return [Need(request.action, arn, _secret_context(arn, secret))]


def _secret_read(view: MotoView, secret_id: str, implied: bool) -> list[Need]:
    arn, secret = _secret_arn(view, secret_id)
    result = [Need("secretsmanager:GetSecretValue", arn, _secret_context(arn, secret), implied=implied)]
    key_id = getattr(secret, "kms_key_id", None)
    if key_id and key_id != SecretsManagerBackend.DEFAULT_KMS_KEY_ALIAS:
        key = view.kms_key(key_id)
        key_arn = key.arn if key else key_id
        context = {
            "kms:ViaService": f"secretsmanager.{view.region}.amazonaws.com",
            "kms:CallerAccount": view.account,
            "kms:EncryptionContext:SecretARN": arn,
            "kms:EncryptionContextKeys": ["SecretARN", "SecretVersionId"],
        }
        result.append(Need("kms:Decrypt", key_arn, context, implied=True))
    return result


KMS_WIDE_OPERATIONS = {"CreateKey", "ListKeys", "ListAliases", "GenerateRandom", "ConnectCustomKeyStore"}


def _kms(request: AwsRequest, view: MotoView) -> list[Need]:
    assert request.action is not None
    key_id = request.param("KeyId") or request.param("TargetKeyId") or _ciphertext_key(request.param("CiphertextBlob"))
    if request.operation in KMS_WIDE_OPERATIONS or not key_id:
        return [Need(request.action, "*", {"kms:CallerAccount": view.account})]
    key = view.kms_key(key_id)
    arn = key.arn if key else (key_id if key_id.startswith("arn:") else _arn(view, "kms", f"key/{key_id}"))
    context: dict[str, Any] = {"kms:CallerAccount": view.account}
    encryption_context = request.param("EncryptionContext") or {}
    for name, value in encryption_context.items():
        context[f"kms:EncryptionContext:{name}"] = value
    if encryption_context:
        context["kms:EncryptionContextKeys"] = list(encryption_context)
    return [Need(request.action, arn, context)]


def _ciphertext_key(blob: Any) -> str | None:
    # A symmetric Decrypt may omit KeyId: AWS reads the key from the ciphertext, and so does moto's format.
    if not isinstance(blob, str):
        return None
    try:
        return _deserialize_ciphertext_blob(base64.b64decode(blob)).key_id
    except (ValueError, struct.error, UnicodeDecodeError):
        return None


def _emr_tags(raw: Any) -> dict[str, str]:
    return {tag["Key"]: tag.get("Value", "") for tag in raw or []}


def _emr_cluster(view: MotoView, action: str, cluster_id: str, extra: dict[str, Any] | None = None) -> Need:
    cluster = view.cluster(cluster_id)
    tags = dict(getattr(cluster, "_tags", {}) or {})
    context = tag_context("ResourceTag", tags, "elasticmapreduce")
    context.update(extra or {})
    arn = cluster.arn if cluster else _arn(view, "elasticmapreduce", f"cluster/{cluster_id}")
    return Need(action, arn, context)


def _elasticmapreduce(request: AwsRequest, view: MotoView) -> list[Need]:
    assert request.action is not None
    if request.operation == "RunJobFlow":
        return _run_job_flow(request, view)
    ids = request.param("JobFlowIds")
    if ids:
        return [_emr_cluster(view, request.action, cluster_id) for cluster_id in ids]
    cluster_id = request.param("ClusterId") or request.param("JobFlowId") or request.param("ResourceId")
    if not cluster_id:
        return [Need(request.action, "*")]
    extra: dict[str, Any] = {}
    if request.operation == "AddTags":
        extra = tag_context("RequestTag", _emr_tags(request.param("Tags")), "elasticmapreduce")
    return [_emr_cluster(view, request.action, cluster_id, extra)]


def _run_job_flow(request: AwsRequest, view: MotoView) -> list[Need]:
    tags = _emr_tags(request.param("Tags"))
    request_tags = tag_context("RequestTag", tags, "elasticmapreduce")
    result = [Need("elasticmapreduce:RunJobFlow", "*", request_tags)]
    service_role = request.param("ServiceRole")
    if service_role:
        passed = {"iam:PassedToService": "elasticmapreduce.amazonaws.com"}
        result.append(Need("iam:PassRole", view.role_arn(service_role), passed, implied=True))
    instance_profile = request.param("JobFlowRole")
    if instance_profile:
        passed = {"iam:PassedToService": "ec2.amazonaws.com"}
        for role_arn in view.instance_profile_role_arns(instance_profile):
            result.append(Need("iam:PassRole", role_arn, passed, implied=True))
    if request.param("AutoTerminationPolicy"):
        new_cluster = _arn(view, "elasticmapreduce", f"cluster/{NEW_CLUSTER_ID}")
        result.append(Need("elasticmapreduce:PutAutoTerminationPolicy", new_cluster, request_tags, implied=True))
    return result


STACK_WIDE_OPERATIONS = {"ListStacks", "ValidateTemplate", "ListExports", "ListImports", "DescribeAccountLimits"}


def _cloudformation(request: AwsRequest, view: MotoView) -> list[Need]:
    assert request.action is not None
    name = request.param("StackName")
    if request.operation in STACK_WIDE_OPERATIONS or not name:
        return [Need(request.action, "*")]
    return [Need(request.action, view.stack_arn(name))]


def _sqs(request: AwsRequest, view: MotoView) -> list[Need]:
    assert request.action is not None
    url = request.param("QueueUrl")
    name = url.rstrip("/").rsplit("/", 1)[-1] if url else request.param("QueueName")
    if not name or request.operation == "ListQueues":
        return [Need(request.action, "*")]
    return [Need(request.action, _arn(view, "sqs", name))]


def _sts(request: AwsRequest, view: MotoView) -> list[Need]:
    assert request.action is not None
    role_arn = request.param("RoleArn")
    return [Need(request.action, role_arn or "*")]


IAM_RESOURCE_PARAMS = (
    ("RoleName", "role"),
    ("UserName", "user"),
    ("GroupName", "group"),
    ("InstanceProfileName", "instance-profile"),
)


def _iam(request: AwsRequest, view: MotoView) -> list[Need]:
    assert request.action is not None
    for param, kind in IAM_RESOURCE_PARAMS:
        name = request.param(param)
        if name:
            if kind == "role":
                return [Need(request.action, view.role_arn(name))]
            return [Need(request.action, f"arn:aws:iam::{view.account}:{kind}/{name}")]
    policy_arn = request.param("PolicyArn")
    return [Need(request.action, policy_arn or "*")]


def _ssm(request: AwsRequest, view: MotoView) -> list[Need]:
    assert request.action is not None
    names = [request.param("Name")] if request.param("Name") else list(request.param("Names") or [])
    if not names and request.param("Path"):
        names = [request.param("Path")]
    if not names:
        return [Need(request.action, "*")]
    return [Need(request.action, _arn(view, "ssm", "parameter/" + name.lstrip("/"))) for name in names]


def _logs(request: AwsRequest, view: MotoView) -> list[Need]:
    assert request.action is not None
    group = request.param("logGroupName")
    if not group:
        return [Need(request.action, "*")]
    stream = request.param("logStreamName")
    suffix = f":log-stream:{stream}" if stream else ":*"
    return [Need(request.action, _arn(view, "logs", f"log-group:{group}{suffix}"))]


def _cloudwatch(request: AwsRequest, view: MotoView) -> list[Need]:
    assert request.action is not None
    namespace = request.param("Namespace")
    return [Need(request.action, "*", {"cloudwatch:namespace": namespace} if namespace else {})]


def _lambda(request: AwsRequest, view: MotoView) -> list[Need]:
    assert request.action is not None
    name = request.param("FunctionName")
    if not name:
        return [Need(request.action, "*")]
    arn = name if name.startswith("arn:") else _arn(view, "lambda", f"function:{name}")
    return [Need(request.action, arn)]


def _generic(request: AwsRequest, view: MotoView) -> list[Need]:
    # EC2, Auto Scaling, ELB, RDS: only the guide's admin commands call them, and the admin may act on anything.
    assert request.action is not None
    return [Need(request.action, "*")]


SERVICES: dict[str, Any] = {
    "s3": _s3,
    "secretsmanager": _secretsmanager,
    "kms": _kms,
    "elasticmapreduce": _elasticmapreduce,
    "cloudformation": _cloudformation,
    "sqs": _sqs,
    "sts": _sts,
    "iam": _iam,
    "ssm": _ssm,
    "logs": _logs,
    "cloudwatch": _cloudwatch,
    "lambda": _lambda,
}
