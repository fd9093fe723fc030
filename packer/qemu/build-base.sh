#!/usr/bin/env bash
# Builds the base image for packer/qemu.json from a debootstrapped Debian 12, without a boot
# loader or loop devices: the root file system is made from a directory (mke2fs -d), and qemu
# boots the kernel and initrd taken from it directly (-kernel/-initrd, root=/dev/vda).
#
# Usage (root): bash packer/qemu/build-base.sh OUT_DIR [MIRROR]
# Writes OUT_DIR/base.qcow2, vmlinuz, initrd.img and id_ed25519 (the key Packer logs in with as
# root). Then: packer build -var base_dir=OUT_DIR packer/qemu.json
# Needs: debootstrap, e2fsprogs (mke2fs), qemu-utils (qemu-img), openssh-client (ssh-keygen).
set -euo pipefail
out="${1:?usage: build-base.sh OUT_DIR [MIRROR]}"
mirror="${2:-http://deb.debian.org/debian}"
[ "$(id -u)" = 0 ] || { echo "build-base.sh: needs root (debootstrap)" >&2; exit 1; }
mkdir -p "$out"
out="$(cd "$out" && pwd)"
tree="$out/tree"
rm -rf "$tree"
cleanup() {
    umount "$tree/proc" 2>/dev/null || true
    rm -rf "$tree"
}
trap cleanup EXIT

debootstrap --variant=minbase \
    --include=systemd-sysv,udev,linux-image-amd64,initramfs-tools,openssh-server,sudo,iproute2,kmod,procps,ca-certificates \
    bookworm "$tree" "$mirror"
# cloud-init pulls in Python; apt orders its configuration properly, debootstrap does not.
mount -t proc proc "$tree/proc"
chroot "$tree" apt-get install -y -qq --no-install-recommends cloud-init >/dev/null
umount "$tree/proc"
chroot "$tree" apt-get clean

echo bridgehead >"$tree/etc/hostname"
: >"$tree/etc/machine-id"
printf '/dev/vda / ext4 defaults 0 1\n' >"$tree/etc/fstab"
# DHCP on the one virtio NIC (eth0 with net.ifnames=0), as qemu's user network offers.
mkdir -p "$tree/etc/systemd/network"
printf '[Match]\nName=eth0\n\n[Network]\nDHCP=yes\n' >"$tree/etc/systemd/network/10-eth0.network"
chroot "$tree" systemctl enable systemd-networkd.service
# Packer logs in as root with a key made here.
rm -f "$out/id_ed25519" "$out/id_ed25519.pub"
ssh-keygen -q -t ed25519 -N '' -C bridgehead-packer -f "$out/id_ed25519"
install -d -m 0700 "$tree/root/.ssh"
install -m 0600 "$out/id_ed25519.pub" "$tree/root/.ssh/authorized_keys"
# No cloud metadata locally: cloud-init reads NoCloud seeds only (see packer/README.md); a
# minbase system has no locales package for its locale module.
mkdir -p "$tree/etc/cloud/cloud.cfg.d"
printf 'datasource_list: [ NoCloud, None ]\nlocale: false\n' >"$tree/etc/cloud/cloud.cfg.d/90-local.cfg"

cp -L "$tree/vmlinuz" "$out/vmlinuz"
cp -L "$tree/initrd.img" "$out/initrd.img"
rm -f "$out/base.raw"
mke2fs -q -t ext4 -L root -d "$tree" "$out/base.raw" 4G
qemu-img convert -f raw -O qcow2 "$out/base.raw" "$out/base.qcow2"
rm -f "$out/base.raw"
echo "build-base.sh: $out/base.qcow2 ready"
