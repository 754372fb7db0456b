#!/usr/bin/env python3
"""Record real SIP messages from real tools on loopback, byte-exact, as parser fixtures.

What it does (everything stays on 127.0.0.1; every run and loop is bounded in time):

* Scanners: runs SIPVicious svmap (OPTIONS, INVITE, REGISTER), svwar (REGISTER, OPTIONS,
  INVITE) and svcrack (REGISTER), each plain and with ``-c`` (compact headers), against a tiny
  UDP listener in this script. The listener writes every datagram it receives unchanged and
  answers just enough for the tools to go on, the way a PBX would:
    - INVITE: ``100 Trying`` first;
    - extension 100 (or a REGISTER without credentials): ``401 Unauthorized`` with a Digest
      challenge; a REGISTER with credentials: ``403 Forbidden``;
    - any other extension: ``404 Not Found``.
  The answers are built by this script (modelled on Asterisk's), and are saved too, under
  ``response/``, marked ``listener`` in their names.
* SIPp: ``sipp -sn uas`` and ``sipp -sn uac`` (one call) talk through a UDP relay in this
  script, which writes every datagram in both directions (INVITE with SDP, 180, 200, ACK,
  BYE, 200).

Usage: scripts/record-sip-fixtures.py [OUTDIR]   (default crates/sip/tests/fixtures)
Needs: sipvicious (pip), sipp (apt sip-tester). Ports: 127.0.0.1:15090-15093, and SIPVicious
binds its own local port (5060 or the next free one).
"""

import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"
LISTEN_PORT = 15090
UAS_PORT = 15091
RELAY_PORT = 15092
UAC_PORT = 15093
TOOL_TIMEOUT = 40  # seconds per tool run
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "crates", "sip", "tests", "fixtures")


def tool(name):
    """Path to a SIPVicious tool, or the module invocation."""
    exe = shutil.which("sipvicious_" + name)
    return [exe] if exe else [sys.executable, "-m", "sipvicious." + name]


def header(msg, *names):
    for line in re.split(rb"\r?\n", msg):
        if not line:
            break
        m = re.match(rb"([^:\s]+)\s*:\s*(.*)", line)
        if m and m.group(1).lower() in names:
            return m.group(2)
    return None


def all_headers(msg, *names):
    out = []
    for line in re.split(rb"\r?\n", msg):
        if not line:
            break
        m = re.match(rb"([^:\s]+)\s*:\s*(.*)", line)
        if m and m.group(1).lower() in names:
            out.append(m.group(2))
    return out


def response(req, code, reason, extra=b""):
    """A minimal response to `req`, as a PBX would send it."""
    vias = all_headers(req, b"via", b"v")
    frm = header(req, b"from", b"f") or b""
    to = header(req, b"to", b"t") or b""
    if b";tag=" not in to:
        to += b";tag=as%08x" % random.getrandbits(32)
    lines = [b"SIP/2.0 %d %s" % (code, reason)]
    lines += [b"Via: " + v for v in vias]
    lines += [
        b"From: " + frm,
        b"To: " + to,
        b"Call-ID: " + (header(req, b"call-id", b"i") or b""),
        b"CSeq: " + (header(req, b"cseq") or b""),
        b"Server: Asterisk PBX 18.20.0",
        b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, PUBLISH, MESSAGE",
        b"Supported: replaces, timer",
    ]
    if extra:
        lines.append(extra)
    lines.append(b"Content-Length: 0")
    return b"\r\n".join(lines) + b"\r\n\r\n"


class Listener(threading.Thread):
    """Answers scanners; keeps every received datagram and every answer, in order."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, LISTEN_PORT))
        self.sock.settimeout(0.2)
        self.received = []
        self.sent = []
        self.stop = False

    def run(self):
        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            self.received.append(data)
            first = data.split(b"\n", 1)[0]
            method = first.split(b" ", 1)[0]
            if method in (b"ACK", b"") or first.startswith(b"SIP/"):
                continue
            ruri = first.split(b" ")[1] if first.count(b" ") >= 2 else b""
            to = header(data, b"to", b"t") or b""
            user = re.search(rb"sips?:([^@;>]+)@", to) or re.search(rb"sips?:([^@;>]+)@", ruri)
            user = user.group(1) if user else b""
            answers = []
            if method == b"INVITE":
                answers.append(response(data, 100, b"Trying"))
            if method == b"CANCEL":
                answers.append(response(data, 200, b"OK"))
            elif method == b"REGISTER" and header(data, b"authorization"):
                answers.append(response(data, 403, b"Forbidden"))
            elif user == b"100" or method == b"REGISTER" and user in (b"", b"100"):
                nonce = b"%08x" % random.getrandbits(32)
                answers.append(response(
                    data, 401, b"Unauthorized",
                    b'WWW-Authenticate: Digest algorithm=MD5, realm="asterisk", nonce="%s"' % nonce))
            else:
                answers.append(response(data, 404, b"Not Found"))
            for a in answers:
                self.sock.sendto(a, addr)
                self.sent.append(a)


class Relay(threading.Thread):
    """UDP relay between a SIPp uac and a SIPp uas; keeps (direction, datagram)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, RELAY_PORT))
        self.sock.settimeout(0.2)
        self.seen = []
        self.stop = False

    def run(self):
        uas = (HOST, UAS_PORT)
        client = None
        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            if addr == uas:
                self.seen.append(("uas", data))
                if client:
                    self.sock.sendto(data, client)
            else:
                client = addr
                self.seen.append(("uac", data))
                self.sock.sendto(data, uas)


def save(rel, data):
    path = os.path.join(OUT, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    print("  wrote %s (%d bytes)" % (rel, len(data)))


def run(cmd):
    print("$ " + " ".join(cmd))
    try:
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=TOOL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        print("  (timed out after %ds)" % TOOL_TIMEOUT)


def has_auth(d):
    return header(d, b"authorization", b"proxy-authorization") is not None


def record_scanners():
    lst = Listener()
    lst.start()
    target = [HOST, "-p", str(LISTEN_PORT)]
    runs = []
    for compact in (False, True):
        c = ["-c"] if compact else []
        tag = "-c" if compact else ""
        for m in ("OPTIONS", "INVITE", "REGISTER"):
            runs.append(("svmap%s-%s" % (tag, m.lower()),
                         tool("svmap") + target + ["-m", m, "-t", "0.05"] + c))
        for m in ("REGISTER", "OPTIONS", "INVITE"):
            runs.append(("svwar%s-%s" % (tag, m.lower()),
                         tool("svwar") + target + ["-m", m, "-e", "100-102", "--force",
                                                   "-t", "0.05", "--maximumtime", "8"] + c))
        runs.append(("svcrack%s-register" % tag,
                     tool("svcrack") + target + ["-u", "100", "-r", "1000-1001",
                                                 "-t", "0.05", "--maximumtime", "8"] + c))
    for name, cmd in runs:
        before_r, before_s = len(lst.received), len(lst.sent)
        run(cmd)
        time.sleep(0.3)
        got = lst.received[before_r:]
        reqs = [d for d in got if not d.startswith(b"SIP/")]
        if not reqs:
            print("  !! %s sent nothing" % name)
            continue
        save("scanner/%s.sip" % name, reqs[0])
        if name.startswith("svwar"):
            # First datagram probes a random user; then 100, 101, 102.
            ext = [d for d in reqs[1:] if re.search(rb"sip:100@", d)]
            if ext:
                save("scanner/%s-ext100.sip" % name, ext[0])
        if name.startswith("svcrack"):
            auth = [d for d in reqs if has_auth(d)]
            if auth:
                save("scanner/%s-auth.sip" % name, auth[0])
        others = [d for d in reqs if not d.startswith(reqs[0].split(b" ")[0] + b" ")]
        seen = set()
        for d in others:
            meth = d.split(b" ", 1)[0].decode("ascii", "replace").lower()
            if meth not in seen:
                seen.add(meth)
                save("scanner/%s-then-%s.sip" % (name, meth), d)
        for d in lst.sent[before_s:]:
            code = d.split(b" ")[1].decode()
            rel = "response/%s-listener.sip" % code
            if not os.path.exists(os.path.join(OUT, rel)):
                save(rel, d)
    lst.stop = True
    lst.join()


def record_sipp():
    relay = Relay()
    relay.start()
    uas = subprocess.Popen(["sipp", "-sn", "uas", "-i", HOST, "-p", str(UAS_PORT), "-m", "1",
                            "-nostdin"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    run(["sipp", "-sn", "uac", "%s:%d" % (HOST, RELAY_PORT), "-i", HOST, "-p", str(UAC_PORT),
         "-m", "1", "-nostdin", "-timeout", "20s", "-timeout_error"])
    time.sleep(0.5)
    try:
        uas.wait(timeout=5)
    except subprocess.TimeoutExpired:
        uas.terminate()  # only the process we started, by its pid
        uas.wait(timeout=5)
    relay.stop = True
    relay.join()
    counts = {}
    for side, d in relay.seen:
        first = d.split(b"\r\n", 1)[0]
        if first.startswith(b"SIP/2.0"):
            cseq = (header(d, b"cseq") or b"").split(b" ")[-1].lower().decode()
            name = "%s-%s-%s" % (side, first.split(b" ")[1].decode(), cseq)
        else:
            name = "%s-%s" % (side, first.split(b" ")[0].decode().lower())
        counts[name] = counts.get(name, 0) + 1
        if counts[name] == 1:
            save("sipp/%s.sip" % name, d)
    if not relay.seen:
        print("  !! sipp exchanged nothing")


if __name__ == "__main__":
    record_scanners()
    record_sipp()
