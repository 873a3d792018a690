#!/usr/bin/python3
"""A local SMTP server that receives the real message, for the tests.

    smtp_sink.py --log FILE --port-file F [--tls starttls|tls|none]
                 [--cert C --key K] [--user U --password P]

aiosmtpd (Debian python3-aiosmtpd; run with /usr/bin/python3, the pyenv
python3 on PATH lacks Debian's packages) on 127.0.0.1, port 0 (written to
--port-file, atomically). --tls starttls offers and requires STARTTLS;
--tls tls is TLS from the first byte (SMTPS); --tls none is plain SMTP that
does not offer STARTTLS (to prove a client that requires it refuses to send
in clear). With --user, AUTH LOGIN/PLAIN is required before MAIL, checked
against --user/--password (535 otherwise), and offered only over TLS unless
--tls none. Each accepted message is appended to --log as one JSON line
{"mail_from", "rcpt_tos", "data", "auth_user"}. The test kills it; it also
exits by itself when its parent (the test process) dies.
"""
import argparse
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
    def __init__(self, log):
        self.log = log

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
    a = ap.parse_args()
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
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    kw = dict(hostname="127.0.0.1", port=port, server_hostname="localhost")
    if a.tls == "starttls":
        kw.update(tls_context=ctx, require_starttls=True)
    if a.tls == "tls":
        kw.update(ssl_context=ctx)
    if a.user:
        kw.update(authenticator=authenticator, auth_required=True,
                  auth_require_tls=a.tls != "none")
    ctl = Controller(Sink(a.log), **kw)
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
