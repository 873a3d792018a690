#!/usr/bin/env python3
"""A local stand-in for Duo's Auth API v2, for the pam-2fa tests.

Python standard library only. Run it as

    duo_server.py --cert CERT.pem --key KEY.pem --ikey IKEY --skey SKEY
                  --scenario SCENARIO.json --log REQUESTS.jsonl
                  [--port-file FILE] [--port 0] [--skew 300]

It serves HTTPS on 127.0.0.1 (port 0 by default: the kernel picks one). The
chosen port is printed on stdout (one line) and, with --port-file, written to
that file (atomically, via rename) for a test to read.

Every request is checked like Duo checks it, and refused with Duo's error
JSON (HTTP 401) when it fails:

  * a `Date` header in RFC 2822 form ("Tue, 21 Aug 2012 17:29:18 -0000"),
    within --skew seconds of this process's clock (a client under faketime
    needs a larger --skew; missing or garbled dates are always refused);
  * `Authorization: Basic base64(ikey:hex)` with the configured ikey, where
    hex is HMAC-SHA512 keyed with the secret key over the canonical request
    (signature v2), recomputed here from the request as received:

        Date \\n METHOD \\n host \\n path \\n
        params sorted, names and values percent-encoded except A-Za-z0-9-_.~,
        joined k=v&k=v

    with the params taken from the query string (GET) or the form body (POST)
    and host the Host header without its port, lower-cased: Duo's clients
    sign `api-xxxxxxxx.duosecurity.com`, and Duo answers 40103 when the
    signature covers `host:port` instead (strict, like Duo);
  * an `ipaddr` parameter, when present, must be an IPv4 or IPv6 address
    (40002 otherwise); with "*require_ipaddr" in the scenario, preauth and
    auth must carry exactly that address.

Codes: 40101 missing or unreadable credentials, 40102 unknown integration
key, 40103 bad signature, 40105 missing, garbled or skewed Date; 40002 bad
parameters (HTTP 400), 40401 unknown endpoint (404), 42901 rate limit (429).

Endpoints: /auth/v2/ping, /auth/v2/check (GET), /auth/v2/preauth,
/auth/v2/auth (POST; factor push|phone with async=1, sms, passcode),
/auth/v2/auth_status (GET, long-poll).

Behaviour comes from the scenario file, re-read on every request so a test
can change it between calls (write it atomically, or the reader retries a
half-written file for a moment):

  {
    "*mode": "ok",            # every request: ok | hang | 500 | garbage |
                              #   badjson | truncated | reset | 429
    "*modes": {"/auth/v2/auth": "500"},   # per path, same values
    "*hang_seconds": 30,      # how long "hang" holds the connection
    "*delays": {"/auth/v2/preauth": 1.0},  # answer this late (seconds),
                              #   logged on arrival
    "*require_ipaddr": "192.0.2.7",  # preauth/auth must send this ipaddr
    "*poll_hold": 1.0,        # longest auth_status long-poll hold (s)
    "*unknown_user": "enroll",  # preauth result for users not listed
    "alice": {
      "preauth": "auth",      # auth | allow | deny | enroll
      "status_msg": "...",    # optional, overrides the preauth message
      "devices": [{"device": "DP...", "display_name": "iPhone",
                   "name": "iPhone", "capabilities": ["push", "sms"]}],
      "push": "approve",      # approve | deny | fraud | timeout (= stays
                              #   "waiting" for ever)
      "phone": "approve",     # default: same as push
      "push_delay": 0.3,      # seconds before the outcome is reached
      "passcodes": ["123456"],  # valid passcodes, single use like Duo's
      "passcodes_reusable": false,
      "mode": "ok"            # mode for this user's requests (and txids)
    }
  }

A mode other than "ok" applies in this order: "*mode", then "*modes"[path],
then the user's "mode". "hang" holds the request for *hang_seconds, "500"
answers HTTP 500 with an HTML body, "garbage" HTTP 200 with a non-JSON body
(both without looking at the signature: like a broken proxy in front of
Duo), "truncated" HTTP 200 with the first half of a Duo answer (a cut
JSON body with a matching Content-Length), "reset" closes the connection
with a TCP reset instead of answering; "badjson" a well-signed request gets
`{"stat": "OK", "response": {"unexpected": true}}` (valid JSON of the wrong
shape), "429" gets Duo's rate-limit FAIL.

Every request is appended to --log as one JSON line, before the answer is
sent (and before a "hang"):

  {"time": 1700000000.1, "method": "POST", "path": "/auth/v2/auth",
   "query": "", "host": "127.0.0.1:4443", "date": "Tue, ...",
   "params": {"username": "alice", "factor": "push", ...},  # as received
   "pushinfo": {"Login": "..."},   # decoded pushinfo, when present
   "user": "alice",                # username, or the txid's user
   "verified": true,               # Date and signature good
   "code": null,                   # Duo error code sent, if any
   "status": 200,                  # HTTP status (null for hang)
   "mode": "ok"}
"""
import argparse
import base64
import binascii
import hashlib
import hmac
import io
import ipaddress
import json
import os
import re
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import uuid
from datetime import timezone
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
TXNS = {}
USED_PASSCODES = set()
LOCK = threading.Lock()
MAX_BODY = 64 * 1024
DATE_RE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
    r"\d{2}:\d{2}:\d{2} [+-]\d{4}$"
)
MODES = ("ok", "hang", "500", "garbage", "badjson", "truncated", "reset", "429")


def quote(s):
    # Duo (like OAuth 1.0a) leaves only A-Za-z0-9 - _ . ~ as they are.
    return urllib.parse.quote(s, safe="~")


def canon_params(params):
    return "&".join(f"{k}={v}" for k, v in sorted((quote(k), quote(v)) for k, v in params))


def canonical(date, method, host, path, params):
    return "\n".join([date, method.upper(), host.lower(), path, canon_params(params)])


def host_without_port(host):
    """`api.example:8443` -> `api.example`, `[::1]:8443` -> `[::1]`."""
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.split(":", 1)[0] if host.count(":") == 1 else host


def is_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def scenario():
    """The scenario file; a half-written file is retried for up to 1 s."""
    deadline = time.time() + 1.0
    while True:
        try:
            with open(ARGS.scenario) as f:
                data = json.load(f)
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            if time.time() >= deadline:
                raise
            time.sleep(0.02)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "MockDuo/2.0"

    def log_message(self, *a):
        pass

    def setup(self):
        # The TLS handshake runs here, in this request's thread, so a client
        # that stalls or aborts it never blocks the accept loop.
        self.request.settimeout(10)
        self.request.do_handshake()
        self.request.settimeout(None)
        super().setup()

    # --- plumbing -------------------------------------------------------

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def do_DELETE(self):
        self.handle_any()

    def read_params(self, url):
        if self.command in ("GET", "DELETE"):
            return urllib.parse.parse_qsl(url.query, keep_blank_values=True), None
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            return [], (413, 41301, "Request entity too large")
        body = self.rfile.read(n).decode("utf-8", "replace") if n else ""
        return urllib.parse.parse_qsl(body, keep_blank_values=True), None

    def send(self, status, obj=None, raw=None, ctype="application/json"):
        body = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def record(self, entry):
        with LOCK, open(ARGS.log, "a") as f:
            f.write(json.dumps(entry) + "\n")

    # --- one request ----------------------------------------------------

    def handle_any(self):
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        params, too_big = self.read_params(url)
        p = dict(params)
        sc = scenario()
        user = p.get("username")
        if user is None and "txid" in p:
            with LOCK:
                user = TXNS.get(p["txid"], {}).get("user")
        udata = sc.get(user, {}) if isinstance(user, str) and not user.startswith("*") else {}
        mode = sc.get("*mode", "ok")
        if mode == "ok":
            mode = sc.get("*modes", {}).get(path, "ok")
        if mode == "ok":
            mode = udata.get("mode", "ok")
        if mode not in MODES:
            mode = "ok"
        verified, why = self.verify(path, params)
        entry = {
            "time": time.time(),
            "method": self.command,
            "path": path,
            "query": url.query,
            "host": self.headers.get("Host", ""),
            "signed_host": host_without_port(self.headers.get("Host", "")).lower(),
            "date": self.headers.get("Date"),
            "params": p,
            "user": user,
            "verified": verified,
            "mode": mode,
        }
        if "pushinfo" in p:
            entry["pushinfo"] = dict(urllib.parse.parse_qsl(p["pushinfo"], keep_blank_values=True))

        if mode == "hang":
            entry.update(status=None, code=None)
            self.record(entry)
            time.sleep(float(sc.get("*hang_seconds", 30)))
            return self.close_quietly()
        if mode == "500":
            entry.update(status=500, code=None)
            self.record(entry)
            return self.send(500, raw=b"<html><body>Internal Server Error</body></html>",
                             ctype="text/html")
        if mode == "garbage":
            entry.update(status=200, code=None)
            self.record(entry)
            return self.send(200, raw=b"this is not json {", ctype="text/plain")
        if mode == "reset":
            entry.update(status=None, code=None)
            self.record(entry)
            return self.reset()

        bad_ip = self.check_ipaddr(path, p, sc)
        if too_big:
            status, obj = too_big[0], fail(too_big[1], too_big[2])
        elif not verified:
            status, obj = 401, fail(*why)
        elif bad_ip:
            status, obj = 400, fail(40002, "Invalid request parameters", bad_ip)
        elif mode == "badjson":
            status, obj = 200, {"stat": "OK", "response": {"unexpected": True}}
        elif mode == "429":
            status, obj = 429, fail(42901, "Too Many Requests")
        else:
            status, obj = self.route(path, p, sc, udata)
        entry.update(status=status, code=obj.get("code") if obj.get("stat") == "FAIL" else None)
        self.record(entry)
        delay = sc.get("*delays", {}).get(path)
        if delay:
            time.sleep(float(delay))
        if mode == "truncated":
            body = json.dumps(obj).encode()
            return self.send(status, raw=body[: len(body) // 2])
        self.send(status, obj)

    def check_ipaddr(self, path, p, sc):
        """Why `ipaddr` is refused (None when it is fine)."""
        if "ipaddr" in p and not is_ip(p["ipaddr"]):
            return "ipaddr"
        want = sc.get("*require_ipaddr")
        if want and path in ("/auth/v2/preauth", "/auth/v2/auth") and p.get("ipaddr") != want:
            return "ipaddr"
        return None

    def reset(self):
        """Drops the connection with a TCP RST (SO_LINGER 0), no answer."""
        self.close_connection = True
        try:
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # Close the raw socket under the TLS layer: no close_notify.
            os.close(self.request.detach())
        except OSError:
            pass
        # Nothing left to flush or read for BaseHTTPRequestHandler.finish().
        self.wfile = io.BytesIO()
        self.rfile = io.BytesIO()

    def close_quietly(self):
        self.close_connection = True

    def verify(self, path, params):
        date = self.headers.get("Date")
        if not date:
            return False, (40105, "Missing request timestamp", "Date header")
        if not DATE_RE.match(date):
            return False, (40105, "Invalid request timestamp", "Date is not RFC 2822")
        try:
            when = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            return False, (40105, "Invalid request timestamp", "Date is not RFC 2822")
        if when is None:
            return False, (40105, "Invalid request timestamp", "Date is not RFC 2822")
        if when.tzinfo is None:  # "-0000": UTC, whatever this machine's TZ
            when = when.replace(tzinfo=timezone.utc)
        if abs(when.timestamp() - time.time()) > ARGS.skew:
            return False, (40105, "Request timestamp is too far from the current time")
        auth = self.headers.get("Authorization", "")
        if not auth:
            return False, (40101, "Missing request credentials")
        if not auth.startswith("Basic "):
            return False, (40101, "Invalid request credentials", "not Basic")
        try:
            ikey, sig = base64.b64decode(auth[6:], validate=True).decode().split(":", 1)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False, (40101, "Invalid request credentials")
        if not hmac.compare_digest(ikey.encode(), ARGS.ikey.encode()):
            return False, (40102, "Invalid integration key in request credentials")
        host = host_without_port(self.headers.get("Host", ""))
        canon = canonical(date, self.command, host, path, params)
        want = hmac.new(ARGS.skey.encode(), canon.encode(), hashlib.sha512).hexdigest()
        if not hmac.compare_digest(want.encode(), sig.encode()):
            return False, (40103, "Invalid signature in request credentials")
        return True, None

    # --- endpoints ------------------------------------------------------

    def route(self, path, p, sc, udata):
        m = self.command
        if path in ("/auth/v2/ping", "/auth/v2/check") and m == "GET":
            return 200, ok({"time": int(time.time())})
        if path == "/auth/v2/preauth" and m == "POST":
            return self.preauth(p, sc, udata)
        if path == "/auth/v2/auth" and m == "POST":
            return self.auth(p, udata)
        if path == "/auth/v2/auth_status" and m == "GET":
            return self.auth_status(p, sc)
        if path.startswith("/auth/v2/"):
            return 405, fail(40501, "Method not allowed")
        return 404, fail(40401, "Resource not found")

    def preauth(self, p, sc, udata):
        if not p.get("username"):
            return 400, fail(40002, "Invalid request parameters", "username")
        result = udata.get("preauth", sc.get("*unknown_user", "enroll") if not udata else "auth")
        msgs = {
            "auth": "Account is active",
            "allow": "Allowing unknown user",
            "deny": "Your account is disabled",
            "enroll": "Enroll an authentication device to proceed",
        }
        if result not in msgs:
            return 200, ok({"result": result})  # a scripted nonsense result
        r = {"result": result, "status_msg": udata.get("status_msg", msgs[result])}
        if result == "auth":
            r["devices"] = udata.get("devices", [])
        if result == "enroll":
            r["enroll_portal_url"] = "https://api-mock.duosecurity.invalid/portal?code=0123456789abcdef"
        return 200, ok(r)

    def auth(self, p, udata):
        factor = p.get("factor")
        if not p.get("username"):
            return 400, fail(40002, "Invalid request parameters", "username")
        if factor == "passcode":
            code = p.get("passcode", "")
            good = code in udata.get("passcodes", [])
            with LOCK:
                key = (p["username"], code)
                if good and not udata.get("passcodes_reusable") and key in USED_PASSCODES:
                    good = False
                if good:
                    USED_PASSCODES.add(key)
            if good:
                return 200, ok({"result": "allow", "status": "allow",
                                "status_msg": "Success. Logging you in..."})
            return 200, ok({"result": "deny", "status": "deny",
                            "status_msg": "Incorrect passcode. Please try again."})
        if factor in ("push", "phone", "sms") and not p.get("device"):
            return 400, fail(40002, "Invalid request parameters", "device")
        if factor == "sms":
            return 200, ok({"result": "deny", "status": "sent",
                            "status_msg": "New SMS passcodes sent."})
        if factor in ("push", "phone"):
            if p.get("async") != "1":
                return 400, fail(40002, "Invalid request parameters", "async")
            outcome = udata.get(factor, udata.get("push", "approve"))
            txid = str(uuid.uuid4())
            with LOCK:
                TXNS[txid] = {"user": p["username"], "factor": factor, "start": time.time(),
                              "outcome": outcome, "delay": float(udata.get("push_delay", 0.3))}
            return 200, ok({"txid": txid})
        return 400, fail(40002, "Invalid request parameters", "factor")

    def auth_status(self, p, sc):
        with LOCK:
            t = TXNS.get(p.get("txid", ""))
        if not t:
            return 400, fail(40002, "Invalid request parameters", "txid")
        # Long-poll: hold while nothing changes, at most *poll_hold seconds.
        deadline = time.time() + float(sc.get("*poll_hold", 1.0))
        while True:
            ready = t["outcome"] != "timeout" and time.time() >= t["start"] + t["delay"]
            if ready or time.time() >= deadline:
                break
            time.sleep(0.02)
        if not ready:
            if t["factor"] == "phone":
                return 200, ok({"result": "waiting", "status": "calling",
                                "status_msg": "Dialing XXX-XXX-0100..."})
            return 200, ok({"result": "waiting", "status": "pushed",
                            "status_msg": "Pushed a login request to your device..."})
        if t["outcome"] == "approve":
            return 200, ok({"result": "allow", "status": "allow",
                            "status_msg": "Success. Logging you in..."})
        if t["outcome"] == "fraud":
            return 200, ok({"result": "deny", "status": "fraud",
                            "status_msg": "Login request reported as fraudulent."})
        return 200, ok({"result": "deny", "status": "deny",
                        "status_msg": "Login request denied."})


def ok(response):
    return {"stat": "OK", "response": response}


def fail(code, message, detail=None):
    obj = {"stat": "FAIL", "code": code, "message": message}
    if detail:
        obj["message_detail"] = detail
    return obj


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # Failed handshakes (a client that does not trust our CA) and
        # dropped connections are expected in the tests; stay quiet.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ConnectionError, TimeoutError, OSError)):
            return
        super().handle_error(request, client_address)


def main():
    global ARGS
    ap = argparse.ArgumentParser(description="Mock Duo Auth API v2 server (HTTPS)")
    for a in ("--cert", "--key", "--ikey", "--skey", "--scenario", "--log"):
        ap.add_argument(a, required=True)
    ap.add_argument("--port-file")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--skew", type=float, default=300,
                    help="largest accepted Date skew in seconds (default 300)")
    ARGS = ap.parse_args()
    srv = Server(("127.0.0.1", ARGS.port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ARGS.cert, ARGS.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    port = srv.server_address[1]
    if ARGS.port_file:
        tmp = ARGS.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.rename(tmp, ARGS.port_file)
    print(port, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
