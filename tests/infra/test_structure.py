"""Structural guarantees of the templates, read from the parsed YAML: what must never regress."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from typing import Any

from lambda_trigger.events import use_case_of
from pronostico.core.config import BUCKETS, PROJECT_ROOT
from pronostico.core.usecases import USE_CASES

from .conftest import BOOTSTRAP_DIR, TEMPLATES_DIR, all_resources, resources

Template = dict[str, Any]
OPEN_TO_WORLD = {"0.0.0.0/0", "::/0"}


def port(template: Template, value: Any) -> int:
    """A port, or the default of the parameter it refers to."""
    return int(template["Parameters"][value["Ref"]]["Default"] if isinstance(value, dict) else value)


def ingress_rules(templates: dict[str, Template]) -> list[tuple[str, dict[str, Any]]]:
    """(group, rule) for every ingress rule, inline in a group or as a separate resource; ports resolved."""
    rules = []
    for stack, template in templates.items():
        found = [(f"{stack}.{name}", rule) for name, group in resources(template, "AWS::EC2::SecurityGroup").items()
                 for rule in group["Properties"].get("SecurityGroupIngress", [])]
        found += [(f"{stack}.{r['Properties']['GroupId']['Ref']}", r["Properties"])
                  for r in resources(template, "AWS::EC2::SecurityGroupIngress").values()]
        rules += [(group, {**rule, "FromPort": port(template, rule["FromPort"]),
                           "ToPort": port(template, rule["ToPort"])}) for group, rule in found]
    return rules


def test_only_the_alb_takes_traffic_from_the_internet_and_only_on_80_and_443(templates: dict[str, Template]) -> None:
    world = [(group, rule) for group, rule in ingress_rules(templates)
             if rule.get("CidrIp") in OPEN_TO_WORLD or rule.get("CidrIpv6") in OPEN_TO_WORLD]
    assert {(g, r["FromPort"], r["ToPort"], r["IpProtocol"]) for g, r in world} == {
        ("security.AlbSecurityGroup", 80, 80, "tcp"), ("security.AlbSecurityGroup", 443, 443, "tcp")}


def test_no_rule_opens_ssh_and_every_rule_is_described(templates: dict[str, Template]) -> None:
    """Hosts are managed through SSM: no rule names port 22, and no address range reaches it."""
    for group, rule in ingress_rules(templates):
        assert rule["IpProtocol"] == "tcp", group
        assert (rule["FromPort"], rule["ToPort"]) != (22, 22), group
        assert "SourceSecurityGroupId" in rule or not rule["FromPort"] <= 22 <= rule["ToPort"], group
        assert rule.get("Description"), group
    airflow = templates["security"]["Resources"]["AirflowSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [r["SourceSecurityGroupId"] for r in airflow] == [{"Ref": "LambdaSecurityGroup"}]


def test_every_group_but_emrs_own_replaces_the_default_allow_all_egress(templates: dict[str, Template]) -> None:
    """A group without inline egress rules keeps AWS's allow-all egress, even beside SecurityGroupEgress resources."""
    open_egress = {name for name, group in all_resources(templates, "AWS::EC2::SecurityGroup").items()
                   if "SecurityGroupEgress" not in group["Properties"]}
    assert open_egress == {"security.EmrPrimarySecurityGroup", "security.EmrCoreSecurityGroup"}  # EMR manages these


def test_the_database_is_reached_only_from_the_web_and_airflow_groups(templates: dict[str, Template]) -> None:
    rules = [r for g, r in ingress_rules(templates) if g.endswith("DatabaseSecurityGroup")
             or g.endswith("DatabaseSecurityGroupId")]
    sources = {str(r["SourceSecurityGroupId"]) for r in rules}
    assert sources == {str({"Ref": "WebSecurityGroup"}), str({"Ref": "AirflowSecurityGroup"}),
                       str({"Ref": "QuickSightSecurityGroup"})}  # the last only with analytics enabled
    assert all((r["FromPort"], r["ToPort"]) == (3306, 3306) for r in rules)
    analytics = templates["analytics"]["Resources"]["DatabaseFromQuickSight"]
    assert "Condition" not in analytics and templates["main"]["Resources"]["AnalyticsStack"]["Condition"]


def test_the_database_is_private_encrypted_backed_up_and_its_password_generated(templates: dict[str, Template]) -> None:
    database = templates["database"]
    props = database["Resources"]["Database"]["Properties"]
    assert props["PubliclyAccessible"] is False
    assert props["StorageEncrypted"] is True
    assert props["Engine"] == "mysql" and database["Parameters"]["DbEngineVersion"]["Default"].startswith("8.")
    assert props["MultiAZ"] == {"Ref": "DbMultiAz"}
    assert props["BackupRetentionPeriod"] == {"Ref": "DbBackupRetentionDays"}
    assert database["Parameters"]["DbBackupRetentionDays"]["MinValue"] >= 1
    assert props["VPCSecurityGroups"] == [{"Ref": "DatabaseSecurityGroupId"}]
    assert "{{resolve:secretsmanager:${DbCredentials}" in props["MasterUserPassword"]["Fn::Sub"]
    assert "GenerateSecretString" in database["Resources"]["DbCredentials"]["Properties"]
    tls = database["Resources"]["DbParameterGroup"]["Properties"]["Parameters"]
    assert tls["require_secure_transport"] == "1"
    subnets = database["Resources"]["DbSubnetGroup"]["Properties"]["SubnetIds"]
    assert subnets == {"Ref": "PrivateSubnetIds"}
    assert templates["main"]["Resources"]["DatabaseStack"]["Properties"]["Parameters"]["PrivateSubnetIds"] == {
        "Fn::GetAtt": ["NetworkStack", "Outputs.PrivateSubnetIds"]}


def test_imdsv2_is_required_everywhere(templates: dict[str, Template]) -> None:
    launch_templates = all_resources(templates, "AWS::EC2::LaunchTemplate")
    assert len(launch_templates) == 2
    for name, body in launch_templates.items():
        options = body["Properties"]["LaunchTemplateData"]["MetadataOptions"]
        assert options["HttpTokens"] == "required", name
        assert options["HttpPutResponseHopLimit"] == 1, name
    for name, instance in all_resources(templates, "AWS::EC2::Instance").items():
        stack = name.split(".")[0]
        assert instance["Properties"]["LaunchTemplate"]["LaunchTemplateId"]["Ref"] in resources(
            templates[stack], "AWS::EC2::LaunchTemplate"), name
    for name, group in all_resources(templates, "AWS::AutoScaling::AutoScalingGroup").items():
        assert "LaunchTemplate" in group["Properties"] and "LaunchConfigurationName" not in group["Properties"], name
    emr = templates["orchestration"]["Resources"]["EmrSecurityConfiguration"]["Properties"]["SecurityConfiguration"]
    assert emr["InstanceMetadataServiceConfiguration"]["MinimumInstanceMetadataServiceVersion"] == 2


def test_every_bucket_is_encrypted_private_and_tls_only(templates: dict[str, Template]) -> None:
    buckets = all_resources(templates, "AWS::S3::Bucket")
    names = {body["Properties"]["BucketName"]["Fn::Sub"] for body in buckets.values()}
    assert names == {f"${{BucketPrefix}}-{bucket}" for bucket in BUCKETS}  # ARCHITECTURE.md's four
    policies = all_resources(templates, "AWS::S3::BucketPolicy")
    for name, body in buckets.items():
        props = body["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"][
            "SSEAlgorithm"] in {"AES256", "aws:kms"}, name
        assert all(props["PublicAccessBlockConfiguration"][flag] is True for flag in (
            "BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")), name
        assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}], name
        logical_id = name.split(".")[1]
        [policy] = [p for p in policies.values() if p["Properties"]["Bucket"] == {"Ref": logical_id}]
        [deny] = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and deny["Principal"] == "*", name


def bucket(templates: dict[str, Template], logical_id: str) -> dict[str, Any]:
    return templates["storage"]["Resources"][logical_id]["Properties"]


def expiring_prefixes(props: dict[str, Any]) -> set[str]:
    return {rule["Prefix"] for rule in props["LifecycleConfiguration"]["Rules"] if "ExpirationInDays" in rule}


def test_versioning_on_raw_and_models_and_lifecycle_for_logs_and_quarantine(templates: dict[str, Template]) -> None:
    for logical_id in ("RawBucket", "ModelsBucket"):
        assert bucket(templates, logical_id)["VersioningConfiguration"] == {"Status": "Enabled"}
    assert {"emr-logs/", "s3-access-logs/", "alb-logs/", "AWSLogs/"} <= expiring_prefixes(
        bucket(templates, "ArtifactsBucket"))
    assert "quarantine/" in expiring_prefixes(bucket(templates, "ProcessedBucket"))
    web = templates["web"]["Resources"]["LoadBalancer"]["Properties"]["LoadBalancerAttributes"]
    assert {"Key": "access_logs.s3.prefix", "Value": "alb-logs"} in web


def test_the_raw_bucket_notifies_the_lambda_of_every_csv_and_names_no_use_case(templates: dict[str, Template]) -> None:
    [config] = bucket(templates, "RawBucket")["NotificationConfiguration"]["LambdaConfigurations"]
    assert config["Event"] == "s3:ObjectCreated:*"
    assert config["Function"] == {"Ref": "TriggerFunctionArn"}
    assert config["Filter"]["S3Key"]["Rules"] == [{"Name": "suffix", "Value": ".csv"}]
    # the trigger, not the template, tells the use cases' folders from the rest
    assert [use_case_of(f"{name}/x.csv") for name in USE_CASES] == list(USE_CASES)
    assert use_case_of("other/x.csv") is None


def test_the_lambda_permission_is_scoped_to_the_raw_bucket_of_this_account(templates: dict[str, Template]) -> None:
    [permission] = resources(templates["trigger"], "AWS::Lambda::Permission").values()
    props = permission["Properties"]
    assert props["Principal"] == "s3.amazonaws.com" and props["Action"] == "lambda:InvokeFunction"
    assert props["SourceArn"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketPrefix}-raw"}
    assert props["SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_the_lambda_runs_the_trigger_handler_in_the_private_subnets_with_a_dlq(templates: dict[str, Template]) -> None:
    props = templates["trigger"]["Resources"]["TriggerFunction"]["Properties"]
    assert props["Handler"] == "lambda_trigger.handler.handler" and props["Runtime"] == "python3.11"
    assert props["VpcConfig"]["SubnetIds"] == {"Ref": "PrivateSubnetIds"}
    assert props["DeadLetterConfig"]["TargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert props["ReservedConcurrentExecutions"] == {
        "Fn::If": ["HasReservedConcurrency", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}
    assert props["Code"]["S3Key"] == {"Fn::Sub": "releases/${ReleaseVersion}/lambda_trigger.zip"}
    assert set(props["Environment"]["Variables"]) == {"PRONOSTICO_AIRFLOW_URL", "PRONOSTICO_AIRFLOW_SECRET_ARN",
                                                      "PRONOSTICO_AIRFLOW_MODE", "PRONOSTICO_DAG_ID"}


def policy_statements(templates: dict[str, Template]) -> list[tuple[str, dict[str, Any]]]:
    statements = []
    for name, role in all_resources(templates, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            statements += [(name, s) for s in policy["PolicyDocument"]["Statement"]]
    return statements


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_iam_pass_role_names_only_the_emr_roles_and_no_wildcard_actions(templates: dict[str, Template]) -> None:
    passes = {}
    for role, statement in policy_statements(templates):
        actions = as_list(statement["Action"])
        assert not any(a == "*" or a.endswith(":*") for a in actions), (role, actions)
        if "iam:PassRole" in actions:
            passes[role] = as_list(statement["Resource"])
    assert passes == {
        "orchestration.AirflowHostRole": [{"Fn::GetAtt": ["EmrServiceRole", "Arn"]},
                                          {"Fn::GetAtt": ["EmrInstanceRole", "Arn"]}],
        "orchestration.EmrServiceRole": [{"Fn::GetAtt": ["EmrInstanceRole", "Arn"]}],
    }


def test_the_web_tier_spans_two_azs_behind_the_alb_with_target_tracking(templates: dict[str, Template]) -> None:
    web = templates["web"]
    group = web["Resources"]["WebAutoScalingGroup"]["Properties"]
    assert group["VPCZoneIdentifier"] == {"Ref": "PrivateSubnetIds"}
    assert group["MinSize"] == {"Ref": "WebMinSize"} and web["Parameters"]["WebMinSize"]["MinValue"] >= 2
    assert group["HealthCheckType"] == "ELB"
    target = web["Resources"]["TargetGroup"]["Properties"]
    assert target["HealthCheckPath"] == "/healthz"
    [policy] = resources(web, "AWS::AutoScaling::ScalingPolicy").values()
    assert policy["Properties"]["PolicyType"] == "TargetTrackingScaling"
    alb = web["Resources"]["LoadBalancer"]["Properties"]
    assert alb["Scheme"] == "internet-facing" and alb["Subnets"] == {"Ref": "PublicSubnetIds"}
    assert web["Resources"]["HttpsListener"]["Condition"] == "HasCertificate"
    network = templates["network"]["Resources"]
    zones = {network[subnet]["Properties"]["AvailabilityZone"]["Fn::Select"][0]
             for subnet in ("PrivateSubnetA", "PrivateSubnetB")}
    assert zones == {0, 1}


def stack_template(nested: dict[str, Any]) -> str:
    url = nested["Properties"]["TemplateURL"]["Fn::Sub"]
    return re.search(r"/cloudformation/(\w+)\.yaml$", url).group(1)


def test_the_parent_passes_every_nested_stack_exactly_its_parameters(templates: dict[str, Template]) -> None:
    main = templates["main"]
    stacks = resources(main, "AWS::CloudFormation::Stack")
    assert {stack_template(s) for s in stacks.values()} == set(templates) - {"main"}
    for name, nested in stacks.items():
        child = templates[stack_template(nested)]
        passed = nested["Properties"]["Parameters"]
        assert set(passed) <= set(child["Parameters"]), name
        required = {p for p, spec in child["Parameters"].items() if "Default" not in spec}
        assert required <= set(passed), f"{name} lacks {required - set(passed)}"
        for value in passed.values():
            if "Fn::GetAtt" in value:
                source, output = value["Fn::GetAtt"]
                producer = templates[stack_template(stacks[source])]
                assert output.removeprefix("Outputs.") in producer["Outputs"], f"{name}: {value}"


def test_the_parent_groups_every_parameter_and_outputs_what_the_operator_needs(templates: dict[str, Template]) -> None:
    main = templates["main"]
    groups = main["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    grouped = [p for group in groups for p in group["Parameters"]]
    assert sorted(grouped) == sorted(main["Parameters"])  # each exactly once
    assert {"AlbUrl", "RawBucket", "ProcessedBucket", "ModelsBucket", "ArtifactsBucket", "AirflowHostId"} <= set(
        main["Outputs"])


def uv_lock_versions() -> dict[str, str]:
    lock = tomllib.loads((PROJECT_ROOT / "uv.lock").read_text())
    return {package["name"]: package["version"] for package in lock["package"]}


def test_the_emr_bootstrap_pins_what_uv_lock_pins() -> None:
    pins = dict(re.findall(r"^\s+([a-z0-9-]+)==(\S+)$", (BOOTSTRAP_DIR / "emr" / "bootstrap.sh").read_text(), re.M))
    assert {"numpy", "pandas", "pyarrow", "boto3"} <= set(pins)
    locked = uv_lock_versions()
    assert {name: locked[name] for name in pins} == pins


def boot_env_keys(template: Template, launch_template: str) -> set[str]:
    sub = template["Resources"][launch_template]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]
    text = sub["Fn::Sub"][0] if isinstance(sub["Fn::Sub"], list) else sub["Fn::Sub"]
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, re.M))


def variables_read(*scripts: str) -> set[str]:
    """Upper-case variables a script reads but never assigns: what its environment must provide."""
    text = "\n".join((BOOTSTRAP_DIR / "aws" / s).read_text() for s in scripts)
    text = re.sub(r"<<ENV\n.*?\nENV\n", "", text, flags=re.S)  # heredoc bodies only write variables
    read = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", text))
    assigned = set(re.findall(r"^\s*(?:export\s+|local\s+)?([A-Z][A-Z0-9_]*)=", text, re.M))
    assigned |= set(re.findall(r"export [A-Z_]+=\S+ ([A-Z][A-Z0-9_]*)=", text))
    return read - assigned - {"HOME", "SECONDS", "LINENO", "BASH_SOURCE"}


def test_the_user_data_provides_every_variable_the_boot_scripts_read(templates: dict[str, Template]) -> None:
    web = boot_env_keys(templates["web"], "WebLaunchTemplate")
    airflow = boot_env_keys(templates["orchestration"], "AirflowLaunchTemplate")
    assert variables_read("boot.sh", "common.sh", "web_instance.sh") <= web
    assert variables_read("boot.sh", "common.sh", "airflow_instance.sh") <= airflow


def test_the_hosts_settings_are_ones_the_code_reads() -> None:
    """Every PRONOSTICO_* variable the host env files set is read in config.py (one place for settings)."""
    config = (PROJECT_ROOT / "src" / "pronostico" / "core" / "config.py").read_text()
    for script in ("web_instance.sh", "airflow_instance.sh"):
        text = (BOOTSTRAP_DIR / "aws" / script).read_text()
        written = set(re.findall(r"^(PRONOSTICO_[A-Z0-9_]+)=", text, re.M))
        assert written, script
        unread = {name for name in written if f'"{name}"' not in config}
        assert unread == set(), f"{script} sets {unread}, which config.py does not read"


def test_templates_are_where_the_parent_and_release_expect_them() -> None:
    assert (TEMPLATES_DIR / "main.yaml").exists()
    release = (BOOTSTRAP_DIR / "aws" / "release.sh").read_text()
    assert "git archive --format=tar HEAD cloudformation" in release


def strings(node: Any) -> list[str]:
    """Every string in a parsed template, however deep."""
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in [key, *strings(value)]]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return [node] if isinstance(node, str) else []


def test_a_failed_first_create_rolls_back_and_frees_every_name_for_a_retry(templates: dict[str, Template]) -> None:
    """Nothing a rolled-back create made stays behind under a name the retry with the same prefix needs."""
    for stack in ("main", "database"):
        assert templates[stack]["Parameters"]["DbDeletionProtection"]["Default"] == "false", stack
    passed = templates["main"]["Resources"]["DatabaseStack"]["Properties"]["Parameters"]
    assert passed["DbDeletionProtection"] == {"Ref": "DbDeletionProtection"}
    buckets = all_resources(templates, "AWS::S3::Bucket")
    assert len(buckets) == len(BUCKETS)
    for name, body in buckets.items():
        assert (body["DeletionPolicy"], body["UpdateReplacePolicy"]) == ("RetainExceptOnCreate", "Retain"), name
    for stack, template in templates.items():
        kept = {name for name, body in template["Resources"].items() if body.get("DeletionPolicy") == "Retain"}
        assert kept == set(), f"{stack}: {kept} would survive a rolled-back create"
    secrets = all_resources(templates, "AWS::SecretsManager::Secret")
    assert {"database.DbCredentials", "orchestration.AirflowCredentials", "web.AppSecretKey"} <= set(secrets)
    for name, body in secrets.items():
        assert "Name" not in body["Properties"], f"{name}: a deleted secret's name stays taken for days"
    for stack, template in templates.items():
        named = [s for s in strings(template) if "${BucketPrefix}/" in s]  # the old secret-name form
        assert named == [], f"{stack} still names a secret by path: {named}"


def test_the_operator_finds_the_database_secret_in_the_stack_outputs(templates: dict[str, Template]) -> None:
    """Its name is generated, so the guide's database check reads it by the ARN the parent outputs."""
    main = templates["main"]
    assert main["Outputs"]["DbSecretArn"]["Value"] == {"Fn::GetAtt": ["DatabaseStack", "Outputs.DbSecretArn"]}
    assert templates["database"]["Outputs"]["DbSecretArn"]["Value"] == {"Ref": "DbCredentials"}
    guide = GUIDE.read_text()
    assert "out DbSecretArn" in guide and '--secret-id "<prefix>/' not in guide


PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}


def arn_pattern(value: Any) -> str:
    """A statement's resource as a glob, its pseudo parameters filled in."""
    text = value if isinstance(value, str) else value.get("Fn::Sub", "")
    for name, replacement in PSEUDO.items():
        text = text.replace(f"${{{name}}}", replacement)
    return text


def allowed_unconditionally(templates: dict[str, Template], role: str, action: str, arn: str) -> bool:
    for name, statement in policy_statements(templates):
        if name != role or statement["Effect"] != "Allow" or "Condition" in statement:
            continue
        if any(fnmatch.fnmatch(action.lower(), a.lower()) for a in as_list(statement["Action"])) and any(
                fnmatch.fnmatchcase(arn, arn_pattern(r)) for r in as_list(statement["Resource"])):
            return True
    return False


def test_the_airflow_host_may_set_the_auto_termination_policy_of_the_clusters_it_starts(
        templates: dict[str, Template]) -> None:
    """EMR checks PutAutoTerminationPolicy on the new cluster when RunJobFlow carries an AutoTerminationPolicy."""
    code = [path for folder in ("dags", "src") for path in (PROJECT_ROOT / folder).rglob("*.py")]
    assert any('"AutoTerminationPolicy"' in path.read_text() for path in code)  # the cluster request sends it
    [run] = [s for role, s in policy_statements(templates)
             if role == "orchestration.AirflowHostRole" and "elasticmapreduce:RunJobFlow" in as_list(s["Action"])]
    assert run["Resource"] == "*"  # RunJobFlow has no resource; the cluster it creates is the one checked
    cluster = "arn:aws:elasticmapreduce:us-east-1:123456789012:cluster/j-2AXXXXXXGAPLF"
    role = "orchestration.AirflowHostRole"
    assert allowed_unconditionally(templates, role, "elasticmapreduce:PutAutoTerminationPolicy", cluster)
    assert allowed_unconditionally(templates, role, "elasticmapreduce:TerminateJobFlows", cluster)
    assert not allowed_unconditionally(templates, role, "elasticmapreduce:PutAutoTerminationPolicy",
                                       "arn:aws:elasticmapreduce:us-east-1:210987654321:cluster/j-OTHER")


def condition_holds(template: Template, name: str, values: dict[str, str]) -> bool:
    """Evaluate one of the template's Conditions (Fn::Not, Fn::Equals, Ref, a one-name Sub) for these values."""
    def value(node: Any) -> Any:
        if isinstance(node, dict) and ("Ref" in node or "Fn::Sub" in node):
            name = node.get("Ref") or node["Fn::Sub"].strip("${}")
            return str(values.get(name, template["Parameters"][name].get("Default")))
        if isinstance(node, dict) and "Fn::Not" in node:
            return not value(node["Fn::Not"][0])
        if isinstance(node, dict) and "Fn::Equals" in node:
            left, right = (value(side) for side in node["Fn::Equals"])
            return left == right
        return str(node)

    return bool(value(template["Conditions"][name]))


def test_the_trigger_reserves_no_concurrency_unless_asked(templates: dict[str, Template]) -> None:
    """New accounts have a concurrency quota of 10 and Lambda keeps 10 unreserved: any reservation fails there."""
    trigger = templates["trigger"]
    main = templates["main"]
    assert str(main["Parameters"]["TriggerReservedConcurrency"]["Default"]) == "-1"
    passed = main["Resources"]["TriggerStack"]["Properties"]["Parameters"]["ReservedConcurrency"]
    assert passed == {"Ref": "TriggerReservedConcurrency"}
    assert str(trigger["Parameters"]["ReservedConcurrency"]["Default"]) == "-1"
    reservation = trigger["Resources"]["TriggerFunction"]["Properties"]["ReservedConcurrentExecutions"]
    condition, when_set, otherwise = reservation["Fn::If"]
    assert (when_set, otherwise) == ({"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"})
    assert not condition_holds(trigger, condition, {})
    assert condition_holds(trigger, condition, {"ReservedConcurrency": "2"})


def test_the_parent_exposes_the_rds_engine_version_and_allows_a_major_only_pin(templates: dict[str, Template]) -> None:
    main = templates["main"]
    assert main["Resources"]["DatabaseStack"]["Properties"]["Parameters"]["DbEngineVersion"] == {
        "Ref": "DbEngineVersion"}
    for stack in ("main", "database"):
        spec = templates[stack]["Parameters"]["DbEngineVersion"]
        assert spec["Default"] == "8.4", stack
        pattern = re.compile(spec["AllowedPattern"])
        assert all(pattern.match(v) for v in ("8.4", "8.4.7", "8.4.11")), stack
        assert not any(pattern.match(v) for v in ("8.0.36", "8.41", "8.4.x", "8")), stack


GUIDE = PROJECT_ROOT / "implementation_guide.md"
ORDER_SENTENCE = re.compile(r"Each nested stack waits for the stacks whose outputs it reads: (.*?)\.\n\n", re.S)


def stack_predecessors(main: Template) -> dict[str, set[str]]:
    """Nested stack -> the nested stacks it reads outputs from (or names in DependsOn)."""
    stacks = resources(main, "AWS::CloudFormation::Stack")
    needs = {}
    for name, body in stacks.items():
        read = set(re.findall(r"'Fn::GetAtt': \['(\w+)'", str(body["Properties"])))
        needs[name] = read | set(as_list(body.get("DependsOn", [])))
    return needs


def test_the_guide_states_the_creation_order_main_yaml_sets(templates: dict[str, Template]) -> None:
    """Each `<stack> after <a>, <b> and <c>` clause of the guide names exactly the stack's predecessors."""
    needs = stack_predecessors(templates["main"])
    match = ORDER_SENTENCE.search(GUIDE.read_text())
    assert match, "the guide lost its sentence on the creation order"
    stated = {}
    for clause in re.split(r";\s*", " ".join(match.group(1).split())):
        stack, _, after = clause.partition(" after ")
        names = re.split(r",\s*|\s+and\s+", after)
        stated[f"{stack.strip().title()}Stack"] = {f"{n.strip().title()}Stack" for n in names if n.strip()}
    assert stated == {name: found for name, found in needs.items() if found}
