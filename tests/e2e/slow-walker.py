#!/usr/bin/env python3
"""A slow extension walker without tool tells, for the enumeration-shield e2e test.

Sends one clean request (a real phone's User-Agent, z9hG4bK branch, tags, a random Call-ID)
every INTERVAL seconds: first to a random 9-digit user to learn the "no such user" answer,
then to each extension FIRST..LAST. An extension is "found" when its answer's status line
differs from the random user's (the inference svwar and sippts make; the challenge's realm and
algorithm are compared too). Prints one JSON line:
{"baseline": "...", "answers": {"100": "SIP/2.0 401 ...", ...}, "found": ["100", ...]}.

Usage: slow-walker.py SRC_IP TARGET_IP PORT METHOD FIRST LAST INTERVAL
"""
import json
import os
import random
import re
import socket
import sys
import time


def request(method, user, src, dst, port, lport):
    branch = "z9hG4bK" + os.urandom(6).hex()
    tag = os.urandom(4).hex()
    cid = os.urandom(10).hex() + "@" + src
    lines = [
        f"{method} sip:{user}@{dst} SIP/2.0" if method != "REGISTER" else f"REGISTER sip:{dst} SIP/2.0",
        f"Via: SIP/2.0/UDP {src}:{lport};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{dst}>;tag={tag}",
        f"To: <sip:{user}@{dst}>",
        f"Call-ID: {cid}",
        f"CSeq: 1 {method}",
        f"Contact: <sip:{user}@{src}:{lport}>",
        "User-Agent: Yealink SIP-T46S 66.86.0.15",
        "Expires: 3600" if method == "REGISTER" else "Accept: application/sdp",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode(), cid


def ask(sock, method, user, src, dst, port):
    data, cid = request(method, user, src, dst, port, sock.getsockname()[1])
    sock.sendto(data, (dst, port))
    deadline = time.time() + 2.0
    while time.time() < deadline:
        try:
            sock.settimeout(max(0.05, deadline - time.time()))
            buf, _ = sock.recvfrom(65535)
        except socket.timeout:
            break
        text = buf.decode("utf-8", "replace")
        if cid in text and not text.startswith("SIP/2.0 1"):
            # The status line and the challenge's realm and algorithm: a walker sharper than
            # svwar compares those too.
            realm = re.search(r'realm="([^"]*)"', text)
            algo = re.search(r"algorithm=([A-Za-z0-9-]+)", text)
            extra = "".join(f" {k}={m.group(1)}" for k, m in (("realm", realm), ("algorithm", algo)) if m)
            return text.split("\r\n", 1)[0] + extra
    return "no answer"


def main():
    src, dst, port, method = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    first, last, interval = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((src, 0))
    baseline = ask(sock, method, str(random.randint(10**8, 10**9 - 1)), src, dst, port)
    answers = {}
    for ext in range(first, last + 1):
        time.sleep(interval)
        answers[str(ext)] = ask(sock, method, str(ext), src, dst, port)
    found = [e for e, a in answers.items() if a != baseline and a != "no answer"]
    print(json.dumps({"baseline": baseline, "answers": answers, "found": found}), flush=True)


if __name__ == "__main__":
    main()
