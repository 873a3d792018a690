#!/usr/bin/env python3
"""A local stand-in for an SMS gateway, for the pam-2fa tests.

    sms_gateway.py --cert C --key K --sid SID --token TOKEN --log FILE
                   --control FILE --port-file F [--hook-auth "Bearer X"]
                   [--plain] [--host IP]

HTTPS on 127.0.0.1 (port 0, written to --port-file); --plain serves plain
HTTP instead (to show what a client sends in clear), --host another
listening address. Two endpoints:

* Twilio's Messages API: POST /2010-04-01/Accounts/{SID}/Messages.json with
  HTTP Basic auth SID:TOKEN and form fields To (E.164), From or
  MessagingServiceSid, Body. Wrong credentials get Twilio's 401 JSON
  (code 20003); missing/invalid fields a 400 (21604 / 21211 / 21602);
  success a 201 with a Twilio-like message resource.
* A webhook: POST or PUT /hook; checks the Authorization header against
  --hook-auth (401 otherwise) and the body against its Content-Type (400
  unless a JSON type carries valid JSON, or application/x-www-form-urlencoded
  a valid form), and records the raw body.

The control file (JSON, re-read per request) scripts failures:
{"mode": "ok" | "500" | "slow" | "nosid" | "echo", "delay": seconds}. "500"
answers HTTP 500; "slow" sleeps `delay` seconds (default 10) and then
answers normally; "nosid" answers Twilio requests 201 with a body that is
not JSON; "echo" answers every request 400 with an error message that
repeats the credentials and headers it received (as careless gateways do),
so a client that logs gateway errors shows whether it redacts them.

Every accepted message is appended to --log as one JSON line:
  twilio:  {"kind": "twilio", "path", "auth_user", "to", "from", "from_field",
            "body", "sid"}
  webhook: {"kind": "webhook", "path", "method", "content_type",
            "authorization", "body", "fields"}   (fields: parsed JSON or form)
Rejected requests are not recorded, so "nothing delivered" is an empty log.
The test kills it; it also exits by itself when its parent process dies.
"""
import argparse
import base64
import json
import os
import re
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from parent_watch import exit_with_parent

ARGS = None
LOCK = threading.Lock()


def control():
    try:
        with open(ARGS.control) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return {}


def record(obj):
    with LOCK, open(ARGS.log, "a") as f:
        f.write(json.dumps(obj) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def twilio_error(self, status, code, message):
        self.reply(status, {"code": code, "message": message,
                            "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status})

    def do_PUT(self):
        self.do_POST()

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        c = control()
        if c.get("mode") == "slow":
            time.sleep(float(c.get("delay", 10)))
        if c.get("mode") == "500":
            return self.reply(500, {"message": "internal error"})
        if c.get("mode") == "echo":
            auth = self.headers.get("Authorization", "")
            try:
                creds = base64.b64decode(auth.removeprefix("Basic ")).decode()
            except Exception:  # noqa: BLE001
                creds = ""
            headers = "; ".join(f"{k}={v}" for k, v in self.headers.items())
            return self.reply(400, {"code": 21211,
                                    "message": f"bad request from {creds} ({auth}) [{headers}]"})
        path = self.path.split("?")[0]
        if path == "/hook":
            want = ARGS.hook_auth
            if want and self.headers.get("Authorization") != want:
                return self.reply(401, {"error": "unauthorized"})
            ctype = self.headers.get("Content-Type", "")
            text = raw.decode(errors="replace")
            try:
                if "json" in ctype:
                    fields = json.loads(raw.decode())
                elif ctype.startswith("application/x-www-form-urlencoded"):
                    fields = dict(urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True,
                                                         strict_parsing=True))
                else:
                    fields = None
            except (ValueError, UnicodeDecodeError) as e:
                return self.reply(400, {"error": f"body does not match {ctype}: {e}"})
            record({"kind": "webhook", "path": path, "method": self.command, "content_type": ctype,
                    "authorization": self.headers.get("Authorization"), "body": text, "fields": fields})
            return self.reply(200, {"ok": True})
        m = re.fullmatch(r"/2010-04-01/Accounts/([A-Za-z0-9]+)/Messages\.json", path)
        if not m:
            return self.twilio_error(404, 20404, "The requested resource was not found")
        auth = self.headers.get("Authorization", "")
        try:
            user, _, pw = base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
        except Exception:  # noqa: BLE001
            user, pw = "", ""
        if not auth.startswith("Basic ") or user != ARGS.sid or pw != ARGS.token or m.group(1) != ARGS.sid:
            return self.twilio_error(401, 20003, "Authenticate")
        form = dict(urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True))
        to, body = form.get("To", ""), form.get("Body", "")
        from_field = "From" if form.get("From") else "MessagingServiceSid"
        sender = form.get("From") or form.get("MessagingServiceSid")
        if not to:
            return self.twilio_error(400, 21604, "A 'To' phone number is required.")
        if not re.fullmatch(r"\+[1-9][0-9]{7,14}", to):
            return self.twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not sender:
            return self.twilio_error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required.")
        if not body:
            return self.twilio_error(400, 21602, "Message body is required.")
        if c.get("mode") == "nosid":
            body_bytes = b"<html>queued</html>"
            self.send_response(201)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body_bytes)))
            self.end_headers()
            self.wfile.write(body_bytes)
            return
        sid = "SM" + uuid.uuid4().hex
        record({"kind": "twilio", "path": path, "auth_user": user, "to": to, "from": sender,
                "from_field": from_field, "body": body, "sid": sid})
        self.reply(201, {"sid": sid, "account_sid": ARGS.sid, "to": to, "from": sender, "body": body,
                         "status": "queued", "num_segments": "1", "direction": "outbound-api",
                         "api_version": "2010-04-01", "error_code": None, "error_message": None})


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    for a in ("--cert", "--key", "--sid", "--token", "--log", "--control", "--port-file"):
        ap.add_argument(a, required=True)
    ap.add_argument("--hook-auth", default="")
    ap.add_argument("--plain", action="store_true")
    ap.add_argument("--host", default="127.0.0.1")
    ARGS = ap.parse_args()
    exit_with_parent()
    srv = ThreadingHTTPServer((ARGS.host, 0), Handler)
    srv.daemon_threads = True
    if not ARGS.plain:
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
