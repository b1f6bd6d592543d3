#!/bin/bash
# Builds a new lab host's root, as the machine's root, in a mount namespace of
# its own, *before* the lab host's user namespace exists; then execs the rest
# of the command line (the unshare that makes the lab host).
#
# Made here, every mount below is locked once the lab host's user namespace
# copies this mount namespace: the binds of the machine's /usr, /etc, /lib*
# stay read-only (nosuid, nodev), and the lab host's root cannot remount,
# unmount, or grow the tmpfs mounts, whose superblocks belong to the
# machine's root. Sizes are real bounds, not the memory limit alone.
#
# Arguments: ROOT DATA_DIR UID DISK_MB TMPFS_MB PTYS -- COMMAND...
set -eu
root=$1 data=$2 uid=$3 disk_mb=$4 tmpfs_mb=$5 ptys=$6
shift 7

own="uid=$uid,gid=$uid"
tmpfs() {   # SIZE MODE DIR [OPTIONS]
    mount -t tmpfs -o "size=$1,mode=$2,$own,nosuid,nodev${4:+,$4}" tmpfs "$3"
}

tmpfs 16m 755 "$root"
for d in bin sbin lib lib32 lib64 libx32 usr etc; do
    if [ -L "/$d" ]; then
        cp -P "/$d" "$root/"
    elif [ -d "/$d" ]; then
        mkdir "$root/$d"
        mount --bind "/$d" "$root/$d"
        mount -o remount,bind,ro,nosuid,nodev "$root/$d"
    fi
done
mkdir -p "$root/proc" "$root/sys" "$root/run" "$root/root" "$root/tmp" "$root/home" "$root/mnt" \
    "$root/var/tmp" "$root/var/lib" "$root/var/log" "$root/dev" "$root/oldroot" "$root$data"
ln -s /run "$root/var/run"
ln -s /run/lock "$root/var/lock"

# HOME, /run (netns names, the docker socket), the world-writable dirs and
# /etc/docker (daemon.json): the lab host's own, in memory, each bounded.
tmpfs "${tmpfs_mb}m" 755 "$root/run"
tmpfs "${tmpfs_mb}m" 700 "$root/root"
tmpfs "${tmpfs_mb}m" 1777 "$root/tmp"
tmpfs "${tmpfs_mb}m" 1777 "$root/var/tmp"
tmpfs 1m 755 "$root/etc/docker"
# dockerd's data (images, containers' writes): "no space left" in this lab host only.
tmpfs "${disk_mb}m" 700 "$root$data"

# A /dev of its own: the harmless devices of the machine, and a devpts
# instance of its own, so its PTYs count against its own cap, not the machine's.
mount -t tmpfs -o "size=64k,mode=755,$own,nosuid" tmpfs "$root/dev"
for n in null zero full random urandom tty; do
    : > "$root/dev/$n"
    mount --bind "/dev/$n" "$root/dev/$n"
done
mkdir "$root/dev/pts" "$root/dev/shm" "$root/dev/mqueue"
mount -t devpts -o "newinstance,ptmxmode=0666,mode=0620,gid=$((uid + 5)),max=$ptys,nosuid,noexec" \
    devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
tmpfs "${tmpfs_mb}m" 1777 "$root/dev/shm"

exec "$@"
