"""nginx `proxy_pass` + `mirror` as the reference: a throwaway config in a temp prefix, run in the foreground."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from bench.procs import Child, spawn

CONFIG = """\
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    upstream primary {{ server 127.0.0.1:{primary_port}; keepalive 128; }}
    upstream shadow {{ server 127.0.0.1:{shadow_port}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port} backlog=2048;
        keepalive_requests 1000000;
        location / {{
{mirror}            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://primary;
        }}
        location = /mirror {{
            internal;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://shadow$request_uri;
        }}
    }}
}}
"""
MIRROR = "            mirror /mirror;\n            mirror_request_body on;\n"


def nginx_path() -> str | None:
    """The nginx binary, if installed (Debian puts it in /usr/sbin, which may not be on PATH)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin:/usr/local/nginx/sbin")


def nginx_version() -> str | None:
    """`nginx -v`, e.g. "nginx/1.22.1"."""
    binary = nginx_path()
    if binary is None:
        return None
    done = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10, check=False)
    return (done.stderr or done.stdout).strip().removeprefix("nginx version: ") or None


def render_config(
    prefix: Path, *, port: int, primary_port: int, shadow_port: int, workers: int = 2, mirror: bool = True
) -> str:
    """The nginx.conf text: keep-alive upstreams, access log off, every path mirrored to the shadow."""
    return CONFIG.format(
        prefix=prefix,
        port=port,
        primary_port=primary_port,
        shadow_port=shadow_port,
        workers=workers,
        mirror=MIRROR if mirror else "",
    )


@contextlib.contextmanager
def run_nginx(
    prefix: Path, *, port: int, primary_port: int, shadow_port: int, workers: int = 2, logdir: Path
) -> Iterator[Child]:
    """Write the config under `prefix`, check it, run nginx in the foreground until the block exits."""
    binary = nginx_path()
    if binary is None:
        raise RuntimeError("nginx is not installed")
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    text = render_config(prefix, port=port, primary_port=primary_port, shadow_port=shadow_port, workers=workers)
    conf.write_text(text)
    argv = [binary, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"]
    check = subprocess.run([*argv, "-t"], capture_output=True, text=True, timeout=30, check=False)
    if check.returncode != 0:
        raise RuntimeError(f"nginx rejected its config: {check.stderr.strip()}")
    with spawn("nginx", argv, logdir=logdir, port=port) as child:
        yield child
