"""The `aws` commands of implementation_guide.md: found in its text, run by the rehearsal as the guide writes them.

Every command in the guide is either run against the stand-in, by `GuideRunner.run` with the guide's own text and
the guide's shell variables, or listed in `NOT_CHECKABLE` with the reason. A test holds the two to the guide, so that
a command added to the guide must be rehearsed or explained.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field

from pronostico.core.config import PROJECT_ROOT

TRUST_STORE = ("SSL_CERT_FILE", "SSL_CERT_DIR")

GUIDE = PROJECT_ROOT / "implementation_guide.md"
AWS_CLI = PROJECT_ROOT / "tools" / "awscli" / ".venv" / "bin" / "aws"
GLOBAL_OPTIONS_WITH_VALUE = {"--region", "--output", "--query", "--profile", "--endpoint-url"}


@dataclass(frozen=True)
class GuideCommand:
    line: int
    section: str
    text: str  # continuation lines joined

    @property
    def key(self) -> str:
        """`service operation`, the way the guide's commands are classified."""
        words = [w.strip("\"'`") for w in re.split(r"\s+", self.text.split("aws ", 1)[1])]
        names: list[str] = []
        skip = False
        for word in words:
            if skip:
                skip = False
            elif word in GLOBAL_OPTIONS_WITH_VALUE:
                skip = True
            elif not word.startswith("-") and word:
                names.append(word)
            if len(names) == 2:
                break
        return " ".join(names)


def guide_commands(text: str | None = None) -> list[GuideCommand]:
    """Each `aws` command of the guide: in its shell blocks (continuations joined) and in its inline code."""
    lines = (GUIDE.read_text(encoding="utf-8") if text is None else text).splitlines()
    found: list[GuideCommand] = []
    section, in_block, number = "", False, 0
    while number < len(lines):
        line = lines[number]
        number += 1
        if line.startswith("## "):
            section = line[3:].strip()
        if line.lstrip().startswith("```"):
            in_block = not in_block
            continue
        if in_block:
            start = number
            while line.rstrip().endswith("\\") and number < len(lines):
                line = line.rstrip()[:-1] + " " + lines[number].strip()
                number += 1
            code = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
            found += [GuideCommand(start, section, m.group(0).strip()) for m in re.finditer(r"\baws \S[^;|&)]*", code)]
        else:
            found += [GuideCommand(number, section, m.group(0).strip()) for span in re.findall(r"`([^`]+)`", line)
                      for m in re.finditer(r"\baws [a-z0-9][^;|&)]*", span)]
    return found


PARENT_STACK = ("moto cannot create main.yaml: it does not resolve a nested stack's outputs, so the rehearsal "
                "plays the parent, creating each nested stack from the same release with the parameters main.yaml "
                "passes (tests/deploy/stacks.py)")
NOT_CHECKABLE = {
    "cloudformation create-stack": PARENT_STACK,
    "cloudformation wait": PARENT_STACK,
    "cloudformation describe-stacks": PARENT_STACK + "; its outputs are read from the nested stacks instead",
    "cloudformation update-stack": PARENT_STACK,
    "cloudformation delete-stack": PARENT_STACK,
    "ssm start-session": "needs the Session Manager plugin and an SSM agent on a real instance; the rehearsal runs "
                         "what the guide does in the session on the sandboxed host itself",
    "rds describe-db-engine-versions": "only the RDS API knows the engine versions a region offers",
    "rds modify-db-instance": "the database is a TLS-only MariaDB standing in for RDS (moto's RDS cannot create the "
                              "database stack)",
    "rds delete-db-snapshot": "the database is a stand-in, with no snapshots",
    "quicksight list-users": "moto has no QuickSight, and the analytics stack is off in a first deploy",
    "secretsmanager delete-secret": "applies only to stacks made from older templates, which named their secrets",
    "secretsmanager put-secret-value": "named in the rotation steps without its arguments",
    "sqs receive-message": "awscli 1.x sends SQS calls to its legacy endpoint (queue.amazonaws.com), whatever "
                           "AWS_ENDPOINT_URL says; the rehearsal makes the same ReceiveMessage call through the SDK",
}
V2_ONLY = {
    "logs tail": "AWS CLI v2 only: awscli 1.x has no `logs tail`",
    "lambda invoke": "`--cli-binary-format` is AWS CLI v2 only",
}


def code_blocks(text: str | None = None) -> list[tuple[int, str]]:
    """(first line, body) of each fenced block of the guide."""
    lines = (GUIDE.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks, start = [], None
    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith("```"):
            if start is None:
                start = number + 1
            else:
                blocks.append((start, "\n".join(lines[start - 1:number - 1])))
                start = None
    return blocks


@dataclass
class GuideRunner:
    """Runs the guide's commands with the AWS CLI 1.x at the stand-in, as the admin user the rehearsal made."""

    endpoint: str
    credentials: Mapping[str, str]  # AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
    variables: dict[str, str] = field(default_factory=dict)  # the guide's shell variables: RELEASE_BUCKET, PREFIX...
    ran: list[GuideCommand] = field(default_factory=list)

    def command(self, key: str, containing: str = "") -> GuideCommand:
        matches = [c for c in guide_commands() if c.key == key and containing in c.text]
        assert matches, f"the guide has no `aws {key}` command containing {containing!r}"
        return matches[0]

    def run(self, key: str, containing: str = "", placeholders: Mapping[str, str] | None = None,
            **variables: str) -> str:
        """One of the guide's commands, its variables expanded by bash and its `<placeholders>` filled in; its
        output. A failure names the command."""
        command = self.command(key, containing)
        text = command.text
        for placeholder, value in (placeholders or {}).items():
            text = text.replace(placeholder, value)
        output = self._bash(text, f"guide line {command.line}", variables)
        self.ran.append(command)
        return output

    def run_block(self, containing: str, **variables: str) -> str:
        """A whole shell block of the guide (a loop, a function and its uses), as written."""
        matches = [(line, body) for line, body in code_blocks() if containing in body]
        assert matches, f"the guide has no shell block containing {containing!r}"
        line, body = matches[0]
        output = self._bash(body, f"guide block at line {line}", variables)
        self.ran += [c for c in guide_commands() if line <= c.line < line + body.count("\n") + 1]
        return output

    def _bash(self, script: str, where: str, variables: Mapping[str, str]) -> str:
        # the admin's machine keeps its own trust store: uv reaches PyPI through it to build the project
        trust = {name: os.environ[name] for name in TRUST_STORE if name in os.environ}
        environment = {"PATH": f"{AWS_CLI.parent}:{os.environ['PATH']}", "HOME": os.environ.get("HOME", "/root"),
                       "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": "us-east-1", **trust,
                       **self.credentials, **self.variables, **variables}
        done = subprocess.run(["bash", "-c", f"set -euo pipefail\n{script}"], cwd=PROJECT_ROOT, env=environment,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{where}: {script}\n{done.stderr[-2000:]}"
        return done.stdout
