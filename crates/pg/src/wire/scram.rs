//! SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677) as
//! PostgreSQL speaks it, with `tls-server-end-point` channel binding
//! (RFC 5929). The password is printable ASCII (checked before we get
//! here), so SASLprep leaves it as it is.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// Most PBKDF2 iterations we run for a server. PostgreSQL's default is
/// 4,096; the limit keeps a hostile server from pinning the CPU of the
/// PAM host (the loop cannot be interrupted by the deadline).
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// The client side of one exchange.
pub struct Scram {
    /// `n,,` / `y,,` / `p=tls-server-end-point,,`.
    gs2_header: String,
    /// The channel-binding data (the server certificate's hash) for -PLUS.
    cb_data: Vec<u8>,
    client_first_bare: String,
    nonce: String,
    password: Zeroizing<String>,
    /// HMAC(ServerKey, AuthMessage), set by [`Scram::client_final`].
    server_key: Option<Zeroizing<Vec<u8>>>,
    auth_message: String,
}

/// How the client binds the exchange to the TLS channel.
pub enum Binding {
    /// No TLS, or binding disabled: `n`.
    None,
    /// We could bind but the server did not offer -PLUS: `y`.
    NotOffered,
    /// SCRAM-SHA-256-PLUS with this certificate hash.
    Plus(Vec<u8>),
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; the Err arm is never taken.
    match <HmacSha256 as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => <HmacSha256 as KeyInit>::new(&Default::default()),
    }
}

pub(super) fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = mac(key);
    m.update(data);
    m.finalize().into_bytes().into()
}

/// PBKDF2-HMAC-SHA-256 with one output block: SCRAM's `Hi`.
pub(super) fn hi(password: &[u8], salt: &[u8], iterations: u32) -> Zeroizing<[u8; 32]> {
    let mut m = mac(password);
    m.update(salt);
    m.update(&1u32.to_be_bytes());
    let mut u = Zeroizing::new(<[u8; 32]>::from(m.finalize().into_bytes()));
    let mut out = u.clone();
    for _ in 1..iterations {
        *u = hmac(password, &u[..]);
        for (o, x) in out.iter_mut().zip(u.iter()) {
            *o ^= x;
        }
    }
    out
}

impl Scram {
    /// A new exchange with `nonce` (printable, no comma: base64 of
    /// random bytes). PostgreSQL ignores the SCRAM user name (it uses the
    /// startup message's), so `user` is empty there; tests pass RFC
    /// 7677's.
    pub fn new(user: &str, password: Zeroizing<String>, nonce: String, binding: Binding) -> Scram {
        let (gs2_header, cb_data) = match binding {
            Binding::None => ("n,,".to_string(), Vec::new()),
            Binding::NotOffered => ("y,,".to_string(), Vec::new()),
            Binding::Plus(hash) => ("p=tls-server-end-point,,".to_string(), hash),
        };
        Scram {
            gs2_header,
            cb_data,
            client_first_bare: format!("n={user},r={nonce}"),
            nonce,
            password,
            server_key: None,
            auth_message: String::new(),
        }
    }

    /// A random client nonce (18 bytes, as libpq).
    pub fn random_nonce() -> Result<String, String> {
        let mut raw = [0u8; 18];
        getrandom::fill(&mut raw).map_err(|e| format!("no random bytes: {e}"))?;
        Ok(B64.encode(raw))
    }

    pub fn client_first(&self) -> String {
        format!("{}{}", self.gs2_header, self.client_first_bare)
    }

    /// Answers the server-first-message with the client-final-message.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<String, String> {
        let server_first =
            std::str::from_utf8(server_first).map_err(|_| "SCRAM: server-first is not UTF-8")?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attr in server_first.split(',') {
            if let Some(v) = attr.strip_prefix("r=") {
                nonce = Some(v);
            } else if let Some(v) = attr.strip_prefix("s=") {
                salt = Some(B64.decode(v).map_err(|_| "SCRAM: bad salt")?);
            } else if let Some(v) = attr.strip_prefix("i=") {
                iterations = Some(v.parse::<u32>().map_err(|_| "SCRAM: bad iteration count")?);
            } else if attr.starts_with("m=") {
                return Err("SCRAM: the server asks for an unknown extension".into());
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err("SCRAM: server-first lacks the nonce, salt or iteration count".into());
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() <= self.nonce.len() {
            return Err("SCRAM: the server's nonce does not extend ours".into());
        }
        if !(1..=MAX_ITERATIONS).contains(&iterations) {
            return Err(format!(
                "SCRAM: {iterations} iterations (we run 1 to {MAX_ITERATIONS})"
            ));
        }
        let mut cbind = self.gs2_header.as_bytes().to_vec();
        cbind.extend_from_slice(&self.cb_data);
        let without_proof = format!("c={},r={nonce}", B64.encode(&cbind));
        self.auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let salted = hi(self.password.as_bytes(), &salt, iterations);
        let client_key = Zeroizing::new(hmac(&salted[..], b"Client Key"));
        let stored_key = Zeroizing::new(<[u8; 32]>::from(Sha256::digest(&client_key[..])));
        let signature = hmac(&stored_key[..], self.auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        self.server_key = Some(Zeroizing::new(hmac(&salted[..], b"Server Key").to_vec()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Checks the server-final-message: the server proves it knew the
    /// password's verifier (compared in constant time).
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), String> {
        let server_final =
            std::str::from_utf8(server_final).map_err(|_| "SCRAM: server-final is not UTF-8")?;
        if let Some(e) = server_final.strip_prefix("e=") {
            return Err(format!("SCRAM: the server refused: {e}"));
        }
        let v = server_final
            .split(',')
            .find_map(|a| a.strip_prefix("v="))
            .ok_or("SCRAM: server-final has no signature")?;
        let sig = B64.decode(v).map_err(|_| "SCRAM: bad server signature")?;
        let key = self
            .server_key
            .as_ref()
            .ok_or("SCRAM: server-final before server-first")?;
        let mut m = mac(key);
        m.update(self.auth_message.as_bytes());
        m.verify_slice(&sig).map_err(|_| {
            "SCRAM: the server's signature is wrong (it does not know the password)".into()
        })
    }
}

/// `tls-server-end-point` (RFC 5929 §4.1): the hash of the server's
/// certificate, with the hash of its signature algorithm, SHA-256 for
/// MD5 and SHA-1 (as PostgreSQL computes it). None for an algorithm without a single hash (RSA-PSS,
/// EdDSA), for which PostgreSQL's own choice is not portable.
pub fn server_end_point(cert_der: &[u8]) -> Option<Vec<u8>> {
    let oid = signature_oid(cert_der)?;
    // 1.2.840.113549.1.1.{4,5,11,12,13} (RSA), 1.2.840.10045.4.{1,3.2,3.3,3.4} (ECDSA)
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04];
    let hash = match oid {
        o if o.len() == RSA.len() + 1 && o.starts_with(RSA) => match o[RSA.len()] {
            4 | 5 | 11 => 256,
            14 => 224,
            12 => 384,
            13 => 512,
            _ => return None,
        },
        o if o == [ECDSA, &[1]].concat() => 256,
        o if o.len() == ECDSA.len() + 2 && o.starts_with(ECDSA) && o[ECDSA.len()] == 3 => {
            match o[ECDSA.len() + 1] {
                1 => 224,
                2 => 256,
                3 => 384,
                4 => 512,
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(match hash {
        224 => Sha224::digest(cert_der).to_vec(),
        384 => Sha384::digest(cert_der).to_vec(),
        512 => Sha512::digest(cert_der).to_vec(),
        _ => Sha256::digest(cert_der).to_vec(),
    })
}

/// One DER element: (tag, contents, rest).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The OID of `Certificate.signatureAlgorithm`.
fn signature_oid(cert_der: &[u8]) -> Option<&[u8]> {
    let (0x30, cert, _) = der(cert_der)? else {
        return None;
    };
    let (0x30, _tbs, rest) = der(cert)? else {
        return None;
    };
    let (0x30, alg, _) = der(rest)? else {
        return None;
    };
    let (0x06, oid, _) = der(alg)? else {
        return None;
    };
    Some(oid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3.
    pub const USER: &str = "user";
    pub const PASSWORD: &str = "pencil";
    pub const NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    pub const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    pub const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    pub const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc() -> Scram {
        Scram::new(
            USER,
            Zeroizing::new(PASSWORD.into()),
            NONCE.into(),
            Binding::None,
        )
    }

    #[test]
    fn rfc7677_test_vector() {
        let mut s = rfc();
        assert_eq!(s.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        assert_eq!(
            s.client_final(SERVER_FIRST.as_bytes()).unwrap(),
            CLIENT_FINAL
        );
        s.verify_server_final(SERVER_FINAL.as_bytes()).unwrap();
    }

    #[test]
    fn a_wrong_server_signature_is_refused() {
        let mut s = rfc();
        s.client_final(SERVER_FIRST.as_bytes()).unwrap();
        let bad = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=";
        assert!(s.verify_server_final(bad.as_bytes()).is_err());
        assert!(s.verify_server_final(b"v=").is_err());
        assert!(s.verify_server_final(b"e=invalid-proof").is_err());
    }

    #[test]
    fn a_nonce_that_does_not_extend_ours_is_refused() {
        let mut s = rfc();
        let other = SERVER_FIRST.replace("rOprNGfw", "xOprNGfw");
        assert!(s.client_final(other.as_bytes()).is_err());
        let huge = SERVER_FIRST.replace("i=4096", "i=4000000000");
        assert!(s.client_final(huge.as_bytes()).is_err());
    }

    #[test]
    fn channel_binding_goes_into_c() {
        let mut s = Scram::new(
            "",
            Zeroizing::new(PASSWORD.into()),
            NONCE.into(),
            Binding::Plus(vec![1, 2, 3]),
        );
        let last = s.client_final(SERVER_FIRST.as_bytes()).unwrap();
        let mut expect = b"p=tls-server-end-point,,".to_vec();
        expect.extend_from_slice(&[1, 2, 3]);
        assert!(last.starts_with(&format!("c={},", B64.encode(expect))));
    }
}
