#!/usr/bin/env bash
# Captures what FRR bgpd (8.4) sends on a 4-octet-AS session into frr-4octet.hex (one message
# per line). Needs root (a network namespace). Run by hand; the tests only read the file.
set -euo pipefail
cd "$(dirname "$0")"
NS="bhbgpcapf$$"
TMP=$(mktemp -d)
chmod 755 "$TMP"
BGPD_PID=""
cleanup() {
    [ -n "$BGPD_PID" ] && kill "$BGPD_PID" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
cat > "$TMP/bgpd.conf" <<CONF
frr defaults traditional
hostname capture
router bgp 4200000030
 bgp router-id 10.0.0.4
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 127.0.0.2 remote-as 65001
 neighbor 127.0.0.2 port 1179
 neighbor 127.0.0.2 ebgp-multihop 2
 neighbor 127.0.0.2 update-source 127.0.0.1
 neighbor 127.0.0.2 timers 10 30
 address-family ipv4 unicast
  network 10.40.0.0/16
 exit-address-family
 address-family ipv6 unicast
  network fd40::/48
  neighbor 127.0.0.2 activate
 exit-address-family
CONF
ip netns exec "$NS" python3 peer.py 127.0.0.2 1179 65001 1 "$TMP/out" 6 &
PEER=$!
sleep 0.5
ip netns exec "$NS" /usr/lib/frr/bgpd -Z -S -p 0 -f "$TMP/bgpd.conf" -i "$TMP/bgpd.pid" \
    --vty_socket "$TMP" -P 0 >"$TMP/bgpd.log" 2>&1 &
BGPD_PID=$!
wait "$PEER"
cp "$TMP/out" frr-4octet.hex
echo captured: frr-4octet.hex
