//! pam_u2f authfiles (`/etc/u2f_mappings`, `~/.config/Yubico/u2f_keys`),
//! as pam_u2f >= 1.1 reads them (util.c, pam_u2f(8)):
//! `user:KEYHANDLE,PUBKEY,COSETYPE,OPTIONS:KEYHANDLE,...`, one line per
//! user, credentials separated by `:` and fields by `,`. `KEYHANDLE` is the
//! credential id in base64 (`*` for a resident credential), `PUBKEY` the
//! base64 of libfido2's public key (es256: x || y, 64 bytes; a 65-byte
//! SEC1 point is accepted as libfido2 accepts it), `COSETYPE` es256, eddsa
//! or rs256, `OPTIONS` a run of `+presence`, `+verification`, `+pin`
//! (possibly empty). The old format `user:KEYHANDLE,HEXPUBKEY` of pam_u2f
//! before 1.1 (libu2f-server: web-safe base64 key handle, the SEC1 point
//! in hex; es256, `+presence`) is still read by pam_u2f, and here.
//! pam_u2f uses the last line of a user.
//!
//! These credentials are bound to the relying party pam_u2f used as its
//! origin (`pam://HOSTNAME` by default). A browser never asserts for it,
//! but a key plugged into this machine does: es256 credentials with a key
//! handle become local keys (`2fa-enroll import pam-u2f`). The parser
//! decodes and checks every field, and every es256 key as a P-256 point,
//! so that what is stored can be used.

use super::{LineError, Parsed, err, lines};
use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use p2fa_core::factor::fido2;

/// One credential of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct U2fCredential {
    /// `es256`, `eddsa` or `rs256`.
    pub cose: String,
    /// Key handle `*`: discoverable credential on the key.
    pub resident: bool,
    /// The decoded key handle: the credential id to ask the key for
    /// (empty when resident).
    pub key_handle: Vec<u8>,
    /// es256: the uncompressed SEC1 point, checked on P-256 (pam-2fa's
    /// stored form). eddsa and rs256: the decoded bytes, length-checked.
    pub public_key: Vec<u8>,
    /// `+presence`, `+verification`, `+pin`.
    pub presence: bool,
    pub verification: bool,
    pub pin: bool,
    /// `KEYHANDLE,HEXPUBKEY` of pam_u2f before 1.1.
    pub old_format: bool,
}

impl U2fCredential {
    /// `es256 +presence`, `eddsa resident +presence+verification`.
    pub fn describe(&self) -> String {
        let mut s = self.cose.clone();
        if self.resident {
            s.push_str(" resident");
        }
        let flags: String = [
            (self.presence, "+presence"),
            (self.verification, "+verification"),
            (self.pin, "+pin"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, f)| *f)
        .collect();
        if !flags.is_empty() {
            s.push(' ');
            s.push_str(&flags);
        }
        if self.old_format {
            s.push_str(", pam_u2f < 1.1 format");
        }
        s
    }
}

/// The credentials found for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct U2fUser {
    pub user: String,
    pub line: usize,
    pub credentials: Vec<U2fCredential>,
    pub notes: Vec<String>,
}

/// Standard or URL-safe base64, padded or not.
fn b64(s: &str) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
    const URL: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);
    if s.is_empty() {
        return None;
    }
    STD.decode(s).or_else(|_| URL.decode(s)).ok()
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn credential(fields: &[&str]) -> Result<U2fCredential, &'static str> {
    if fields.len() < 2 || fields.len() > 4 {
        return Err("a credential is KEYHANDLE,PUBKEY,COSETYPE,OPTIONS");
    }
    let (kh, pk) = (fields[0], fields[1]);
    let resident = kh == "*";
    let key_handle = if resident {
        Vec::new()
    } else {
        match b64(kh) {
            Some(k) if (16..=fido2::MAX_CRED_ID).contains(&k.len()) => k,
            _ => return Err("the key handle is not base64 of 16..1023 bytes (or * for resident)"),
        }
    };
    if fields.len() == 2 {
        // pam_u2f < 1.1: the SEC1 point in hex (pamu2fcfg wrote the
        // 65-byte uncompressed form; OpenSSL's reader takes any).
        // Raw x || y (64 bytes) is not SEC1, so OpenSSL refuses it.
        let point = match hex(pk) {
            Some(p) if !resident && p.len() != 64 => fido2::p256_point(&p).ok(),
            _ => None,
        }
        .ok_or(
            "an old-format public key must be a P-256 point in hex (130 digits starting with 04)",
        )?;
        return Ok(U2fCredential {
            cose: "es256".into(),
            resident,
            key_handle,
            public_key: point,
            presence: true,
            verification: false,
            pin: false,
            old_format: true,
        });
    }
    let cose = fields[2];
    let key = b64(pk).ok_or("the public key is not base64")?;
    let fits = match cose {
        "es256" => key.len() == 64 || (key.len() == 65 && key[0] == 4),
        "eddsa" => key.len() == 32,
        "rs256" => (128..=1024).contains(&key.len()),
        _ => return Err("the COSE type must be es256, eddsa or rs256"),
    };
    if !fits {
        return Err("the public key has the wrong length for its COSE type");
    }
    let public_key = if cose == "es256" {
        fido2::p256_point(&key).map_err(|_| "the es256 public key is not a point on P-256")?
    } else {
        key
    };
    let opts = fields.get(3).copied().unwrap_or("");
    let (mut presence, mut verification, mut pin) = (false, false, false);
    if !opts.is_empty() {
        let Some(rest) = opts.strip_prefix('+') else {
            return Err("options must be like +presence+verification");
        };
        for o in rest.split('+') {
            match o {
                "presence" => presence = true,
                "verification" => verification = true,
                "pin" => pin = true,
                _ => return Err("unknown option (want +presence, +verification, +pin)"),
            }
        }
    }
    Ok(U2fCredential {
        cose: cose.to_string(),
        resident,
        key_handle,
        public_key,
        presence,
        verification,
        pin,
        old_format: false,
    })
}

/// Every user in the file (pam_u2f's view: the last line of each) and every
/// bad line.
pub fn parse(text: &str) -> Parsed<U2fUser> {
    let mut entries: Vec<U2fUser> = Vec::new();
    let mut errors: Vec<LineError> = Vec::new();
    for (n, l) in lines(text) {
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if l.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----") {
            // pam_u2f's `sshformat`: one key of `ssh-keygen -t ecdsa-sk`.
            return Parsed {
                entries: Vec::new(),
                errors: vec![err(
                    n,
                    "an OpenSSH security key file (pam_u2f's sshformat) cannot be imported; register the key with 2fa-enroll webauthn add --local",
                )],
            };
        }
        let mut parts = l.split(':');
        let user = parts.next().unwrap_or("");
        if !p2fa_core::users::valid_name(user) || user.contains(',') {
            errors.push(err(n, "the line must start with a user name and ':'"));
            continue;
        }
        let mut creds = Vec::new();
        let mut bad = None;
        // pam_u2f skips empty fields between colons.
        for (i, c) in parts.filter(|c| !c.is_empty()).enumerate() {
            let fields: Vec<&str> = c.split(',').collect();
            match credential(&fields) {
                Ok(cred) => creds.push(cred),
                Err(e) => {
                    bad = Some(format!("credential {}: {e}", i + 1));
                    break;
                }
            }
        }
        if let Some(b) = bad {
            errors.push(err(n, b));
            continue;
        }
        if creds.is_empty() {
            errors.push(err(n, "no credentials after the user name"));
            continue;
        }
        let mut u = U2fUser {
            user: user.to_string(),
            line: n,
            credentials: creds,
            notes: Vec::new(),
        };
        if let Some(pos) = entries.iter().position(|e| e.user == user) {
            let earlier = entries.remove(pos);
            u.notes.push(format!(
                "line {n} replaces line {} (pam_u2f uses the last line of a user)",
                earlier.line
            ));
        }
        entries.push(u);
    }
    Parsed { entries, errors }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose;
    use p256::ecdsa::SigningKey;

    fn enc(n: usize, first: u8) -> String {
        let mut v = vec![7u8; n];
        v[0] = first;
        general_purpose::STANDARD.encode(v)
    }

    /// A real P-256 public key: (x || y as pamu2fcfg >= 1.1 writes it in
    /// base64, the uncompressed SEC1 point).
    fn es256(seed: u8) -> (String, Vec<u8>) {
        let k = SigningKey::from_bytes(&[seed; 32].into()).unwrap();
        let point = k.verifying_key().to_sec1_point(false).as_bytes().to_vec();
        (general_purpose::STANDARD.encode(&point[1..]), point)
    }

    fn hexs(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn current_and_old_format() {
        let kh = enc(64, 1);
        let kh_url = general_purpose::URL_SAFE_NO_PAD.encode([0xfbu8; 48]);
        let (es, es_point) = es256(1);
        let (_, old_point) = es256(2);
        let ed = enc(32, 1);
        let rs = enc(259, 1);
        let sec1 = general_purpose::STANDARD.encode(&es_point);
        let text = format!(
            "alice:{kh},{es},es256,+presence:{kh},{ed},eddsa,+presence+verification\n\
             bob:{kh_url},{}\n\
             carol:*,{es},es256,+presence+pin::{kh},{rs},rs256,\n\
             dave:{kh},{sec1},es256\n",
            hexs(&old_point)
        );
        let p = parse(&text);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let u = &p.entries;
        assert_eq!(u.len(), 4);
        assert_eq!(u[0].credentials.len(), 2);
        assert_eq!(u[0].credentials[0].describe(), "es256 +presence");
        assert_eq!(u[0].credentials[0].key_handle, {
            let mut v = vec![7u8; 64];
            v[0] = 1;
            v
        });
        assert_eq!(u[0].credentials[0].public_key, es_point, "x || y -> SEC1");
        assert_eq!(
            u[0].credentials[1].describe(),
            "eddsa +presence+verification"
        );
        assert_eq!(u[0].credentials[1].public_key.len(), 32);
        let old = &u[1].credentials[0];
        assert!(old.old_format && old.presence);
        assert_eq!(old.describe(), "es256 +presence, pam_u2f < 1.1 format");
        assert_eq!(old.key_handle, vec![0xfb; 48], "web-safe base64");
        assert_eq!(old.public_key, old_point);
        assert_eq!(
            u[2].credentials[0].describe(),
            "es256 resident +presence+pin"
        );
        assert!(u[2].credentials[0].key_handle.is_empty());
        assert_eq!(u[2].credentials[1].describe(), "rs256");
        assert_eq!(u[3].credentials[0].describe(), "es256");
        assert_eq!(u[3].credentials[0].public_key, es_point, "65-byte SEC1");
    }

    #[test]
    fn compressed_old_format_points_are_read() {
        let k = SigningKey::from_bytes(&[3; 32].into()).unwrap();
        let compressed = k.verifying_key().to_sec1_point(true);
        let p = parse(&format!(
            "erin:{},{}\n",
            enc(64, 1),
            hexs(compressed.as_bytes())
        ));
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(
            p.entries[0].credentials[0].public_key,
            k.verifying_key().to_sec1_point(false).as_bytes()
        );
    }

    #[test]
    fn last_line_of_a_user_wins() {
        let (kh, (es, _)) = (enc(64, 1), es256(1));
        let p = parse(&format!(
            "alice:{kh},{es},es256,+presence\nbob:{kh},{es},es256,\nalice:{kh},{es},es256,+presence:{kh},{es},es256,+presence\n"
        ));
        assert!(p.errors.is_empty());
        assert_eq!(p.entries.len(), 2);
        assert_eq!(p.entries[0].user, "bob");
        assert_eq!((p.entries[1].line, p.entries[1].credentials.len()), (3, 2));
        assert!(p.entries[1].notes[0].contains("line 3 replaces line 1"));
    }

    #[test]
    fn bad_lines() {
        let (kh, (es, point)) = (enc(64, 1), es256(1));
        let mut off_curve = point.clone();
        off_curve[64] ^= 1;
        let text = format!(
            "carol\n\
             :{kh},{es},es256,+presence\n\
             dave:{kh},{es},rsa,+presence\n\
             erin:k h,{es},es256,+presence\n\
             frank:{kh},{es},es256,+presence,extra\n\
             gina:{kh},{es},es256,presence\n\
             hank:{kh},{es},es256,+touch\n\
             ivan:{kh},{es},eddsa,+presence\n\
             jill:{kh},not-hex\n\
             kim:*,{}\n\
             lee:{},{es},es256,\n\
             ok:{kh},{es},es256,+presence\n\
             mo:{kh},{es},es256,+presence:{kh}\n\
             nat:{kh},{},es256,+presence\n\
             olga:{kh},{}\n\
             pia:{kh},{}\n",
            hexs(&point),
            enc(8, 1),
            general_purpose::STANDARD.encode(&off_curve[1..]),
            hexs(&off_curve),
            hexs(&point[1..]),
        );
        let p = parse(&text);
        let lines: Vec<usize> = p.errors.iter().map(|e| e.line).collect();
        assert_eq!(
            lines,
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16],
            "{:?}",
            p.errors
        );
        assert_eq!(p.entries.len(), 1);
        assert!(
            p.errors[11].msg.starts_with("credential 2:"),
            "{:?}",
            p.errors[11]
        );
        assert!(
            p.errors[12].msg.contains("not a point on P-256"),
            "{:?}",
            p.errors[12]
        );
        for e in &p.errors[13..] {
            assert!(e.msg.contains("old-format public key"), "{e:?}");
        }
    }

    #[test]
    fn an_openssh_key_file_is_named() {
        let p = parse(
            "\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
        );
        assert!(p.entries.is_empty());
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].line, 2);
        assert!(p.errors[0].msg.contains("sshformat"), "{:?}", p.errors);
    }
}
