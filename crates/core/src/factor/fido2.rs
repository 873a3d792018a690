//! Local FIDO2 security keys: the parts that decide. Parses what
//! libfido2's tools print (CBOR-wrapped authenticator data, COSE keys, DER
//! signatures) and checks it here, in Rust, instead of trusting a tool's
//! verdict: the relying party hash, the user-presence and -verification
//! flags, the ES256 signature (pure Rust `p256`, no OpenSSL in the module)
//! and the signature counter. Running the tools lives in `crate::fido2_tools`.

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fmt;

/// Authenticator data flag: the user touched the key.
pub const FLAG_UP: u8 = 0x01;
/// The user was verified (PIN or biometric).
pub const FLAG_UV: u8 = 0x04;
/// Attested credential data follows the counter.
pub const FLAG_AT: u8 = 0x40;
/// Extensions follow.
pub const FLAG_ED: u8 = 0x80;

/// Client data hash length; the tools accept other lengths, we never send them.
pub const CDH_LEN: usize = 32;
/// CTAP limits credential ids to 1023 bytes.
pub const MAX_CRED_ID: usize = 1023;

/// Why a registration or an assertion was refused. Phrased for the log;
/// [`Refusal::reason`] is the short key for `reason=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Malformed(&'static str),
    WrongRelyingParty,
    NoUserPresence,
    NoUserVerification,
    BadSignature,
    UnsupportedKey(&'static str),
    CounterRegression { stored: u32, new: u32 },
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed-response",
            Refusal::WrongRelyingParty => "wrong-rp-id",
            Refusal::NoUserPresence => "no-user-presence",
            Refusal::NoUserVerification => "no-user-verification",
            Refusal::BadSignature => "bad-signature",
            Refusal::UnsupportedKey(_) => "unsupported-key",
            Refusal::CounterRegression { .. } => "counter-regression",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Malformed(m) => write!(f, "malformed authenticator response: {m}"),
            Refusal::WrongRelyingParty => {
                f.write_str("rpIdHash is not SHA-256 of the relying party id")
            }
            Refusal::NoUserPresence => f.write_str("the key did not report user presence"),
            Refusal::NoUserVerification => f.write_str("the key did not report user verification"),
            Refusal::BadSignature => {
                f.write_str("the signature does not verify with the stored key")
            }
            Refusal::UnsupportedKey(m) => write!(f, "unsupported credential key: {m}"),
            Refusal::CounterRegression { stored, new } => write!(
                f,
                "signature counter went from {stored} to {new} (cloned key?)"
            ),
        }
    }
}

/// Parsed authenticator data (WebAuthn §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthData {
    pub rp_id_hash: [u8; 32],
    pub flags: u8,
    pub counter: u32,
    /// Present when the AT flag is set (registrations).
    pub credential: Option<AttestedCredential>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedCredential {
    pub aaguid: [u8; 16],
    pub id: Vec<u8>,
    /// Uncompressed SEC1 P-256 point (0x04 || x || y), checked on the curve.
    pub public_key: Vec<u8>,
}

/// A new credential, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub credential_id: Vec<u8>,
    pub public_key: Vec<u8>,
    pub counter: u32,
    pub user_verified: bool,
}

/// A verified assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asserted {
    pub counter: u32,
    pub user_verified: bool,
}

pub fn rp_id_hash(rp_id: &str) -> [u8; 32] {
    Sha256::digest(rp_id.as_bytes()).into()
}

/// A minimal CBOR reader: enough for authenticator data wrappers and COSE
/// keys (definite lengths only, as CTAP's canonical CBOR requires).
struct Cbor<'a> {
    data: &'a [u8],
    pos: usize,
}

#[derive(Debug, PartialEq, Eq)]
enum Item<'a> {
    Uint(u64),
    Nint(i64),
    Bytes(&'a [u8]),
    Text(&'a [u8]),
    Array(u64),
    Map(u64),
    Simple,
}

const MALFORMED_CBOR: Refusal = Refusal::Malformed("bad CBOR");

impl<'a> Cbor<'a> {
    fn new(data: &'a [u8]) -> Self {
        Cbor { data, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Refusal> {
        let end = self.pos.checked_add(n).ok_or(MALFORMED_CBOR)?;
        let s = self.data.get(self.pos..end).ok_or(MALFORMED_CBOR)?;
        self.pos = end;
        Ok(s)
    }

    fn item(&mut self) -> Result<Item<'a>, Refusal> {
        let head = self.take(1)?[0];
        let (major, info) = (head >> 5, head & 0x1f);
        let arg: u64 = match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.take(1)?[0]),
            25 => u64::from(u16::from_be_bytes(
                self.take(2)?.try_into().unwrap_or([0; 2]),
            )),
            26 => u64::from(u32::from_be_bytes(
                self.take(4)?.try_into().unwrap_or([0; 4]),
            )),
            27 => u64::from_be_bytes(self.take(8)?.try_into().unwrap_or([0; 8])),
            _ => return Err(Refusal::Malformed("indefinite or reserved CBOR length")),
        };
        let len = |a: u64| usize::try_from(a).map_err(|_| MALFORMED_CBOR);
        Ok(match major {
            0 => Item::Uint(arg),
            1 => Item::Nint(-1 - i64::try_from(arg).map_err(|_| MALFORMED_CBOR)?),
            2 => Item::Bytes(self.take(len(arg)?)?),
            3 => Item::Text(self.take(len(arg)?)?),
            4 => Item::Array(arg),
            5 => Item::Map(arg),
            6 => return Err(Refusal::Malformed("CBOR tags are not expected here")),
            _ => Item::Simple,
        })
    }

    /// Skips one complete item (with its contents), bounded in depth.
    fn skip(&mut self, depth: u32) -> Result<(), Refusal> {
        if depth > 8 {
            return Err(Refusal::Malformed("CBOR nested too deeply"));
        }
        match self.item()? {
            Item::Array(n) => {
                for _ in 0..n {
                    self.skip(depth + 1)?;
                }
            }
            Item::Map(n) => {
                for _ in 0..n.saturating_mul(2) {
                    self.skip(depth + 1)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// libfido2's tools print authenticator data CBOR-encoded (a byte string
/// wrapping the raw bytes, `fido_*_authdata_ptr`); returns the raw bytes.
pub fn unwrap_cbor_bytes(data: &[u8]) -> Result<&[u8], Refusal> {
    let mut c = Cbor::new(data);
    match c.item() {
        Ok(Item::Bytes(b)) if c.pos == data.len() => Ok(b),
        _ => Err(Refusal::Malformed(
            "authenticator data is not one CBOR byte string",
        )),
    }
}

/// Parses a COSE_Key that must be EC2 / P-256 / ES256; returns the SEC1
/// point and how many bytes the key took.
fn cose_es256(data: &[u8]) -> Result<(Vec<u8>, usize), Refusal> {
    let mut c = Cbor::new(data);
    let Item::Map(n) = c.item()? else {
        return Err(Refusal::Malformed("COSE key is not a map"));
    };
    if n > 16 {
        return Err(Refusal::Malformed("COSE key has too many entries"));
    }
    let (mut kty, mut alg, mut crv) = (None, None, None);
    let (mut x, mut y): (Option<&[u8]>, Option<&[u8]>) = (None, None);
    for _ in 0..n {
        let label = match c.item()? {
            Item::Uint(u) => i64::try_from(u).unwrap_or(i64::MAX),
            Item::Nint(i) => i,
            _ => return Err(Refusal::Malformed("COSE key label is not an integer")),
        };
        let value = c.item()?;
        let int = |v: &Item| match v {
            Item::Uint(u) => i64::try_from(*u).ok(),
            Item::Nint(i) => Some(*i),
            _ => None,
        };
        match label {
            1 => kty = int(&value),
            3 => alg = int(&value),
            -1 => crv = int(&value),
            -2 => {
                x = if let Item::Bytes(b) = value {
                    Some(b)
                } else {
                    None
                }
            }
            -3 => {
                y = if let Item::Bytes(b) = value {
                    Some(b)
                } else {
                    None
                }
            }
            _ => {
                // Other labels (key id, ops) may carry nested values.
                if let Item::Array(k) | Item::Map(k) = value {
                    let extra = if matches!(value, Item::Map(_)) { 2 } else { 1 };
                    for _ in 0..k.saturating_mul(extra) {
                        c.skip(1)?;
                    }
                }
            }
        }
    }
    if kty != Some(2) {
        return Err(Refusal::UnsupportedKey(
            "only EC2 keys (es256) are supported",
        ));
    }
    if alg != Some(-7) {
        return Err(Refusal::UnsupportedKey("only ES256 (alg -7) is supported"));
    }
    if crv != Some(1) {
        return Err(Refusal::UnsupportedKey("only the P-256 curve is supported"));
    }
    let (Some(x), Some(y)) = (x, y) else {
        return Err(Refusal::Malformed("COSE key lacks x or y"));
    };
    if x.len() != 32 || y.len() != 32 {
        return Err(Refusal::Malformed("COSE key coordinates are not 32 bytes"));
    }
    let mut xy = Vec::with_capacity(64);
    xy.extend_from_slice(x);
    xy.extend_from_slice(y);
    Ok((p256_point(&xy)?, c.pos))
}

/// A P-256 public key as pam-2fa stores it (uncompressed SEC1, 0x04 || x
/// || y), from any encoding the FIDO tools use: raw x || y (64 bytes, what
/// libfido2's `es256_pk_t` and pam_u2f >= 1.1 write), uncompressed SEC1
/// (65 bytes, U2F and pam_u2f < 1.1) or compressed SEC1 (33 bytes, which
/// pam_u2f's OpenSSL reader also accepts). Refused unless the point is on
/// the curve, so a stored key always verifies or fails cleanly.
pub fn p256_point(bytes: &[u8]) -> Result<Vec<u8>, Refusal> {
    let key = match bytes.len() {
        64 => {
            let mut sec1 = Vec::with_capacity(65);
            sec1.push(4);
            sec1.extend_from_slice(bytes);
            VerifyingKey::from_sec1_bytes(&sec1)
        }
        33 | 65 => VerifyingKey::from_sec1_bytes(bytes),
        _ => {
            return Err(Refusal::UnsupportedKey(
                "a P-256 public key is 64 (x || y), 65 or 33 (SEC1) bytes",
            ));
        }
    }
    .map_err(|_| Refusal::UnsupportedKey("the public key is not a point on P-256"))?;
    Ok(key.to_sec1_point(false).as_bytes().to_vec())
}

/// Parses raw authenticator data. Trailing bytes are allowed only as
/// extensions announced by the ED flag.
pub fn parse_auth_data(raw: &[u8]) -> Result<AuthData, Refusal> {
    if raw.len() < 37 {
        return Err(Refusal::Malformed(
            "authenticator data shorter than 37 bytes",
        ));
    }
    let mut rp_id_hash = [0u8; 32];
    rp_id_hash.copy_from_slice(&raw[..32]);
    let flags = raw[32];
    let counter = u32::from_be_bytes([raw[33], raw[34], raw[35], raw[36]]);
    let mut pos = 37;
    let credential = if flags & FLAG_AT != 0 {
        let rest = &raw[pos..];
        if rest.len() < 18 {
            return Err(Refusal::Malformed("attested credential data truncated"));
        }
        let mut aaguid = [0u8; 16];
        aaguid.copy_from_slice(&rest[..16]);
        let id_len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
        if id_len == 0 || id_len > MAX_CRED_ID {
            return Err(Refusal::Malformed("credential id length out of range"));
        }
        let id = rest
            .get(18..18 + id_len)
            .ok_or(Refusal::Malformed("credential id truncated"))?
            .to_vec();
        let (public_key, used) = cose_es256(&rest[18 + id_len..])?;
        pos += 18 + id_len + used;
        Some(AttestedCredential {
            aaguid,
            id,
            public_key,
        })
    } else {
        None
    };
    if flags & FLAG_ED != 0 {
        let mut c = Cbor::new(&raw[pos..]);
        c.skip(0)?;
        pos += c.pos;
    }
    if pos != raw.len() {
        return Err(Refusal::Malformed(
            "trailing bytes after authenticator data",
        ));
    }
    Ok(AuthData {
        rp_id_hash,
        flags,
        counter,
        credential,
    })
}

/// ES256 over `auth_data || client_data_hash`, DER signature.
pub fn verify_es256(public_key: &[u8], auth_data: &[u8], cdh: &[u8], sig_der: &[u8]) -> bool {
    let Ok(key) = VerifyingKey::from_sec1_bytes(public_key) else {
        return false;
    };
    let Ok(sig) = Signature::from_der(sig_der) else {
        return false;
    };
    let mut msg = Vec::with_capacity(auth_data.len() + cdh.len());
    msg.extend_from_slice(auth_data);
    msg.extend_from_slice(cdh);
    key.verify(&msg, &sig).is_ok()
}

/// Unwraps the tool's authenticator data and checks what every answer
/// must show: made for `rp_id`, with the user present (touched).
fn present_for<'a>(rp_id: &str, auth_data_cbor: &'a [u8]) -> Result<(&'a [u8], AuthData), Refusal> {
    let raw = unwrap_cbor_bytes(auth_data_cbor)?;
    let ad = parse_auth_data(raw)?;
    if !crate::crypto::ct_eq(&ad.rp_id_hash, &rp_id_hash(rp_id)) {
        return Err(Refusal::WrongRelyingParty);
    }
    if ad.flags & FLAG_UP == 0 {
        return Err(Refusal::NoUserPresence);
    }
    Ok((raw, ad))
}

/// Checks a new credential from `fido2-cred -M`: `auth_data_cbor` is the
/// tool's (CBOR-wrapped) authenticator data, `cred_id` the id it printed.
/// `self_sig` is the packed self-attestation signature when the tool
/// printed no certificate (checked with the new key itself).
pub fn check_registration(
    rp_id: &str,
    auth_data_cbor: &[u8],
    cred_id: &[u8],
    cdh: &[u8],
    self_sig: Option<&[u8]>,
) -> Result<Registration, Refusal> {
    let (raw, ad) = present_for(rp_id, auth_data_cbor)?;
    let Some(cred) = ad.credential else {
        return Err(Refusal::Malformed("no attested credential data (AT flag)"));
    };
    if cred.id != cred_id {
        return Err(Refusal::Malformed(
            "the credential id differs from the one in the authenticator data",
        ));
    }
    if let Some(sig) = self_sig
        && !verify_es256(&cred.public_key, raw, cdh, sig)
    {
        return Err(Refusal::BadSignature);
    }
    Ok(Registration {
        credential_id: cred.id,
        public_key: cred.public_key,
        counter: ad.counter,
        user_verified: ad.flags & FLAG_UV != 0,
    })
}

/// Checks an assertion from `fido2-assert -G` against the stored key and
/// counter. `cdh` is the hash we generated (never the one the tool echoes).
pub fn check_assertion(
    rp_id: &str,
    public_key: &[u8],
    stored_counter: u32,
    need_uv: bool,
    auth_data_cbor: &[u8],
    cdh: &[u8],
    sig_der: &[u8],
) -> Result<Asserted, Refusal> {
    let (raw, ad) = present_for(rp_id, auth_data_cbor)?;
    if need_uv && ad.flags & FLAG_UV == 0 {
        return Err(Refusal::NoUserVerification);
    }
    if !verify_es256(public_key, raw, cdh, sig_der) {
        return Err(Refusal::BadSignature);
    }
    check_counter(stored_counter, ad.counter)?;
    Ok(Asserted {
        counter: ad.counter,
        user_verified: ad.flags & FLAG_UV != 0,
    })
}

/// A key that counts must count up; a key that always sends 0 does not
/// count at all (allowed, as in WebAuthn §7.2 step 21).
pub fn check_counter(stored: u32, new: u32) -> Result<(), Refusal> {
    if stored != 0 && new != 0 && new <= stored {
        return Err(Refusal::CounterRegression { stored, new });
    }
    if stored != 0 && new == 0 {
        // A counting key that suddenly reports 0: treat like a regression.
        return Err(Refusal::CounterRegression { stored, new });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::{DerSignature, SigningKey};

    const RP: &str = "pam://testhost";

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32].into()).unwrap()
    }

    fn point(k: &SigningKey) -> Vec<u8> {
        k.verifying_key().to_sec1_point(false).as_bytes().to_vec()
    }

    fn cose(k: &SigningKey) -> Vec<u8> {
        let p = point(k);
        let mut v = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20];
        v.extend_from_slice(&p[1..33]);
        v.extend_from_slice(&[0x22, 0x58, 0x20]);
        v.extend_from_slice(&p[33..]);
        v
    }

    fn wrap(raw: &[u8]) -> Vec<u8> {
        let mut v = if raw.len() < 24 {
            vec![0x40 | raw.len() as u8]
        } else if raw.len() < 256 {
            vec![0x58, raw.len() as u8]
        } else {
            let mut h = vec![0x59];
            h.extend_from_slice(&(raw.len() as u16).to_be_bytes());
            h
        };
        v.extend_from_slice(raw);
        v
    }

    fn auth_data(rp: &str, flags: u8, counter: u32, cred: Option<(&[u8], &SigningKey)>) -> Vec<u8> {
        let mut v = rp_id_hash(rp).to_vec();
        v.push(flags);
        v.extend_from_slice(&counter.to_be_bytes());
        if let Some((id, k)) = cred {
            v.extend_from_slice(&[0xaa; 16]);
            v.extend_from_slice(&(id.len() as u16).to_be_bytes());
            v.extend_from_slice(id);
            v.extend_from_slice(&cose(k));
        }
        v
    }

    fn sign(k: &SigningKey, ad: &[u8], cdh: &[u8]) -> Vec<u8> {
        let mut m = ad.to_vec();
        m.extend_from_slice(cdh);
        let s: DerSignature = k.sign(&m);
        s.as_bytes().to_vec()
    }

    #[test]
    fn p256_points_in_every_encoding_become_uncompressed() {
        let k = key(7);
        let full = point(&k);
        let compressed = k.verifying_key().to_sec1_point(true).as_bytes().to_vec();
        assert_eq!(compressed.len(), 33);
        for enc in [&full[1..], &full[..], &compressed[..]] {
            assert_eq!(p256_point(enc).unwrap(), full, "{} bytes", enc.len());
        }
        // Off the curve, the wrong prefix, the wrong length.
        let mut off = full.clone();
        off[64] ^= 1;
        assert_eq!(
            p256_point(&off).unwrap_err().reason(),
            "unsupported-key",
            "not on the curve"
        );
        assert!(p256_point(&off[1..]).is_err());
        let mut prefix = full.clone();
        prefix[0] = 5;
        assert!(p256_point(&prefix).is_err());
        assert!(p256_point(&full[..40]).is_err());
        assert!(p256_point(&[0u8; 64]).is_err(), "all zero");
    }

    #[test]
    fn registration_parses_and_checks() {
        let k = key(7);
        let id = [3u8; 64];
        let cdh = [9u8; 32];
        let ad = auth_data(RP, FLAG_UP | FLAG_AT, 5, Some((&id, &k)));
        let sig = sign(&k, &ad, &cdh);
        let r = check_registration(RP, &wrap(&ad), &id, &cdh, Some(&sig)).unwrap();
        assert_eq!(r.credential_id, id);
        assert_eq!(r.public_key, point(&k));
        assert_eq!(r.counter, 5);
        assert!(!r.user_verified);
        // Without a self-attestation signature (basic attestation) too.
        assert!(check_registration(RP, &wrap(&ad), &id, &cdh, None).is_ok());

        assert_eq!(
            check_registration("pam://other", &wrap(&ad), &id, &cdh, None),
            Err(Refusal::WrongRelyingParty)
        );
        let no_up = auth_data(RP, FLAG_AT, 5, Some((&id, &k)));
        assert_eq!(
            check_registration(RP, &wrap(&no_up), &id, &cdh, None),
            Err(Refusal::NoUserPresence)
        );
        let no_at = auth_data(RP, FLAG_UP, 5, None);
        assert!(matches!(
            check_registration(RP, &wrap(&no_at), &id, &cdh, None),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(
            check_registration(RP, &wrap(&ad), &[4u8; 64], &cdh, None),
            Err(Refusal::Malformed(_))
        ));
        assert_eq!(
            check_registration(RP, &wrap(&ad), &id, &cdh, Some(&sign(&key(8), &ad, &cdh))),
            Err(Refusal::BadSignature)
        );
        // Raw (unwrapped) data and every truncation are refused, never a panic.
        assert!(check_registration(RP, &ad, &id, &cdh, None).is_err());
        for n in 0..ad.len() {
            assert!(
                check_registration(RP, &wrap(&ad[..n]), &id, &cdh, None).is_err(),
                "truncated to {n} accepted"
            );
        }
        let mut trailing = ad.clone();
        trailing.push(0);
        assert!(check_registration(RP, &wrap(&trailing), &id, &cdh, None).is_err());
    }

    #[test]
    fn other_key_types_are_refused() {
        let k = key(7);
        let id = [3u8; 16];
        let mut ad = auth_data(RP, FLAG_UP | FLAG_AT, 0, Some((&id, &k)));
        // alg -7 -> -8 (EdDSA)
        let at = 37 + 18 + id.len();
        assert_eq!(&ad[at..at + 5], &[0xa5, 0x01, 0x02, 0x03, 0x26]);
        ad[at + 4] = 0x27;
        assert!(matches!(
            check_registration(RP, &wrap(&ad), &id, &[0; 32], None),
            Err(Refusal::UnsupportedKey(_))
        ));
        // A point not on the curve.
        let mut ad = auth_data(RP, FLAG_UP | FLAG_AT, 0, Some((&id, &k)));
        let y_end = ad.len() - 1;
        ad[y_end] ^= 1;
        assert!(matches!(
            check_registration(RP, &wrap(&ad), &id, &[0; 32], None),
            Err(Refusal::UnsupportedKey(_))
        ));
    }

    #[test]
    fn assertion_checks_every_field() {
        let k = key(7);
        let pk = point(&k);
        let cdh = [1u8; 32];
        let ok = |flags: u8, counter: u32| {
            let ad = auth_data(RP, flags, counter, None);
            let sig = sign(&k, &ad, &cdh);
            (wrap(&ad), sig)
        };
        let (ad, sig) = ok(FLAG_UP, 11);
        assert_eq!(
            check_assertion(RP, &pk, 10, false, &ad, &cdh, &sig),
            Ok(Asserted {
                counter: 11,
                user_verified: false
            })
        );
        assert_eq!(
            check_assertion(RP, &pk, 10, true, &ad, &cdh, &sig),
            Err(Refusal::NoUserVerification)
        );
        let (ad_uv, sig_uv) = ok(FLAG_UP | FLAG_UV, 11);
        assert!(check_assertion(RP, &pk, 10, true, &ad_uv, &cdh, &sig_uv).is_ok());
        assert_eq!(
            check_assertion("pam://elsewhere", &pk, 10, false, &ad, &cdh, &sig),
            Err(Refusal::WrongRelyingParty)
        );
        let (ad0, sig0) = ok(0, 11);
        assert_eq!(
            check_assertion(RP, &pk, 10, false, &ad0, &cdh, &sig0),
            Err(Refusal::NoUserPresence)
        );
        // Another challenge, another key, a flipped bit in the signature.
        assert_eq!(
            check_assertion(RP, &pk, 10, false, &ad, &[2u8; 32], &sig),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            check_assertion(RP, &point(&key(9)), 10, false, &ad, &cdh, &sig),
            Err(Refusal::BadSignature)
        );
        let mut bad = sig.clone();
        let n = bad.len() - 3;
        bad[n] ^= 0x10;
        assert_eq!(
            check_assertion(RP, &pk, 10, false, &ad, &cdh, &bad),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            check_assertion(RP, &pk, 10, false, &ad, &cdh, b"not der"),
            Err(Refusal::BadSignature)
        );
        // Flags changed after signing.
        let mut forged = ad.clone();
        forged[2 + 32] |= FLAG_UV;
        assert_eq!(
            check_assertion(RP, &pk, 10, false, &forged, &cdh, &sig),
            Err(Refusal::BadSignature)
        );
        // Counter rules.
        assert_eq!(
            check_assertion(RP, &pk, 11, false, &ad, &cdh, &sig),
            Err(Refusal::CounterRegression {
                stored: 11,
                new: 11
            })
        );
        let (ad_z, sig_z) = ok(FLAG_UP, 0);
        assert!(check_assertion(RP, &pk, 0, false, &ad_z, &cdh, &sig_z).is_ok());
        assert!(check_assertion(RP, &pk, 5, false, &ad_z, &cdh, &sig_z).is_err());
        // Truncated data.
        for n in 0..ad.len() - 1 {
            assert!(check_assertion(RP, &pk, 0, false, &ad[..n], &cdh, &sig).is_err());
        }
        let short = wrap(&auth_data(RP, FLAG_UP, 1, None)[..36]);
        assert_eq!(
            check_assertion(RP, &pk, 0, false, &short, &cdh, &sig),
            Err(Refusal::Malformed(
                "authenticator data shorter than 37 bytes"
            ))
        );
    }

    #[test]
    fn extensions_are_skipped_only_when_announced() {
        let k = key(7);
        let cdh = [1u8; 32];
        let mut ad = auth_data(RP, FLAG_UP | FLAG_ED, 3, None);
        // {"credProtect": 2}
        ad.extend_from_slice(&[0xa1, 0x6b]);
        ad.extend_from_slice(b"credProtect");
        ad.push(0x02);
        let sig = sign(&k, &ad, &cdh);
        assert!(check_assertion(RP, &point(&k), 0, false, &wrap(&ad), &cdh, &sig).is_ok());
        ad[32] &= !FLAG_ED;
        let sig = sign(&k, &ad, &cdh);
        assert!(matches!(
            check_assertion(RP, &point(&k), 0, false, &wrap(&ad), &cdh, &sig),
            Err(Refusal::Malformed(_))
        ));
    }

    #[test]
    fn cbor_reader_is_bounded() {
        assert!(unwrap_cbor_bytes(&[]).is_err());
        assert!(unwrap_cbor_bytes(&[0x5f]).is_err(), "indefinite length");
        assert!(
            unwrap_cbor_bytes(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err()
        );
        assert!(unwrap_cbor_bytes(&[0x42, 1]).is_err());
        assert_eq!(unwrap_cbor_bytes(&[0x42, 1, 2]).unwrap(), &[1, 2]);
        assert!(unwrap_cbor_bytes(&[0x42, 1, 2, 3]).is_err());
        let deep = vec![0x81u8; 64];
        assert!(Cbor::new(&deep).skip(0).is_err());
    }
}
