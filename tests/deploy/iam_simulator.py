"""A real IAM policy evaluator for the AWS stand-in: @cloud-copilot/iam-simulate in one long-lived node process.

tools/iam-simulate/serve.mjs reads one JSON simulation per line and answers one JSON line each; this module keeps
the process open for the stand-in's life and serialises requests on its pipe.
"""

from __future__ import annotations

import collections
import itertools
import json
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "iam-simulate"
INSTALL_HINT = "npm ci --prefix tools/iam-simulate"


@dataclass(frozen=True)
class Decision:
    """The simulator's verdict: Allowed, ImplicitlyDenied, ExplicitlyDenied, or Error (invalid input)."""

    result: str
    errors: Any = None
    ignored_context_keys: list[str] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return self.result == "Allowed"


def policy_entries(policies: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": name, "policy": document} for name, document in policies.items()]


class Simulator:
    """One node process; `judge` is safe to call from the stand-in's request threads."""

    def __init__(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("the AWS stand-in needs node on PATH to run the IAM simulator")
        if not (TOOL / "node_modules" / "@cloud-copilot" / "iam-simulate").is_dir():
            raise RuntimeError(f"the IAM simulator is not installed: run `{INSTALL_HINT}`")
        self._process = subprocess.Popen(
            [node, str(TOOL / "serve.mjs")],
            cwd=TOOL,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        # node's last words, for the error if it dies (e.g. node_modules reinstalled under it)
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._stderr_thread = threading.Thread(target=self._read_stderr, name="iam-simulate-stderr", daemon=True)
        self._stderr_thread.start()

    def _read_stderr(self) -> None:
        assert self._process.stderr is not None
        for line in self._process.stderr:
            self._stderr.append(line.rstrip())

    def judge(
        self,
        principal: str,
        action: str,
        resource: str,
        account: str,
        context: dict[str, Any],
        identity_policies: dict[str, Any],
        resource_policy: Any = None,
    ) -> Decision:
        simulation: dict[str, Any] = {
            "request": {
                "principal": principal,
                "action": action,
                "resource": {"resource": resource, "accountId": account},
                "contextVariables": {key: _context_value(value) for key, value in context.items()},
            },
            "identityPolicies": policy_entries(identity_policies),
            "serviceControlPolicies": [],
            "resourceControlPolicies": [],
        }
        if resource_policy is not None:
            simulation["resourcePolicy"] = resource_policy
        answer = self._ask(simulation)
        return Decision(answer["result"], answer.get("errors"), answer.get("ignoredContextKeys", []))

    def _ask(self, simulation: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        with self._lock:
            request_id = next(self._ids)
            try:
                self._process.stdin.write(json.dumps({"id": request_id, "simulation": simulation}) + "\n")
                self._process.stdin.flush()
                line = self._process.stdout.readline()
            except BrokenPipeError:
                line = ""
        if not line:
            self._process.wait(timeout=5)
            tail = "\n".join(self._stderr)
            raise RuntimeError(f"the IAM simulator exited (code {self._process.returncode}):\n{tail}")
        answer = json.loads(line)
        if answer.get("id") != request_id:
            raise RuntimeError(f"the IAM simulator answered request {answer.get('id')} for {request_id}")
        return answer

    def close(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._stderr_thread.join(timeout=5)
        for stream in (self._process.stdout, self._process.stderr):
            if stream is not None:
                stream.close()


def _context_value(value: Any) -> str | list[str]:
    # IAM context values are strings (or lists of them) whatever their condition type.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | set):
        return ["true" if item is True else "false" if item is False else str(item) for item in value]
    return str(value)
