#!/usr/bin/env python3
"""A PBX-like answerer for the enumeration-shield e2e test (crates/sipwall/tests/e2e_shield.rs).

Answers like a PBX without Asterisk's alwaysauthreject: a REGISTER or OPTIONS for an existing
extension (100, 101) gets 401 with WWW-Authenticate, an INVITE for one gets 407 with
Proxy-Authenticate (fresh nonce each time, realm "pbx.example"), and any other user gets
404 Not Found. So an unprotected walker can tell which extensions exist. UDP only.

Usage: shield-pbx.py BIND_IP PORT SECONDS   (exits after SECONDS; the test also bounds it)
"""
import os
import re
import socket
import sys
import time

USERS = {"100", "101"}


def header(lines, *names):
    for line in lines:
        name, _, value = line.partition(":")
        if name.strip().lower() in names:
            return line
    return None


def answer(req: str) -> str | None:
    head = req.split("\r\n\r\n", 1)[0].split("\n")
    head = [l.rstrip("\r") for l in head]
    start = head[0].split(" ")
    if len(start) < 3 or start[0] == "SIP/2.0":
        return None
    method = start[0]
    if method == "ACK":
        return None
    lines = head[1:]
    keep = [l for l in lines if l.split(":", 1)[0].strip().lower() in ("via", "v", "from", "f", "call-id", "i", "cseq")]
    to = header(lines, "to", "t") or "To: <sip:unknown@pbx.example>"
    m = re.search(r"sip:([^@;>]+)@", to)
    user = m.group(1) if m else ""
    to_line = to if ";tag=" in to else to + ";tag=" + os.urandom(4).hex()
    nonce = os.urandom(8).hex()
    if user in USERS and method in ("REGISTER", "OPTIONS"):
        status = "401 Unauthorized"
        extra = [f'WWW-Authenticate: Digest algorithm=MD5, realm="pbx.example", nonce="{nonce}"']
    elif user in USERS and method == "INVITE":
        status = "407 Proxy Authentication Required"
        extra = [f'Proxy-Authenticate: Digest algorithm=MD5, realm="pbx.example", nonce="{nonce}"']
    elif method in ("REGISTER", "OPTIONS", "INVITE"):
        status = "404 Not Found"
        extra = []
    else:
        status = "200 OK"
        extra = []
    out = [f"SIP/2.0 {status}"]
    # Transaction lines in the request's order, To with the PBX's tag.
    for l in lines:
        n = l.split(":", 1)[0].strip().lower()
        if n in ("to", "t"):
            out.append(to_line)
        elif l in keep:
            out.append(l)
    out += ["Server: ShieldTestPBX 1.0", "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE"]
    out += extra
    out += ["Content-Length: 0", "", ""]
    return "\r\n".join(out)


def main():
    ip, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((ip, port))
    s.settimeout(0.5)
    end = time.time() + secs
    print("listening", flush=True)
    while time.time() < end:
        try:
            data, peer = s.recvfrom(65535)
        except socket.timeout:
            continue
        try:
            a = answer(data.decode("utf-8", "replace"))
        except Exception:  # hostile input: never die
            a = None
        if a:
            s.sendto(a.encode(), peer)


if __name__ == "__main__":
    main()
