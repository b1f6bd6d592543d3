"""The fast tier (tests/unit/) passes as a user who is not root: run here as user ``nobody``, so that CI,
which runs the whole suite as root, proves it. The tier runs as root too, with the rest of the suite."""
from __future__ import annotations

import os
import re
import site
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def as_nobody(python: str, path: list[str], *args: str, timeout: float) -> subprocess.CompletedProcess:
    """``python args...`` as user nobody in the checkout, with ``path`` first on its module path; nothing is
    written into the checkout (no bytecode, no pytest cache).

    The checkout is seen at a directory of its own under /tmp, bound there in a mount namespace of the
    command's own: wherever it was cloned (a home that is root's alone, say), nobody reaches it there."""
    seen = tempfile.mkdtemp(prefix="labnb-unit-")
    os.chmod(seen, 0o755)
    moved = [p.replace(str(ROOT), seen, 1) if p == str(ROOT) or p.startswith(str(ROOT) + os.sep) else p
             for p in path]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TMPDIR", "PYTEST_ADDOPTS")}
    # pytest names its temporary directory for USER or LOGNAME when set (an ssh login sets them to root)
    env.update(HOME="/tmp", USER="nobody", LOGNAME="nobody", PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=os.pathsep.join(moved))
    env.pop("USERNAME", None)
    script = 'mount --bind "$1" "$2" && cd "$2" && shift 2 && exec "$@"'
    try:
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                               str(ROOT), seen, *NOBODY, python, *args], env=env, capture_output=True, text=True,
                              timeout=timeout)
    finally:
        os.rmdir(seen)


def nobodys_python() -> tuple[str, list[str]]:
    """A Python that user nobody can run, with labnb's packages: this one, or else the system's of the same
    version given this one's packages (a venv made from an interpreter in root's home, as pyenv installs
    them, cannot be run by another user)."""
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [(sys.executable, [str(ROOT)])]
    if os.path.exists(f"/usr/bin/python{minor}"):
        candidates.append((f"/usr/bin/python{minor}", [str(ROOT), *site.getsitepackages()]))
    why = []
    for python, path in candidates:
        probe = as_nobody(python, path, "-c", "import os, pytest, webapp.store; print(os.geteuid())", timeout=60)
        if probe.returncode == 0:
            assert probe.stdout.split() == ["65534"]
            return python, path
        why.append(f"{python}: {(probe.stderr.strip().splitlines() or ['exit status %d' % probe.returncode])[-1]}")
    raise AssertionError(f"user nobody cannot run labnb's Python from {ROOT}: {'; '.join(why)}")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can run a test as another user")
def test_the_fast_tier_passes_as_user_nobody():
    python, path = nobodys_python()
    result = as_nobody(python, path, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit", timeout=600)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed[1]) >= 150 and not re.search(r"failed|error|skipped", summary), summary
