#!/usr/bin/env bash
# Installs bridgehead as a systemd service: the binary, the unit, its user (sysusers.d), its
# directories (tmpfiles.d), kernel settings (sysctl.d: forwarding, rp_filter), the tun module
# (modules-load.d) and a default configuration, then enables the service.
#
# Used by the Packer templates (packer/*.json) and by hand:
#
#   sudo appliance/install.sh --binary target/release/bridgehead          # this host, enable
#   sudo appliance/install.sh --binary ./bridgehead --now                 # ... and start it
#   appliance/install.sh --binary ./bridgehead --root /tmp/img            # into a file tree
#
# Options:
#   --binary PATH   the bridgehead executable (default: ./bridgehead beside this script,
#                   else target/release/bridgehead of the checkout)
#   --root DIR      install into DIR instead of / (an image tree, or appliance/check's scratch
#                   root): nothing on the running host is touched
#   --config FILE   install FILE as /etc/bridgehead/bridgehead.toml (default: the commented
#                   example beside this script, which has no tunnels); an existing
#                   configuration is never overwritten unless --force-config is given
#   --force-config  replace an existing /etc/bridgehead/bridgehead.toml
#   --no-enable     do not enable the service
#   --now           start (or restart) the service after installing (host only)
#
# Idempotent. Needs root for / (and for the ownership of /etc/bridgehead with --root).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root=/
binary=""
config="$here/bridgehead.toml"
force_config=0
enable=1
now=0

die() {
    echo "install.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
    --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
    --root) root="${2:?--root needs a directory}"; shift 2 ;;
    --config) config="${2:?--config needs a file}"; shift 2 ;;
    --force-config) force_config=1; shift ;;
    --no-enable) enable=0; shift ;;
    --now) now=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
    esac
done

if [ -z "$binary" ]; then
    for b in "$here/bridgehead" "$here/../target/release/bridgehead"; do
        if [ -x "$b" ]; then binary="$b"; break; fi
    done
fi
[ -n "$binary" ] || die "no bridgehead binary found; pass --binary PATH"
[ -x "$binary" ] || die "$binary is not an executable file"
[ -f "$config" ] || die "configuration $config not found"
[ -d "$root" ] || die "root $root is not a directory"
root="$(cd "$root" && pwd)"
on_host=0
[ "$root" = / ] && on_host=1
if [ "$on_host" = 1 ] && [ "$(id -u)" != 0 ]; then
    die "installing on this host needs root (or use --root DIR)"
fi
if [ "$now" = 1 ] && [ "$on_host" = 0 ]; then
    die "--now only applies to this host, not to --root $root"
fi
r="${root%/}"

# Files. /usr/lib for what the package owns, /etc for what the administrator edits.
install -D -m 0755 "$binary" "$r/usr/bin/bridgehead"
install -D -m 0644 "$here/bridgehead.service" "$r/usr/lib/systemd/system/bridgehead.service"
install -D -m 0644 "$here/sysusers.d/bridgehead.conf" "$r/usr/lib/sysusers.d/bridgehead.conf"
install -D -m 0644 "$here/tmpfiles.d/bridgehead.conf" "$r/usr/lib/tmpfiles.d/bridgehead.conf"
install -D -m 0644 "$here/sysctl.d/60-bridgehead.conf" "$r/usr/lib/sysctl.d/60-bridgehead.conf"
install -D -m 0644 "$here/modules-load.d/bridgehead.conf" "$r/usr/lib/modules-load.d/bridgehead.conf"
for doc in "$here/../README.md" "$here/../docs/configuration.md"; do
    if [ -f "$doc" ]; then
        install -D -m 0644 "$doc" "$r/usr/share/doc/bridgehead/$(basename "$doc")"
    fi
done

# The user and the directories, from the same files systemd reads at boot.
if [ "$on_host" = 1 ]; then
    systemd-sysusers /usr/lib/sysusers.d/bridgehead.conf
    systemd-tmpfiles --create /usr/lib/tmpfiles.d/bridgehead.conf
else
    mkdir -p "$r/etc"
    systemd-sysusers --root="$root" "$r/usr/lib/sysusers.d/bridgehead.conf"
    systemd-tmpfiles --root="$root" --create "$r/usr/lib/tmpfiles.d/bridgehead.conf"
fi

# The default configuration: owned by root, readable by the service's group. A configuration
# with inline keys must instead be 0600 and owned by bridgehead (bridgehead check says so).
target="$r/etc/bridgehead/bridgehead.toml"
if [ ! -e "$target" ] || [ "$force_config" = 1 ]; then
    install -m 0640 "$config" "$target"
    if [ "$on_host" = 1 ]; then
        chown root:bridgehead "$target"
    else
        gid="$(awk -F: '$1 == "bridgehead" { print $3 }' "$r/etc/group")"
        chown "0:${gid:?bridgehead group missing in $r/etc/group}" "$target"
    fi
fi

if [ "$on_host" = 1 ]; then
    # Apply the kernel settings now; at boot systemd-sysctl and systemd-modules-load do it.
    modprobe tun 2>/dev/null || echo "install.sh: note: could not load the tun module now" >&2
    if [ -x /usr/lib/systemd/systemd-sysctl ]; then
        /usr/lib/systemd/systemd-sysctl /usr/lib/sysctl.d/60-bridgehead.conf ||
            echo "install.sh: note: some kernel settings were not applied now" >&2
    fi
    running=0
    [ -d /run/systemd/system ] && running=1
    if [ "$running" = 1 ]; then
        systemctl daemon-reload
    fi
    if [ "$enable" = 1 ]; then
        systemctl enable bridgehead.service
    fi
    if [ "$now" = 1 ]; then
        [ "$running" = 1 ] || die "systemd is not running here: cannot start the service"
        systemctl restart bridgehead.service
    fi
elif [ "$enable" = 1 ]; then
    systemctl --root="$root" enable bridgehead.service
fi
if [ "$enable" = 1 ]; then
    echo "install.sh: bridgehead installed into $root and enabled"
else
    echo "install.sh: bridgehead installed into $root"
fi
