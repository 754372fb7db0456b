#!/usr/bin/env python3
"""SIP peers for the learning acceptance test (crates/sipwall/tests/e2e_learn.rs). UDP only;
every loop is bounded in count and time. Roles:

  pbx BIND PORT PROVIDER RINGLOG TRIGGER SECONDS
      A PBX on BIND:PORT. Answers INVITE with 180 + 200 (SDP) and logs one line
      "RING <src-ip> <call-id> <user-agent>" per new Call-ID to RINGLOG (each is a phone that
      rang); ACK: nothing; BYE/OPTIONS: 200; REGISTER from phones: 401 with a Digest
      challenge (realm "pbx.example"), then 200 when the Authorization's MD5 response is right
      for user 100/101 with password "secret" (403 otherwise). When the file TRIGGER appears
      it is removed and the PBX registers its trunk at PROVIDER (host:port) FROM ITS OWN
      PORT, as Asterisk does, retransmitting until a 200 (at most 5 tries).
  registrar BIND PORT SECONDS
      A provider registrar: REGISTER and OPTIONS answered 200.
  phone SRC PBX USER
      A phone registering with digest: REGISTER, 401, REGISTER with Authorization; exits 0 on
      200, 1 otherwise (2 s per answer at most).
  invites SRC_FILE PBX USER USER_AGENT STYLE
      One clean INVITE from each source address listed in SRC_FILE (one per line), no tool
      tell (real phone User-Agent, z9hG4bK branch, tags, SDP), or with STYLE=sippts the one weak
      tell of a sippts INVITE with a forged User-Agent (a Via branch without the z9hG4bK
      cookie). Prints how many were sent.
"""
import hashlib
import os
import socket
import sys
import time

PASSWORDS = {"100": "secret", "101": "secret"}
REALM = "pbx.example"


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def parse(data):
    text = data.decode("utf-8", "replace")
    head = text.split("\r\n\r\n", 1)[0].split("\r\n")
    hdrs = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        hdrs.setdefault(name.strip().lower(), value.strip())
    return head[0], hdrs, head


def copy_lines(head, to_tag=None):
    out = []
    for line in head[1:]:
        n = line.split(":", 1)[0].strip().lower()
        if n in ("via", "from", "call-id", "cseq"):
            out.append(line)
        elif n == "to":
            out.append(line if ";tag=" in line or to_tag is None else f"{line};tag={to_tag}")
    return out


def reply(status, head, extra=(), body="", to_tag="pbx1"):
    lines = [f"SIP/2.0 {status}"] + copy_lines(head, to_tag) + list(extra)
    lines += ["Server: LearnTestPBX 1.0", f"Content-Length: {len(body)}", "", body]
    return "\r\n".join(lines).encode()


def request(method, ruri, src, lport, user, host, extra=(), ua="LearnTestPBX 1.0", branch=None, body="", cid=None, tag=None, cseq=1):
    branch = branch or "z9hG4bK" + os.urandom(6).hex()
    cid = cid or os.urandom(8).hex() + "@" + src
    tag = tag or os.urandom(4).hex()
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP {src}:{lport};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{host}>;tag={tag}",
        f"To: <sip:{user}@{host}>",
        f"Call-ID: {cid}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:{user}@{src}:{lport}>",
        f"User-Agent: {ua}",
    ] + list(extra)
    lines += [f"Content-Length: {len(body)}", "", body]
    return "\r\n".join(lines).encode(), cid


SDP = "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"


def pbx(bind, port, provider, ringlog, trigger, secs):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((bind, port))
    s.settimeout(0.2)
    phost, pport = provider.rsplit(":", 1)
    rung = set()
    reg = None  # (call-id, packet, tries, next)
    end = time.time() + secs
    while time.time() < end:
        if os.path.exists(trigger):
            os.remove(trigger)
            local = s.getsockname()[0]
            if local == "0.0.0.0":
                probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                probe.connect((phost, int(pport)))
                local = probe.getsockname()[0]
                probe.close()
            pkt, cid = request("REGISTER", f"sip:{phost}", local, port, "trunk", phost, ["Expires: 3600"])
            reg = [cid, pkt, 0, 0.0]
        if reg and time.time() >= reg[3]:
            if reg[2] >= 5:
                print("trunk registration: no 200 after 5 tries", flush=True)
                reg = None
            else:
                s.sendto(reg[1], (phost, int(pport)))
                reg[2] += 1
                reg[3] = time.time() + 0.5
        try:
            data, peer = s.recvfrom(65535)
        except socket.timeout:
            continue
        try:
            start, hdrs, head = parse(data)
        except Exception:
            continue
        if start.startswith("SIP/2.0 "):
            if reg and hdrs.get("call-id") == reg[0] and start.startswith("SIP/2.0 200"):
                print("trunk registered", flush=True)
                reg = None
            continue
        method = start.split(" ", 1)[0]
        if method == "INVITE":
            cid = hdrs.get("call-id", "")
            if cid not in rung:
                rung.add(cid)
                with open(ringlog, "a") as f:
                    f.write(f"RING {peer[0]} {cid} {hdrs.get('user-agent', '-')}\n")
            s.sendto(reply("180 Ringing", head), peer)
            body = SDP.format(ip=s.getsockname()[0] if bind != "0.0.0.0" else "192.0.2.10")
            s.sendto(reply("200 OK", head, [f"Contact: <sip:pbx@{bind}:{port}>", "Content-Type: application/sdp"], body), peer)
        elif method in ("BYE", "OPTIONS", "CANCEL"):
            s.sendto(reply("200 OK", head), peer)
        elif method == "REGISTER":
            auth = hdrs.get("authorization")
            to = hdrs.get("to", "")
            user = to.split("sip:", 1)[-1].split("@", 1)[0]
            if not auth:
                nonce = os.urandom(8).hex()
                s.sendto(reply("401 Unauthorized", head, [f'WWW-Authenticate: Digest algorithm=MD5, realm="{REALM}", nonce="{nonce}"']), peer)
                continue
            params = {}
            for part in auth.split(" ", 1)[-1].split(","):
                k, _, v = part.strip().partition("=")
                params[k] = v.strip('"')
            pw = PASSWORDS.get(params.get("username", ""))
            ok = pw is not None and params.get("response") == md5(
                md5(f"{params['username']}:{REALM}:{pw}") + f":{params.get('nonce', '')}:" + md5(f"REGISTER:{params.get('uri', '')}")
            )
            s.sendto(reply("200 OK" if ok else "403 Forbidden", head, ["Expires: 3600"] if ok else []), peer)


def registrar(bind, port, secs):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((bind, port))
    s.settimeout(0.2)
    end = time.time() + secs
    while time.time() < end:
        try:
            data, peer = s.recvfrom(65535)
        except socket.timeout:
            continue
        try:
            start, hdrs, head = parse(data)
        except Exception:
            continue
        method = start.split(" ", 1)[0]
        if method in ("REGISTER", "OPTIONS"):
            s.sendto(reply("200 OK", head, ["Expires: 3600"], to_tag="prov1"), peer)


def phone(src, pbx_addr, user):
    host, port = pbx_addr.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.settimeout(2.0)
    lport = s.getsockname()[1]
    uri = f"sip:{host}"
    tag = os.urandom(4).hex()
    pkt, cid = request("REGISTER", uri, src, lport, user, host, ["Expires: 3600"], ua="Yealink SIP-T46S 66.86.0.15", tag=tag)
    s.sendto(pkt, (host, int(port)))
    try:
        data, _ = s.recvfrom(65535)
    except socket.timeout:
        print("no answer to REGISTER")
        return 1
    start, hdrs, _ = parse(data)
    if not start.startswith("SIP/2.0 401"):
        print("first answer:", start)
        return 1
    www = hdrs.get("www-authenticate", "")
    nonce = www.split('nonce="', 1)[-1].split('"', 1)[0]
    resp = md5(md5(f"{user}:{REALM}:{PASSWORDS.get(user, 'x')}") + f":{nonce}:" + md5(f"REGISTER:{uri}"))
    auth = f'Authorization: Digest username="{user}", realm="{REALM}", nonce="{nonce}", uri="{uri}", response="{resp}", algorithm=MD5'
    # As phones do: the same Call-ID and From tag, the next CSeq.
    pkt, _ = request("REGISTER", uri, src, lport, user, host, ["Expires: 3600", auth], ua="Yealink SIP-T46S 66.86.0.15", cid=cid, tag=tag, cseq=2)
    s.sendto(pkt, (host, int(port)))
    try:
        data, _ = s.recvfrom(65535)
    except socket.timeout:
        print("no answer to the authenticated REGISTER")
        return 1
    start, _, _ = parse(data)
    print(start)
    return 0 if start.startswith("SIP/2.0 200") else 1


def invites(src_file, pbx_addr, user, ua, style):
    host, port = pbx_addr.rsplit(":", 1)
    sources = [l.strip() for l in open(src_file) if l.strip()][:1000]
    sent = 0
    for src in sources:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((src, 5060))
        branch = os.urandom(6).hex() if style == "sippts" else None
        body = SDP.format(ip=src)
        pkt, _ = request("INVITE", f"sip:{user}@{host}", src, 5060, user, host,
                         ["Content-Type: application/sdp", "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS"],
                         ua=ua, branch=branch, body=body)
        # sippts puts no z9hG4bK cookie in its branch: that is its one tell here.
        s.sendto(pkt, (host, int(port)))
        s.close()
        sent += 1
        time.sleep(0.01)
    print(sent, flush=True)
    return 0


def main():
    role = sys.argv[1]
    a = sys.argv[2:]
    if role == "pbx":
        pbx(a[0], int(a[1]), a[2], a[3], a[4], float(a[5]))
    elif role == "registrar":
        registrar(a[0], int(a[1]), float(a[2]))
    elif role == "phone":
        sys.exit(phone(a[0], a[1], a[2]))
    elif role == "invites":
        sys.exit(invites(a[0], a[1], a[2], a[3], a[4]))
    else:
        sys.exit(f"unknown role {role}")


if __name__ == "__main__":
    main()
