"""The web instance's nginx, rendered by the very command web_instance.sh runs, is valid where EC2 includes it.

Amazon Linux 2023's /etc/nginx/nginx.conf includes /etc/nginx/conf.d/*.conf inside its http block; the test builds
that arrangement in a scratch prefix and asks the real nginx (Debian's, installed by `make test`) to check it.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from pronostico.config import PROJECT_ROOT

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
    """web_instance.sh's render-nginx command line, with its shell variables given values."""
    script = (BOOTSTRAP_DIR / "aws" / "web_instance.sh").read_text()
    [line] = re.findall(r'"\$VENV/bin/python" -m pronostico\.stack\.web render-nginx .*?(?<!\\)\n', script, re.S)
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
