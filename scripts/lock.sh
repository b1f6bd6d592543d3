#!/bin/sh
# Refreshes the Python lock files that scripts/setup.sh installs (pinned, with
# hashes of every file of each version, so any Debian's Python finds its wheel):
#   scripts/requirements.lock       the server (and setuptools, to install labnb itself)
#   scripts/requirements-test.lock  the server and the tests, the same versions
# Run it (as anyone, with network access to the package index) after a change
# to pyproject.toml's dependencies, then run the test suite and commit all three.
set -eu
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --disable-pip-version-check pip-tools
compile() {
    PIP_CONSTRAINT= "$tmp/venv/bin/pip-compile" -q --generate-hashes --allow-unsafe --all-build-deps \
        --strip-extras --no-emit-index-url --no-emit-find-links --no-header "$@" pyproject.toml
}
compile -o scripts/requirements.lock
compile --extra test -c scripts/requirements.lock -o scripts/requirements-test.lock
rm -rf labnb.egg-info
echo "lock.sh: wrote scripts/requirements.lock and scripts/requirements-test.lock"
