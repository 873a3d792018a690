//! pam_u2f authfiles (`/etc/u2f_mappings`, `~/.config/Yubico/u2f_keys`):
//! `user:KEYHANDLE,PUBKEY,COSETYPE,OPTIONS:KEYHANDLE,...`, one line per
//! user. `KEYHANDLE` is base64 (`*` for a resident credential), `PUBKEY`
//! base64, `COSETYPE` es256, eddsa or rs256, `OPTIONS` a run of
//! `+presence`, `+verification`, `+pin` (possibly empty). The old format
//! `user:KEYHANDLE,HEXPUBKEY` (es256, +presence) is still read by pam_u2f.
//! pam_u2f uses the last line of a user.
//!
//! These credentials are bound to the relying party `pam://HOSTNAME`,
//! which a browser never asserts for, so 2fad's WebAuthn cannot take them
//! over: the parser validates and counts, and the report says who has to
//! register a key again.

use super::{LineError, Parsed, err, lines};
use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

/// One credential of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct U2fCredential {
    /// `es256`, `eddsa` or `rs256`.
    pub cose: String,
    /// Key handle `*`: discoverable credential on the key.
    pub resident: bool,
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

fn hex_len(s: &str) -> Option<usize> {
    (s.len().is_multiple_of(2) && !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(s.len() / 2)
}

fn credential(fields: &[&str]) -> Result<U2fCredential, &'static str> {
    if fields.len() < 2 || fields.len() > 4 {
        return Err("a credential is KEYHANDLE,PUBKEY,COSETYPE,OPTIONS");
    }
    let (kh, pk) = (fields[0], fields[1]);
    let resident = kh == "*";
    if !resident {
        match b64(kh) {
            Some(k) if (16..=1023).contains(&k.len()) => {}
            _ => return Err("the key handle is not base64 of 16..1023 bytes (or * for resident)"),
        }
    }
    if fields.len() == 2 {
        // pam_u2f < 1.1: an uncompressed P-256 point in hex.
        if resident || hex_len(pk) != Some(65) || !pk.starts_with("04") {
            return Err("an old-format public key must be 130 hex digits starting with 04");
        }
        return Ok(U2fCredential {
            cose: "es256".into(),
            resident,
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
        let mut parts = l.split(':');
        let user = parts.next().unwrap_or("");
        if !crate::users::valid_name(user) || user.contains(',') {
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

    fn enc(n: usize, first: u8) -> String {
        let mut v = vec![7u8; n];
        v[0] = first;
        general_purpose::STANDARD.encode(v)
    }

    #[test]
    fn current_and_old_format() {
        let kh = enc(64, 1);
        let kh_url = general_purpose::URL_SAFE_NO_PAD.encode([0xfbu8; 48]);
        let es = enc(64, 1);
        let ed = enc(32, 1);
        let rs = enc(259, 1);
        let old_pk = format!("04{}", "ab".repeat(64));
        let text = format!(
            "alice:{kh},{es},es256,+presence:{kh},{ed},eddsa,+presence+verification\n\
             bob:{kh_url},{old_pk}\n\
             carol:*,{es},es256,+presence+pin::{kh},{rs},rs256,\n\
             dave:{kh},{},es256\n",
            enc(65, 4)
        );
        let p = parse(&text);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let u = &p.entries;
        assert_eq!(u.len(), 4);
        assert_eq!(u[0].credentials.len(), 2);
        assert_eq!(u[0].credentials[0].describe(), "es256 +presence");
        assert_eq!(
            u[0].credentials[1].describe(),
            "eddsa +presence+verification"
        );
        assert!(u[1].credentials[0].old_format && u[1].credentials[0].presence);
        assert_eq!(
            u[2].credentials[0].describe(),
            "es256 resident +presence+pin"
        );
        assert_eq!(u[2].credentials[1].describe(), "rs256");
        assert_eq!(u[3].credentials[0].describe(), "es256");
    }

    #[test]
    fn last_line_of_a_user_wins() {
        let (kh, es) = (enc(64, 1), enc(64, 1));
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
        let (kh, es) = (enc(64, 1), enc(64, 1));
        let text = format!(
            "carol\n\
             :{kh},{es},es256,+presence\n\
             dave:{kh},{es},rsa,+presence\n\
             erin:k h,{es},es256,+presence\n\
             frank:{kh},{es},es256,+presence,extra\n\
             gina:{kh},{es},es256,presence\n\
             hank:{kh},{es},es256,+touch\n\
             ivan:{kh},{},eddsa,+presence\n\
             jill:{kh},not-hex\n\
             kim:*,{}\n\
             lee:{},{es},es256,\n\
             ok:{kh},{es},es256,+presence\n\
             mo:{kh},{es},es256,+presence:{kh}\n",
            enc(64, 1),
            format_args!("04{}", "ab".repeat(64)),
            enc(8, 1)
        );
        let p = parse(&text);
        let lines: Vec<usize> = p.errors.iter().map(|e| e.line).collect();
        assert_eq!(
            lines,
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13],
            "{:?}",
            p.errors
        );
        assert_eq!(p.entries.len(), 1);
        assert!(
            p.errors[11].msg.starts_with("credential 2:"),
            "{:?}",
            p.errors[11]
        );
    }
}
