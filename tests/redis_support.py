"""A real Redis for the cluster tests: Debian's ``redis-server`` on a free loopback port, bound to
127.0.0.1 only and with a password (``requirepass``; protected mode stays on), no persistence (no RDB
snapshots, no AOF), its directory a temporary one; stopped and removed after the session."""
from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile

import pytest
import redis

from web_support import free_port, wait_for


def start_redis(directory: str) -> tuple[subprocess.Popen, str]:
    """A redis-server in ``directory``, and its URL (with the password)."""
    port, password = free_port(), secrets.token_hex(16)
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
         "--requirepass", password, "--save", "", "--appendonly", "no", "--dir", directory,
         "--daemonize", "no", "--logfile", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"redis://:{password}@127.0.0.1:{port}/0"

    def up():
        if proc.poll() is not None:
            raise AssertionError(f"redis-server exited with {proc.returncode}")
        try:
            return redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        except redis.ConnectionError:
            return False
    wait_for(up, 30, 0.05, "redis-server to answer")
    return proc, url


@pytest.fixture(scope="session")
def redis_url():
    directory = tempfile.mkdtemp(prefix="labnb-redis-")
    proc, url = start_redis(directory)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(directory, ignore_errors=True)
