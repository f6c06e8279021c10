"""The deploy sandbox without AWS: isolation of files and network, and the shims the user data relies on."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import psutil
import pytest

from tests.deploy.sandbox import FORWARDING, Host, Lan

HostFactory = Callable[[str], Host]
PROBE_SERVER = """
import http.server, socket, socketserver, threading, time
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = socket.gethostname().encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
for address in (("127.0.0.1", 8001), ("0.0.0.0", 8000)):
    threading.Thread(target=socketserver.TCPServer(address, Answer).serve_forever, daemon=True).start()
time.sleep(600)
"""
PROBE_UNIT = """[Unit]
Description=probe

[Service]
Type=simple
User=probe
Group=probe
WorkingDirectory=/var/lib/probe
EnvironmentFile=/etc/probe.env
EnvironmentFile=-/etc/probe-missing.env
Environment=FIXED=fixed
ExecStart=/bin/sh -c 'echo "$PROBE_VALUE|$FIXED|$(id -un)|$(pwd)|$AWS_ENDPOINT_URL" > out; exec sleep 600'

[Install]
WantedBy=multi-user.target
"""


@pytest.fixture
def lan() -> Iterator[Lan]:
    with Lan() as made:
        yield made


@pytest.fixture
def make_host(lan: Lan, tmp_path: Path) -> Iterator[HostFactory]:
    hosts: list[Host] = []

    def make(name: str) -> Host:
        host = Host(name, lan, tmp_path / name, aws_endpoint_url=f"http://{lan.gateway}:1",
                    metadata_endpoint_url=f"http://{lan.gateway}:2")
        hosts.append(host)
        return host.start()

    yield make
    for host in hosts:
        host.stop()


def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {seconds} s")
        time.sleep(0.1)


def gone(pid: int) -> bool:
    """Ended: no such process, or one that only waits for its parent to reap it."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def http_text(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.read().decode()
    except OSError:
        return None


def test_writes_to_overlaid_directories_stay_in_the_sandbox(make_host: HostFactory, tmp_path: Path) -> None:
    host = make_host("files")
    marker = f"rehearsal-marker-{tmp_path.name}"
    paths = [f"/{top}/{marker}" for top in ("etc", "opt", "var", "usr/local", "root", "run", "tmp")]
    host.run(["sh", "-c", " && ".join(f"echo inside > {path}" for path in paths)], check=True)
    host.run(["sh", "-c", "echo changed >> /etc/hostname"], check=True)

    for path in paths:
        assert host.path(path).read_text() == "inside\n"
        assert not Path(path).exists(), f"{path} reached this machine"
    assert "changed" not in Path("/etc/hostname").read_text()
    assert host.run(["hostname"]).stdout.strip() == "files"


def test_user_data_environment_is_cloud_inits_with_the_two_endpoints(make_host: HostFactory, lan: Lan) -> None:
    host = make_host("env")
    result = host.run_user_data("#!/bin/sh\nenv > /var/log/env.txt\necho booted >> /var/log/pronostico-boot.log\n",
                                timeout=30)

    assert result.exit_code == 0 and result.boot_log == "booted\n"
    env = dict(line.split("=", 1) for line in host.read_text("/var/log/env.txt").splitlines())
    assert "HOME" not in env and env["LANG"]
    assert env["AWS_ENDPOINT_URL"] == f"http://{lan.gateway}:1"
    assert env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] == f"http://{lan.gateway}:2"
    assert not {key for key in env if key.startswith("AWS_") and "ENDPOINT" not in key}
    assert host.run(["sh", "-c", "test -e /root/.aws"]).returncode != 0
    assert host.run(["aws", "--version"]).stdout.startswith("aws-cli/1.")


def test_user_data_that_overruns_is_killed(make_host: HostFactory) -> None:
    host = make_host("slow")
    result = host.run_user_data("#!/bin/sh\nsleep 30\n", timeout=1)

    assert result.timed_out and result.seconds < 10
    assert [pid for pid in host.processes() if pid != host.holder.pid] == []  # type: ignore[union-attr]


def test_two_hosts_bind_the_same_loopback_port_and_answer_on_their_own_addresses(make_host: HostFactory) -> None:
    hosts = [make_host("web-a"), make_host("web-b")]
    for host in hosts:
        host.spawn(["/usr/bin/python3.11", "-c", PROBE_SERVER])

    for host in hosts:
        wait_for(lambda host=host: http_text(f"http://{host.address}:8000/") == host.name, 10,
                 f"{host.name} answered on {host.address}:8000")
        inside = host.run(["curl", "-fsS", "http://127.0.0.1:8001/"], check=True).stdout
        assert inside == host.name


def test_systemctl_runs_a_unit_as_written_and_stop_leaves_no_process(make_host: HostFactory) -> None:
    host = make_host("units")
    host.run(["useradd", "--system", "--home-dir", "/var/lib/probe", "--create-home", "probe"], check=True)
    host.path("/etc/probe.env").write_text('# comment\nPROBE_VALUE="hello world"\n')
    host.path("/etc/systemd/system/probe.service").write_text(PROBE_UNIT)
    for command in (["systemctl", "daemon-reload"], ["systemctl", "enable", "probe"],
                    ["systemctl", "restart", "probe"]):
        host.run(command, check=True)

    out = host.path("/var/lib/probe/out")
    wait_for(out.exists, 10, "the unit wrote its output")
    assert out.read_text() == f"hello world|fixed|probe|/var/lib/probe|http://{host.lan.gateway}:1\n"
    assert host.run(["systemctl", "is-active", "probe"]).returncode == 0
    first = int(host.path("/run/rehearsal/units/probe.service.pid").read_text())
    probe_uid = int(host.run(["id", "-u", "probe"], check=True).stdout)
    assert psutil.Process(first).uids().real == probe_uid

    host.run(["systemctl", "restart", "probe.service"], check=True)
    second = int(host.path("/run/rehearsal/units/probe.service.pid").read_text())
    assert second != first and gone(first)
    assert host.systemctl_log() == [("daemon-reload", "-"), ("enable", "probe.service"),
                                    ("restart", "probe.service"), ("restart", "probe.service")]

    inside = host.processes()
    host.stop()
    assert [pid for pid in inside if not gone(pid)] == []


def test_systemctl_starts_debians_forking_nginx_and_a_template_unit(make_host: HostFactory) -> None:
    host = make_host("nginx")
    host.path("/etc/systemd/system/echo@.service").write_text(
        "[Service]\nExecStart=/bin/sh -c 'echo %i > /run/echo-%i; exec sleep 600'\n")
    host.run(["systemctl", "enable", "--now", "nginx", "echo@scheduler"], check=True)
    host.run(["systemctl", "reload-or-restart", "nginx"], check=True)

    assert http_text(f"http://{host.address}:80/") is not None
    wait_for(host.path("/run/echo-scheduler").exists, 5, "the template unit ran with %i")
    nginx_pid = int(host.path("/run/nginx.pid").read_text())
    assert int(host.path("/run/rehearsal/units/nginx.service.pid").read_text()) == nginx_pid
    host.run(["systemctl", "stop", "nginx"], check=True)
    assert host.run(["systemctl", "is-active", "nginx"]).returncode == 3
    assert gone(nginx_pid)


def test_postgresql_setup_and_unit_give_a_server_on_its_socket(make_host: HostFactory) -> None:
    host = make_host("airflow")
    host.run(["dnf", "install", "-y", "-q", "postgresql16-server"], check=True)
    host.run(["postgresql-setup", "--initdb"], check=True, timeout=60)
    host.run(["systemctl", "enable", "--now", "postgresql"], check=True, timeout=60)

    answer = host.run(["runuser", "-u", "postgres", "--", "psql", "-tAc", "select 1"], check=True)
    assert answer.stdout.strip() == "1"
    assert host.path("/var/lib/pgsql/data/PG_VERSION").exists()
    assert not Path("/var/lib/pgsql/data").exists()


def test_dnf_installs_what_this_machine_has_and_refuses_the_rest(make_host: HostFactory) -> None:
    host = make_host("dnf")
    assert host.run(["dnf", "install", "-y", "nginx", "python3.11"]).returncode == 0

    refused = host.run(["dnf", "install", "-y", "nonexistent"])
    assert refused.returncode != 0 and "nonexistent" in refused.stderr
    assert host.run(["dnf", "update", "-y"]).returncode != 0
    assert host.read_text("/run/rehearsal/dnf.log") == "nginx python3.11\n"


class FakeAws(http.server.BaseHTTPRequestHandler):
    """The metadata endpoint and CloudFormation's SignalResource, just enough for cfn-signal."""

    signals: ClassVar[list[dict[str, str]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def answer(self, body: str, content_type: str = "text/plain") -> None:
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:
        self.answer("token")

    def do_GET(self) -> None:
        if self.path.endswith("/instance-id"):
            self.answer("i-0123456789abcdef0")
        elif self.path.endswith("/security-credentials/"):
            self.answer("probe-role")
        elif self.path.endswith("/security-credentials/probe-role"):
            self.answer(json.dumps({"Code": "Success", "AccessKeyId": "AKIAPROBE", "SecretAccessKey": "secret",
                                    "Token": "token", "Expiration": "2099-01-01T00:00:00Z"}))
        else:
            self.send_error(404)

    def do_POST(self) -> None:
        form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        FakeAws.signals.append({key: values[0] for key, values in form.items()})
        self.answer('<SignalResourceResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">'
                    "<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></SignalResourceResponse>",
                    "text/xml")


def test_cfn_signal_sends_signal_resource_with_the_instance_id(lan: Lan, tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer((lan.gateway, 0), FakeAws)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://{lan.gateway}:{server.server_address[1]}"
    FakeAws.signals = []
    try:
        with Host("signal", lan, tmp_path / "signal", aws_endpoint_url=url, metadata_endpoint_url=url) as host:
            result = host.run_user_data(
                "#!/bin/sh\n/opt/aws/bin/cfn-signal --exit-code 0 --stack web --resource WebAutoScalingGroup"
                " --region eu-west-1\n/opt/aws/bin/cfn-signal --exit-code 1 --stack web --resource Other"
                " --region eu-west-1\n", timeout=60)
    finally:
        server.shutdown()

    assert result.exit_code == 0, result.output
    assert [(s["status"], s["resource"], s["unique_id"], s["cli_exit"]) for s in result.signals] == [
        ("SUCCESS", "WebAutoScalingGroup", "i-0123456789abcdef0", 0), ("FAILURE", "Other", "i-0123456789abcdef0", 0)]
    assert [(s["Action"], s["StackName"], s["LogicalResourceId"], s["UniqueId"], s["Status"])
            for s in FakeAws.signals] == [
        ("SignalResource", "web", "WebAutoScalingGroup", "i-0123456789abcdef0", "SUCCESS"),
        ("SignalResource", "web", "Other", "i-0123456789abcdef0", "FAILURE")]


def test_lan_nats_the_hosts_way_out_and_close_removes_every_trace(tmp_path: Path) -> None:
    def nat_rules() -> str:
        return subprocess.run(["iptables", "-t", "nat", "-S", "POSTROUTING"], capture_output=True, text=True,
                              check=True).stdout

    with Lan() as lan, Host("out", lan, tmp_path / "out", aws_endpoint_url="http://x", metadata_endpoint_url="http://y"
                            ) as host:
        assert f"-s {lan.subnet}.0/24" in nat_rules() and FORWARDING.read_text().strip() == "1"
        route = host.run(["ip", "route", "show", "default"], check=True).stdout
        assert f"via {lan.gateway}" in route
        assert "system-certs = true" in host.read_text("/etc/uv/uv.toml")
        netns = host.nic.netns  # type: ignore[union-attr]

    assert f"-s {lan.subnet}.0/24" not in nat_rules()
    assert netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert subprocess.run(["ip", "link", "show", lan.bridge], capture_output=True).returncode != 0
