"""What moto can create of the stacks, created there from a real release, the way the parent stack would.

`bootstrap/aws/release.sh` builds the release; the test uploads it to a bucket in moto and creates each nested
stack from it in the parent's dependency order, with the parameters main.yaml passes (moto 5 cannot resolve
`Fn::GetAtt <nested stack>.Outputs.<name>`, so the test plays the parent). Then it checks the resources through
the services' own APIs. moto creates network, security, orchestration, trigger, storage and web. It skips the
types it does not model (secrets, bucket policies, security-group egress rules, alarms, Lambda invoke configs,
scaling policies, QuickSight), ignores some properties of those it does (a bucket's versioning, lifecycle,
notifications and public access block, a Lambda's dead-letter config, an instance's launch template, a role's
AWS-managed policies), and cannot create two stacks at all (MOTO_CANNOT_CREATE). test_structure.py checks all
of those in the templates themselves.
"""

from __future__ import annotations

import ast
import json
import subprocess
import tarfile
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.cloudformation.parsing import get_model_map

from pronostico.core.config import BUCKETS, PROJECT_ROOT
from tests.deploy.stacks import template_stem, topological_stacks

from .conftest import BOOTSTRAP_DIR, TEMPLATES_DIR, load_template

REGION = "us-east-1"
RELEASE_BUCKET = "pronostico-releases"
VERSION = "moto-test"
PREFIX = "pronostico-dev"
MOTO_CANNOT_CREATE = {
    # moto's RDS DBParameterGroup has no physical id, so `DBParameterGroupName: !Ref` reaches the DB as an object.
    "DatabaseStack": "object has no attribute 'startswith'",
    # moto has no QuickSight resources, and fails on outputs that read their attributes.
    "AnalyticsStack": "has_cfn_attr",
}


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A release built by release.sh, with a stand-in Lambda package (moto does not run it)."""
    work = tmp_path_factory.mktemp("release")
    package = work / "lambda_trigger.zip"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("lambda_trigger/__init__.py", "")
        archive.writestr("lambda_trigger/handler.py", "def handler(event, context):\n    return event\n")
    out = work / "out"
    subprocess.run([str(BOOTSTRAP_DIR / "aws" / "release.sh"), "--allow-dirty", "--version", VERSION,
                    "--out", str(out), "--lambda-zip", str(package)], check=True, timeout=120, cwd=PROJECT_ROOT)
    return out


def test_the_release_holds_the_templates_the_boot_script_and_the_source(release: Path) -> None:
    assert {p.name for p in (release / "cloudformation").glob("*.yaml")} == {
        p.name for p in TEMPLATES_DIR.glob("*.yaml")}
    assert (release / "boot.sh").read_text() == (BOOTSTRAP_DIR / "aws" / "boot.sh").read_text()
    with tarfile.open(release / "pronostico-src.tar.gz") as archive:
        names = set(archive.getnames())
    assert {"pyproject.toml", "uv.lock", "bootstrap/aws/web_instance.sh", "bootstrap/aws/airflow_instance.sh",
            "bootstrap/aws/common.sh", "bootstrap/local/ensure_uv.sh", "bootstrap/systemd/pronostico-web.service",
            "bootstrap/emr/bootstrap.sh", "src/pronostico/core/config.py"} <= names


@dataclass
class Deployment:
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    created: dict[str, set[str]] = field(default_factory=dict)  # stack -> logical ids moto created
    failed: dict[str, str] = field(default_factory=dict)  # stack -> moto's error
    parameters: dict[str, dict[str, str]] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)


def parent_parameters(main: dict[str, Any]) -> dict[str, str]:
    values = {name: str(spec["Default"]) for name, spec in main["Parameters"].items() if "Default" in spec}
    return {**values, "ReleaseBucket": RELEASE_BUCKET, "ReleaseVersion": VERSION, "BucketPrefix": PREFIX,
            "EnableQuickSight": "true",
            "QuickSightPrincipalArn": f"arn:aws:quicksight:{REGION}:123456789012:user/default/analyst"}


def resolve(value: dict[str, Any], parent: dict[str, str], deployment: Deployment, needed_by: str) -> str:
    if "Ref" in value:
        return parent[value["Ref"]]
    source, output = value["Fn::GetAtt"]
    key = output.removeprefix("Outputs.")
    if key not in deployment.outputs[source]:
        # The producing resource is one moto skips (a secret) or its stack failed: stand in an ARN-shaped value.
        return f"arn:aws:secretsmanager:{REGION}:123456789012:secret:{source}-{key}"
    return deployment.outputs[source][key]


def upload(release: Path) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=RELEASE_BUCKET)
    for path in release.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), RELEASE_BUCKET, f"releases/{VERSION}/{path.relative_to(release)}")


def create_like_the_parent(release: Path) -> Deployment:
    main = load_template(release / "cloudformation" / "main.yaml")
    parent = parent_parameters(main)
    deployment = Deployment()
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    for name in topological_stacks(main):
        props = main["Resources"][name]["Properties"]
        url = props["TemplateURL"]["Fn::Sub"]
        for variable, value in (("ReleaseBucket", RELEASE_BUCKET), ("ReleaseVersion", VERSION),
                                ("AWS::Region", REGION), ("AWS::URLSuffix", "amazonaws.com")):
            url = url.replace(f"${{{variable}}}", value)
        parameters = {key: resolve(value, parent, deployment, name) for key, value in props["Parameters"].items()}
        deployment.parameters[name] = parameters
        try:
            cloudformation.create_stack(StackName=f"{PREFIX}-{name}", TemplateURL=url,
                                        Parameters=[{"ParameterKey": k, "ParameterValue": v}
                                                    for k, v in parameters.items()],
                                        Capabilities=["CAPABILITY_NAMED_IAM"])
        except Exception as error:  # moto raises its own parsing errors, not ClientErrors, for what it lacks
            deployment.failed[name] = str(error)
            deployment.outputs[name] = {}
            continue
        stack = cloudformation.describe_stacks(StackName=f"{PREFIX}-{name}")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE", (name, stack)
        deployment.outputs[name] = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        summaries = cloudformation.list_stack_resources(StackName=f"{PREFIX}-{name}")["StackResourceSummaries"]
        deployment.created[name] = {s["LogicalResourceId"] for s in summaries if s["LogicalResourceId"]}
    return deployment


@pytest.fixture(scope="module")
def deployed(release: Path) -> Iterator[Deployment]:
    with pytest.MonkeyPatch.context() as env, warnings.catch_warnings():
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
            env.setenv(key, value)
        warnings.simplefilter("ignore")  # moto warns once per resource type it skips
        with mock_aws():
            upload(release)
            yield create_like_the_parent(release)


def test_moto_creates_every_stack_but_the_two_it_cannot(deployed: Deployment) -> None:
    assert set(deployed.failed) == set(MOTO_CANNOT_CREATE)
    for name, reason in MOTO_CANNOT_CREATE.items():
        assert reason in deployed.failed[name]
    assert set(deployed.created) == {"NetworkStack", "SecurityStack", "OrchestrationStack", "TriggerStack",
                                     "StorageStack", "WebStack"}


def test_every_resource_of_a_type_moto_models_was_created(deployed: Deployment, release: Path) -> None:
    main = load_template(release / "cloudformation" / "main.yaml")
    modelled = set(get_model_map())
    for name, created in deployed.created.items():
        stem = template_stem(main, name)
        template = load_template(release / "cloudformation" / f"{stem}.yaml")
        conditional = {"NatAddressB", "NatGatewayB", "HttpsListener", "AlarmEmailSubscription"}  # off by default
        expected = {logical_id for logical_id, body in template["Resources"].items()
                    if body["Type"] in modelled and logical_id not in conditional}
        assert expected <= created, f"{name}: moto did not create {expected - created}"


def test_network_two_azs_private_subnets_nat_and_s3_endpoint(deployed: Deployment) -> None:
    ec2 = deployed.client("ec2")
    network = deployed.outputs["NetworkStack"]
    [vpc] = ec2.describe_vpcs(VpcIds=[network["VpcId"]])["Vpcs"]
    assert vpc["CidrBlock"] == "10.40.0.0/16"
    private = network["PrivateSubnetIds"].split(",")
    public = network["PublicSubnetIds"].split(",")
    subnets = {s["SubnetId"]: s for s in ec2.describe_subnets(SubnetIds=private + public)["Subnets"]}
    assert len({subnets[s]["AvailabilityZone"] for s in private}) == 2
    assert len({subnets[s]["AvailabilityZone"] for s in public}) == 2
    assert not any(s["MapPublicIpOnLaunch"] for s in subnets.values())
    nats = ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["NatGateways"]
    assert len(nats) == 1 and nats[0]["SubnetId"] in public  # NatGateways=single
    [endpoint] = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["VpcEndpoints"]
    assert endpoint["ServiceName"] == f"com.amazonaws.{REGION}.s3" and len(endpoint["RouteTableIds"]) == 3
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["RouteTables"]
    defaults = [r for t in tables for r in t["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
    assert sorted(r.get("NatGatewayId") or r["GatewayId"][:4] for r in defaults) == [
        "igw-", nats[0]["NatGatewayId"], nats[0]["NatGatewayId"]]  # public -> internet, both private -> the NAT


def ingress(ec2: Any, group_id: str) -> list[dict[str, Any]]:
    return ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]["IpPermissions"]


def test_security_groups_allow_only_their_peers(deployed: Deployment) -> None:
    ec2 = deployed.client("ec2")
    groups = deployed.outputs["SecurityStack"]
    alb = ingress(ec2, groups["AlbSecurityGroupId"])
    assert {(p["FromPort"], p["IpRanges"][0]["CidrIp"]) for p in alb} == {(80, "0.0.0.0/0"), (443, "0.0.0.0/0")}
    database = ingress(ec2, groups["DatabaseSecurityGroupId"])
    assert {pair["GroupId"] for p in database for pair in p["UserIdGroupPairs"]} == {
        groups["WebSecurityGroupId"], groups["AirflowSecurityGroupId"]}
    assert not any(p["IpRanges"] for p in database)
    [airflow] = ingress(ec2, groups["AirflowSecurityGroupId"])
    assert airflow["FromPort"] == 8080 and [p["GroupId"] for p in airflow["UserIdGroupPairs"]] == [
        groups["LambdaSecurityGroupId"]]
    assert ingress(ec2, groups["LambdaSecurityGroupId"]) == []
    key_id = groups["PlatformKeyArn"].rsplit("/", 1)[1]
    assert deployed.client("kms").get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"]


def as_mapping(document: str | dict[str, Any]) -> dict[str, Any]:
    """moto returns a document a template gave as a mapping as that mapping's repr, not as JSON."""
    if isinstance(document, dict):
        return document
    try:
        return json.loads(document)
    except json.JSONDecodeError:
        return ast.literal_eval(document)


def role_policy(iam: Any, role: str, name: str) -> dict[str, Any]:
    return as_mapping(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])


def test_the_airflow_host_and_the_emr_roles(deployed: Deployment) -> None:
    orchestration = deployed.outputs["OrchestrationStack"]
    [reservation] = deployed.client("ec2").describe_instances(InstanceIds=[orchestration["AirflowHostId"]])[
        "Reservations"]
    [host] = reservation["Instances"]
    assert host["SubnetId"] == deployed.outputs["NetworkStack"]["PrivateSubnetA"]
    assert not host.get("PublicIpAddress")
    emr = deployed.client("emr").describe_security_configuration(Name=orchestration["EmrSecurityConfigurationName"])
    configuration = as_mapping(emr["SecurityConfiguration"])
    assert configuration["InstanceMetadataServiceConfiguration"]["MinimumInstanceMetadataServiceVersion"] == 2
    iam = deployed.client("iam")
    service = role_policy(iam, orchestration["EmrServiceRoleName"], "pass-instance-role-and-encrypt-disks")
    [passes] = [s for s in service["Statement"] if s["Action"] == "iam:PassRole"]
    assert passes["Resource"] == iam.get_role(RoleName=f"{PREFIX}-emr-instance")["Role"]["Arn"]
    profile = iam.get_instance_profile(InstanceProfileName=orchestration["EmrInstanceProfileName"])
    assert [r["RoleName"] for r in profile["InstanceProfile"]["Roles"]] == [f"{PREFIX}-emr-instance"]
    host_role = next(r for r in iam.list_roles()["Roles"] if "AirflowHostRole" in r["RoleName"])
    document = role_policy(iam, host_role["RoleName"], "run-the-dag")
    [passes] = [s for s in document["Statement"] if s["Action"] == "iam:PassRole"]
    assert sorted(passes["Resource"]) == sorted(iam.get_role(RoleName=name)["Role"]["Arn"] for name in (
        f"{PREFIX}-emr-service", f"{PREFIX}-emr-instance"))


def test_the_trigger_lambda_its_dlq_concurrency_and_scoped_permission(deployed: Deployment) -> None:
    awslambda = deployed.client("lambda")
    trigger = deployed.outputs["TriggerStack"]
    config = awslambda.get_function_configuration(FunctionName=trigger["TriggerFunctionName"])
    assert (config["Runtime"], config["Handler"]) == ("python3.11", "lambda_trigger.handler.handler")
    assert sorted(config["VpcConfig"]["SubnetIds"]) == sorted(
        deployed.outputs["NetworkStack"]["PrivateSubnetIds"].split(","))
    assert config["VpcConfig"]["SecurityGroupIds"] == [deployed.outputs["SecurityStack"]["LambdaSecurityGroupId"]]
    queue = deployed.client("sqs").get_queue_attributes(QueueUrl=trigger["DeadLetterQueueUrl"],
                                                        AttributeNames=["All"])["Attributes"]
    assert queue["KmsMasterKeyId"] == deployed.outputs["SecurityStack"]["PlatformKeyArn"]
    [group] = deployed.client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{PREFIX}-trigger")[
        "logGroups"]
    assert group["retentionInDays"] == 90
    assert config["Environment"]["Variables"]["PRONOSTICO_AIRFLOW_URL"] == deployed.outputs["OrchestrationStack"][
        "AirflowUrl"]
    # By default nothing is reserved: a new account's quota of 10 is all that Lambda keeps unreserved.
    assert deployed.parameters["TriggerStack"]["ReservedConcurrency"] == "-1"
    assert "ReservedConcurrentExecutions" not in awslambda.get_function_concurrency(
        FunctionName=trigger["TriggerFunctionName"])
    [statement] = json.loads(awslambda.get_policy(FunctionName=trigger["TriggerFunctionName"])["Policy"])["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == f"arn:aws:s3:::{PREFIX}-raw"
    assert statement["Condition"]["StringEquals"]["AWS:SourceAccount"] == "123456789012"


def test_the_four_buckets_as_s3_reports_them(deployed: Deployment) -> None:
    s3 = deployed.client("s3")
    names = {f"{PREFIX}-{b}" for b in BUCKETS}
    assert names <= {b["Name"] for b in s3.list_buckets()["Buckets"]}
    for name in names:
        rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    [flow_log] = deployed.client("ec2").describe_flow_logs()["FlowLogs"]
    assert flow_log["ResourceId"] == deployed.outputs["NetworkStack"]["VpcId"]
    assert flow_log["LogDestination"] == f"arn:aws:s3:::{PREFIX}-artifacts"


def test_the_web_tier_alb_target_group_and_autoscaling_group(deployed: Deployment) -> None:
    elb = deployed.client("elbv2")
    network = deployed.outputs["NetworkStack"]
    [alb] = elb.describe_load_balancers()["LoadBalancers"]
    assert alb["Scheme"] == "internet-facing"
    assert {z["SubnetId"] for z in alb["AvailabilityZones"]} == set(network["PublicSubnetIds"].split(","))
    [target_group] = elb.describe_target_groups()["TargetGroups"]
    assert (target_group["HealthCheckPath"], target_group["Port"]) == ("/healthz", 8000)
    [listener] = elb.describe_listeners(LoadBalancerArn=alb["LoadBalancerArn"])["Listeners"]
    assert listener["Port"] == 80 and listener["DefaultActions"][0]["Type"] == "forward"  # no certificate given
    autoscaling = deployed.client("autoscaling")
    [group] = autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"]
    assert (group["MinSize"], group["MaxSize"]) == (2, 4)
    assert set(group["VPCZoneIdentifier"].split(",")) == set(network["PrivateSubnetIds"].split(","))
    assert group["TargetGroupARNs"] == [target_group["TargetGroupArn"]]
    template_id = group["LaunchTemplate"]["LaunchTemplateId"]
    [version] = deployed.client("ec2").describe_launch_template_versions(LaunchTemplateId=template_id)[
        "LaunchTemplateVersions"]
    assert version["LaunchTemplateData"]["MetadataOptions"]["HttpTokens"] == "required"
