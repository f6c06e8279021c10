"""The rehearsal's instance-metadata service and its TLS-only MariaDB standing in for RDS."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
import sqlalchemy as sa
from cfnlint.decode import cfn_yaml

from pronostico.prediction_log.db import create_engine
from tests.deploy.imds import InstanceMetadataService, StaticCredentials
from tests.deploy.rds import TlsMariaDb, port_open, write_certificates

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATABASE_URL_SCRIPT = PROJECT_ROOT / "bootstrap" / "aws" / "database_url.py"
RDS_TRUST_STORE = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
WEB = StaticCredentials("ASIAWEBINSTANCE00001", "web-secret-key", "web-session-token")
AIRFLOW = StaticCredentials("ASIAAIRFLOWHOST00001", "airflow-secret-key", "airflow-session-token")

# What an instance's SDK does with nothing configured but the metadata endpoint: the credential chain ends at
# the instance role; the region comes from the availability zone, as boto3's IMDS region provider reads it.
SDK_PROBE = """
import json, boto3
from botocore.utils import IMDSRegionProvider
session = boto3.Session()
credentials = session.get_credentials()
frozen = credentials.get_frozen_credentials()
print(json.dumps({"method": credentials.method, "access_key": frozen.access_key, "secret_key": frozen.secret_key,
                  "token": frozen.token, "region": IMDSRegionProvider(session._session).provide()}))
"""


@pytest.fixture
def imds() -> Iterator[InstanceMetadataService]:
    with InstanceMetadataService("127.0.0.1", region="eu-west-3") as service:
        service.register("127.0.0.1", "i-0123456789web001", "pronostico-web", lambda: WEB)
        service.register("127.0.0.2", "i-0123456789air001", "pronostico-airflow", lambda: AIRFLOW)
        yield service


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsMariaDb]:
    with TlsMariaDb("127.0.0.1", tmp_path_factory.mktemp("rds")) as db:
        yield db


def clean_environment(home: Path, endpoint: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(home), "AWS_EC2_METADATA_SERVICE_ENDPOINT": endpoint,
            "AWS_CONFIG_FILE": str(home / "no-config"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials")}


def imds_request(service: InstanceMetadataService, method: str, path: str, headers: dict[str, str],
                 source: str = "127.0.0.1") -> tuple[int, str]:
    port = int(service.endpoint.rstrip("/").rsplit(":", 1)[1])
    connection = http.client.HTTPConnection(service.host, port, timeout=5, source_address=(source, 0))
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def token(service: InstanceMetadataService, source: str = "127.0.0.1") -> str:
    status, body = imds_request(service, "PUT", "/latest/api/token",
                                {"X-aws-ec2-metadata-token-ttl-seconds": "60"}, source)
    assert status == 200
    return body


def test_an_sdk_with_no_credentials_gets_the_instance_role_and_region(imds: InstanceMetadataService,
                                                                      tmp_path: Path) -> None:
    probe = subprocess.run([sys.executable, "-c", SDK_PROBE], env=clean_environment(tmp_path, imds.endpoint),
                           capture_output=True, text=True, timeout=60, check=True)
    found = json.loads(probe.stdout)
    assert found == {"method": "iam-role", "access_key": WEB.access_key_id, "secret_key": WEB.secret_access_key,
                     "token": WEB.session_token, "region": "eu-west-3"}
    puts = [path for _, method, path, status in imds.requests if method == "PUT" and status == 200]
    refused = [request for request in imds.requests if request[3] != 200]
    assert puts, "the SDK should have asked for an IMDSv2 token"
    assert refused == []


def test_each_host_is_answered_for_its_own_address(imds: InstanceMetadataService) -> None:
    for source, role, instance_id in (("127.0.0.1", "pronostico-web", "i-0123456789web001"),
                                      ("127.0.0.2", "pronostico-airflow", "i-0123456789air001")):
        header = {"X-aws-ec2-metadata-token": token(imds, source)}
        roles = imds_request(imds, "GET", "/latest/meta-data/iam/security-credentials/", header, source)
        assert roles == (200, role)
        assert imds_request(imds, "GET", "/latest/meta-data/instance-id", header, source) == (200, instance_id)
        status, body = imds_request(imds, "GET", "/latest/dynamic/instance-identity/document", header, source)
        assert status == 200
        assert json.loads(body)["instanceId"] == instance_id
        status, body = imds_request(imds, "GET", "/latest/meta-data/iam/info", header, source)
        assert json.loads(body)["InstanceProfileArn"].endswith(f":instance-profile/{role}")


def test_the_credentials_are_read_when_asked_for(imds: InstanceMetadataService) -> None:
    """A session refreshed by the stand-in reaches the instance at its next fetch, as a rotated one would."""
    rotated = StaticCredentials("ASIAROTATED000000001", "rotated-secret", "rotated-token")
    imds.register("127.0.0.1", "i-0123456789web001", "pronostico-web", lambda: rotated)
    header = {"X-aws-ec2-metadata-token": token(imds)}
    status, body = imds_request(imds, "GET", "/latest/meta-data/iam/security-credentials/pronostico-web", header)
    document = json.loads(body)
    assert status == 200
    assert {key: document[key] for key in ("Code", "Type", "AccessKeyId", "SecretAccessKey", "Token")} == {
        "Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": rotated.access_key_id,
        "SecretAccessKey": rotated.secret_access_key, "Token": rotated.session_token}
    assert document["Expiration"] > document["LastUpdated"]


def test_a_get_without_a_valid_token_is_refused(imds: InstanceMetadataService) -> None:
    path = "/latest/meta-data/iam/security-credentials/pronostico-web"
    assert imds_request(imds, "GET", path, {})[0] == 401
    assert imds_request(imds, "GET", path, {"X-aws-ec2-metadata-token": "made-up"})[0] == 401
    # Every sandboxed host reaches the same server: a token works only from the address it was issued to.
    borrowed = {"X-aws-ec2-metadata-token": token(imds, "127.0.0.2")}
    assert imds_request(imds, "GET", path, borrowed, "127.0.0.1")[0] == 401
    assert imds_request(imds, "PUT", "/latest/api/token", {})[0] == 400
    assert imds_request(imds, "GET", "/latest/meta-data/instance-id", {}, "127.0.0.3")[0] == 404


def boot_database_url(secret: dict[str, object], ca_bundle: Path) -> str:
    """The URL as the web instance's boot builds it: the secret's JSON piped into database_url.py."""
    return subprocess.run([sys.executable, str(DATABASE_URL_SCRIPT), str(ca_bundle)], input=json.dumps(secret),
                          capture_output=True, text=True, timeout=30, check=True).stdout.strip()


def test_the_database_refuses_a_connection_without_tls(mariadb: TlsMariaDb, tmp_path: Path) -> None:
    """MariaDB answers an insecure transport with access denied (1045), where MySQL 8.4 on RDS says 3159."""
    secret = mariadb.secret()
    login = {"host": secret["host"], "port": secret["port"], "user": secret["username"],
             "password": secret["password"], "database": secret["dbname"]}
    with pytest.raises(pymysql.err.OperationalError) as refused:
        pymysql.connect(**login, ssl_disabled=True)
    assert refused.value.args[0] == 1045
    ca_bundle = tmp_path / "ca.pem"
    ca_bundle.write_bytes(mariadb.ca_pem)
    pymysql.connect(**login, ssl={"ca": str(ca_bundle)}).close()  # the same login, over TLS


def test_the_url_built_from_the_secret_connects_over_verified_tls(mariadb: TlsMariaDb, tmp_path: Path) -> None:
    ca_bundle = tmp_path / "rds-ca.pem"
    ca_bundle.write_bytes(mariadb.ca_pem)
    engine = create_engine(boot_database_url(mariadb.secret(), ca_bundle))
    try:
        with engine.connect() as connection:
            cipher = connection.execute(sa.text("SHOW SESSION STATUS LIKE 'Ssl_version'")).one()[1]
            database = connection.execute(sa.text("SELECT DATABASE()")).scalar_one()
    finally:
        engine.dispose()
    assert cipher.startswith("TLSv1.")
    assert database == "pronostico"


def test_a_certificate_from_another_ca_is_not_trusted(mariadb: TlsMariaDb, tmp_path: Path) -> None:
    """The URL's ssl_ca really verifies: the same server, judged against a CA that did not sign it, is refused."""
    write_certificates(tmp_path / "other", "127.0.0.1")
    engine = create_engine(boot_database_url(mariadb.secret(), tmp_path / "other" / "ca.pem"))
    try:
        with pytest.raises(sa.exc.OperationalError, match="CERTIFICATE_VERIFY_FAILED"), engine.connect():
            pass
    finally:
        engine.dispose()


def test_the_secret_is_what_rds_attaches_and_the_ca_is_served_as_is(mariadb: TlsMariaDb) -> None:
    secret = mariadb.secret()
    assert {"username", "password", "engine", "host", "port", "dbname"} <= set(secret)
    assert (secret["engine"], secret["username"], len(secret["password"])) == ("mysql", "pronostico", 32)
    assert str(secret["password"]).isalnum()  # the template's ExcludePunctuation
    assert mariadb.ca_url.endswith("/global/global-bundle.pem")
    with urllib.request.urlopen(mariadb.ca_url, timeout=5) as response:
        assert response.read() == mariadb.ca_pem
    assert mariadb.ca_pem.startswith(b"-----BEGIN CERTIFICATE-----")


def test_stopping_leaves_nothing_running(tmp_path: Path) -> None:
    db = TlsMariaDb("127.0.0.1", tmp_path).start()
    pid = int((tmp_path / "mysqld.pid").read_text())
    ca_port = int(db.ca_url.split(":")[2].split("/")[0])
    db.stop()
    assert not port_open("127.0.0.1", db.port)
    assert not port_open("127.0.0.1", ca_port)
    assert not Path(f"/proc/{pid}").exists()


def test_the_web_boot_downloads_the_rds_ca_from_a_boot_setting_that_defaults_to_aws() -> None:
    web = cfn_yaml.load(str(PROJECT_ROOT / "cloudformation" / "web.yaml"))
    parameter = web["Parameters"]["RdsCaBundleUrl"]
    assert parameter["Default"] == RDS_TRUST_STORE
    for url in (RDS_TRUST_STORE, "http://10.200.0.1:41234/global/global-bundle.pem"):
        assert re.fullmatch(parameter["AllowedPattern"], url), url
    assert not re.fullmatch(parameter["AllowedPattern"], "http://h/a&b")  # boot.env is sourced by bash
    user_data = web["Resources"]["WebLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]
    boot_env = user_data["Fn::Sub"]
    assert re.search(r"^RDS_CA_BUNDLE_URL=\$\{RdsCaBundleUrl\}$", boot_env, re.M), "boot.env does not carry it"
    script = (PROJECT_ROOT / "bootstrap" / "aws" / "web_instance.sh").read_text()
    assert f'"${{RDS_CA_BUNDLE_URL:-{RDS_TRUST_STORE}}}"' in script
