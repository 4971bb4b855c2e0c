#!/bin/busybox sh
# PID 1 of the lab guest. The root is the host's / over 9p, read-only. This script puts a
# tmpfs-backed overlay on top (so the guest can write anywhere, and nothing reaches the host),
# mounts the writable results share, runs lab/guest.mjs with the host's node in it, and
# powers off. Kernel command-line variables arrive as environment variables:
#   vfio_lab_node  the node binary    vfio_lab_dir  the lab directory (lab/)
B=/bin/busybox
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

$B mount -t proc proc /proc
$B mount -t tmpfs -o mode=0755 tmpfs /run
$B mkdir -p /run/ovl/upper /run/ovl/work /run/ovl/root
NEW=/run/ovl/root
if ! $B mount -t overlay overlay -o lowerdir=/,upperdir=/run/ovl/upper,workdir=/run/ovl/work,xino=off $NEW; then
  echo "lab-guest: overlay over the 9p root failed; running on the read-only root with tmpfs /tmp" >&2
  NEW=/
fi
if [ "$NEW" != / ]; then
  $B mount -t proc proc $NEW/proc
fi
$B mount -t sysfs sysfs $NEW/sys
$B mount -t devtmpfs devtmpfs $NEW/dev
$B mkdir -p $NEW/dev/pts $NEW/dev/shm $NEW/dev/hugepages
$B mount -t tmpfs -o mode=1777 tmpfs $NEW/dev/shm
$B mount -t hugetlbfs hugetlbfs $NEW/dev/hugepages 2>/dev/null
$B mount -t tmpfs -o mode=0755 tmpfs $NEW/run
[ "$NEW" = / ] && $B mount -t tmpfs -o mode=1777 tmpfs /tmp
$B mkdir -p $NEW/run/vfio-lab
$B mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 labio $NEW/run/vfio-lab || echo "lab-guest: cannot mount the results share" >&2
$B hostname vfio-lab
# Give the guest a little hugepage memory for DmaBuffer tests.
echo 16 > /proc/sys/vm/nr_hugepages 2>/dev/null

$B chroot $NEW "$vfio_lab_node" "$vfio_lab_dir/guest.mjs"
$B dmesg > $NEW/run/vfio-lab/dmesg.txt 2>/dev/null
$B sync
# Quiet the kernel's own "Power down" line.
echo 0 > /proc/sys/kernel/printk 2>/dev/null
$B poweroff -f
