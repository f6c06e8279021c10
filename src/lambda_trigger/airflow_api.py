"""Airflow 3's REST API v2, with the standard library only: a JWT from POST /auth/token, then JSON calls.

`AirflowApi` talks to an Airflow API server directly (the Airflow host on AWS, or the local standalone);
`MwaaApi` goes through Amazon MWAA's `invoke_rest_api`. Both trigger a DAG run the same way. Failures that
a retry may cure (timeouts, refused connections, 5xx, 429) raise `AirflowUnavailable`; a refusal that a retry
cannot cure raises `AirflowRefused`.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


class AirflowUnavailable(RuntimeError):
    """Airflow did not answer, or answered with a server error: worth another try."""


class AirflowRefused(RuntimeError):
    """Airflow answered with a client error that another try will not change."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"Airflow refused the request with {status}: {detail}")
        self.status = status


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any


def dag_run_body(run_id: str, conf: dict[str, Any], note: str = "") -> dict[str, Any]:
    # logical_date must be sent, as null: a run triggered by data has no schedule slot
    return {"dag_run_id": run_id, "logical_date": None, "conf": conf, **({"note": note} if note else {})}


class AirflowApi:
    def __init__(self, base_url: str, username: str, password: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self._token = ""

    def token(self) -> str:
        if not self._token:
            answer = self._send("POST", "/auth/token", {"username": self.username, "password": self.password}, {})
            if answer.status != 201:
                raise AirflowRefused(answer.status, f"no token for user {self.username!r}: {answer.body}")
            self._token = str(answer.body["access_token"])
        return self._token

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Answer:
        """One authenticated call; a 401 (an expired token) gets one fresh token and one more try."""
        if query:
            path = f"{path}?{urllib.parse.urlencode(query, doseq=True)}"
        answer = self._send(method, path, body, {"Authorization": f"Bearer {self.token()}"})
        if answer.status == 401:
            self._token = ""
            answer = self._send(method, path, body, {"Authorization": f"Bearer {self.token()}"})
        return answer

    def trigger_dag_run(self, dag_id: str, run_id: str, conf: dict[str, Any], note: str = "") -> bool:
        """True when the run was created, False when a run with this id already exists (409)."""
        answer = self.request("POST", f"/api/v2/dags/{urllib.parse.quote(dag_id)}/dagRuns",
                              dag_run_body(run_id, conf, note))
        if answer.status == 409:
            return False
        if answer.status >= 400:
            raise AirflowRefused(answer.status, json.dumps(answer.body)[:500])
        return True

    def _send(self, method: str, path: str, body: Any, headers: dict[str, str]) -> Answer:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method, headers={
            **headers, "Accept": "application/json", **({"Content-Type": "application/json"} if data else {})})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = Answer(response.status, _decode(response.read()))
        except urllib.error.HTTPError as error:
            answer = Answer(error.code, _decode(error.read()))
        except (OSError, http.client.HTTPException) as error:  # refused, reset, timed out, cut short
            raise AirflowUnavailable(f"{method} {self.base_url}{path}: {getattr(error, 'reason', error)}") from error
        if answer.status in TRANSIENT_STATUSES:
            raise AirflowUnavailable(f"{method} {self.base_url}{path}: HTTP {answer.status} {answer.body}")
        return answer


class MwaaApi:
    """The same trigger through Amazon MWAA, which signs the call with the Lambda's IAM role."""

    def __init__(self, environment: str, client: Any = None) -> None:
        if not environment:
            raise ValueError("PRONOSTICO_MWAA_ENVIRONMENT must name the MWAA environment in mwaa mode")
        self.environment = environment
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # in the Lambda runtime; only mwaa mode needs it

            self._client = boto3.client("mwaa")
        return self._client

    def trigger_dag_run(self, dag_id: str, run_id: str, conf: dict[str, Any], note: str = "") -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.invoke_rest_api(Name=self.environment, Method="POST", Path=f"/dags/{dag_id}/dagRuns",
                                        Body=dag_run_body(run_id, conf, note))
        except ClientError as error:
            status = int(error.response.get("RestApiStatusCode") or error.response["ResponseMetadata"]
                         .get("HTTPStatusCode", 0))
            if status == 409:
                return False
            if status in TRANSIENT_STATUSES or error.response["Error"]["Code"] == "RestApiServerException":
                raise AirflowUnavailable(f"MWAA {self.environment}: {error}") from error
            raise AirflowRefused(status, str(error)) from error
        except BotoCoreError as error:  # endpoint unreachable, read timeout
            raise AirflowUnavailable(f"MWAA {self.environment}: {error}") from error
        return True


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", errors="replace")[:500]
