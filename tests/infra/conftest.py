"""Fixtures for the AWS infrastructure tests: the parsed templates and the tools that check them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from pronostico.core.config import PROJECT_ROOT

TEMPLATES_DIR = PROJECT_ROOT / "cloudformation"
BOOTSTRAP_DIR = PROJECT_ROOT / "bootstrap"
VENV_BIN = Path(sys.executable).parent


def load_template(path: Path) -> dict[str, Any]:
    """A template as CloudFormation reads it: short forms (!Ref, !Sub, !GetAtt) become their Fn:: mappings."""
    return cfn_yaml.load(str(path))


@pytest.fixture(scope="session")
def templates() -> dict[str, dict[str, Any]]:
    """Every template under cloudformation/, by file stem (main, network, storage, ...)."""
    return {path.stem: load_template(path) for path in sorted(TEMPLATES_DIR.glob("*.yaml"))}


def resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: body for name, body in template["Resources"].items() if body["Type"] == resource_type}


def all_resources(templates: dict[str, dict[str, Any]], resource_type: str) -> dict[str, dict[str, Any]]:
    """`<stack>.<logical id>` -> resource, over every template."""
    return {f"{stack}.{name}": body for stack, template in templates.items()
            for name, body in resources(template, resource_type).items()}


def tool(name: str) -> str:
    path = VENV_BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make install`")
    return str(path)
