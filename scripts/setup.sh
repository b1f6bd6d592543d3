#!/bin/sh
# Sets labnb up on Debian 12 or 13 as root, then runs what was asked:
#   scripts/setup.sh serve [labnb serve options]   start the server with the built-in labs
#   scripts/setup.sh test [pytest options]         run the whole test suite
#   scripts/setup.sh                               only set up
# Idempotent, and quick once done: packages are installed only when missing,
# the venv is refreshed only when pyproject.toml or its lock file changed.
set -eu
cd "$(dirname "$0")/.."
what=${1:-setup}
[ $# -gt 0 ] && shift

if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: labnb makes lab hosts with namespaces and cgroups, which needs root; run it with sudo" >&2
    exit 1
fi

packages="docker.io tini busybox-static iproute2 iptables iputils-ping uidmap bridge-utils util-linux tar python3 python3-venv libseccomp2"
# the machine's image cache (docs/images.md): labnb runs Debian's registry itself, only when a lab names images
packages="$packages docker-registry"
# Debian 13 moved the docker command out of docker.io (apt's lists tell, once there are lists)
ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || apt-get update -q
apt-cache show docker-cli >/dev/null 2>&1 && packages="$packages docker-cli"
# the tests also drive a browser (Playwright's node needs libatomic1) and fetch pages with wget in lab hosts
[ "$what" = test ] && packages="$packages chromium libatomic1 wget"
# ... and run a cluster of nodes (docs/cluster.md) with their own PostgreSQL, Redis and HAProxy
[ "$what" = test ] && packages="$packages postgresql redis-server haproxy"
missing=""
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in $packages; do
    case $p in   # a Docker of the operator's (docker-ce, say) serves as well: never replace it
        docker.io|docker-cli) command -v dockerd >/dev/null && command -v docker >/dev/null && continue ;;
    esac
    installed "$p" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup.sh: installing$missing"
    apt-get update -q
    # labnb needs docker.io's programs, not the machine's own dockerd: when setup
    # installs docker.io, its services are neither started nor enabled (no docker0,
    # no iptables rules on the machine). A docker.io installed before is left as it is.
    # The same for the tests' PostgreSQL, Redis and HAProxy (the tests start their own) and for
    # docker-registry (labnb starts its own, with its own data dirs, when a lab names images).
    hold=""
    units=""
    case " $missing " in *" docker.io "*)
        units="docker.socket docker.service"
        installed containerd || units="$units containerd.service" ;;   # a containerd of the operator's stays
    esac
    case " $missing " in *" postgresql "*) units="$units postgresql.service" ;; esac
    case " $missing " in *" redis-server "*) units="$units redis-server.service" ;; esac
    case " $missing " in *" haproxy "*) units="$units haproxy.service" ;; esac
    case " $missing " in *" docker-registry "*) units="$units docker-registry.service" ;; esac
    if [ -n "$units" ] && [ ! -e /usr/sbin/policy-rc.d ]; then
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT INT TERM HUP
        printf '#!/bin/sh\ncase "$1" in docker*|containerd*|postgresql*|redis*|haproxy*) exit 101;; esac\nexit 0\n' \
            > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        hold=yes
    fi
    status=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing || status=$?
    if [ -n "$hold" ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT INT TERM HUP; fi
    [ "$status" = 0 ] || exit "$status"
    if [ -n "$units" ] && [ -d /run/systemd/system ]; then
        # shellcheck disable=SC2086
        systemctl disable --now -q $units 2>/dev/null || true
        echo "setup.sh: installed without starting or enabling the machine's own services:$units (labnb starts its own)"
    fi
fi

# Python packages: exactly the versions CI tested, from a lock with hashes (scripts/lock.sh refreshes it)
lock=scripts/requirements.lock
[ "$what" = test ] && lock=scripts/requirements-test.lock
stamp=".venv/.labnb-installed-$(basename "$lock")"
want=$(cat pyproject.toml "$lock" | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    pip=".venv/bin/pip --disable-pip-version-check -q"
    PIP_CONSTRAINT= $pip install --require-hashes --no-deps -r "$lock"
    PIP_CONSTRAINT= $pip install --no-deps --no-build-isolation -e .
    echo "$want" > "$stamp"
fi

# Each lab host maps a range of 65536 ids of its own from LABNB_UID_BASE (200000); labnb writes the maps
# itself (no newuidmap). Root's entries in /etc/subuid and /etc/subgid reserve the ranges machine-wide, so
# that other tools (useradd, rootless containers) do not hand the same ids to another user, and say how
# many lab hosts may run: as many as fit the memory (the memory rule; grown, never shrunk, never over
# another entry: labnb says so)
.venv/bin/labnb lab-hosts ranges --write
# Room for every lab host's PTYs (as many lab hosts x 256, LABNB_PTYS's default, beside the machine's
# reserve): a PTY costs its lab host's memory, not the machine's
want_ptys=$(($(.venv/bin/labnb lab-hosts ranges --count) * 256 + $(cat /proc/sys/kernel/pty/reserve)))
if [ "$(cat /proc/sys/kernel/pty/max)" -lt "$want_ptys" ]; then
    echo "kernel.pty.max = $want_ptys" > /etc/sysctl.d/60-labnb.conf
    echo "$want_ptys" > /proc/sys/kernel/pty/max
    echo "setup.sh: kernel.pty.max raised to $want_ptys (/etc/sysctl.d/60-labnb.conf)"
fi
.venv/bin/labnb image build

case "$what" in
    serve) exec .venv/bin/labnb serve "$@" ;;
    test)  exec .venv/bin/python -m pytest "$@" ;;
    setup) echo "setup.sh: done" ;;
    *) echo "setup.sh: unknown command $what (use serve or test)" >&2; exit 2 ;;
esac
