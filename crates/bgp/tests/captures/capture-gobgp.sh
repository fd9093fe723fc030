#!/usr/bin/env bash
# Captures what GoBGP 3 sends on a 4-octet-AS session into gobgp-4octet.hex (one message per
# line). Needs root (a network namespace). Run by hand; the tests only read the file.
set -euo pipefail
cd "$(dirname "$0")"
NS="bhbgpcapg$$"
TMP=$(mktemp -d)
GOBGP_PID=""
cleanup() {
    [ -n "$GOBGP_PID" ] && kill "$GOBGP_PID" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
cat > "$TMP/gobgp.toml" <<CONF
[global.config]
  as = 4200000020
  router-id = "10.0.0.3"
  port = -1
[[neighbors]]
  [neighbors.config]
    neighbor-address = "127.0.0.2"
    peer-as = 65001
  [neighbors.timers.config]
    hold-time = 60
    connect-retry = 1
  [neighbors.transport.config]
    local-address = "127.0.0.1"
    remote-port = 1179
  [neighbors.ebgp-multihop.config]
    enabled = true
    multihop-ttl = 2
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
CONF
ip netns exec "$NS" python3 peer.py 127.0.0.2 1179 65001 1 "$TMP/out" 6 &
PEER=$!
sleep 0.5
ip netns exec "$NS" gobgpd -f "$TMP/gobgp.toml" --api-hosts 127.0.0.1:50061 >"$TMP/gobgpd.log" 2>&1 &
GOBGP_PID=$!
sleep 2.5
ip netns exec "$NS" gobgp -u 127.0.0.1 -p 50061 global rib add 10.30.0.0/16 med 70 community 65001:200 -a ipv4
ip netns exec "$NS" gobgp -u 127.0.0.1 -p 50061 global rib add fd30::/48 nexthop fd00::3 -a ipv6
wait "$PEER"
cp "$TMP/out" gobgp-4octet.hex
echo captured: gobgp-4octet.hex
