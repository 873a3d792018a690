#!/usr/bin/python3
"""A local SMTP server that receives the real message, for the tests.

    smtp_sink.py --log FILE --port-file F [--tls starttls|tls|none]
                 [--cert C --key K] [--user U --password P]
                 [--trickle ADDRESS=SECONDS ...] [--host IP]

aiosmtpd (Debian python3-aiosmtpd; run with /usr/bin/python3, the pyenv
python3 on PATH lacks Debian's packages) on 127.0.0.1, port 0 (written to
--port-file, atomically). --tls starttls offers and requires STARTTLS;
--tls tls is TLS from the first byte (SMTPS); --tls none is plain SMTP that
does not offer STARTTLS (to prove a client that requires it refuses to send
in clear). With --user, AUTH LOGIN/PLAIN is required before MAIL, checked
against --user/--password (535 otherwise), and offered only over TLS unless
--tls none. Each accepted message is appended to --log as one JSON line
{"mail_from", "rcpt_tos", "data", "auth_user"}. --trickle makes the answer
to RCPT TO:<ADDRESS> a slow multi-line reply: a "250-" line every 0.2 s
for SECONDS, then "250 OK", so every single read of the client succeeds
but the reply takes that long (only an overall deadline ends it). --host
chooses the listening address (default 127.0.0.1). The test kills it; it
also exits by itself when its parent (the test process) dies.
"""
import argparse
import asyncio
import json
import os
import socket
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from parent_watch import exit_with_parent


class Sink:
    def __init__(self, log, trickle):
        self.log = log
        self.trickle = trickle

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        seconds = self.trickle.get(address.lower())
        if seconds is not None:
            end = time.monotonic() + seconds
            try:
                while time.monotonic() < end:
                    await server.push("250-still checking the recipient")
                    await asyncio.sleep(0.2)
            except (ConnectionError, OSError):
                return "421 client went away"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with open(self.log, "a") as f:
            ad = getattr(session, "auth_data", None)
            login = ad.login if isinstance(ad, LoginPassword) else None
            f.write(json.dumps({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                                "data": envelope.content.decode("utf8", errors="replace"),
                                "auth_user": login.decode() if isinstance(login, bytes) else login})
                    + "\n")
        return "250 Message accepted for delivery"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--tls", default="none", choices=["starttls", "tls", "none"])
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--trickle", action="append", default=[])
    ap.add_argument("--host", default="127.0.0.1")
    a = ap.parse_args()
    trickle = {}
    for t in a.trickle:
        addr, _, secs = t.rpartition("=")
        trickle[addr.lower()] = float(secs)
    exit_with_parent()

    ctx = None
    if a.tls != "none":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == a.user \
            and auth_data.password.decode() == a.password
        # handled=False: aiosmtpd then answers 535 itself (with the default
        # handled=True it would answer nothing and the client would hang).
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    s = socket.socket()
    s.bind((a.host, 0))
    port = s.getsockname()[1]
    s.close()
    kw = dict(hostname=a.host, port=port, server_hostname="localhost")
    if a.tls == "starttls":
        kw.update(tls_context=ctx, require_starttls=True)
    if a.tls == "tls":
        kw.update(ssl_context=ctx)
    if a.user:
        kw.update(authenticator=authenticator, auth_required=True,
                  auth_require_tls=a.tls != "none")
    ctl = Controller(Sink(a.log, trickle), **kw)
    ctl.start()
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.rename(tmp, a.port_file)
    try:
        while True:
            time.sleep(3600)
    finally:
        ctl.stop()


if __name__ == "__main__":
    sys.exit(main())
