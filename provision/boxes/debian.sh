#!/usr/bin/env bash
# Build the Debian 12 libvirt box the vagrant driver's Debian guests boot, offline
# from Debian packages only (mmdebstrap + extlinux; no image download), with every
# package the debian-vm flavour needs baked in: the VMs have no route to any
# package registry.
#
#   provision/boxes/debian.sh            build (or reuse) the box, print its path
#   VAGRANT_HOME=... provision/boxes/debian.sh --add NAME
#                                        ... and add it to Vagrant as NAME (once)
#
# The box is cached by a content hash of this script and packages.txt under
# $MAILRING_BOX_CACHE (default /var/cache/mailring/boxes): a second call with
# the same inputs is a no-op. Needs root (loop device, mount). FACTS.md §11.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${MAILRING_BOX_CACHE:-/var/cache/mailring/boxes}"
suite=bookworm
add_name=""
if [ "${1:-}" = "--add" ]; then
  add_name="${2:?--add needs a box name}"
fi

die() { echo "box: $*" >&2; exit 2; }
step() { echo "box: [$(date +%T)] $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "run as root (it needs a loop device and mount)"
for tool in mmdebstrap extlinux qemu-img sfdisk losetup mkfs.ext4 blkid; do
  command -v "$tool" >/dev/null || die "$tool is missing; run scripts/setup.sh"
done
mbr=/usr/lib/EXTLINUX/mbr.bin
[ -r "$mbr" ] || die "$mbr is missing; install the extlinux package"
key=$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub 2>/dev/null | head -1)
[ -n "$key" ] || die "Vagrant's insecure public key is missing; install the vagrant package"

packages=$(grep -v '^\s*#' "$here/packages.txt" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
hash=$(cat "$0" "$here/packages.txt" "$key" | sha256sum | cut -c1-16)
box="$cache/debian12-mailring-$hash.box"

if [ ! -s "$box" ]; then
  t0=$(date +%s)
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/build.XXXXXX")
  loop=""
  cleanup() {
    mountpoint -q "$work/mnt" && umount "$work/mnt"
    [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null
    rm -rf "$work"
  }
  trap cleanup EXIT
  trap 'exit 130' INT TERM

  step "mmdebstrap $suite with: $packages"
  mmdebstrap --variant=minbase --include="$packages" \
    --customize-hook="upload $key /tmp/vagrant.pub" \
    --customize-hook='chroot "$1" sh -eu -c "
      useradd -m -s /bin/bash vagrant
      install -d -m 0700 -o vagrant -g vagrant /home/vagrant/.ssh
      install -m 0600 -o vagrant -g vagrant /tmp/vagrant.pub /home/vagrant/.ssh/authorized_keys
      rm /tmp/vagrant.pub
      echo \"vagrant ALL=(ALL) NOPASSWD: ALL\" > /etc/sudoers.d/vagrant
      chmod 0440 /etc/sudoers.d/vagrant
      echo root:vagrant | chpasswd
      printf \"[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n\" > /etc/systemd/network/10-mgmt.network
      systemctl enable systemd-networkd ssh
      systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
        dpkg-db-backup.timer systemd-networkd-wait-online.service
      # the daemons run as mailring-* units made from the bundle (provision/debian/vm)
      for u in haproxy postfix dovecot nginx nsd unbound nfs-server nfs-kernel-server; do
        systemctl mask \$u.service
      done
      # no time source until a bundle names one: never a public NTP pool
      printf \"driftfile /var/lib/chrony/chrony.drift\nmakestep 0.1 -1\n\" > /etc/chrony/chrony.conf
      echo mailring-box > /etc/hostname
      # sudo resolves the hostname on every call: without this line each one waits for DNS
      printf \"127.0.0.1 localhost\n127.0.1.1 mailring-box\n\" > /etc/hosts
      : > /etc/resolv.conf
      # on an emulated (TCG) CPU OpenSSH'"'"'s default sntrup761 key exchange takes tens of seconds
      printf \"KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,diffie-hellman-group14-sha256\nUseDNS no\n\" > /etc/ssh/sshd_config.d/mailring.conf
      apt-get clean
      rm -rf /var/lib/apt/lists/*
    "' \
    "$suite" "$work/rootfs"

  step "disk image (4 GiB, ext4, extlinux)"
  truncate -s 4G "$work/disk.raw"
  echo 'start=2048, type=83, bootable' | sfdisk -q "$work/disk.raw"
  dd if="$mbr" of="$work/disk.raw" bs=440 count=1 conv=notrunc status=none
  # the partition through a loop device at its offset (containers get no loopNpM nodes)
  loop=$(losetup --show -f -o $((2048 * 512)) "$work/disk.raw")
  mkfs.ext4 -q -L root "$loop"
  uuid=$(blkid -s UUID -o value "$loop")
  mkdir -p "$work/mnt"
  mount "$loop" "$work/mnt"
  cp -a "$work/rootfs/." "$work/mnt/"
  echo "UUID=$uuid / ext4 errors=remount-ro 0 1" > "$work/mnt/etc/fstab"
  mkdir -p "$work/mnt/boot/extlinux"
  kernel=$(cd "$work/mnt/boot" && ls vmlinuz-* | sort -V | tail -1)
  initrd=$(cd "$work/mnt/boot" && ls initrd.img-* | sort -V | tail -1)
  cat > "$work/mnt/boot/extlinux/extlinux.conf" <<EOF
DEFAULT debian
TIMEOUT 1
LABEL debian
  LINUX /boot/$kernel
  INITRD /boot/$initrd
  APPEND root=UUID=$uuid ro net.ifnames=0 console=ttyS0,115200n8 quiet
EOF
  extlinux --install "$work/mnt/boot/extlinux" 2>/dev/null
  umount "$work/mnt"
  losetup -d "$loop"
  loop=""

  step "qcow2 + box"
  mkdir "$work/box"
  qemu-img convert -c -O qcow2 "$work/disk.raw" "$work/box/box.img"
  echo '{"provider": "libvirt", "format": "qcow2", "virtual_size": 4}' > "$work/box/metadata.json"
  cat > "$work/box/Vagrantfile" <<'EOF'
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.driver = "qemu"
  end
end
EOF
  tar -C "$work/box" -cf "$work/box.tar" metadata.json Vagrantfile box.img
  mv "$work/box.tar" "$box"
  step "built $box ($(du -m "$box" | cut -f1) MiB) in $(( $(date +%s) - t0 )) s"
else
  step "cached: $box"
fi

if [ -n "$add_name" ]; then
  if vagrant box list --machine-readable 2>/dev/null | grep -q ",box-name,$add_name\$"; then
    step "vagrant already has $add_name"
  else
    step "vagrant box add $add_name"
    vagrant box add --name "$add_name" "$box" >&2
  fi
fi
echo "$box"
