"""Sandboxed EC2 hosts for the deploy rehearsal: run a launch template's user data for real, as root, here.

A `Lan` is a Linux bridge in this namespace with a gateway address (where the stand-in AWS endpoint, the
metadata endpoint and the database listen) and, per host, a network namespace joined to it by a veth pair. A
`Host` is one such namespace plus a mount namespace, held by a long-lived process, with copy-on-write overlays over
/etc, /opt, /var, /usr/local, /run and /root, a private /tmp and /dev/shm, this machine's uv cache at
/var/cache/uv, and the shims in tests/deploy/shims/ (dnf, systemctl, postgresql-setup, cfn-signal, a PostgreSQL
unit) with the AWS CLI 1.x of tools/awscli. Commands enter both namespaces with nsenter. The pid namespace is
shared, so the test can signal and inspect a host's processes.

Commands run as root with cloud-init's minimal environment (PATH, LANG, no HOME) plus only AWS_ENDPOINT_URL and
AWS_EC2_METADATA_SERVICE_ENDPOINT: no credentials, the CLI and SDKs find the role's through the metadata endpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIMS = Path(__file__).resolve().parent / "shims"
AWS_CLI = REPO / "tools" / "awscli" / ".venv" / "bin" / "aws"
OVERLAID = ("etc", "opt", "var", "usr/local", "run", "root")
CLOUD_INIT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SUBNET_PREFIX = "10.213"
FORWARDING = Path("/proc/sys/net/ipv4/ip_forward")
TOOLS = ("ip", "unshare", "nsenter", "mount", "runuser")
# Runtime directories of this machine's own services, emptied inside: a service started there would take their
# live sockets and lock files for its own (the pid namespace is shared, so a lock naming a live host pid looks held).
# Each is made anew, so that it hides what the host's services create there later too.
HOST_RUNTIME_DIRS = (("/run/postgresql", "postgres"), ("/run/mysqld", "mysql"))


class SandboxError(RuntimeError):
    """A sandbox that could not be made or entered; the message says which step and why."""


def require_tools() -> None:
    """Fail, naming what is missing, where this machine cannot make a sandbox (no skip: the rehearsal needs one)."""
    if os.geteuid() != 0:
        raise SandboxError("the deploy sandbox needs root (network and mount namespaces, overlays)")
    lacking = [tool for tool in TOOLS if shutil.which(tool) is None]
    if lacking:
        raise SandboxError(f"the deploy sandbox needs {', '.join(lacking)} on PATH (util-linux, iproute2)")


def run_checked(args: list[str], what: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise SandboxError(f"{what}: `{' '.join(args)}` exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def private_tmp_lines(checkout: Path = REPO) -> list[str]:
    """Mount a private /tmp and /dev/shm; a checkout under /tmp (a clone in /tmp/x) is bound back at its own path.

    The hosts need the checkout after /tmp is hidden (the shims, the AWS CLI, the code they install), so it is bound
    to a directory of the sandbox's own /run overlay first and moved back on top of the new /tmp afterwards.
    """
    hidden = checkout.is_relative_to("/tmp") or checkout.is_relative_to("/dev/shm")
    held, path = "/run/.rehearsal-checkout", shlex.quote(str(checkout))
    lines = [f"mkdir -p {held}", f"mount --bind {path} {held}"] if hidden else []
    lines += ["mount -t tmpfs -o mode=1777 tmpfs /tmp", "mount -t tmpfs -o mode=1777 tmpfs /dev/shm"]
    if hidden:
        lines += [f"mkdir -p {path}", f"mount --move {held} {path}", f"rmdir {held}"]
    return lines


@dataclass(frozen=True)
class Nic:
    """A host's place on the LAN: its network namespace and its address."""

    netns: str
    address: str


class Lan:
    """A bridge with the gateway address and one network namespace per host; close() removes every link and netns.

    With `outbound` (the default) the gateway also NATs the hosts' traffic to the outside, as a VPC's NAT gateway
    does: a boot's uv sync asks the package index for what the cache cannot answer (the build backend).
    """

    def __init__(self, *, outbound: bool = True) -> None:
        require_tools()
        if outbound and shutil.which("iptables") is None:
            raise SandboxError("the deploy sandbox's NAT needs iptables (apt-get install iptables)")
        self.tag = str(os.getpid())
        self.bridge = f"rhb{self.tag}"
        self.subnet = self._free_subnet()
        self.gateway = f"{self.subnet}.1"
        self.outbound = outbound
        self.nics: list[Nic] = []
        self._nat_rule: list[str] = []
        self._forwarding_was = ""
        self._remove_stale()
        try:
            run_checked(["ip", "link", "add", self.bridge, "type", "bridge"], "make the bridge")
            run_checked(["ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge], "address the bridge")
            run_checked(["ip", "link", "set", self.bridge, "up"], "bring the bridge up")
            if outbound:
                self._start_nat()
        except SandboxError:
            self.close()
            raise

    def _start_nat(self) -> None:
        self._nat_rule = ["POSTROUTING", "-s", f"{self.subnet}.0/24", "!", "-o", self.bridge, "-m", "comment",
                          "--comment", f"rehearsal-{self.tag}", "-j", "MASQUERADE"]
        run_checked(["iptables", "-t", "nat", "-A", *self._nat_rule], "NAT the LAN's outbound traffic")
        self._forwarding_was = FORWARDING.read_text().strip()
        FORWARDING.write_text("1\n")

    def _stop_nat(self) -> None:
        if self._nat_rule:
            subprocess.run(["iptables", "-t", "nat", "-D", *self._nat_rule], capture_output=True)
            self._nat_rule = []
        # Put forwarding back only when no other run's LAN still needs it.
        if self._forwarding_was == "0" and not other_bridges(self.bridge):
            FORWARDING.write_text("0\n")
        self._forwarding_was = ""

    def _free_subnet(self) -> str:
        """10.213.N, N from the pid, moved on past any subnet another run's bridge holds."""
        taken = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
        start = os.getpid() % 250
        for step in range(250):
            subnet = f"{SUBNET_PREFIX}.{(start + step) % 250 + 1}"
            if f" {subnet}." not in taken:
                return subnet
        raise SandboxError(f"no free {SUBNET_PREFIX}.N.0/24 subnet for the sandbox's LAN")

    def _remove_stale(self) -> None:
        """Links and namespaces that a killed run of this module left (their pid in the name is gone)."""
        netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
        for name in netns:
            if name.startswith("rh-") and name.split("-")[1].isdigit() and not pid_alive(int(name.split("-")[1])):
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
        links = subprocess.run(["ip", "-o", "link", "show", "type", "bridge"], capture_output=True, text=True).stdout
        for line in links.splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            if name.startswith("rhb") and name[3:].isdigit() and not pid_alive(int(name[3:])):
                subprocess.run(["ip", "link", "del", name], capture_output=True)
        if shutil.which("iptables"):
            rules = subprocess.run(["iptables", "-t", "nat", "-S", "POSTROUTING"], capture_output=True,
                                   text=True).stdout
            for rule in rules.splitlines():
                tag = rule.partition("--comment rehearsal-")[2].split(" ")[0]
                if tag.isdigit() and not pid_alive(int(tag)) and rule.startswith("-A "):
                    subprocess.run(["iptables", "-t", "nat", "-D", *rule.split()[1:]], capture_output=True)

    def add_host(self) -> Nic:
        """A network namespace with eth0 on the bridge, loopback up, and the gateway as its default route."""
        index = len(self.nics) + 2
        nic = Nic(netns=f"rh-{self.tag}-{index}", address=f"{self.subnet}.{index}")
        veth = f"rh{self.tag}v{index}"[:15]
        self.nics.append(nic)
        steps = [
            (["ip", "netns", "add", nic.netns], "make the host's network namespace"),
            (["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", nic.netns], "make the veth"),
            (["ip", "link", "set", veth, "master", self.bridge, "up"], "join the veth to the bridge"),
            (["ip", "-n", nic.netns, "addr", "add", f"{nic.address}/24", "dev", "eth0"], "address the host"),
            (["ip", "-n", nic.netns, "link", "set", "eth0", "up"], "bring eth0 up"),
            (["ip", "-n", nic.netns, "link", "set", "lo", "up"], "bring loopback up"),
            (["ip", "-n", nic.netns, "route", "add", "default", "via", self.gateway], "route via the gateway"),
        ]
        for args, what in steps:
            run_checked(args, what)
        return nic

    def close(self) -> None:
        for nic in self.nics:
            subprocess.run(["ip", "netns", "del", nic.netns], capture_output=True)
        self.nics = []
        self._stop_nat()
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)

    def __enter__(self) -> Lan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class BootResult:
    """What running a host's user data gave: its exit code (None when it timed out), time, logs and signals."""

    exit_code: int | None
    seconds: float
    boot_log: str
    output: str
    signals: list[dict[str, object]] = field(default_factory=list)

    @property
    def timed_out(self) -> bool:
        return self.exit_code is None


class Host:
    """One sandboxed instance on a Lan; see the module's docstring. Use as a context manager, or start()/stop()."""

    def __init__(self, name: str, lan: Lan, state_dir: Path, *, aws_endpoint_url: str,
                 metadata_endpoint_url: str) -> None:
        require_tools()
        if not AWS_CLI.exists():
            raise SandboxError(f"{AWS_CLI} is missing: run uv sync --locked --project tools/awscli --python 3.11")
        state_dir = state_dir.resolve()
        if any(state_dir.is_relative_to(f"/{top}") for top in OVERLAID):
            raise SandboxError(f"the sandbox's layers cannot live under an overlaid directory: {state_dir}")
        self.name = name
        self.lan = lan
        self.state_dir = state_dir
        self.env = {"PATH": CLOUD_INIT_PATH, "LANG": "C.UTF-8", "AWS_ENDPOINT_URL": aws_endpoint_url,
                    "AWS_EC2_METADATA_SERVICE_ENDPOINT": metadata_endpoint_url}
        self.nic: Nic | None = None
        self.holder: subprocess.Popen[str] | None = None

    @property
    def address(self) -> str:
        if self.nic is None:
            raise SandboxError(f"host {self.name} is not started")
        return self.nic.address

    def start(self) -> Host:
        self.nic = self.lan.add_host()
        # A new instance starts from the image: nothing of an earlier run's layers.
        shutil.rmtree(self.state_dir / "layers", ignore_errors=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.holder = subprocess.Popen(
            ["ip", "netns", "exec", self.nic.netns, "unshare", "--mount", "--uts", "--ipc", "--propagation", "private",
             "/bin/sh", "-c", self._setup_script()],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/",
            start_new_session=True)
        assert self.holder.stdout is not None
        ready = self.holder.stdout.readline().strip()
        if ready != "ready":
            error = self.holder.stderr.read() if self.holder.stderr else ""
            self.stop()
            raise SandboxError(f"host {self.name}: setting up its namespaces failed: {error.strip()}")
        return self

    def _setup_script(self) -> str:
        """Run by the holder inside its new mount namespace, before it sleeps for the host's lifetime."""
        layers = self.state_dir / "layers"
        uv_cache = uv_cache_dir()
        lines = ["set -eu", f"hostname {self.name}"]
        for top in OVERLAID:
            upper, work = layers / "upper" / top, layers / "work" / top
            lines += [f"mkdir -p {upper} {work}",
                      f"mount -t overlay overlay -o lowerdir=/{top},upperdir={upper},workdir={work} /{top}"]
            if top == "var":
                # Before /root is overlaid: the bind must reach the host's cache, not a copy-up of it.
                lines += ["mkdir -p /var/cache/uv", f"mount --bind {uv_cache} /var/cache/uv"]
        lines += private_tmp_lines()
        # The host resolves its own name, as in a VPC. Without a way out, any other name fails at once instead of
        # waiting on a nameserver this namespace cannot reach.
        lines += [f"echo '{self.address} {self.name}' >> /etc/hosts"]
        if not self.lan.outbound:
            lines += ["printf 'nameserver 127.0.0.1\\noptions timeout:1 attempts:1\\n' > /etc/resolv.conf"]
        # This machine's way out may pass a TLS proxy whose CA only the system store has (the machine's own tools
        # are pointed at it by SSL_CERT_FILE, which the instance's environment has not); uv's bundled roots lack it.
        lines += ["mkdir -p /etc/uv", "echo 'system-certs = true' > /etc/uv/uv.toml"]
        for directory, owner in HOST_RUNTIME_DIRS:
            lines += [f"rm -rf {directory}", f"mkdir -m 2775 {directory}",
                      f"chown {owner}:{owner} {directory} 2>/dev/null || true"]
        lines += ["rm -f /run/nginx.pid"]
        # Whatever AWS configuration this machine's root has must not stand in for the instance role.
        lines += ["rm -rf /root/.aws /run/rehearsal", "mkdir -p /run/rehearsal/units"]
        lines += self._shim_lines()
        lines += ["echo ready", "exec sleep infinity"]
        return "\n".join(lines)

    def _shim_lines(self) -> list[str]:
        bindir = postgres_bindir()
        env_file = "\n".join(f"{key}={self.env[key]}" for key in ("AWS_ENDPOINT_URL",
                                                                  "AWS_EC2_METADATA_SERVICE_ENDPOINT"))
        lines = [f"install -m 0755 {SHIMS}/{shim} /usr/local/bin/{shim}" for shim in ("dnf", "systemctl",
                                                                                   "postgresql-setup")]
        lines += [f"mount --bind /usr/local/bin/systemctl {path}" for path in ("/usr/bin/systemctl", "/bin/systemctl")
                  if Path(path).exists() and not Path(path).is_symlink()]
        lines += ["mkdir -p /opt/aws/bin", f"install -m 0755 {SHIMS}/cfn-signal /opt/aws/bin/cfn-signal",
                  f"ln -sfn {AWS_CLI} /usr/local/bin/aws",
                  "mkdir -p /etc/systemd/system",
                  f"sed 's|@BINDIR@|{bindir}|g' {SHIMS}/postgresql.service > /etc/systemd/system/postgresql.service",
                  f"cat > /run/rehearsal/env <<'EOF'\n{env_file}\nEOF"]
        return lines

    def path(self, path: str | Path) -> Path:
        """This machine's view of a path inside the host (while it runs), for reading its logs and files."""
        if self.holder is None:
            raise SandboxError(f"host {self.name} is not started")
        return Path(f"/proc/{self.holder.pid}/root") / str(path).lstrip("/")

    def _enter(self) -> list[str]:
        if self.holder is None or self.holder.poll() is not None:
            raise SandboxError(f"host {self.name} is not running")
        return ["nsenter", "-t", str(self.holder.pid), "-m", "-u", "-i", "-n", "-r", "-w", "--",
                "env", "-i", *(f"{key}={value}" for key, value in self.env.items())]

    def run(self, args: list[str], *, timeout: float = 60, user: str | None = None,
            check: bool = False) -> subprocess.CompletedProcess[str]:
        """A command inside the host as root (or as `user`, through runuser), its output captured."""
        command = ["runuser", "-u", user, "--", *args] if user else args
        result = subprocess.run([*self._enter(), *command], capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise SandboxError(f"host {self.name}: {args} exited {result.returncode}: {result.stderr.strip()}")
        return result

    def spawn(self, args: list[str], log: str = "/var/log/spawned.log") -> subprocess.Popen[bytes]:
        """A long-running command inside the host, in a session of its own; stop() ends it."""
        with self.path(log).open("ab") as out:
            return subprocess.Popen([*self._enter(), *args], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def run_user_data(self, script: str, timeout: float) -> BootResult:
        """The user data as cloud-init runs it: saved as a part script and run as root, output to its log."""
        part = "/var/lib/cloud/instance/scripts/part-001"
        self.path(part).parent.mkdir(parents=True, exist_ok=True)
        self.path(part).write_text(script)
        self.path(part).chmod(0o700)
        output_log = self.path("/var/log/cloud-init-output.log")
        started = time.monotonic()
        with output_log.open("ab") as out:
            process = subprocess.Popen([*self._enter(), part], stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            try:
                exit_code: int | None = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                exit_code = None
        # What the script left in its group, such as boot.sh's tee into the boot log, finishes writing first.
        wait_until_empty(process.pid, 10)
        return BootResult(exit_code=exit_code, seconds=time.monotonic() - started,
                          boot_log=self.read_text("/var/log/pronostico-boot.log"),
                          output=self.read_text("/var/log/cloud-init-output.log"), signals=self.signals())

    def read_text(self, path: str) -> str:
        """A file's text inside the host, empty when it does not exist."""
        try:
            return self.path(path).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def signals(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.read_text("/run/rehearsal/signals.log").splitlines() if line]

    def systemctl_log(self) -> list[tuple[str, str]]:
        """(verb, unit) for every systemctl call the host recorded, in order."""
        return [tuple(line.split()[1:3]) for line in self.read_text("/run/rehearsal/systemctl.log").splitlines()]

    def processes(self) -> list[int]:
        """Every live process in this host's mount or network namespace (the holder included)."""
        if self.holder is None:
            return []
        namespaces = {namespace_id(self.holder.pid, "mnt"), namespace_id(self.holder.pid, "net")} - {None}
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and entry.name != str(os.getpid()):
                pid = int(entry.name)
                if {namespace_id(pid, "mnt"), namespace_id(pid, "net")} & namespaces and not zombie(pid):
                    found.append(pid)
        return found

    def stop(self) -> None:
        """Every unit's process group, then whatever else runs inside, then the holder; the LAN keeps its links."""
        if self.holder is None:
            return
        if self.holder.poll() is None:
            self._stop_units()
            self._kill_remaining()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.holder.pid, signal.SIGKILL)
        self.holder.wait()
        for stream in (self.holder.stdout, self.holder.stderr):
            if stream:
                stream.close()
        self.holder = None

    def _stop_units(self) -> None:
        inside = set(self.processes())
        groups = set()
        for pid_file in self.path("/run/rehearsal/units").glob("*.pid"):
            with contextlib.suppress(ValueError, OSError, IndexError):
                pid = int(pid_file.read_text().split()[0])
                # A stale pid file may name a pid that this machine has since given to a process of its own.
                if pid in inside:
                    groups.add(os.getpgid(pid))
        groups.discard(os.getpgid(0))
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            for group in groups:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and any(group_has_members(group) for group in groups):
                time.sleep(0.05)
            if not any(group_has_members(group) for group in groups):
                return

    def _kill_remaining(self) -> None:
        holder = self.holder.pid if self.holder else -1
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            others = [pid for pid in self.processes() if pid != holder]
            if not others:
                return
            for pid in others:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        raise SandboxError(f"host {self.name}: processes left after stop: {self.processes()}")

    def __enter__(self) -> Host:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def other_bridges(mine: str) -> list[str]:
    links = subprocess.run(["ip", "-o", "link", "show", "type", "bridge"], capture_output=True, text=True).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()]
    return [name for name in names if name.startswith("rhb") and name != mine]


def namespace_id(pid: int, kind: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def group_has_members(group: int) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getpgid(int(entry.name)) == group and not zombie(int(entry.name)):
                    return True
    return False


def wait_until_empty(group: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while group_has_members(group) and time.monotonic() < deadline:
        time.sleep(0.05)


def uv_cache_dir() -> Path:
    """This machine's uv cache (what `uv cache dir` prints), so that a boot's uv sync downloads nothing again."""
    uv = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    if Path(uv).exists():
        result = subprocess.run([uv, "cache", "dir"], capture_output=True, text=True)
        if result.returncode == 0 and result.stdout.strip():
            path = Path(result.stdout.strip())
            path.mkdir(parents=True, exist_ok=True)
            return path
    path = Path.home() / ".cache" / "uv"
    path.mkdir(parents=True, exist_ok=True)
    return path


def postgres_bindir() -> str:
    """This machine's newest PostgreSQL server binaries (Debian's layout); empty when there are none."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: int(path.parent.name)
                   if path.parent.name.isdigit() else 0)
    return str(found[-1]) if found else ""
