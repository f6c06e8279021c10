"""The AWS stand-in judges each request as AWS would: by action, resource ARN and context, with a real simulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.iam.access_control import IAMPolicy, PermissionResult

from tests.deploy.standin import IMPLIED_PERMISSIONS, SUMMARY_HEADER, AccessRefused, AwsStandIn, Credentials

ACCOUNT = "123456789012"
BUCKET = "standin-models"
MANAGED_TAG = "for-use-with-amazon-emr-managed-policies"
EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
STACK_TEMPLATE = json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}})


@dataclass
class World:
    aws: AwsStandIn
    web_arn: str
    web: Credentials
    no_pass: Credentials
    key_arn: str
    secret_arn: str
    other_secret_arn: str
    stack_arn: str
    lambda_role_arn: str


def statement(action: str | list[str], resource: str | list[str], condition: dict[str, Any] | None = None) -> dict:
    found: dict[str, Any] = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        found["Condition"] = condition
    return found


def make_role(aws: AwsStandIn, name: str, trust: dict, statements: list[dict]) -> str:
    iam = aws.client("iam")
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    if statements:
        document = json.dumps({"Version": "2012-10-17", "Statement": statements})
        iam.put_role_policy(RoleName=name, PolicyName="tight", PolicyDocument=document)
    return arn


def emr_roles(aws: AwsStandIn) -> tuple[str, str]:
    emr_trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "elasticmapreduce.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    service = make_role(aws, "standin-emr-service", emr_trust, [])
    instance = make_role(aws, "standin-emr-instance", EC2_TRUST, [])
    iam = aws.client("iam")
    iam.create_instance_profile(InstanceProfileName="standin-emr-instance")
    iam.add_role_to_instance_profile(InstanceProfileName="standin-emr-instance", RoleName="standin-emr-instance")
    return service, instance


def web_statements(world: dict[str, str], service_role: str, instance_role: str, with_pass: bool) -> list[dict]:
    cluster = f"arn:aws:elasticmapreduce:us-east-1:{ACCOUNT}:cluster/*"
    found = [
        statement("s3:GetObject", f"arn:aws:s3:::{BUCKET}/models/*"),
        statement("secretsmanager:GetSecretValue", [world["secret"], world["other_secret"]]),
        statement("kms:Decrypt", world["key"]),
        statement(["elasticmapreduce:DescribeCluster", "elasticmapreduce:PutAutoTerminationPolicy"], cluster),
        statement("elasticmapreduce:RunJobFlow", "*", {"StringEquals": {f"aws:RequestTag/{MANAGED_TAG}": "true"}}),
        statement("cloudformation:SignalResource", world["stack"]),
    ]
    if with_pass:
        found += [
            statement(
                "iam:PassRole", service_role, {"StringLike": {"iam:PassedToService": "elasticmapreduce.amazonaws.com*"}}
            ),
            statement("iam:PassRole", instance_role, {"StringLike": {"iam:PassedToService": "ec2.amazonaws.com*"}}),
        ]
    return found


def setup_resources(aws: AwsStandIn) -> dict[str, str]:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="models/current.json", Body=b"{}")
    s3.put_object(Bucket=BUCKET, Key="raw/upload.csv", Body=b"a,b\n")
    kms = aws.client("kms")
    key = kms.create_key(Description="platform")["KeyMetadata"]["Arn"]
    other_key = kms.create_key(Description="someone else's")["KeyMetadata"]["Arn"]
    secrets = aws.client("secretsmanager")
    secret = secrets.create_secret(Name="standin/database", SecretString='{"password": "p"}', KmsKeyId=key)["ARN"]
    other = secrets.create_secret(Name="standin/other", SecretString="x", KmsKeyId=other_key)["ARN"]
    stack = aws.client("cloudformation").create_stack(StackName="standin-web", TemplateBody=STACK_TEMPLATE)["StackId"]
    return {"key": key, "secret": secret, "other_secret": other, "stack": stack}


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with AwsStandIn() as aws:
        resources = setup_resources(aws)
        service_role, instance_role = emr_roles(aws)
        web_arn = make_role(aws, "standin-web", EC2_TRUST, web_statements(resources, service_role, instance_role, True))
        no_pass_arn = make_role(
            aws, "standin-no-pass", EC2_TRUST, web_statements(resources, service_role, instance_role, False)
        )
        lambda_role = make_role(aws, "standin-trigger", LAMBDA_TRUST, [statement("sqs:SendMessage", "*")])
        web = aws.assume(web_arn, "ec2.amazonaws.com", "i-0standin")
        no_pass = aws.assume(no_pass_arn, "ec2.amazonaws.com", "i-0nopass")
        aws.enforce()
        yield World(
            aws,
            web_arn,
            web,
            no_pass,
            resources["key"],
            resources["secret"],
            resources["other_secret"],
            resources["stack"],
            lambda_role,
        )


def refused(call: Any, **kwargs: Any) -> ClientError:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    assert raised.value.response["Error"]["Code"].startswith("AccessDenied")
    return raised.value


def run_job_flow(world: World, credentials: Credentials, tags: list[dict[str, str]]) -> dict:
    emr = world.aws.client("emr", credentials)
    return emr.run_job_flow(
        Name="standin",
        ReleaseLabel="emr-7.13.0",
        Instances={"MasterInstanceType": "m5.xlarge", "InstanceCount": 1, "KeepJobFlowAliveWhenNoSteps": False},
        ServiceRole="standin-emr-service",
        JobFlowRole="standin-emr-instance",
        AutoTerminationPolicy={"IdleTimeout": 3600},
        Tags=tags,
    )


def test_an_allowed_call_works_and_one_outside_the_policy_is_refused_naming_role_and_action(world: World) -> None:
    s3 = world.aws.client("s3", world.web)
    assert s3.get_object(Bucket=BUCKET, Key="models/current.json")["Body"].read() == b"{}"

    error = refused(s3.get_object, Bucket=BUCKET, Key="raw/upload.csv")
    message = error.response["Error"]["Message"]
    assert "standin-web" in message and "s3:GetObject" in message
    assert any(
        r.principal == world.web_arn
        and r.action == "s3:GetObject"
        and r.resource == f"arn:aws:s3:::{BUCKET}/raw/upload.csv"
        for r in world.aws.refusals
    )
    refused(s3.list_objects_v2, Bucket=BUCKET)  # s3:ListBucket on the bucket, which the policy does not grant
    assert world.aws.refusals[-1].action == "s3:ListBucket"
    assert world.aws.refusals[-1].resource == f"arn:aws:s3:::{BUCKET}"


def test_a_secret_read_by_name_is_judged_on_its_arn(world: World) -> None:
    secrets = world.aws.client("secretsmanager", world.web)
    before = world.aws.checks[world.web_arn]["kms:Decrypt"].made

    assert secrets.get_secret_value(SecretId="standin/database")["SecretString"] == '{"password": "p"}'

    # The Allow names the secret's ARN, which moto's own enforcement never matches: it judges against "*".
    policy = {"Version": "2012-10-17", "Statement": [statement("secretsmanager:GetSecretValue", world.secret_arn)]}
    moto_verdict = IAMPolicy(json.dumps(policy)).is_action_permitted("secretsmanager:GetSecretValue")
    assert moto_verdict != PermissionResult.PERMITTED
    # The implied kms:Decrypt on the secret's key was judged too, and allowed.
    assert world.aws.checks[world.web_arn]["kms:Decrypt"].made == before + 1
    assert world.aws.checks[world.web_arn]["kms:Decrypt"].refused == 0


def test_a_missing_kms_decrypt_refuses_the_secret_read(world: World) -> None:
    secrets = world.aws.client("secretsmanager", world.web)
    error = refused(secrets.get_secret_value, SecretId="standin/other")
    assert "kms:Decrypt" in error.response["Error"]["Message"]
    last = world.aws.refusals[-1]
    assert (last.action, last.implied) == ("kms:Decrypt", True)
    assert last.context["kms:ViaService"] == "secretsmanager.us-east-1.amazonaws.com"
    assert last.context["kms:EncryptionContext:SecretARN"] == world.other_secret_arn


def test_run_job_flow_needs_the_request_tag_and_pass_role(world: World) -> None:
    error = refused(run_job_flow, world=world, credentials=world.web, tags=[])
    assert "elasticmapreduce:RunJobFlow" in error.response["Error"]["Message"]

    cluster_id = run_job_flow(world, world.web, [{"Key": MANAGED_TAG, "Value": "true"}])["JobFlowId"]
    emr = world.aws.client("emr", world.web)
    assert emr.describe_cluster(ClusterId=cluster_id)["Cluster"]["Id"] == cluster_id
    checks = world.aws.checks[world.web_arn]
    assert checks["iam:PassRole"].made >= 2 and checks["iam:PassRole"].refused == 0
    assert checks["elasticmapreduce:PutAutoTerminationPolicy"].made >= 1

    error = refused(run_job_flow, world=world, credentials=world.no_pass, tags=[{"Key": MANAGED_TAG, "Value": "true"}])
    message = error.response["Error"]["Message"]
    assert "iam:PassRole" in message and "standin-no-pass" in message
    last = world.aws.refusals[-1]
    assert last.resource.endswith(":role/standin-emr-service")
    assert last.context["iam:PassedToService"] == "elasticmapreduce.amazonaws.com"


def test_signal_resource_is_judged_on_the_stack_arn_and_recorded(world: World) -> None:
    cloudformation = world.aws.client("cloudformation", world.web)
    cloudformation.signal_resource(
        StackName="standin-web", LogicalResourceId="WebGroup", UniqueId="i-0standin", Status="SUCCESS"
    )
    signal = world.aws.signals[-1]
    assert (signal.principal, signal.stack, signal.logical_id, signal.unique_id, signal.status) == (
        world.web_arn,
        "standin-web",
        "WebGroup",
        "i-0standin",
        "SUCCESS",
    )
    assert signal.stack_arn == world.stack_arn
    assert world.aws.calls[world.web_arn]["cloudformation:SignalResource"].refused == 0


def test_assume_judges_the_trust_policy(world: World) -> None:
    with pytest.raises(AccessRefused, match=r"ec2\.amazonaws\.com"):
        world.aws.assume(world.lambda_role_arn, "ec2.amazonaws.com", "i-0intruder")
    assert world.aws.refusals[-1].action == "sts:AssumeRole"
    credentials = world.aws.assume(world.lambda_role_arn, "lambda.amazonaws.com", "trigger")
    assert credentials.env()["AWS_SESSION_TOKEN"] == credentials.session_token


def test_an_unknown_key_is_refused(world: World) -> None:
    s3 = world.aws.client("s3", Credentials("AKIAUNKNOWN000000000", "secret"))
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket=BUCKET, Key="models/current.json")
    assert raised.value.response["Error"]["Code"] == "InvalidAccessKeyId"


def test_check_judges_a_permission_no_request_carries(world: World) -> None:
    lambda_role = world.lambda_role_arn
    assert not world.aws.check(lambda_role, "kms:GenerateDataKey", world.key_arn, {"kms:ViaService": "sqs.us-east-1"})
    assert world.aws.refusals[-1].implied
    assert world.aws.check(world.web_arn, "kms:Decrypt", world.key_arn)


def test_summary_counts_calls_and_refusals_per_principal(world: World) -> None:
    counted_arn = make_role(
        world.aws, "standin-counted", EC2_TRUST, [statement("s3:GetObject", f"arn:aws:s3:::{BUCKET}/*")]
    )
    counted = world.aws.assume(counted_arn, "ec2.amazonaws.com", "i-0counted")
    s3 = world.aws.client("s3", counted)
    s3.get_object(Bucket=BUCKET, Key="models/current.json")
    s3.head_object(Bucket=BUCKET, Key="raw/upload.csv")  # HEAD needs s3:GetObject too
    with pytest.raises(ClientError):
        s3.put_object(Bucket=BUCKET, Key="models/new.json", Body=b"{}")

    rows = world.aws.summary()
    assert rows[0] == SUMMARY_HEADER
    assert [counted_arn, "3", "1"] in rows
    admin_row = next(row for row in rows if row[0].endswith(":user/rehearsal-admin"))
    assert admin_row[2] == "0"


def test_the_implied_permissions_table_cites_a_page_for_each_row() -> None:
    assert len(IMPLIED_PERMISSIONS) >= 6
    for row in IMPLIED_PERMISSIONS:
        assert row.documentation.startswith("https://docs.aws.amazon.com/")
        assert row.permission and row.when and row.judged_by


def test_a_bucket_policy_deny_refuses_what_the_role_policy_allows(world: World) -> None:
    s3 = world.aws.client("s3")
    deny = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": {"AWS": world.web_arn},
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{BUCKET}/models/locked/*",
            }
        ],
    }
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(deny))
    s3.put_object(Bucket=BUCKET, Key="models/locked/m.json", Body=b"{}")
    try:
        web = world.aws.client("s3", world.web)
        error = refused(web.get_object, Bucket=BUCKET, Key="models/locked/m.json")
        assert "explicit deny" in error.response["Error"]["Message"]
        assert web.get_object(Bucket=BUCKET, Key="models/current.json")["Body"].read() == b"{}"
    finally:
        s3.delete_bucket_policy(Bucket=BUCKET)


def test_a_key_policy_that_does_not_trust_the_account_refuses_an_identity_allow(world: World) -> None:
    kms = world.aws.client("kms")
    admin_only = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/rehearsal-admin"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }
    key = kms.create_key(Policy=json.dumps(admin_only))["KeyMetadata"]["Arn"]
    blob = kms.encrypt(KeyId=key, Plaintext=b"secret")["CiphertextBlob"]
    wide = {"Version": "2012-10-17", "Statement": [statement("kms:Decrypt", "*")]}
    role_arn = make_role(world.aws, "standin-kms-user", EC2_TRUST, wide["Statement"])
    user = world.aws.client("kms", world.aws.assume(role_arn, "ec2.amazonaws.com", "i-0kms"))
    refused(user.decrypt, KeyId=key, CiphertextBlob=blob)
    assert world.aws.refusals[-1].resource == key
    refused(user.decrypt, CiphertextBlob=blob)  # the key named only inside the ciphertext
    assert world.aws.refusals[-1].resource == key


def test_a_request_whose_action_cannot_be_named_is_refused(world: World) -> None:
    lambdas = world.aws.client("lambda")
    refused(lambdas.list_layers)
    assert "cannot name the IAM action" in world.aws.refusals[-1].message
