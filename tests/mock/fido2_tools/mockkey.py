"""A software FIDO2 authenticator behind libfido2's command-line syntax.

Stand-in for `fido2-token`, `fido2-cred` and `fido2-assert` (fido2-tools
1.12) in tests: the machines that run them have no USB. It speaks the
options, stdin lines and stdout lines of the real tools for what pam-2fa
uses (see fido2-token(1), fido2-cred(1), fido2-assert(1)), prints
authenticator data CBOR-encoded like `fido_*_authdata_ptr`, and fails with
the real tools' error lines.

State lives in `state/` next to the scripts (the module runs the tools
with an empty environment): `creds.json` holds the P-256 keys, `calls.log`
records every run. Files in `state/` switch misbehaviours on:

  no-device     fido2-token -L lists nothing; opening the device fails
  hang          a request that needs a touch waits until killed
  wrong-key     assertions are signed by another key (another authenticator)
  tamper-sig    the assertion signature has a flipped bit
  counter-back  the counter is the one of registration time (a clone of
                the key made then), lower than what the key reported since
  no-uv         user verification is requested but not performed
"""

import base64
import getopt
import hashlib
import json
import os
import struct
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

HERE = os.path.dirname(os.path.realpath(sys.argv[0]))
STATE = os.path.join(HERE, "state")
DEVICE = "/dev/hidraw-p2fa-mock0"
AAGUID = bytes.fromhex("70616d2d3266612d736f66746b657921")
PROG = os.path.basename(sys.argv[0])


def mode(name):
    return os.path.exists(os.path.join(STATE, name))


def log(line):
    os.makedirs(STATE, exist_ok=True)
    with open(os.path.join(STATE, "calls.log"), "a") as f:
        f.write(line + "\n")


def die(msg):
    """errx(1, ...) of the real tools."""
    sys.stderr.write("%s: %s\n" % (PROG, msg))
    sys.exit(1)


def load():
    try:
        with open(os.path.join(STATE, "creds.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def save(creds):
    os.makedirs(STATE, exist_ok=True)
    tmp = os.path.join(STATE, "creds.json.tmp")
    with open(tmp, "w") as f:
        json.dump(creds, f)
    os.replace(tmp, os.path.join(STATE, "creds.json"))


def read_input(n):
    """The tools read newline-separated lines; fewer than needed is an input error."""
    lines = sys.stdin.buffer.read().decode("utf-8", "replace").split("\n")
    if len(lines) < n or any(not l for l in lines[:n]):
        die("input error")
    return lines[:n]


def b64(s):
    try:
        return base64.b64decode(s, validate=True)
    except Exception:
        die("input error")


def enc(b):
    return base64.b64encode(b).decode()


def cbor_head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    if n < 256:
        return bytes([major << 5 | 24, n])
    if n < 65536:
        return bytes([major << 5 | 25]) + struct.pack(">H", n)
    return bytes([major << 5 | 26]) + struct.pack(">I", n)


def cbor_bytes(b):
    return cbor_head(2, len(b)) + b


def cose_es256(pub):
    nums = pub.public_numbers()
    x, y = nums.x.to_bytes(32, "big"), nums.y.to_bytes(32, "big")
    # {1: 2, 3: -7, -1: 1, -2: x, -3: y}
    return bytes([0xA5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21]) + cbor_bytes(x) + bytes([0x22]) + cbor_bytes(y)


def open_dev(path):
    if mode("no-device") or path != DEVICE:
        die("fido_dev_open %s: FIDO_ERR_INTERNAL" % path)


def wait_for_touch():
    if mode("hang"):
        while True:
            time.sleep(3600)


def sign(priv, data):
    return priv.sign(data, ec.ECDSA(hashes.SHA256()))


def private_key(c):
    return serialization.load_pem_private_key(c["key"].encode(), password=None)


def token(argv):
    try:
        opts, args = getopt.getopt(argv, "CDGILRSVbcdefi:k:l:m:n:p:ru")
    except getopt.GetoptError as e:
        die(str(e))
    flags = [o for o, _ in opts]
    log("fido2-token " + " ".join(argv))
    if flags == ["-L"] and not args:
        if not mode("no-device"):
            print("%s: vendor=0x1050, product=0x0407 (pam-2fa software authenticator)" % DEVICE)
        return
    if flags == ["-V"]:
        print("1.12.0")
        return
    die("usage: this stand-in implements -L and -V only")


def cred(argv):
    try:
        opts, args = getopt.getopt(argv, "MVbc:dhi:o:qruv")
    except getopt.GetoptError as e:
        die(str(e))
    flags = [o for o, _ in opts]
    if "-M" not in flags or len(args) not in (1, 2) or any(o in flags for o in ("-i", "-o", "-r", "-b", "-h", "-c")):
        die("usage: this stand-in implements -M [-dquv] device [type]")
    kind = args[1] if len(args) == 2 else "es256"
    if kind not in ("es256", "rs256", "eddsa"):
        die("unknown type %s" % kind)
    cdh_s, rp, user, uid_s = read_input(4)
    cdh, uid = b64(cdh_s), b64(uid_s)
    log("fido2-cred %s rp=%s user=%s cdh_len=%d uid_len=%d" % (" ".join(argv), rp, user, len(cdh), len(uid)))
    open_dev(args[0])
    if kind != "es256":
        die("fido_dev_make_cred: FIDO_ERR_UNSUPPORTED_ALGORITHM")
    if len(cdh) != 32:
        die("fido_dev_make_cred: FIDO_ERR_INVALID_ARGUMENT")
    if not 1 <= len(uid) <= 64:
        die("fido_dev_make_cred: FIDO_ERR_INVALID_ARGUMENT")
    wait_for_touch()
    priv = ec.generate_private_key(ec.SECP256R1())
    cred_id = os.urandom(64)
    counter = 10
    flags_byte = 0x41 | (0x04 if "-v" in flags else 0)
    auth = hashlib.sha256(rp.encode()).digest() + bytes([flags_byte]) + struct.pack(">I", counter)
    auth += AAGUID + struct.pack(">H", len(cred_id)) + cred_id + cose_es256(priv.public_key())
    creds = load()
    creds[enc(cred_id)] = {
        "rp": rp,
        "user": user,
        "counter": counter,
        "registered_counter": counter,
        "key": priv.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    }
    save(creds)
    # Packed self attestation: signed by the new key, no certificate line.
    print(enc(cdh))
    print(rp)
    print("packed")
    print(enc(cbor_bytes(auth)))
    print(enc(cred_id))
    print(enc(sign(priv, auth + cdh)))


def assertion(argv):
    try:
        opts, args = getopt.getopt(argv, "GVbdhi:o:prt:uv")
    except getopt.GetoptError as e:
        die(str(e))
    flags = [o for o, _ in opts]
    up, uv = None, None
    for o, v in opts:
        if o == "-t":
            if "=" not in v:
                die("invalid assignment '%s'" % v)
            k, val = v.split("=", 1)
            if val not in ("true", "false"):
                die("unknown value '%s'" % val)
            if k not in ("up", "uv", "pin"):
                die("unknown key '%s'" % k)
            if k == "up":
                up = val == "true"
            elif k == "uv":
                uv = val == "true"
            elif val == "true":
                die("this stand-in has no PIN")
        elif o == "-p":
            up = True
        elif o == "-v":
            die("this stand-in has no PIN")
    if "-G" not in flags or len(args) != 1 or any(o in flags for o in ("-i", "-o", "-r", "-b", "-h")):
        die("usage: this stand-in implements -G [-p] [-t up=|uv=] device")
    cdh_s, rp, id_s = read_input(3)
    cdh, cred_id = b64(cdh_s), b64(id_s)
    log("fido2-assert %s rp=%s cdh_len=%d" % (" ".join(argv), rp, len(cdh)))
    open_dev(args[0])
    if len(cdh) != 32:
        die("fido_dev_get_assert: FIDO_ERR_INVALID_ARGUMENT")
    creds = load()
    c = creds.get(enc(cred_id))
    if c is None or c["rp"] != rp:
        die("fido_dev_get_assert: FIDO_ERR_NO_CREDENTIALS")
    if up is not False:
        wait_for_touch()
    if mode("counter-back"):
        counter = c["registered_counter"]
    else:
        c["counter"] += 1
        counter = c["counter"]
        save(creds)
    flags_byte = 0x01 if up is not False else 0x00
    if uv and not mode("no-uv"):
        flags_byte |= 0x04
    auth = hashlib.sha256(rp.encode()).digest() + bytes([flags_byte]) + struct.pack(">I", counter)
    priv = ec.generate_private_key(ec.SECP256R1()) if mode("wrong-key") else private_key(c)
    sig = bytearray(sign(priv, auth + cdh))
    if mode("tamper-sig"):
        sig[-1] ^= 0x01
    print(enc(cdh))
    print(rp)
    print(enc(cbor_bytes(auth)))
    print(enc(bytes(sig)))


def main():
    {"fido2-token": token, "fido2-cred": cred, "fido2-assert": assertion}[PROG](sys.argv[1:])


if __name__ == "__main__":
    main()
