#!/bin/sh
# Runs under tini, PID 1 of a new lab host, inside its own user, cgroup,
# mount, net, uts, ipc and pid namespaces, as the lab host's root, in its
# finished root (labroot.py) and confined (confine.py). Starts dockerd, sets
# up the rest while it boots, then becomes the spawner that starts every
# command (spawner.py).
# Arguments: HOSTNAME ADDRESS DATA_DIR [--seeded]
# stdin is the spawner's control socket; nothing else may keep it.
set -eu
exec 3<&0 </dev/null
name=$1 address=$2 data=$3 seeded=${4:-}
{
echo '{}' > /etc/docker/daemon.json
# Images come from the machine's cache through the server's forwarder at
# 127.0.0.1:4999 (docs/images.md): a flag, not daemon.json, which the learner
# owns and labs rewrite. dockerd's fall back to Docker Hub goes to the same
# forwarder as its HTTPS proxy (start-docker), which refuses it saying why.
printf '%s\n' --data-root "$data" --cgroup-parent /docker \
    --pidfile /run/docker.pid --host unix:///run/docker.sock \
    --containerd /run/containerd/containerd.sock \
    --registry-mirror http://127.0.0.1:4999 \
    --log-level warn > /run/labnb/dockerd.args
# containerd is started by start-docker, not by dockerd, to give it this
# config: dockerd's own has no say in containerd's GC scheduler, whose default
# (pause_threshold 0.02) wakes it every 50 GC times, about every 10 ms in a
# lab host's tiny store, for 1 % of a core while nothing happens. At 0 it
# looks once a second and collects only when something changed.
cat > /run/labnb/containerd.toml <<EOF
version = 2
root = "$data/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.gc.v1.scheduler"]
  pause_threshold = 0.0
EOF
/run/labnb/bin/start-docker --no-wait

# What Docker and crun hide from a container's /proc. The lab host's root may
# unmount these (it holds CAP_SYS_ADMIN here, as in any container given it);
# what is under them is unreadable or harmless to it anyway.
for f in kcore keys latency_stats timer_list sched_debug; do
    [ -e "/proc/$f" ] && mount --bind /dev/null "/proc/$f"
done
for d in /proc/acpi /proc/scsi; do
    [ -d "$d" ] && mount -t tmpfs -o ro,size=4k,nosuid,nodev,noexec tmpfs "$d"
done
for p in /proc/bus /proc/irq /proc/sysrq-trigger; do
    [ -e "$p" ] && mount --bind "$p" "$p" && mount -o remount,bind,ro "$p"
done

hostname "$name"
if [ -w /etc/hostname ]; then printf '%s\n' "$name" > /etc/hostname; fi   # its own (labroot.py build)
ip link set lo up
# The stand-in for the host's network card: a link with a MAC address and an
# address, that leads nowhere (vxlan without remote: no module needed).
ip link add ens33 type vxlan id 1 dstport 4789
ip link set ens33 mtu 1500 address 00:0c:29:b5:9a:13 up
ip addr add "$address" brd + dev ens33
exec >>/run/labnb/init.log 2>&1   # from here on, nothing writes to the server's pipe
} 3<&-
exec python3 -I -S /run/labnb/spawner.py $seeded <&3 3<&-
