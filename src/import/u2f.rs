//! pam_u2f authfiles: `user:KEYHANDLE,PUBKEY,COSETYPE,OPTIONS:...` (and
//! the old `user:KEYHANDLE,PUBKEY`). These credentials are bound to the
//! relying party `pam://HOSTNAME`, which a browser can never assert for, so
//! 2fad's WebAuthn cannot take them over: the parser validates and counts,
//! so the admin knows who must register a key again.

use super::{LineError, err};

/// Credentials found for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct U2fUser {
    pub user: String,
    pub credentials: usize,
    pub types: Vec<String>,
}

fn is_b64(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'='))
}

pub fn parse(text: &str) -> Result<Vec<U2fUser>, Vec<LineError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let mut parts = l.split(':');
        let user = parts.next().unwrap_or("");
        if user.is_empty() || !crate::users::valid_name(user) {
            errors.push(err(n, "missing or invalid user name"));
            continue;
        }
        let mut types = Vec::new();
        let mut bad = None;
        for cred in parts {
            let f: Vec<&str> = cred.split(',').collect();
            if f.len() < 2 || !is_b64(f[0]) || !is_b64(f[1]) {
                bad = Some("a credential needs base64 KEYHANDLE,PUBKEY");
                break;
            }
            let t = f.get(2).copied().unwrap_or("es256");
            if !matches!(t, "es256" | "eddsa" | "rs256") {
                bad = Some("COSE type must be es256, eddsa or rs256");
                break;
            }
            if let Some(opts) = f.get(3)
                && !opts
                    .split('+')
                    .all(|o| o.is_empty() || matches!(o, "presence" | "verification" | "pin"))
            {
                bad = Some("unknown option (want +presence, +verification, +pin)");
                break;
            }
            types.push(t.to_string());
        }
        if let Some(b) = bad {
            errors.push(err(n, b));
            continue;
        }
        if types.is_empty() {
            errors.push(err(n, "no credentials after the user name"));
            continue;
        }
        out.push(U2fUser {
            user: user.to_string(),
            credentials: types.len(),
            types,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let u = parse("alice:kh1+/=,pk1,es256,+presence:kh2,pk2,eddsa,+presence+verification\nbob:oldkh,oldpk\n").unwrap();
        assert_eq!(u[0].credentials, 2);
        assert_eq!(u[0].types, ["es256", "eddsa"]);
        assert_eq!(u[1].credentials, 1);
        let e = parse("carol\n:kh,pk\ndave:kh,pk,rsa\nerin:k h,pk\n").unwrap_err();
        assert_eq!(e.iter().map(|e| e.line).collect::<Vec<_>>(), [1, 2, 3, 4]);
    }
}
