#!/usr/bin/env bash
# Captures the OPEN and UPDATEs BIRD 2 sends, on a 4-octet-AS session and on a 2-octet one,
# into bird-4octet.hex and bird-2octet.hex (one message per line). Needs root (a network
# namespace keeps BIRD's port 179 off the host). Run by hand; the tests only read the files.
set -euo pipefail
cd "$(dirname "$0")"
NS="bhbgpcap$$"
TMP=$(mktemp -d)
BIRD_PID=""
cleanup() {
    [ -n "$BIRD_PID" ] && kill "$BIRD_PID" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
for four in 1 0; do
    cat > "$TMP/bird.conf" <<CONF
router id 10.0.0.1;
protocol device {}
protocol static s4 { ipv4; route 10.10.0.0/16 blackhole; route 10.20.30.0/24 blackhole; }
protocol static s6 { ipv6; route fd10::/48 blackhole; route 2001:db8:1::/64 blackhole; }
protocol bgp peer {
  local 127.0.0.1 as 4200000010;
  neighbor 127.0.0.2 port 1179 as 65001;
  multihop;
  hold time 30;
  graceful restart on;
  ipv4 { import all; export filter { bgp_med = 50; bgp_community.add((65001,100)); bgp_large_community.add((4200000010,1,2)); accept; }; };
  ipv6 { import all; export all; next hop address fd00::1; };
}
CONF
    out="bird-$([ "$four" = 1 ] && echo 4octet || echo 2octet).hex"
    ip netns exec "$NS" python3 peer.py 127.0.0.2 1179 65001 "$four" "$TMP/out" 4 &
    PEER=$!
    sleep 0.5
    ip netns exec "$NS" bird -f -c "$TMP/bird.conf" -s "$TMP/bird.ctl" -P "$TMP/bird.pid" &
    BIRD_PID=$!
    wait "$PEER"
    kill "$BIRD_PID"; wait "$BIRD_PID" 2>/dev/null || true
    BIRD_PID=""
    cp "$TMP/out" "$out"
done
echo captured: bird-4octet.hex bird-2octet.hex
