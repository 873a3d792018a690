#!/usr/bin/env python3
"""A local stand-in for Duo's Auth API v2, for the pam-2fa tests.

    duo_server.py --cert C --key K --ikey I --skey S --scenario FILE
                  --port-file F --log FILE [--skew SECONDS]

Serves HTTPS on 127.0.0.1 (port 0; the chosen port is written to
--port-file). Every request must carry a Date header (RFC 2822, within
--skew seconds of now) and `Authorization: Basic base64(ikey:hex)` where hex
is HMAC-SHA512 with the secret key over Duo's canonical request (signature
v2: date, METHOD, host, path, sorted percent-encoded params, joined by
newlines), recomputed here from the request as received. Bad requests get
Duo's error JSON (HTTP 401, codes 40101/40102/40103/40104/40105).

Behaviour per Duo username comes from the scenario file (JSON, re-read on
every request so a test can change it):

  {"alice": {"preauth": "auth" | "allow" | "deny" | "enroll",
             "devices": [{"device": "DP1", "display_name": "iPhone", "capabilities": ["push","phone","sms"]}],
             "push": "approve" | "deny" | "timeout",  "push_delay": 0.5,
             "passcodes": ["123456"]},
   "*mode": "ok" | "hang" | "500" | "garbage" | "badjson"}

Unknown users get preauth "enroll". Every request is appended to --log as a
JSON line: {"method", "path", "params", "verified": true}.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
TXNS = {}
LOCK = threading.Lock()


def canon_params(params):
    items = sorted((urllib.parse.quote(k, "~"), urllib.parse.quote(v, "~")) for k, v in params)
    return "&".join(f"{k}={v}" for k, v in items)


def canonical(date, method, host, path, params):
    return "\n".join([date, method.upper(), host.lower(), path, canon_params(params)])


def scenario():
    try:
        with open(ARGS.scenario) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, obj=None, raw=None):
        body = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def fail(self, http, code, message, detail=None):
        obj = {"stat": "FAIL", "code": code, "message": message}
        if detail:
            obj["message_detail"] = detail
        self.reply(http, obj)

    def record(self, params, verified):
        with LOCK, open(ARGS.log, "a") as f:
            f.write(json.dumps({"method": self.command, "path": self.path.split("?")[0],
                                "params": dict(params), "verified": verified,
                                "host": self.headers.get("Host", "")}) + "\n")

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def handle_any(self):
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        if self.command == "GET":
            params = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
        else:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n).decode()
            params = urllib.parse.parse_qsl(body, keep_blank_values=True)
        mode = scenario().get("*mode", "ok")
        if mode == "hang":
            time.sleep(30)
        if mode == "500":
            self.record(params, False)
            return self.reply(500, raw=b"<html>Internal Server Error</html>")
        if mode == "garbage":
            self.record(params, False)
            return self.reply(200, raw=b"this is not json")
        ok, why = self.verify(path, params)
        self.record(params, ok)
        if not ok:
            return self.fail(401, *why)
        if mode == "badjson":
            return self.reply(200, {"stat": "OK", "response": {"unexpected": True}})
        p = dict(params)
        if path == "/auth/v2/ping":
            return self.reply(200, {"stat": "OK", "response": {"time": int(time.time())}})
        if path == "/auth/v2/check":
            return self.reply(200, {"stat": "OK", "response": {"time": int(time.time())}})
        if path == "/auth/v2/preauth" and self.command == "POST":
            return self.preauth(p)
        if path == "/auth/v2/auth" and self.command == "POST":
            return self.auth(p)
        if path == "/auth/v2/auth_status" and self.command == "GET":
            return self.auth_status(p)
        return self.fail(404, 40401, "Resource not found")

    def verify(self, path, params):
        date = self.headers.get("Date")
        auth = self.headers.get("Authorization", "")
        if not date:
            return False, (40105, "Missing request credentials", "Date header")
        try:
            when = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            return False, (40105, "Invalid Date header")
        if abs(when - time.time()) > ARGS.skew:
            return False, (40105, "Request has a date that is too far from the current time")
        if not auth.startswith("Basic "):
            return False, (40101, "Missing request credentials")
        try:
            ikey, sig = base64.b64decode(auth[6:]).decode().split(":", 1)
        except Exception:  # noqa: BLE001
            return False, (40101, "Invalid request credentials")
        if ikey != ARGS.ikey:
            return False, (40102, "Invalid integration key in request credentials")
        host = self.headers.get("Host", "")
        canon = canonical(date, self.command, host, path, params)
        want = hmac.new(ARGS.skey.encode(), canon.encode(), hashlib.sha512).hexdigest()
        if not hmac.compare_digest(want, sig):
            return False, (40103, "Invalid signature in request credentials")
        return True, None

    def user(self, p):
        return scenario().get(p.get("username", ""), {"preauth": "enroll"})

    def preauth(self, p):
        if "username" not in p:
            return self.fail(400, 40002, "Invalid request parameters", "username")
        u = self.user(p)
        result = u.get("preauth", "auth")
        r = {"result": result, "status_msg": {
            "auth": "Account is active", "allow": "Allowing unknown user",
            "deny": "User is locked out", "enroll": "Enroll an authentication device to proceed"}[result]}
        if result == "auth":
            r["devices"] = u.get("devices", [])
        if result == "enroll":
            r["enroll_portal_url"] = "https://enroll.example.invalid/portal?code=abc"
        return self.reply(200, {"stat": "OK", "response": r})

    def auth(self, p):
        u = self.user(p)
        factor = p.get("factor")
        if factor == "passcode":
            ok = p.get("passcode") in u.get("passcodes", [])
            return self.reply(200, {"stat": "OK", "response": {
                "result": "allow" if ok else "deny",
                "status": "allow" if ok else "deny",
                "status_msg": "Success. Logging you in..." if ok else "Incorrect passcode. Please try again."}})
        if factor == "sms":
            return self.reply(200, {"stat": "OK", "response": {
                "result": "deny", "status": "sent", "status_msg": "New SMS passcodes sent."}})
        if factor in ("push", "phone"):
            if p.get("async") != "1":
                return self.fail(400, 40002, "Invalid request parameters", "async")
            txid = str(uuid.uuid4())
            with LOCK:
                TXNS[txid] = {"start": time.time(), "outcome": u.get(factor if factor == "push" else "phone", u.get("push", "approve")),
                              "delay": float(u.get("push_delay", 0.3))}
            return self.reply(200, {"stat": "OK", "response": {"txid": txid}})
        return self.fail(400, 40002, "Invalid request parameters", "factor")

    def auth_status(self, p):
        with LOCK:
            t = TXNS.get(p.get("txid", ""))
        if not t:
            return self.fail(400, 40002, "Invalid request parameters", "txid")
        # Long-poll: hold up to 1 s while nothing changes.
        deadline = time.time() + 1.0
        while True:
            ready = time.time() >= t["start"] + t["delay"] and t["outcome"] != "timeout"
            if ready or time.time() >= deadline:
                break
            time.sleep(0.05)
        if not ready:
            return self.reply(200, {"stat": "OK", "response": {
                "result": "waiting", "status": "pushed", "status_msg": "Pushed a login request to your device..."}})
        if t["outcome"] == "approve":
            return self.reply(200, {"stat": "OK", "response": {
                "result": "allow", "status": "allow", "status_msg": "Success. Logging you in..."}})
        return self.reply(200, {"stat": "OK", "response": {
            "result": "deny", "status": "deny", "status_msg": "Login request denied."}})


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    for a in ("--cert", "--key", "--ikey", "--skey", "--scenario", "--port-file", "--log"):
        ap.add_argument(a, required=True)
    ap.add_argument("--skew", type=float, default=300)
    ARGS = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ARGS.cert, ARGS.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    tmp = ARGS.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, ARGS.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
