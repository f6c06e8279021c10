"""nginx's site config for the app, rendered from the one template, bootstrap/nginx/pronostico.conf.template.

    python -m pronostico.hosting.nginx --listen-port 80 --upstream 127.0.0.1:8001 --static-dir DIR --out FILE

The EC2 web instances' user data runs this, and the local stack calls `render_site`, so both serve one config.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pronostico.core.config import PROJECT_ROOT, load_settings

TEMPLATE = PROJECT_ROOT / "bootstrap" / "nginx" / "pronostico.conf.template"
STATIC_DIR = PROJECT_ROOT / "src" / "app" / "static"
LOOPBACK = ("127.0.0.0/8", "::1")


def render_site(listen_port: int, upstreams: Sequence[str], static_dir: Path, *, listen_address: str = "",
                rate_limit: int = 20, read_timeout: int = 30, limit_loopback: bool = False) -> str:
    """The http-context nginx config for the app, from the one template."""
    if not upstreams:
        raise ValueError("nginx needs at least one --upstream HOST:PORT")
    # max_fails=1: one refused connection takes an instance out for 5 s, so a dead one costs one retry, not many
    servers = "\n".join(f"    server {u} max_fails=1 fail_timeout=5s;" for u in upstreams)
    exempt = "" if limit_loopback else "\n".join(f"    {a} 1;" for a in LOOPBACK)
    values = {
        "UPSTREAM_SERVERS": servers,
        "EXEMPT_ADDRESSES": exempt,
        "RATE_LIMIT": str(rate_limit),
        "BURST": str(max(10, rate_limit * 2)),
        "LISTEN": f"{listen_address}:{listen_port}" if listen_address else str(listen_port),
        "READ_TIMEOUT": str(read_timeout),
        "STATIC_DIR": str(Path(static_dir).resolve()),
    }
    text = TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace(f"@@{name}@@", value)
    if "@@" in text:
        raise ValueError(f"{TEMPLATE} has a placeholder render_site does not fill")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pronostico.hosting.nginx", description=__doc__.splitlines()[0])
    parser.add_argument("--listen-port", type=int, required=True)
    parser.add_argument("--listen-address", default="", help="default: every address (behind the ALB)")
    parser.add_argument("--upstream", action="append", required=True, metavar="HOST:PORT")
    parser.add_argument("--static-dir", type=Path, default=STATIC_DIR)
    parser.add_argument("--rate-limit", type=int, default=None, help="requests per second per client address")
    parser.add_argument("--read-timeout", type=int, default=30, help="seconds to wait for an app instance")
    parser.add_argument("--limit-loopback", action="store_true", help="rate-limit 127.0.0.1 too (tests)")
    parser.add_argument("--out", type=Path, help="write here instead of stdout")
    args = parser.parse_args(argv)
    text = render_site(args.listen_port, args.upstream, args.static_dir, listen_address=args.listen_address,
                       rate_limit=args.rate_limit or load_settings().web.rate_limit_per_second,
                       read_timeout=args.read_timeout, limit_loopback=args.limit_loopback)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
