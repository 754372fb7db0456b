#!/usr/bin/env python3
"""Record real scanner and real phone/provider SIP exchanges as engine scenario fixtures.

Everything stays on 127.0.0.1; every tool run is bounded in time (TOOL_TIMEOUT) and every loop
in count. A small UDP responder in this script plays the PBX:

  * REGISTER without credentials -> 401 with a Digest nonce (the normal first challenge) for a
    known user, 404 for an unknown one (a PBX without Asterisk's alwaysauthreject, the kind
    svwar enumerates); REGISTER with credentials -> 200 for the phone's account 201, 403 for
    anything else (svcrack's guesses);
  * INVITE -> 100 Trying, then 180 + 200 (with SDP) for a known user (201, 202, +6491234567),
    404 for any other; ACK -> nothing; BYE/CANCEL -> 200;
  * OPTIONS -> 200 when the request-URI names no user or a known one, else 404.

Scanners (SIPVicious, real tools): svmap -m OPTIONS/INVITE/REGISTER, svwar -m REGISTER/OPTIONS/
INVITE, svcrack (REGISTER), each plain and with -c (compact headers, no User-Agent); nmap's
service probe and sip-methods / sip-enum-users scripts, and sipsak, when installed.
Legitimate peers (SIPp, real tool): a phone registering with Digest auth (first 401, then
200; then a refresh) and making calls; a provider trunk sending INVITEs and OPTIONS keepalives.

Each run becomes a folder OUT/<scenario>/ with every datagram in both directions as
NNN-in.sip (toward the PBX) or NNN-out.sip (the PBX's answer), bytes unchanged, and a
meta.txt: `# key: value` lines (tool, command, peer) then one line per datagram:
`NNN in|out <milliseconds since the first datagram>`.

Usage: scripts/record-scanner-scenarios.py [OUTDIR [all|scanners|legit|NAME-PREFIX]]
       (default crates/engine/tests/scenarios, all)
Needs: sipvicious (pip), sipp (apt sip-tester); optional nmap, sipsak (apt). Uses UDP 127.0.0.1:15190 (PBX) and
15191-15193 (SIPp); SIPVicious binds 5060 or the next free port.
"""

import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"
PBX_PORT = 15190
PHONE_PORT = 15191
PROVIDER_PORT = 15192
TOOL_TIMEOUT = 30
ONLY = None  # record only scanner scenarios whose name starts with this
KNOWN_USERS = {b"201", b"202", b"+6491234567", b"6491234567"}
PHONE_ACCOUNT = b"201"
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "crates", "engine", "tests", "scenarios")


def tool(name):
    exe = shutil.which("sipvicious_" + name)
    return [exe] if exe else [sys.executable, "-m", "sipvicious." + name]


def headers(msg, *names):
    out = []
    for line in re.split(rb"\r?\n", msg):
        if not line:
            break
        m = re.match(rb"([^:\s]+)\s*:\s*(.*)", line)
        if m and m.group(1).lower() in names:
            out.append(m.group(2))
    return out


def header(msg, *names):
    h = headers(msg, *names)
    return h[0] if h else None


def response(req, code, reason, extra=(), body=b""):
    """An answer to `req` shaped like Asterisk's."""
    frm = header(req, b"from", b"f") or b""
    to = header(req, b"to", b"t") or b""
    if b"tag=" not in to and code > 100:
        to += b";tag=as%08x" % random.getrandbits(32)
    lines = [b"SIP/2.0 %d %s" % (code, reason)]
    lines += [b"Via: " + v for v in headers(req, b"via", b"v")]
    lines += [b"From: " + frm, b"To: " + to,
              b"Call-ID: " + (header(req, b"call-id", b"i") or b""),
              b"CSeq: " + (header(req, b"cseq") or b""),
              b"Server: Asterisk PBX 18.20.0",
              b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO"]
    lines += list(extra)
    if body:
        lines.append(b"Content-Type: application/sdp")
    lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=Asterisk\r\nc=IN IP4 127.0.0.1\r\n"
       b"t=0 0\r\nm=audio 17000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n"
       b"a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")


def target_user(req):
    first = req.split(b"\n", 1)[0]
    method = first.split(b" ", 1)[0]
    ruri = first.split(b" ")[1] if first.count(b" ") >= 2 else b""
    src = (header(req, b"to", b"t") or b"") if method == b"REGISTER" else ruri
    m = re.search(rb"sips?:([^@;>:]+)@", src)
    return m.group(1) if m else b""


class Pbx(threading.Thread):
    """The responder. Keeps (time, direction, peer, datagram) for every datagram."""

    def __init__(self, port=PBX_PORT):
        super().__init__(daemon=True)
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, port))
        self.sock.settimeout(0.1)
        self.log = []
        self.stop = False
        self.lock = threading.Lock()

    def send(self, data, addr):
        self.sock.sendto(data, addr)
        with self.lock:
            self.log.append((time.monotonic(), "out", addr, data))

    def run(self):
        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            with self.lock:
                self.log.append((time.monotonic(), "in", addr, data))
            first = data.split(b"\n", 1)[0]
            if first.startswith(b"SIP/") or not first.strip():
                continue
            method = first.split(b" ", 1)[0]
            user = target_user(data)
            auth = header(data, b"authorization", b"proxy-authorization")
            if method == b"ACK":
                continue
            if method in (b"BYE", b"CANCEL"):
                self.send(response(data, 200, b"OK"), addr)
            elif method == b"REGISTER":
                if auth is None and user not in KNOWN_USERS:
                    self.send(response(data, 404, b"Not Found"), addr)
                elif auth is None:
                    nonce = b"%016x" % random.getrandbits(64)
                    self.send(response(data, 401, b"Unauthorized", [
                        b'WWW-Authenticate: Digest algorithm=MD5, realm="asterisk", nonce="%s"'
                        % nonce]), addr)
                elif user == PHONE_ACCOUNT:
                    self.send(response(data, 200, b"OK", [
                        b"Expires: 120", b"Contact: " + (header(data, b"contact", b"m") or b"")
                        + b";expires=120"]), addr)
                else:
                    self.send(response(data, 403, b"Forbidden"), addr)
            elif method == b"INVITE":
                self.send(response(data, 100, b"Trying"), addr)
                if user in KNOWN_USERS:
                    self.send(response(data, 180, b"Ringing"), addr)
                    self.send(response(data, 200, b"OK", [
                        b"Contact: <sip:%s@%s:%d>" % (user, HOST.encode(), self.port)], SDP), addr)
                else:
                    self.send(response(data, 404, b"Not Found"), addr)
            elif method == b"OPTIONS":
                if user == b"" or user in KNOWN_USERS:
                    self.send(response(data, 200, b"OK"), addr)
                else:
                    self.send(response(data, 404, b"Not Found"), addr)
            else:
                self.send(response(data, 501, b"Not Implemented"), addr)

    def take(self):
        with self.lock:
            out, self.log = self.log, []
        return out


def run(cmd, timeout=TOOL_TIMEOUT):
    print("$ " + " ".join(cmd), flush=True)
    try:
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       stdin=subprocess.DEVNULL, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        print("  (timed out after %ds)" % timeout)


def save(name, log, meta):
    d = os.path.join(OUT, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    if not log:
        print("  !! %s: nothing exchanged" % name)
        return
    t0 = log[0][0]
    lines = ["# %s: %s" % kv for kv in meta.items()]
    for i, (t, direction, addr, data) in enumerate(log, 1):
        with open(os.path.join(d, "%03d-%s.sip" % (i, direction)), "wb") as f:
            f.write(data)
        lines.append("%03d %s %d" % (i, direction, round((t - t0) * 1000)))
    with open(os.path.join(d, "meta.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("  %s: %d datagrams" % (name, len(log)))


def scanners(pbx):
    target = [HOST, "-p", str(PBX_PORT)]
    for compact in (False, True):
        c = ["-c"] if compact else []
        sfx = "-c" if compact else ""
        runs = []
        for m in ("OPTIONS", "INVITE", "REGISTER"):
            runs.append(("svmap%s-%s" % (sfx, m.lower()), tool("svmap") + target + ["-m", m] + c))
        for m in ("REGISTER", "OPTIONS", "INVITE"):
            runs.append(("svwar%s-%s" % (sfx, m.lower()),
                         tool("svwar") + target + ["-m", m, "-e", "100-140", "--force",
                                                   "--maximumtime", "10"] + c))
        runs.append(("svcrack%s-register" % sfx,
                     tool("svcrack") + target + ["-u", "202", "-r", "1000-1020",
                                                 "--maximumtime", "10"] + c))
        for name, cmd in runs:
            if ONLY and not name.startswith(ONLY):
                continue
            pbx.take()
            run(cmd)
            time.sleep(0.3)
            save(name, pbx.take(), {"tool": "SIPVicious " + cmd[0].split("_")[-1].split(".")[-1],
                                   "command": " ".join(["sipvicious_" + name.split("-")[0]] + cmd[len(tool("svmap")):]),
                                   "kind": "scanner"})


def others(pbx):
    """nmap (service probe and NSE scripts) and sipsak, when installed (apt: nmap, sipsak)."""
    runs = [
        ("nmap-version-probe", "nmap", ["nmap", "-n", "-Pn", "-sU", "-sV", "--version-intensity", "9",
                                        "-p", str(PBX_PORT), HOST]),
        # nmap's SIP scripts only run against port 5060 (their portrule): these two runs use a
        # second responder bound to 127.0.0.1:5060 (skipped when that port is taken).
        ("nmap-sip-methods", "nmap NSE", ["nmap", "-n", "-Pn", "-sU", "-p", "5060",
                                          "--script", "sip-methods", HOST]),
        ("nmap-sip-enum-users", "nmap NSE", ["nmap", "-n", "-Pn", "-sU", "-p", "5060",
                                             "--script", "sip-enum-users", "--script-args",
                                             "sip-enum-users.minext=100,sip-enum-users.maxext=130",
                                             HOST]),
        ("sipsak-options", "sipsak", ["sipsak", "-s", "sip:100@%s:%d" % (HOST, PBX_PORT)]),
    ]
    for name, toolname, cmd in runs:
        if ONLY and not name.startswith(ONLY):
            continue
        if not shutil.which(cmd[0]):
            print("  !! %s not installed: %s skipped" % (cmd[0], name))
            continue
        target = pbx
        if "5060" in cmd:
            try:
                target = Pbx(5060)
            except OSError as e:
                print("  !! cannot bind 127.0.0.1:5060 (%s): %s skipped" % (e, name))
                continue
            target.start()
        target.take()
        try:
            run(cmd, timeout=120)
            time.sleep(0.3)
            log = target.take()
        finally:
            if target is not pbx:
                target.stop = True
                target.join()
                target.sock.close()
        save(name, log, {"tool": toolname, "command": " ".join(cmd), "kind": "scanner"})


PHONE_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="phone register with digest auth, refresh">
  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: "Reception" <sip:201@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
To: "Reception" <sip:201@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:201@[local_ip]:[local_port]>
Max-Forwards: 70
Expires: 120
User-Agent: Yealink SIP-T46S 66.86.0.15
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS, INFO, SUBSCRIBE
Content-Length: 0

  ]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: "Reception" <sip:201@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
To: "Reception" <sip:201@[remote_ip]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:201@[local_ip]:[local_port]>
Max-Forwards: 70
Expires: 120
User-Agent: Yealink SIP-T46S 66.86.0.15
[authentication username=201 password=s3cret]
Content-Length: 0

  ]]></send>
  <recv response="200"/>
  <pause milliseconds="1000"/>
  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: "Reception" <sip:201@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
To: "Reception" <sip:201@[remote_ip]>
Call-ID: [call_id]
CSeq: 3 REGISTER
Contact: <sip:201@[local_ip]:[local_port]>
Max-Forwards: 70
Expires: 120
User-Agent: Yealink SIP-T46S 66.86.0.15
Content-Length: 0

  ]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: "Reception" <sip:201@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
To: "Reception" <sip:201@[remote_ip]>
Call-ID: [call_id]
CSeq: 4 REGISTER
Contact: <sip:201@[local_ip]:[local_port]>
Max-Forwards: 70
Expires: 120
User-Agent: Yealink SIP-T46S 66.86.0.15
[authentication username=201 password=s3cret]
Content-Length: 0

  ]]></send>
  <recv response="200"/>
</scenario>
"""

OPTIONS_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="provider OPTIONS keepalive">
  <send retrans="500"><![CDATA[
OPTIONS sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:keepalive@[local_ip]>;tag=[pid]SIPpTag01[call_number]
To: <sip:[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 OPTIONS
Max-Forwards: 70
User-Agent: Sippy provider proxy
Content-Length: 0

  ]]></send>
  <recv response="200"/>
</scenario>
"""


def legit(pbx):
    tmp = tempfile.mkdtemp(prefix="sipwall-sipp-")
    try:
        phone_xml = os.path.join(tmp, "phone.xml")
        opt_xml = os.path.join(tmp, "options.xml")
        with open(phone_xml, "w") as f:
            f.write(PHONE_XML)
        with open(opt_xml, "w") as f:
            f.write(OPTIONS_XML)
        remote = "%s:%d" % (HOST, PBX_PORT)
        base = ["-i", HOST, "-m"]
        common = ["-nostdin", "-timeout", "20s", "-timeout_error", "-trace_err",
                  "-error_file", os.path.join(tmp, "err.log")]

        pbx.take()
        run(["sipp", remote, "-sf", phone_xml, "-p", str(PHONE_PORT)] + base + ["1"] + common)
        run(["sipp", remote, "-sn", "uac", "-s", "202", "-p", str(PHONE_PORT)] + base
            + ["3", "-r", "1", "-d", "500"] + common)
        save("phone-register-and-calls", pbx.take(),
             {"tool": "SIPp", "kind": "legitimate",
              "command": "sipp -sf phone.xml (REGISTER 401 -> auth -> 200, refresh); "
                         "sipp -sn uac -s 202 -m 3 (three calls)"})

        run(["sipp", remote, "-sf", opt_xml, "-p", str(PROVIDER_PORT)] + base
            + ["5", "-r", "2"] + common)
        run(["sipp", remote, "-sn", "uac", "-s", "6491234567", "-p", str(PROVIDER_PORT)] + base
            + ["6", "-r", "2", "-d", "500"] + common)
        run(["sipp", remote, "-sf", opt_xml, "-p", str(PROVIDER_PORT)] + base
            + ["3", "-r", "2"] + common)
        save("provider-invites-and-options", pbx.take(),
             {"tool": "SIPp", "kind": "legitimate",
              "command": "sipp -sf options.xml -m 5; sipp -sn uac -s 6491234567 -m 6; "
                         "sipp -sf options.xml -m 3"})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    pbx = Pbx()
    pbx.start()
    try:
        which = sys.argv[2] if len(sys.argv) > 2 else "all"
        if which not in ("all", "scanners", "legit"):
            ONLY = which  # a scenario name prefix, e.g. svwar-register
        if which in ("all", "scanners") or ONLY:
            scanners(pbx)
            others(pbx)
        if which in ("all", "legit"):
            legit(pbx)
    finally:
        pbx.stop = True
        pbx.join()
