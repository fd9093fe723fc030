#!/usr/bin/env python3
"""A minimal scripted BGP peer used only to capture what a real speaker sends.

Usage: peer.py LISTEN_ADDR PORT MY_AS FOUR_OCTET(0|1) OUT_FILE SECONDS
Accepts one connection, sends an OPEN (IPv4+IPv6 unicast, route refresh, optionally 4-octet AS)
and a KEEPALIVE, answers KEEPALIVEs, and writes every message received, one hex line each.
"""
import socket, struct, sys, time

addr, port, my_as, four, out, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5], float(sys.argv[6])

def msg(ty, body):
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), ty) + body

caps = b"\x01\x04\x00\x01\x00\x01" + b"\x01\x04\x00\x02\x00\x01" + b"\x02\x00"
if four:
    caps += b"\x41\x04" + struct.pack("!I", my_as)
param = b"\x02" + bytes([len(caps)]) + caps
my_as16 = my_as if my_as < 65536 else 23456
open_msg = msg(1, struct.pack("!BHH4sB", 4, my_as16, 90, socket.inet_aton("10.0.0.2"), len(param)) + param)

s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, port))
s.listen(1)
s.settimeout(30)
c, _ = s.accept()
c.sendall(open_msg + msg(4, b""))
c.settimeout(0.5)
buf = b""
msgs = []
end = time.time() + secs
while time.time() < end:
    try:
        d = c.recv(65536)
        if not d:
            break
        buf += d
    except socket.timeout:
        pass
    while len(buf) >= 19:
        ln = struct.unpack("!H", buf[16:18])[0]
        if len(buf) < ln:
            break
        m, buf = buf[:ln], buf[ln:]
        msgs.append(m)
        if m[18] == 4:
            c.sendall(msg(4, b""))
with open(out, "w") as f:
    for m in msgs:
        f.write(m.hex() + "\n")
c.close()
