"""The web instance's nginx, rendered by the very command web_instance.sh runs, is valid where EC2 includes it.

Amazon Linux 2023's /etc/nginx/nginx.conf includes /etc/nginx/conf.d/*.conf inside its http block; the test builds
that arrangement in a scratch prefix and asks the real nginx (Debian's, installed by `make test`) to check it.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pronostico.core.config import PROJECT_ROOT

from .conftest import BOOTSTRAP_DIR

MAIN_CONF = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    access_log off;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    include {prefix}/conf.d/*.conf;
}}
"""


def render_command(values: dict[str, str]) -> list[str]:
    """web_instance.sh's nginx render command line, with its shell variables given values."""
    script = (BOOTSTRAP_DIR / "aws" / "web_instance.sh").read_text()
    [line] = re.findall(r'"\$VENV/bin/python" -m pronostico\.hosting\.nginx .*?(?<!\\)\n', script, re.S)
    line = line.replace("\\\n", " ")
    for name, value in values.items():
        line = line.replace(f'"${name}"', value).replace(f"${name}", value)
    return shlex.split(line)


def test_the_rendered_site_passes_nginx_t_inside_an_http_block_like_al2023s(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is missing: bootstrap/local/install_system_packages.sh nginx"
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "tmp").mkdir()
    static = tmp_path / "static"
    static.mkdir()
    command = render_command({"VENV/bin/python": sys.executable, "WEB_PORT": "8000", "APP_BIND": "127.0.0.1:8001",
                              "RELEASE_DIR/src/app/static": str(static)})
    out = command[command.index("--out") + 1]
    assert out == "/etc/nginx/conf.d/pronostico.conf"  # where AL2023's nginx.conf includes it
    command[command.index("--out") + 1] = str(tmp_path / "conf.d" / "pronostico.conf")
    subprocess.run(command, check=True, timeout=60, cwd=PROJECT_ROOT)
    site = (tmp_path / "conf.d" / "pronostico.conf").read_text()
    assert re.search(r"listen\s+8000;", site)  # the ALB's target port; AL2023's own server keeps 80
    assert "server 127.0.0.1:8001" in site
    (tmp_path / "nginx.conf").write_text(MAIN_CONF.format(prefix=tmp_path))
    done = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def database_url_module() -> Any:
    spec = importlib.util.spec_from_file_location("database_url", BOOTSTRAP_DIR / "aws" / "database_url.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_database_url_carries_any_generated_password_and_verifies_rds_tls() -> None:
    secret = {"username": "pronostico", "password": "p@ss/w:rd%&?#", "host": "log.abc.us-east-1.rds.amazonaws.com",
              "port": 3306, "dbname": "pronostico", "engine": "mysql"}
    url = sa.make_url(database_url_module().database_url(secret, "/etc/pronostico/rds-ca.pem"))
    assert (url.drivername, url.username, url.password) == ("mysql+pymysql", "pronostico", secret["password"])
    assert (url.host, url.port, url.database) == (secret["host"], 3306, "pronostico")
    assert url.query["ssl_ca"] == "/etc/pronostico/rds-ca.pem"


def test_the_env_file_gives_bash_and_systemd_the_same_database_url(tmp_path: Path) -> None:
    """web_instance.sh sources its env file in bash for the migrations, and systemd reads it for the services."""
    url = database_url_module().database_url(
        {"username": "u", "password": "p", "host": "h", "port": 3306}, "/etc/pronostico/rds-ca.pem")
    [line] = re.findall(r"^PRONOSTICO_DB_URL=.*$", (BOOTSTRAP_DIR / "aws" / "web_instance.sh").read_text(), re.M)
    env_file = tmp_path / "env"
    env_file.write_text(line.replace("$db_url", url) + "\n")
    sourced = subprocess.run(["bash", "-c", f'set -a; . "{env_file}"; printf %s "$PRONOSTICO_DB_URL"'],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    assert sourced == url  # an unquoted '&' in the URL would have sent bash off in the background
    assert line == 'PRONOSTICO_DB_URL="$db_url"'  # systemd's EnvironmentFile drops the quotes the same way
