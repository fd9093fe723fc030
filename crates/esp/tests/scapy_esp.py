#!/usr/bin/env python3
"""Cross-check of bridgehead's ESP against scapy's (scapy.layers.ipsec), driven by
scapy_xcheck.rs.

Reads one JSON object on stdin:
  {"cases": [{"name", "crypt_algo", "crypt_key", "auth_algo", "auth_key", "spi", "esn",
              "open": [{"seq", "esp", "inner"}],     # sealed by bridgehead: open and compare
              "seal": [{"seq", "inner"}]}]}           # to be sealed by scapy
(byte strings in hex, seq the full 64-bit sequence number) and writes one JSON object:
  {"cases": [{"name", "supported", "open": [{"ok", "inner", "nh", "padlen", "error"}],
              "seal": [{"esp"}]}]}
"""

import json
import sys

from scapy.layers.inet import IP
from scapy.layers.ipsec import AUTH_ALGOS, CRYPT_ALGOS, ESP, SecurityAssociation
from scapy.layers.inet6 import IPv6
from scapy.packet import raw


def make_sa(case, seq):
    """An ESP SA for one packet: scapy carries the ESN high half as a separate field."""
    low, high = seq & 0xFFFFFFFF, seq >> 32
    return SecurityAssociation(
        ESP,
        spi=case["spi"],
        seq_num=low,
        crypt_algo=case["crypt_algo"],
        crypt_key=bytes.fromhex(case["crypt_key"]),
        auth_algo=case["auth_algo"],
        auth_key=bytes.fromhex(case["auth_key"]) if case["auth_key"] else None,
        tunnel_header=IP(src="192.0.2.1", dst="192.0.2.2"),
        esn_en=case["esn"],
        esn=high,
    )


def open_one(case, item):
    """Verifies and decrypts an ESP packet with scapy's own code, and checks its trailer."""
    seq = item["seq"]
    sa = make_sa(case, seq)
    esp = ESP(bytes.fromhex(item["esp"]))
    if esp.spi != case["spi"] or esp.seq != seq & 0xFFFFFFFF:
        return {"ok": False, "error": "header: spi %x seq %x" % (esp.spi, esp.seq)}
    try:
        sa.auth_algo.verify(esp, sa.auth_key, esn_en=sa.esn_en, esn=sa.esn)
        icv_size = sa.crypt_icv_size or sa.crypt_algo.icv_size or sa.auth_algo.icv_size
        plain = sa.crypt_algo.decrypt(
            sa, esp, sa.crypt_key, icv_size, esn_en=sa.esn_en, esn=sa.esn
        )
    except Exception as err:  # report, the Rust side fails the test with it
        return {"ok": False, "error": "%s: %s" % (type(err).__name__, err)}
    inner = bytes(plain.data)
    padding = bytes(plain.padding)
    ok = inner == bytes.fromhex(item["inner"]) and padding == bytes(
        range(1, plain.padlen + 1)
    )
    return {
        "ok": ok,
        "inner": inner.hex(),
        "nh": plain.nh,
        "padlen": plain.padlen,
        "error": "" if ok else "inner or padding differs",
    }


def seal_one(case, item):
    """Seals an inner packet in tunnel mode with scapy and returns the ESP part."""
    sa = make_sa(case, item["seq"])
    inner = bytes.fromhex(item["inner"])
    pkt = IP(inner) if inner[0] >> 4 == 4 else IPv6(inner)
    if raw(pkt) != inner:
        raise SystemExit("scapy does not reproduce the inner packet byte for byte")
    outer = sa.encrypt(pkt)
    return {"esp": raw(outer[ESP]).hex()}


def main():
    request = json.load(sys.stdin)
    out = []
    for case in request["cases"]:
        supported = case["crypt_algo"] in CRYPT_ALGOS and (
            not case["auth_algo"] or case["auth_algo"] in AUTH_ALGOS
        )
        if not supported:
            out.append({"name": case["name"], "supported": False, "open": [], "seal": []})
            continue
        out.append(
            {
                "name": case["name"],
                "supported": True,
                "open": [open_one(case, item) for item in case["open"]],
                "seal": [seal_one(case, item) for item in case["seal"]],
            }
        )
    json.dump({"cases": out}, sys.stdout)


if __name__ == "__main__":
    main()
