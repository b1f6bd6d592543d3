#!/bin/sh
# Runs under tini, PID 1 of a new lab host, inside its fresh user, mount,
# net, uts, ipc and pid namespaces, as the lab host's root (the server wrote
# the uid/gid map before it started).
# Arguments: HOSTNAME DATA_DIR CGROUP_PARENT ADDRESS SCRIPTS_DIR DISK_MB [SEED]
# SEED: a tar of a docker data dir with the busybox image already loaded.
# dockerd starts as soon as what it needs is in place; the rest is done while
# it boots (it takes most of a lab host's start-up).
set -eu
exec </dev/null
name=$1 data=$2 cgparent=$3 address=$4 scripts=$5 disk_mb=$6 seed=${7:-}

# Private views of what must be the lab host's own: /run (netns names, the
# docker socket), /etc/docker (daemon.json); and a sysfs of its own network
# namespace so brctl and /sys/class/net show its devices.
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
mkdir -p /run/netns /run/labnb/bin /run/labnb/cg
cp "$scripts/start-docker" "$scripts/restart-docker" /run/labnb/bin/
cp "$scripts/inputrc" "$scripts/bashrc" /run/labnb/
mount --rbind /sys/fs/cgroup /run/labnb/cg
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount --move /run/labnb/cg /sys/fs/cgroup
rmdir /run/labnb/cg
mount -t tmpfs -o mode=755 tmpfs /etc/docker
# dockerd's data (images, containers' writes) in a tmpfs of bounded size: a
# learner filling it gets "no space left" in their lab host only, its pages
# count against the lab host's memory limit, and it vanishes with the lab host.
mount -t tmpfs -o "size=${disk_mb}m,mode=700" tmpfs "$data"
# Unpacking a seeded image store takes milliseconds; `docker load` a fifth of a second.
if [ -n "$seed" ] && [ -r "$seed" ]; then
    if tar -C "$data" -xf "$seed"; then
        : > /run/labnb/seeded
    else
        echo "init.sh: the seed $seed is unusable; the image will be loaded" >&2
    fi
fi
# dockerd runs some 70 iptables commands as it starts; the legacy backend
# answers each a third faster than nft. dockerd and the learner both find
# `iptables` here first, so they see the same rules.
if iptables-legacy -w -t nat -n -L >/dev/null 2>&1; then
    for tool in iptables iptables-save iptables-restore; do
        ln -s /usr/sbin/xtables-legacy-multi "/run/labnb/bin/$tool"
    done
fi

# A root of its own, holding only the machine's programs and /etc: the
# server's files, other users' homes, /var and the like are not there at all.
# (Each command here delays dockerd: one cp for the links, one mkdir.)
new=/run/labnb/root
mkdir "$new"
mount -t tmpfs -o mode=755 tmpfs "$new"
links="" dirs=""
for d in bin sbin lib lib32 lib64 libx32 usr etc dev proc sys run; do
    if [ -L "/$d" ]; then links="$links /$d"; elif [ -d "/$d" ]; then dirs="$dirs $d"; fi
done
[ -n "$links" ] && cp -P $links "$new/"
mkdir -p "$new/root" "$new/tmp" "$new/home" "$new/mnt" "$new/var/tmp" "$new/var/lib" "$new/var/log" \
    "$new/oldroot" "$new$data" $(for d in $dirs; do echo "$new/$d"; done)
for d in $dirs; do
    mount --rbind "/$d" "$new/$d"
done
ln -s /run "$new/var/run"
ln -s /run/lock "$new/var/lock"
mount --move "$data" "$new$data"
cd "$new"
pivot_root . oldroot
cd /

echo '{}' > /etc/docker/daemon.json
printf '%s\n' --data-root "$data" --cgroup-parent "$cgparent" \
    --pidfile /run/docker.pid --host unix:///run/docker.sock \
    --log-level warn > /run/labnb/dockerd.args
/run/labnb/bin/start-docker --no-wait

umount -l /oldroot
rmdir /oldroot

# HOME and the world-writable dirs: the lab host's own, in memory.
mount -t tmpfs -o mode=700 tmpfs /root
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /var/tmp
hostname "$name"
ip link set lo up
# The stand-in for the host's network card: a link with a MAC address and an
# address, that leads nowhere (vxlan without remote: no module needed).
ip link add ens33 type vxlan id 1 dstport 4789
ip link set ens33 mtu 1500 address 00:0c:29:b5:9a:13 up
ip addr add "$address" brd + dev ens33
: > /run/labnb/ready
exec sleep 2147483647
