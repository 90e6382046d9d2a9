"""A throw-away nginx on 127.0.0.1: the tenant endpoint the benchmark hits.

nginx answers from memory on one worker pinned to its own core, so the client, pinned to the
other, is what gets measured.  The benchmark reads nginx's CPU time to show it had headroom.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")
PRODUCTS_REPLY = '{"products":[{"sku":"milk-001","price":45.90,"in_stock":true}]}'

CONFIG = """
load_module {echo};
worker_processes 1;
worker_cpu_affinity {affinity};
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        default_type application/json;
        location = /fast {{ return 200 '{reply}'; }}
        location = /slow {{ echo_sleep 0.1; echo -n '{reply}'; }}
    }}
}}
"""


def ensure_installed() -> None:
    """Install Debian's nginx and its echo module when they are missing (needs root)."""
    if shutil.which("nginx") and ECHO_MODULE.exists():
        return
    if os.geteuid() != 0:
        raise SystemExit("bench needs nginx-light and libnginx-mod-http-echo (apt-get install)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "nginx-light", "libnginx-mod-http-echo"],
        check=True,
        env=env,
    )


class Nginx:
    """``with Nginx(cpu=1) as server: server.url("/fast")``."""

    def __init__(self, *, cpu: int) -> None:
        self.cpu = cpu
        self.port = 0
        self._tmp = tempfile.TemporaryDirectory(prefix="vizochok-bench-")
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def worker_pid(self) -> int:
        assert self._process is not None
        children = Path(f"/proc/{self._process.pid}/task/{self._process.pid}/children")
        pids = children.read_text().split()
        return int(pids[0]) if pids else self._process.pid

    def cpu_seconds(self) -> float:
        """CPU time the worker has used so far (user + system)."""
        fields = Path(f"/proc/{self.worker_pid()}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def __enter__(self) -> Nginx:
        ensure_installed()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        tmp = self._tmp.name
        affinity = "1" + "0" * self.cpu
        config = Path(tmp, "nginx.conf")
        config.write_text(
            CONFIG.format(
                echo=ECHO_MODULE, tmp=tmp, port=self.port, reply=PRODUCTS_REPLY, affinity=affinity
            )
        )
        self._process = subprocess.Popen(["nginx", "-c", str(config), "-p", tmp])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        raise SystemExit(f"nginx did not start; see {tmp}/error.log")

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
        self._tmp.cleanup()
