//! A software WebAuthn authenticator (P-256, "none" attestation), for the
//! verification tests and the benchmark: it answers the options 2fad
//! hands to the browser with exactly what a real authenticator would post,
//! so every check of the verifier can be exercised and timed without a
//! browser.
//!
//! Dev-only: p2fa-testkit is only ever a dev-dependency (a key whose
//! secret sits in the process has no place in what ships). Used by the
//! unit tests of p2fa-daemon's `webauthn.rs` and `webauthn_upgrade.rs` and
//! by `crates/daemon/examples/webauthn_verify.rs` (`scripts/bench` runs
//! that example). Pure Rust (RustCrypto `p256`, `sha2`), no OpenSSL.

use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use serde_json::{Value, json};
use sha2::Digest;

fn sha256(b: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(b).into()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn unb64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .unwrap_or_default()
}

/// Minimal CBOR: unsigned/negative ints, byte and text strings, maps.
enum Cbor<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    Text(&'a str),
    Map(Vec<(Cbor<'a>, Cbor<'a>)>),
}

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend([m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((n as u16).to_be_bytes());
        }
        _ => {
            out.push(m | 26);
            out.extend((n as u32).to_be_bytes());
        }
    }
}

impl Cbor<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Cbor::Int(i) if *i >= 0 => head(out, 0, *i as u64),
            Cbor::Int(i) => head(out, 1, (-1 - *i) as u64),
            Cbor::Bytes(b) => {
                head(out, 2, b.len() as u64);
                out.extend_from_slice(b);
            }
            Cbor::Text(t) => {
                head(out, 3, t.len() as u64);
                out.extend_from_slice(t.as_bytes());
            }
            Cbor::Map(kv) => {
                head(out, 5, kv.len() as u64);
                for (k, v) in kv {
                    k.encode(out);
                    v.encode(out);
                }
            }
        }
    }
}

pub struct SoftKey {
    key: SigningKey,
    pub cred_id: Vec<u8>,
    pub counter: u32,
}

impl SoftKey {
    /// A fresh key pair and a random 16-byte credential id.
    pub fn new() -> SoftKey {
        loop {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).expect("randomness");
            let mut id = [0u8; 16];
            getrandom::fill(&mut id).expect("randomness");
            // Zero or above the group order: draw again (p < 2^-32).
            if let Some(k) = SoftKey::from_secret(&secret, &id) {
                return k;
            }
        }
    }

    /// A key from known secret bytes (fixtures that must verify later).
    pub fn from_secret(secret: &[u8; 32], cred_id: &[u8]) -> Option<SoftKey> {
        Some(SoftKey {
            key: SigningKey::from_slice(secret).ok()?,
            cred_id: cred_id.to_vec(),
            counter: 0,
        })
    }

    fn cose_key(&self) -> Vec<u8> {
        let pt = self.key.verifying_key().to_sec1_point(false);
        let pt = pt.as_bytes();
        let (x, y) = (&pt[1..33], &pt[33..65]);
        let mut out = Vec::new();
        Cbor::Map(vec![
            (Cbor::Int(1), Cbor::Int(2)),
            (Cbor::Int(3), Cbor::Int(-7)),
            (Cbor::Int(-1), Cbor::Int(1)),
            (Cbor::Int(-2), Cbor::Bytes(x)),
            (Cbor::Int(-3), Cbor::Bytes(y)),
        ])
        .encode(&mut out);
        out
    }

    fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
        json!({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }

    /// Answers creation options (`{"publicKey": ...}`) for `origin`.
    pub fn register(&mut self, options: &Value, origin: &str) -> Value {
        let pk = &options["publicKey"];
        let rp_id = pk["rp"]["id"].as_str().unwrap_or_default();
        let cdj = Self::client_data(
            "webauthn.create",
            pk["challenge"].as_str().unwrap_or_default(),
            origin,
        );
        let mut auth = sha256(rp_id.as_bytes()).to_vec();
        auth.push(0x45); // UP | UV | AT
        auth.extend(self.counter.to_be_bytes());
        auth.extend([0u8; 16]); // AAGUID
        auth.extend((self.cred_id.len() as u16).to_be_bytes());
        auth.extend(&self.cred_id);
        auth.extend(self.cose_key());
        let mut att = Vec::new();
        Cbor::Map(vec![
            (Cbor::Text("fmt"), Cbor::Text("none")),
            (Cbor::Text("attStmt"), Cbor::Map(vec![])),
            (Cbor::Text("authData"), Cbor::Bytes(&auth)),
        ])
        .encode(&mut att);
        json!({
            "id": b64(&self.cred_id), "rawId": b64(&self.cred_id), "type": "public-key",
            "extensions": {},
            "response": {"attestationObject": b64(&att), "clientDataJSON": b64(&cdj), "transports": ["internal"]},
        })
    }

    /// Answers request options for `origin`, signing with this key.
    pub fn assert(&mut self, options: &Value, origin: &str) -> Value {
        let pk = &options["publicKey"];
        let rp_id = pk["rpId"].as_str().unwrap_or_default();
        let cdj = Self::client_data(
            "webauthn.get",
            pk["challenge"].as_str().unwrap_or_default(),
            origin,
        );
        self.counter += 1;
        let mut auth = sha256(rp_id.as_bytes()).to_vec();
        auth.push(0x05); // UP | UV
        auth.extend(self.counter.to_be_bytes());
        let mut signed = auth.clone();
        signed.extend(sha256(&cdj));
        // ECDSA over SHA-256 of authenticatorData || SHA-256(clientDataJSON).
        let sig: DerSignature = self.key.sign(&signed);
        let sig = sig.as_bytes().to_vec();
        json!({
            "id": b64(&self.cred_id), "rawId": b64(&self.cred_id), "type": "public-key",
            "extensions": {},
            "response": {
                "authenticatorData": b64(&auth), "clientDataJSON": b64(&cdj),
                "signature": b64(&sig), "userHandle": null,
            },
        })
    }
}

impl Default for SoftKey {
    fn default() -> Self {
        SoftKey::new()
    }
}

/// Re-encodes a base64url field of a credential JSON through `f`.
pub fn alter(v: &mut Value, path: &[&str], f: impl Fn(&mut Vec<u8>)) {
    let mut cur = v;
    for p in path {
        cur = &mut cur[*p];
    }
    let mut bytes = unb64(cur.as_str().unwrap_or_default());
    f(&mut bytes);
    *cur = Value::String(b64(&bytes));
}
