"""The stacks of a release, created in moto the way the parent stack would, with equivalents for what moto lacks.

moto 5 cannot resolve `Fn::GetAtt <nested stack>.Outputs.<name>`, so the rehearsal plays the parent: it creates
each nested stack from the release bucket in main.yaml's dependency order, passing the parameters main.yaml
passes. Where moto cannot create a resource, its equivalent is made through the service's own API
(`EQUIVALENTS` lists each case), and what CloudFormation would have resolved to it is filled in:

- the outputs that name it (moto drops an output whose `Ref` it could not resolve);
- the `${LogicalId}` left in the launch templates' user data;
- the role policies that name it (moto stores `None` there). Every inline role policy is put again as the
  template states it, resolved here, so that the simulator judges the templates' own policies.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.infra.conftest import load_template

REGION = "us-east-1"
ACCOUNT = "123456789012"
PSEUDO = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com",
          "AWS::NoValue": None}
EQUIVALENTS = {
    "AWS::SecretsManager::Secret": "Secrets Manager CreateSecret, with the template's GenerateSecretString, "
                                   "KmsKeyId and a generated name (moto's CloudFormation has no secrets)",
    "DatabaseStack": "moto's RDS cannot take the parameter group by `Ref`: the database is a TLS-only MariaDB of the "
                     "test's own, and its secret (host, port, dbname as the RDS attachment adds them) is made "
                     "through Secrets Manager with the platform key",
}


@dataclass
class Deployment:
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    parameters: dict[str, dict[str, str]] = field(default_factory=dict)
    stack_ids: dict[str, str] = field(default_factory=dict)
    equivalents: dict[str, str] = field(default_factory=dict)  # "<stack>.<logical id>" -> what it is
    user_data: dict[str, str] = field(default_factory=dict)  # launch template logical id -> its script

    def output(self, name: str) -> str:
        return next(outputs[name] for outputs in self.outputs.values() if name in outputs)


def topological_stacks(main: Mapping[str, Any]) -> list[str]:
    """The nested stacks in the order CloudFormation creates them (each after those whose outputs it reads)."""
    stacks = {name: body for name, body in main["Resources"].items() if body["Type"] == "AWS::CloudFormation::Stack"}
    needs = {name: set(re.findall(r"'Fn::GetAtt': \['(\w+)'", str(body))) for name, body in stacks.items()}
    order: list[str] = []
    while len(order) < len(stacks):
        ready = sorted(n for n in stacks if n not in order and needs[n] <= set(order))
        assert ready, f"a cycle among {set(stacks) - set(order)}"
        order += ready[:1]
    return order


def template_stem(main: Mapping[str, Any], stack: str) -> str:
    return re.search(r"/(\w+)\.yaml$", main["Resources"][stack]["Properties"]["TemplateURL"]["Fn::Sub"]).group(1)


class Resolver:
    """CloudFormation's intrinsic functions over one template, for the values a rehearsal must fill in itself."""

    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, str], physical: Mapping[str, str],
                 attribute: Callable[[str, str], str], stack: tuple[str, str]) -> None:
        self.template = template
        self.values: dict[str, Any] = {**PSEUDO, "AWS::StackName": stack[0], "AWS::StackId": stack[1]}
        for name, spec in template.get("Parameters", {}).items():
            value = parameters.get(name, spec.get("Default"))
            self.values[name] = value.split(",") if str(spec.get("Type", "")).startswith("List<") else value
        self.values.update(physical)
        self.attribute = attribute

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not None]
        if not isinstance(value, dict):
            return value
        if len(value) != 1 or not next(iter(value)).startswith(("Fn::", "Ref", "Condition")):
            return {key: resolved for key, v in value.items() if (resolved := self.resolve(v)) is not None}
        [(function, argument)] = value.items()
        return getattr(self, "_" + function.removeprefix("Fn::").lower())(argument)

    def _ref(self, name: str) -> Any:
        return self.values[name]

    def _getatt(self, argument: str | list[str]) -> str:
        logical, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
        return self.attribute(logical, attribute)

    def _sub(self, argument: str | list[Any]) -> str:
        text, extra = (argument, {}) if isinstance(argument, str) else (argument[0], self.resolve(argument[1]))

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in extra:
                return str(extra[name])
            if "." in name and name.split(".", 1)[0] not in self.values:
                return self._getatt(name)
            value = self.values[name]
            return ",".join(value) if isinstance(value, list) else str(value)

        return re.sub(r"\$\{([\w:.]+)\}", one, text)

    def _join(self, argument: list[Any]) -> str:
        return argument[0].join(str(v) for v in self.resolve(argument[1]))

    def _select(self, argument: list[Any]) -> Any:
        return self.resolve(argument[1])[int(self.resolve(argument[0]))]

    def _if(self, argument: list[Any]) -> Any:
        return self.resolve(argument[1] if self.condition(argument[0]) else argument[2])

    def _equals(self, argument: list[Any]) -> bool:
        left, right = self.resolve(argument)
        return str(left) == str(right)

    def _not(self, argument: list[Any]) -> bool:
        return not self.resolve(argument[0])

    def _condition(self, name: str) -> bool:
        return self.condition(name)

    def _base64(self, argument: Any) -> str:
        return base64.b64encode(str(self.resolve(argument)).encode()).decode()


def generated_secret(spec: Mapping[str, Any]) -> str:
    """What GenerateSecretString makes: the template's JSON with a generated string under its key."""
    alphabet = string.ascii_letters + string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += "!#$%&()*+,-.:;<=>?[]^_{|}~"
    value = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    if "SecretStringTemplate" not in spec:
        return value
    return json.dumps({**json.loads(spec["SecretStringTemplate"]), spec["GenerateStringKey"]: value})


class StackMaker:
    """Creates a release's stacks through an admin's clients (`client(service)`), equivalents included."""

    def __init__(self, client: Callable[[str], Any], release: Path, release_bucket: str, version: str,
                 prefix: str) -> None:
        self.client = client
        self.release = release
        self.main = load_template(release / "cloudformation" / "main.yaml")
        self.release_bucket, self.version, self.prefix = release_bucket, version, prefix
        self.deployment = Deployment()

    def upload_release(self) -> None:
        s3 = self.client("s3")
        s3.create_bucket(Bucket=self.release_bucket)
        for path in sorted(self.release.rglob("*")):
            if path.is_file():
                key = f"releases/{self.version}/{path.relative_to(self.release)}"
                s3.upload_file(str(path), self.release_bucket, key)

    def parent_parameters(self, **overrides: str) -> dict[str, str]:
        values = {name: str(spec["Default"]) for name, spec in self.main["Parameters"].items() if "Default" in spec}
        return {**values, "ReleaseBucket": self.release_bucket, "ReleaseVersion": self.version,
                "BucketPrefix": self.prefix, **overrides}

    def create_all(self, parent: Mapping[str, str],
                   stand_ins: Mapping[str, Callable[[dict[str, str]], dict[str, str]]],
                   extra: Mapping[str, Mapping[str, str]] | None = None) -> Deployment:
        """Every nested stack main.yaml creates under `parent`; a stack in `stand_ins` is made by that function.
        `extra` gives a nested stack parameters that main.yaml leaves at their defaults."""
        for name in topological_stacks(self.main):
            body = self.main["Resources"][name]
            if "Condition" in body and not Resolver(self.main, parent, {}, _no_attribute, ("", "")).condition(
                    body["Condition"]):
                continue
            parameters = {key: self._parent_value(value, parent)
                          for key, value in body["Properties"]["Parameters"].items()}
            parameters.update((extra or {}).get(name, {}))
            self.deployment.parameters[name] = parameters
            if name in stand_ins:
                self.deployment.outputs[name] = stand_ins[name](parameters)
                self.deployment.equivalents[name] = EQUIVALENTS[name]
                continue
            self._create(name, parameters)
        return self.deployment

    def _parent_value(self, value: Any, parent: Mapping[str, str]) -> str:
        if "Ref" in value:
            return parent[value["Ref"]]
        source, output = value["Fn::GetAtt"]
        return self.deployment.outputs[source][output.removeprefix("Outputs.")]

    def _create(self, name: str, parameters: dict[str, str]) -> None:
        cloudformation = self.client("cloudformation")
        stem = template_stem(self.main, name)
        url = (f"https://{self.release_bucket}.s3.{REGION}.amazonaws.com/releases/{self.version}/"
               f"cloudformation/{stem}.yaml")
        stack_name = f"{self.prefix}-{name}"
        stack_id = cloudformation.create_stack(
            StackName=stack_name, TemplateURL=url, Capabilities=["CAPABILITY_NAMED_IAM"],
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()])["StackId"]
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE", (name, stack["StackStatus"])
        self.deployment.stack_ids[name] = stack_id
        template = load_template(self.release / "cloudformation" / f"{stem}.yaml")
        physical = {s["LogicalResourceId"]: s["PhysicalResourceId"] for s in
                    cloudformation.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]}
        physical.update(self._secret_equivalents(name, template, parameters, physical, (stack_name, stack_id)))
        resolver = Resolver(template, parameters, physical, self._attribute(template, physical), (stack_name, stack_id))
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        for key, spec in template.get("Outputs", {}).items():  # moto drops those that name a resource it skipped
            if key not in outputs and ("Condition" not in spec or resolver.condition(spec["Condition"])):
                outputs[key] = str(resolver.resolve(spec["Value"]))
        self.deployment.outputs[name] = outputs
        self._put_role_policies(template, resolver, physical)
        self._fill_user_data(template, physical)

    def _secret_equivalents(self, stack: str, template: Mapping[str, Any], parameters: Mapping[str, str],
                            physical: Mapping[str, str], ids: tuple[str, str]) -> dict[str, str]:
        resolver = Resolver(template, parameters, physical, _no_attribute, ids)
        made = {}
        for logical, body in template["Resources"].items():
            if body["Type"] != "AWS::SecretsManager::Secret":
                continue
            properties = resolver.resolve(body["Properties"])
            name = f"{logical}-{secrets.token_hex(6)}"  # the shape of a name CloudFormation generates
            made[logical] = self.client("secretsmanager").create_secret(
                Name=name, KmsKeyId=properties["KmsKeyId"], Description=properties.get("Description", ""),
                SecretString=generated_secret(properties["GenerateSecretString"]))["ARN"]
            self.deployment.equivalents[f"{stack}.{logical}"] = EQUIVALENTS["AWS::SecretsManager::Secret"]
        return made

    def _attribute(self, template: Mapping[str, Any], physical: Mapping[str, str]) -> Callable[[str, str], str]:
        # The ARN of each type a role policy names, from its physical id as moto reports it.
        arns = {"AWS::IAM::Role": lambda name: self.client("iam").get_role(RoleName=name)["Role"]["Arn"],
                "AWS::S3::Bucket": lambda name: f"arn:aws:s3:::{name}",
                "AWS::Logs::LogGroup": lambda name: f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*",
                "AWS::SQS::Queue": lambda url: f"arn:aws:sqs:{REGION}:{ACCOUNT}:{url.rsplit('/', 1)[1]}"}

        def attribute(logical: str, name: str) -> str:
            kind = template["Resources"][logical]["Type"]
            if name != "Arn" or kind not in arns:
                raise KeyError(f"{logical}.{name}: not an ARN the rehearsal resolves")
            return arns[kind](physical[logical])

        return attribute

    def _put_role_policies(self, template: Mapping[str, Any], resolver: Resolver, physical: Mapping[str, str]) -> None:
        iam = self.client("iam")
        for logical, body in template["Resources"].items():
            if body["Type"] != "AWS::IAM::Role":
                continue
            for policy in body["Properties"].get("Policies", []):
                iam.put_role_policy(RoleName=physical[logical], PolicyName=policy["PolicyName"],
                                    PolicyDocument=json.dumps(resolver.resolve(policy["PolicyDocument"])))

    def _fill_user_data(self, template: Mapping[str, Any], physical: Mapping[str, str]) -> None:
        """moto leaves `${LogicalId}` of a resource it skipped in the user data: put in its equivalent."""
        ec2 = self.client("ec2")
        for logical, body in template["Resources"].items():
            if body["Type"] != "AWS::EC2::LaunchTemplate":
                continue
            [version] = ec2.describe_launch_template_versions(LaunchTemplateId=physical[logical],
                                                              Versions=["$Latest"])["LaunchTemplateVersions"]
            text = base64.b64decode(version["LaunchTemplateData"]["UserData"]).decode()
            text = re.sub(r"\$\{(\w+)\}", lambda m: physical.get(m.group(1), m.group(0)), text)
            left = re.findall(r"\$\{[\w:.]+\}", text)
            assert not left, f"{logical}: the user data still holds {left}"
            self.deployment.user_data[logical] = text


def _no_attribute(logical: str, name: str) -> str:
    raise KeyError(f"{logical}.{name}")
