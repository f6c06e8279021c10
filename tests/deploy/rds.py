"""A TLS-only MariaDB standing in for the prediction log's RDS instance, and its CA bundle over HTTP.

    with TlsMariaDb("10.200.0.1", workdir) as db:
        db.secret()   # what Secrets Manager holds once the attachment adds the instance's connection details
        db.ca_url     # where the web instance's boot downloads the CA bundle (RDS_CA_BUNDLE_URL)

The server is a mariadbd of its own (datadir, socket and pid file under workdir, no option file read), so the
machine's own database is never touched. Like RDS with require_secure_transport=1, it refuses any TCP connection
without TLS; its certificate is issued for the listening address by a CA made at start, which clients must verify
(PyMySQL checks the host name too once a CA is given).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import shutil
import socket
import string
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pronostico.local.stack import processes

MASTER_USER = "pronostico"  # database.yaml's SecretStringTemplate
DATABASE = "pronostico"
CA_PATH = "/global/global-bundle.pem"  # the trust store's own path, so only the host part of the URL differs
START_TIMEOUT = 60.0


def generated_password() -> str:
    """As CloudFormation generates it: 32 characters, ExcludePunctuation."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


class TlsMariaDb:
    def __init__(self, host: str, workdir: Path, *, instance_id: str = "pronostico-log") -> None:
        self.host = host
        self.workdir = Path(workdir)
        self.instance_id = instance_id
        self.port = 0
        self.password = generated_password()
        self._process: subprocess.Popen[bytes] | None = None
        self._ca_server: ThreadingHTTPServer | None = None
        self._ca_thread: threading.Thread | None = None

    @property
    def socket_path(self) -> Path:
        return self.workdir / "mysqld.sock"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "tls" / "ca.pem"

    @property
    def ca_pem(self) -> bytes:
        return self.ca_file.read_bytes()

    @property
    def ca_url(self) -> str:
        if self._ca_server is None:
            raise RuntimeError("the CA bundle is not served: call start() first")
        return f"http://{self.host}:{self._ca_server.server_address[1]}{CA_PATH}"

    def secret(self) -> dict[str, Any]:
        """The database secret's JSON after SecretTargetAttachment has added the instance's details."""
        return {"username": MASTER_USER, "password": self.password, "engine": "mysql", "host": self.host,
                "port": self.port, "dbname": DATABASE, "dbInstanceIdentifier": self.instance_id}

    def start(self) -> TlsMariaDb:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            write_certificates(self.workdir / "tls", self.host)
            self._install()
            self.port = processes.free_port(self.host)
            self._launch()
            self._create_master_user()
            self._serve_ca()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._ca_server is not None:
            self._ca_server.shutdown()
            self._ca_server.server_close()
            self._ca_server = None
        if self._process is not None:
            self._process.terminate()  # mariadbd shuts down cleanly on SIGTERM
            try:
                self._process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def __enter__(self) -> TlsMariaDb:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def sql(self, statement: str) -> str:
        """Run SQL as the server's root over its socket (socket connections count as secure)."""
        result = subprocess.run([client("mariadb"), "--no-defaults", f"--socket={self.socket_path}", "-uroot",
                                 "--batch", "--skip-column-names", "-e", statement],
                                capture_output=True, text=True, timeout=30, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"mariadb: {result.stderr.strip()}")
        return result.stdout

    def _install(self) -> None:
        datadir = self.workdir / "data"
        if datadir.exists():
            shutil.rmtree(datadir)
        subprocess.run([client("mariadb-install-db"), "--no-defaults", f"--datadir={datadir}", *user_option(),
                        "--auth-root-authentication-method=socket", "--skip-test-db", "--skip-name-resolve"],
                       capture_output=True, text=True, timeout=120, check=True)

    def _launch(self) -> None:
        tls = self.workdir / "tls"
        log = self.workdir / "mariadb.err"
        command = [
            shutil.which("mariadbd") or "/usr/sbin/mariadbd", "--no-defaults", *user_option(),
            f"--datadir={self.workdir / 'data'}", f"--socket={self.socket_path}",
            f"--pid-file={self.workdir / 'mysqld.pid'}", f"--log-error={log}", f"--tmpdir={self.workdir}",
            f"--bind-address={self.host}", f"--port={self.port}", "--skip-name-resolve",
            "--require-secure-transport=ON", f"--ssl-ca={tls / 'ca.pem'}", f"--ssl-cert={tls / 'server.pem'}",
            f"--ssl-key={tls / 'server-key.pem'}", "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci", "--default-time-zone=+00:00",
            "--innodb-buffer-pool-size=32M", "--skip-log-bin", "--max-connections=200",
        ]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         start_new_session=True)
        self._wait_until_ready(log)

    def _wait_until_ready(self, log: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"mariadbd exited with {self._process.returncode}: {tail(log)}")
            ping = subprocess.run([client("mariadb-admin"), "--no-defaults", f"--socket={self.socket_path}",
                                   "-uroot", "ping"], capture_output=True, timeout=10, check=False)
            if ping.returncode == 0 and port_open(self.host, self.port):
                return
            time.sleep(0.2)
        raise RuntimeError(f"mariadbd did not answer within {START_TIMEOUT:.0f} s: {tail(log)}")

    def _create_master_user(self) -> None:
        # RDS's master user: every privilege, from any address; the app's schema lives in the named database.
        self.sql(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4;"
                 f"CREATE USER '{MASTER_USER}'@'%' IDENTIFIED BY '{self.password}';"
                 f"GRANT ALL PRIVILEGES ON *.* TO '{MASTER_USER}'@'%' WITH GRANT OPTION;")

    def _serve_ca(self) -> None:
        bundle = self.ca_pem

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != CA_PATH:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-pem-file")
                self.send_header("Content-Length", str(len(bundle)))
                self.end_headers()
                self.wfile.write(bundle)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._ca_server = ThreadingHTTPServer((self.host, 0), Handler)
        self._ca_server.daemon_threads = True
        self._ca_thread = threading.Thread(target=self._ca_server.serve_forever, name="rds-ca", daemon=True)
        self._ca_thread.start()


def client(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is missing: install the mariadb-server and mariadb-client packages")
    return found


def user_option() -> list[str]:
    # mariadbd refuses to run as root unless told to; the datadir is under a root-owned temporary directory.
    return ["--user=root"] if os.geteuid() == 0 else []


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def tail(log: Path, lines: int = 20) -> str:
    if not log.exists():
        return "(no error log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def write_certificates(directory: Path, host: str) -> None:
    """A CA, and a server certificate it signs for host (an IP address or a DNS name)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pronostico rehearsal RDS CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])).issuer_name(ca_name)
              .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([subject_name(host)]), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "server.pem").write_bytes(server.public_bytes(pem))
    key_file = directory / "server-key.pem"
    key_file.write_bytes(server_key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL,
                                                  serialization.NoEncryption()))
    key_file.chmod(0o600)


def subject_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)
