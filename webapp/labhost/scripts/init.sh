#!/bin/sh
# Runs under tini, PID 1 of a new lab host, inside its fresh user, cgroup,
# mount, net, uts, ipc and pid namespaces, as the lab host's root, confined
# (confine.py). prepare.sh has already built its root at ROOT, as the
# machine's root; this finishes it from inside, pivots into it, starts
# dockerd and becomes the spawner that starts every command (spawner.py).
# Arguments: HOSTNAME ROOT DATA_DIR ADDRESS SCRIPTS_DIR CGROUPS [SEED]
# CGROUPS: the machine's hierarchies, "DIR:TYPE:OPTIONS ..." (DIR "" on v2).
# SEED: a tar of a docker data dir with the busybox image already loaded.
# stdin is the spawner's control socket; nothing else may keep it.
set -eu
exec 3<&0 </dev/null
name=$1 root=$2 data=$3 address=$4 scripts=$5 cgroups=$6 seed=${7:-}
seeded=""
{
mkdir -p "$root/run/netns" "$root/run/labnb/bin"
cp "$scripts/start-docker" "$scripts/restart-docker" "$root/run/labnb/bin/"
cp "$scripts/inputrc" "$scripts/bashrc" "$scripts/spawner.py" "$root/run/labnb/"

# Its own /proc (its pid namespace), /sys (its network namespace, so brctl and
# /sys/class/net show its devices) and cgroup tree: its cgroup namespace's
# root is its delegated `lab`, so other lab hosts' cgroups are not there.
# pivot_root refuses a locked mount as the new root: a bind of it made here is
# not locked itself, and keeps every mount below it locked.
mount --rbind "$root" "$root"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t sysfs -o nosuid,nodev,noexec sysfs "$root/sys"
# A second view of the same, that `ip netns exec` does not unmount: the kernel
# lets a user namespace mount a sysfs (the netns's own) only while one is visible.
mkdir "$root/run/labnb/sysfs"
mount -t sysfs -o nosuid,nodev,noexec sysfs "$root/run/labnb/sysfs"
cg="$root/sys/fs/cgroup"
for spec in $cgroups; do
    dir=${spec%%:*} rest=${spec#*:}
    type=${rest%%:*} opts=${rest#*:}
    if [ -z "$dir" ]; then
        mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$cg"
        continue
    fi
    mountpoint -q "$cg" || mount -t tmpfs -o mode=755,size=64k,nosuid,nodev,noexec tmpfs "$cg"
    mkdir -p "$cg/$dir"
    mount -t "$type" -o "nosuid,nodev,noexec${opts:+,$opts}" cgroup "$cg/$dir"
done
# Its processes live in lab/init; containers go to lab/docker (--cgroup-parent).
for spec in $cgroups; do
    dir=${spec%%:*}
    echo 1 > "$cg${dir:+/$dir}/init/cgroup.procs"
    echo $$ > "$cg${dir:+/$dir}/init/cgroup.procs"
done
if [ -e "$cg/cgroup.subtree_control" ]; then
    # v2: controllers for lab/docker, once the server has moved the starter
    # (a process of the machine's) out of `lab`: a cgroup with processes of
    # its own cannot hand controllers down
    want=$(sed 's/\([^ ]*\)/+\1/g' "$cg/cgroup.controllers")
    i=0
    until echo "$want" > "$cg/cgroup.subtree_control" 2>/dev/null; do
        i=$((i + 1))
        [ "$i" -gt 500 ] && { echo "init.sh: cannot enable $want in the lab host's cgroup" >&2; exit 1; }
        sleep 0.01
    done
fi

# Unpacking a seeded image store takes milliseconds; `docker load` a fifth of a second.
if [ -n "$seed" ] && [ -r "$seed" ]; then
    if tar -C "$root$data" -xf "$seed"; then
        seeded=--seeded
    else
        echo "init.sh: the seed $seed is unusable; the image will be loaded" >&2
    fi
fi
# dockerd runs some 70 iptables commands as it starts; the legacy backend
# answers each a third faster than nft. dockerd and the learner both find
# `iptables` here first, so they see the same rules.
if iptables-legacy -w -t nat -n -L >/dev/null 2>&1; then
    for tool in iptables iptables-save iptables-restore; do
        ln -s /usr/sbin/xtables-legacy-multi "$root/run/labnb/bin/$tool"
    done
fi

cd "$root"
pivot_root . oldroot
cd /
umount -l /oldroot
rmdir /oldroot

echo '{}' > /etc/docker/daemon.json
printf '%s\n' --data-root "$data" --cgroup-parent /docker \
    --pidfile /run/docker.pid --host unix:///run/docker.sock \
    --log-level warn > /run/labnb/dockerd.args
/run/labnb/bin/start-docker --no-wait

# What Docker and crun hide from a container's /proc and /sys. The lab host's
# root may unmount these (it holds CAP_SYS_ADMIN here, as in any container
# given it); what is under them is unreadable or harmless to it anyway.
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
ip link set lo up
# The stand-in for the host's network card: a link with a MAC address and an
# address, that leads nowhere (vxlan without remote: no module needed).
ip link add ens33 type vxlan id 1 dstport 4789
ip link set ens33 mtu 1500 address 00:0c:29:b5:9a:13 up
ip addr add "$address" brd + dev ens33
exec >>/run/labnb/init.log 2>&1   # from here on, nothing writes to the server's pipe
} 3<&-
exec python3 -I -S /run/labnb/spawner.py $seeded <&3 3<&-
