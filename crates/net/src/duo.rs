//! Duo Auth API v2 client: `ping`, `check`, `preauth`, `auth` (push, phone,
//! sms, passcode) and `auth_status`. Blocking; one [`DuoClient`] per PAM
//! call, dropped before the call returns.
//!
//! Requests are signed like Duo's own clients (duo_client_python `sign()`,
//! canonicalisation v2 with HMAC-SHA512): the canonical text is the `Date`
//! header (RFC 2822), the upper-case method, the lower-cased host name
//! *without a port* (Duo's clients sign `api-xxxxxxxx.duosecurity.com`, and
//! Duo refuses a signature over `host:port`), the path and the parameters
//! sorted by name, each name and value percent-encoded except for
//! `A-Za-z0-9-_.~` and joined `k=v&k=v`; the five lines joined with `\n`.
//! The `Authorization` header is `Basic base64(ikey:hex(hmac))`. GET
//! parameters travel in the query string and POST parameters in a form
//! body, both encoded exactly as they were signed. Always HTTPS, always
//! verified against the fixed trust store of `crate::transport` (an extra CA may
//! be configured, never switched off). Like duo_unix, `preauth` and `auth`
//! carry `ipaddr` when the login's remote host is an IP address.
//!
//! Errors say what kind of failure it was, because only one kind may ever
//! let a user in (with `failmode = safe`, see [`DuoError::failmode_applies`]):
//! no answer at all. A certificate or TLS protocol error is
//! [`DuoError::Tls`], an answer that is not what Duo sends is
//! [`DuoError::Malformed`] (a protocol error); both are refusals, since they
//! are what an attacker between us and Duo can cause at will. Every response
//! field the flow relies on is checked. Neither the secret key nor a
//! passcode ever appears in an error.
//!
//! `auth_status` is Duo's long-poll: Duo holds the request until the
//! transaction changes, so running out of the caller's wait there means
//! "still waiting", not "Duo is down" (duo_unix polls it with no timeout at
//! all). Otherwise, with `failmode = safe`, a user who simply ignored a push
//! for one poll slice would be let in.

use crate::transport::HttpFailure;
use base64::Engine;
use hmac::{KeyInit, Mac};
use p2fa_core::config::DuoConfig;
use p2fa_core::secure_fs::Trust;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use std::fmt;
use std::time::Duration;
use zeroize::Zeroizing;

/// Characters left as they are by Duo's (and OAuth 1.0a's) encoding.
const DUO_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Longest username, device id, transaction id or passcode we send.
const MAX_USERNAME: usize = 256;
const MAX_ID: usize = 100;
const MAX_PASSCODE: usize = 64;
/// Most devices taken from one preauth answer.
const MAX_DEVICES: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DuoError {
    /// No answer: connection refused or reset, DNS, timeout, or HTTP 5xx.
    Unreachable(String),
    /// The TLS handshake failed on the certificate Duo's side presented
    /// (another host's, an untrusted issuer, expired, no subjectAltName)
    /// or on the TLS protocol: never an outage.
    Tls(String),
    /// A protocol error: an answer that is not Duo's JSON (invalid,
    /// truncated) or lacks what we need (wrongly shaped).
    Malformed(String),
    /// Duo's well-formed refusal (`stat: FAIL`): bad keys or signature
    /// (401), bad request (400), rate limit (429).
    Rejected { code: i64, message: String },
    /// Local problem (secret key file, ikey or api_host, client setup).
    Setup(String),
    /// An argument that cannot be sent (empty or odd username, device id,
    /// passcode or txid). Nothing was sent.
    BadInput(String),
}

impl DuoError {
    /// True only when Duo could not be reached at all (the admin's
    /// `failmode` may apply, and only to `preauth`, see the flow); false for
    /// a certificate or TLS error, an answer that is not Duo's, a
    /// well-formed refusal, a local setup error or bad input.
    pub fn failmode_applies(&self) -> bool {
        matches!(self, DuoError::Unreachable(_))
    }
}

impl fmt::Display for DuoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DuoError::Unreachable(m) => write!(f, "Duo unreachable: {m}"),
            DuoError::Tls(m) => write!(f, "Duo TLS error: {m}"),
            DuoError::Malformed(m) => write!(f, "Duo protocol error: {m}"),
            DuoError::Rejected { code, message } => write!(f, "Duo refused ({code}): {message}"),
            DuoError::Setup(m) => write!(f, "Duo setup: {m}"),
            DuoError::BadInput(m) => write!(f, "Duo request not sent: {m}"),
        }
    }
}

impl std::error::Error for DuoError {}

/// One of the user's devices, from `preauth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Device id (`DP...`), passed back as `device` to `auth`.
    pub device: String,
    /// `display_name`, or `name` when Duo gave no display name; may be empty.
    pub display_name: String,
    /// `push`, `phone`, `sms`, `mobile_otp`, `auto`, ...
    pub capabilities: Vec<String>,
}

impl Device {
    pub fn can(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }
}

/// Duo's `preauth` verdict. The strings are Duo's `status_msg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preauth {
    /// The user must authenticate with one of these devices (or a passcode).
    Auth(Vec<Device>),
    /// Bypass: let the user in without a second factor.
    Allow(String),
    /// Deny the login (locked out, not allowed).
    Deny(String),
    /// Not enrolled; `url` is the enrollment portal (`https://` or empty).
    Enroll { msg: String, url: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    Allow,
    Deny,
    Waiting,
}

/// An `auth` or `auth_status` answer. `status` is Duo's short code
/// (`allow`, `deny`, `fraud`, `sent`, `pushed`, `calling`, ...; empty when
/// a long-poll ran out of time); `status_msg` the text for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthStatus {
    pub result: AuthResult,
    pub status: String,
    pub status_msg: String,
}

/// A Duo Auth API client for one PAM call. Holds the secret key (zeroized
/// on drop) and a blocking HTTP client (no thread of its own,
/// [`crate::transport::http_client`]); deliberately not `Debug`.
pub struct DuoClient {
    http: ureq::Agent,
    /// `host` or `host:port`, lower-case, without a default `:443`: where
    /// requests go.
    host: String,
    /// `host` without any port: what the signature covers.
    sign_host: String,
    /// The login's source address, sent as `ipaddr` with preauth and auth.
    ipaddr: Option<String>,
    ikey: String,
    skey: Zeroizing<String>,
    /// Upper bound for one long-poll of `auth_status`.
    max_wait: Duration,
}

/// RFC 2822 date as Duo wants it: `Tue, 21 Aug 2012 17:29:18 -0000`.
pub fn rfc2822(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix.div_euclid(86_400);
    let (y, m, d, secs) = p2fa_core::clock::civil(unix);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} -0000",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, DUO_ENCODE).to_string()
}

/// `a=1&b=2`: names and values encoded, sorted by encoded name then value
/// (duo_client_python `canon_params`). Also the wire form of the query
/// string and the form body.
pub fn canon_params(params: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = params.iter().map(|(k, v)| (enc(k), enc(v))).collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The canonical request text (signature v2).
pub fn canonical(
    date: &str,
    method: &str,
    host: &str,
    path: &str,
    params: &[(&str, &str)],
) -> String {
    [
        date.to_string(),
        method.to_ascii_uppercase(),
        host.to_ascii_lowercase(),
        path.to_string(),
        canon_params(params),
    ]
    .join("\n")
}

/// The `Authorization` header value for a canonical request.
#[expect(
    clippy::expect_used,
    reason = "HMAC takes keys of any length; new_from_slice cannot fail"
)]
pub fn authorization(ikey: &str, skey: &str, canonical: &str) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha512> as KeyInit>::new_from_slice(skey.as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(canonical.as_bytes());
    let sig: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{ikey}:{sig}"));
    format!("Basic {token}")
}

/// The `pushinfo` parameter: `k=v&k=v`, percent-encoded like everything
/// else, in the caller's order (Duo Mobile shows them in that order).
/// Control characters are dropped; at most 10 pairs of 256 characters each.
pub fn encode_pushinfo(pairs: &[(String, String)]) -> String {
    let tidy = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_control())
            .take(256)
            .collect::<String>()
    };
    pairs
        .iter()
        .filter(|(k, _)| !tidy(k).is_empty())
        .take(10)
        .map(|(k, v)| format!("{}={}", enc(&tidy(k)), enc(&tidy(v))))
        .collect::<Vec<_>>()
        .join("&")
}

/// `api_host` as we connect to and sign it: lower-case `host[:port]`, a
/// default `:443` dropped (the Host header omits it too).
fn normalize_host(api_host: &str) -> Result<String, DuoError> {
    let h = api_host.trim().to_ascii_lowercase();
    let sane = !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        && !h.starts_with(['.', '-', ':']);
    if !sane {
        return Err(DuoError::Setup(
            "duo.api_host must be a host name, host:port or [v6]:port".into(),
        ));
    }
    Ok(h.strip_suffix(":443").map(str::to_string).unwrap_or(h))
}

/// `host[:port]` (as [`normalize_host`] returns it) without the port;
/// `[v6]:port` keeps its brackets.
fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    match host.split_once(':') {
        Some((h, _)) if !host[h.len() + 1..].contains(':') => h,
        _ => host,
    }
}

fn check_username(u: &str) -> Result<(), DuoError> {
    if u.is_empty() || u.len() > MAX_USERNAME || u.chars().any(char::is_control) {
        return Err(DuoError::BadInput(
            "username is empty, too long or has control characters".into(),
        ));
    }
    Ok(())
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_device(d: &str) -> Result<(), DuoError> {
    if !is_id(d) {
        return Err(DuoError::BadInput("device id is not sane".into()));
    }
    Ok(())
}

fn check_passcode(p: &str) -> Result<(), DuoError> {
    if p.is_empty() || p.len() > MAX_PASSCODE || !p.bytes().all(|b| b.is_ascii_alphanumeric()) {
        // Never echo the passcode itself.
        return Err(DuoError::BadInput(
            "passcode must be 1 to 64 letters or digits".into(),
        ));
    }
    Ok(())
}

fn is_txid(t: &str) -> bool {
    !t.is_empty() && t.len() <= MAX_ID && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A required string field: present, at most `max` bytes, no control
/// characters.
fn text_field(v: &Value, name: &str, max: usize) -> Result<String, DuoError> {
    let s = v
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| DuoError::Malformed(format!("missing field {name:?}")))?;
    if s.len() > max || s.chars().any(char::is_control) {
        return Err(DuoError::Malformed(format!("field {name:?} is not sane")));
    }
    Ok(s.to_string())
}

/// An optional text for people: control characters dropped, at most `max`
/// characters; empty when absent or not a string.
fn optional_text(v: &Value, name: &str, max: usize) -> String {
    v.get(name)
        .and_then(Value::as_str)
        .map(|s| s.chars().filter(|c| !c.is_control()).take(max).collect())
        .unwrap_or_default()
}

/// Duo's envelope: `{"stat": "OK", "response": ...}` or `{"stat": "FAIL",
/// "code": N, "message": ...}`. `status` is the HTTP status.
pub fn parse_envelope(path: &str, status: u16, body: &[u8]) -> Result<Value, DuoError> {
    if (500..600).contains(&status) {
        return Err(DuoError::Unreachable(format!("{path}: HTTP {status}")));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| DuoError::Malformed(format!("{path}: HTTP {status}, body is not JSON")))?;
    match v.get("stat").and_then(Value::as_str) {
        Some("OK") if (200..300).contains(&status) => match v.get("response") {
            Some(r) if !r.is_null() => Ok(r.clone()),
            _ => Err(DuoError::Malformed(format!("{path}: no response member"))),
        },
        Some("FAIL") => {
            let code = v.get("code").and_then(Value::as_i64);
            let message = optional_text(&v, "message", 200);
            match code {
                Some(code) if code > 0 && !message.is_empty() => {
                    let detail = optional_text(&v, "message_detail", 200);
                    Err(DuoError::Rejected {
                        code,
                        message: format!("{message} {detail}").trim().to_string(),
                    })
                }
                _ => Err(DuoError::Malformed(format!(
                    "{path}: HTTP {status}, FAIL without code or message"
                ))),
            }
        }
        _ => Err(DuoError::Malformed(format!(
            "{path}: HTTP {status}, no valid stat"
        ))),
    }
}

/// The `response` of `preauth`.
pub fn parse_preauth(r: &Value) -> Result<Preauth, DuoError> {
    let result = text_field(r, "result", 20)?;
    let msg = optional_text(r, "status_msg", 500);
    match result.as_str() {
        "auth" => {
            let list = r
                .get("devices")
                .and_then(Value::as_array)
                .ok_or_else(|| DuoError::Malformed("preauth: no devices list".into()))?;
            let mut devices = Vec::new();
            for d in list.iter().take(MAX_DEVICES) {
                let device = text_field(d, "device", MAX_ID)?;
                if !is_id(&device) {
                    return Err(DuoError::Malformed("preauth: odd device id".into()));
                }
                let display_name = match optional_text(d, "display_name", 100) {
                    n if !n.is_empty() => n,
                    _ => optional_text(d, "name", 100),
                };
                let capabilities = d
                    .get("capabilities")
                    .and_then(Value::as_array)
                    .map(|c| {
                        c.iter()
                            .filter_map(Value::as_str)
                            .filter(|s| {
                                !s.is_empty()
                                    && s.len() <= 32
                                    && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                            })
                            .take(20)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                devices.push(Device {
                    device,
                    display_name,
                    capabilities,
                });
            }
            Ok(Preauth::Auth(devices))
        }
        "allow" => Ok(Preauth::Allow(msg)),
        "deny" => Ok(Preauth::Deny(msg)),
        "enroll" => {
            let url = optional_text(r, "enroll_portal_url", 500);
            let url = if url.starts_with("https://") && !url.contains(char::is_whitespace) {
                url
            } else {
                String::new()
            };
            Ok(Preauth::Enroll { msg, url })
        }
        other => Err(DuoError::Malformed(format!(
            "preauth: unknown result {:?}",
            p2fa_core::audit::clean(other)
        ))),
    }
}

/// The `response` of an asynchronous `auth`: the transaction id.
pub fn parse_txid(r: &Value) -> Result<String, DuoError> {
    let t = text_field(r, "txid", MAX_ID)?;
    if !is_txid(&t) {
        return Err(DuoError::Malformed("auth: odd txid".into()));
    }
    Ok(t)
}

/// The `response` of a synchronous `auth` or of `auth_status`.
pub fn parse_status(r: &Value) -> Result<AuthStatus, DuoError> {
    let result = match text_field(r, "result", 20)?.as_str() {
        "allow" => AuthResult::Allow,
        "deny" => AuthResult::Deny,
        "waiting" => AuthResult::Waiting,
        other => {
            return Err(DuoError::Malformed(format!(
                "unknown auth result {:?}",
                p2fa_core::audit::clean(other)
            )));
        }
    };
    Ok(AuthStatus {
        result,
        status: optional_text(r, "status", 50),
        status_msg: optional_text(r, "status_msg", 500),
    })
}

fn parse_time(r: &Value) -> Result<i64, DuoError> {
    r.get("time")
        .and_then(Value::as_i64)
        .filter(|t| *t > 0)
        .ok_or_else(|| DuoError::Malformed("no server time".into()))
}

impl DuoClient {
    /// Reads the secret key (inline or `skey_file`) and builds the HTTPS
    /// client with the configured timeouts and CA.
    /// `trust`: whose files to believe ([`Trust::ROOT`] outside tests).
    pub fn new(cfg: &DuoConfig, trust: Trust) -> Result<DuoClient, DuoError> {
        let host = normalize_host(&cfg.api_host)?;
        if cfg.ikey.is_empty()
            || cfg.ikey.len() > 64
            || !cfg.ikey.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(DuoError::Setup(
                "duo.ikey must be the integration key (letters and digits)".into(),
            ));
        }
        let skey = Zeroizing::new(
            p2fa_core::config::secret(&cfg.skey, &cfg.skey_file, "duo.skey", trust)
                .map_err(|e| DuoError::Setup(e.0))?,
        );
        let http = crate::transport::http_client(&cfg.net(), trust).map_err(DuoError::Setup)?;
        Ok(DuoClient {
            http,
            sign_host: host_without_port(&host).to_string(),
            ipaddr: None,
            host,
            ikey: cfg.ikey.clone(),
            skey,
            max_wait: Duration::from_secs(cfg.push_timeout_seconds.max(1)),
        })
    }

    /// Sends `ipaddr` (the login's source, when PAM_RHOST is an IP
    /// address) with preauth and auth, as duo_unix does; Duo's policies
    /// (authorized networks, anonymous networks) use it.
    pub fn with_ipaddr(mut self, ip: Option<std::net::IpAddr>) -> DuoClient {
        self.ipaddr = ip.map(|ip| ip.to_string());
        self
    }

    /// `params` plus `ipaddr` when known.
    fn with_ip<'a>(&'a self, params: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut p = params.to_vec();
        if let Some(ip) = &self.ipaddr {
            p.push(("ipaddr", ip));
        }
        p
    }

    /// Sends one signed request.
    fn send(
        &self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        timeout: Option<Duration>,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let date = rfc2822(p2fa_core::clock::unix_now());
        let auth = authorization(
            &self.ikey,
            &self.skey,
            &canonical(&date, method, &self.sign_host, path, params),
        );
        let url = format!("https://{}{}", self.host, path);
        let encoded = canon_params(params);
        if method == "GET" {
            let url = if encoded.is_empty() {
                url
            } else {
                format!("{url}?{encoded}")
            };
            let mut req = self
                .http
                .get(url)
                .header("Date", &date)
                .header("Authorization", auth);
            if let Some(t) = timeout {
                req = req.config().timeout_global(Some(t)).build();
            }
            req.call()
        } else {
            let mut req = self
                .http
                .post(url)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .header("Date", &date)
                .header("Authorization", auth);
            if let Some(t) = timeout {
                req = req.config().timeout_global(Some(t)).build();
            }
            req.send(encoded)
        }
    }

    fn transport_error(path: &str, e: &ureq::Error) -> DuoError {
        // The description never holds the URL (for GET: the txid), our
        // headers or the form body.
        match crate::transport::classify(e) {
            HttpFailure::Tls(tls) => DuoError::Tls(format!("{path}: {tls}")),
            HttpFailure::Timeout { .. } => DuoError::Unreachable(format!("{path}: timed out")),
            HttpFailure::Other(m) => DuoError::Unreachable(format!("{path}: {m}")),
        }
    }

    fn read(path: &str, resp: ureq::http::Response<ureq::Body>) -> Result<Value, DuoError> {
        let status = resp.status().as_u16();
        if (500..600).contains(&status) {
            return Err(DuoError::Unreachable(format!("{path}: HTTP {status}")));
        }
        let bytes = crate::transport::read_body(resp)
            .map_err(|e| DuoError::Unreachable(format!("{path}: {e}")))?;
        parse_envelope(path, status, &bytes)
    }

    /// One signed call; returns the `response` member of a `stat: OK` answer.
    fn call(&self, method: &str, path: &str, params: &[(&str, &str)]) -> Result<Value, DuoError> {
        let resp = self
            .send(method, path, params, None)
            .map_err(|e| Self::transport_error(path, &e))?;
        Self::read(path, resp)
    }

    /// `/auth/v2/ping` (Duo needs no signature here; we sign anyway, which
    /// Duo accepts): Duo's clock, Unix seconds.
    pub fn ping(&self) -> Result<i64, DuoError> {
        parse_time(&self.call("GET", "/auth/v2/ping", &[])?)
    }

    /// `/auth/v2/check`: proves the ikey, skey and api_host work; Duo's
    /// clock, Unix seconds.
    pub fn check(&self) -> Result<i64, DuoError> {
        parse_time(&self.call("GET", "/auth/v2/check", &[])?)
    }

    /// `/auth/v2/preauth` for a Duo username.
    pub fn preauth(&self, username: &str) -> Result<Preauth, DuoError> {
        check_username(username)?;
        parse_preauth(&self.call(
            "POST",
            "/auth/v2/preauth",
            &self.with_ip(&[("username", username)]),
        )?)
    }

    /// Sends a push to `device` (a device id or `auto`), asynchronously;
    /// returns the transaction id for [`Self::auth_status`]. `pushinfo`
    /// pairs are shown in Duo Mobile.
    pub fn auth_push(
        &self,
        username: &str,
        device: &str,
        pushinfo: &[(String, String)],
    ) -> Result<String, DuoError> {
        check_username(username)?;
        check_device(device)?;
        let info = encode_pushinfo(pushinfo);
        let mut params = vec![
            ("username", username),
            ("factor", "push"),
            ("device", device),
            ("async", "1"),
        ];
        if !info.is_empty() {
            params.push(("pushinfo", &info));
        }
        parse_txid(&self.call("POST", "/auth/v2/auth", &self.with_ip(&params))?)
    }

    /// Starts a phone call (asynchronously); returns the transaction id.
    pub fn auth_phone(&self, username: &str, device: &str) -> Result<String, DuoError> {
        check_username(username)?;
        check_device(device)?;
        parse_txid(&self.call(
            "POST",
            "/auth/v2/auth",
            &self.with_ip(&[
                ("username", username),
                ("factor", "phone"),
                ("device", device),
                ("async", "1"),
            ]),
        )?)
    }

    /// Asks Duo to text passcodes to the device. Duo answers `deny` with
    /// status `sent`; the user then types one with [`Self::auth_passcode`].
    pub fn auth_sms(&self, username: &str, device: &str) -> Result<AuthStatus, DuoError> {
        check_username(username)?;
        check_device(device)?;
        parse_status(&self.call(
            "POST",
            "/auth/v2/auth",
            &self.with_ip(&[
                ("username", username),
                ("factor", "sms"),
                ("device", device),
            ]),
        )?)
    }

    /// Checks a passcode (Duo Mobile, SMS, hardware token, bypass code).
    pub fn auth_passcode(&self, username: &str, passcode: &str) -> Result<AuthStatus, DuoError> {
        check_username(username)?;
        check_passcode(passcode)?;
        parse_status(&self.call(
            "POST",
            "/auth/v2/auth",
            &self.with_ip(&[
                ("username", username),
                ("factor", "passcode"),
                ("passcode", passcode),
            ]),
        )?)
    }

    /// One long-poll for a push or call, waiting at most `wait` (between
    /// 1 s and the configured `push_timeout_seconds`). When Duo holds the
    /// request longer than that, the answer is `Waiting` with an empty
    /// `status`: the caller polls again or gives up at its own deadline.
    pub fn auth_status(&self, txid: &str, wait: Duration) -> Result<AuthStatus, DuoError> {
        const PATH: &str = "/auth/v2/auth_status";
        if !is_txid(txid) {
            return Err(DuoError::BadInput("txid is not sane".into()));
        }
        let wait = wait.min(self.max_wait).max(Duration::from_secs(1));
        match self.send("GET", PATH, &[("txid", txid)], Some(wait)) {
            Ok(resp) => parse_status(&Self::read(PATH, resp)?),
            Err(e)
                if crate::transport::classify(&e)
                    == (HttpFailure::Timeout { connecting: false }) =>
            {
                Ok(AuthStatus {
                    result: AuthResult::Waiting,
                    status: String::new(),
                    status_msg: String::new(),
                })
            }
            Err(e) => Err(Self::transport_error(PATH, &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_are_rfc2822() {
        assert_eq!(rfc2822(1_345_570_158), "Tue, 21 Aug 2012 17:29:18 -0000");
        assert_eq!(rfc2822(1_354_900_680), "Fri, 07 Dec 2012 17:18:00 -0000");
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 -0000");
        assert_eq!(rfc2822(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 -0000");
        assert_eq!(rfc2822(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 -0000");
    }

    // The fuzz keys and values of duo_client_python's signing tests
    // (tests/test_client_sign.py, test_client.py).
    const FUZZ: [(&str, &str); 4] = [
        (
            "\u{469a}\u{287b}\u{35d0}\u{8ef3}\u{6727}\u{502a}\u{0810}\u{d091}\u{c8}\u{c170}",
            "\u{0f45}\u{1a76}\u{341a}\u{654c}\u{c23f}\u{9b09}\u{abe2}\u{8343}\u{1b27}\u{60d0}",
        ),
        (
            "\u{7449}\u{7e4b}\u{ccfb}\u{59ff}\u{fe5f}\u{83b7}\u{adcc}\u{900c}\u{cfd1}\u{7813}",
            "\u{8db7}\u{5022}\u{92d3}\u{42ef}\u{207d}\u{8730}\u{acfe}\u{5617}\u{0946}\u{4e30}",
        ),
        (
            "\u{7470}\u{9314}\u{901c}\u{9eae}\u{40d8}\u{4201}\u{82d8}\u{8c70}\u{1d31}\u{a042}",
            "\u{17d9}\u{0ba8}\u{9358}\u{aadf}\u{a42a}\u{48be}\u{fb96}\u{6fe9}\u{b7ff}\u{32f3}",
        ),
        (
            "\u{c2c5}\u{2c1d}\u{2620}\u{3617}\u{96b3}F\u{8605}\u{20e8}\u{ac21}\u{5934}",
            "\u{fba9}\u{41aa}\u{bd83}\u{840b}\u{2615}\u{3e6e}\u{652d}\u{a8b5}\u{d56b}U",
        ),
    ];
    const FUZZ_CANON: &str = "%E4%9A%9A%E2%A1%BB%E3%97%90%E8%BB%B3%E6%9C%A7%E5%80%AA%E0%A0%90%ED%82%91%C3%88%EC%85%B0=%E0%BD%85%E1%A9%B6%E3%90%9A%E6%95%8C%EC%88%BF%E9%AC%89%EA%AF%A2%E8%8D%83%E1%AC%A7%E6%83%90&%E7%91%89%E7%B9%8B%EC%B3%BB%E5%A7%BF%EF%B9%9F%E8%8E%B7%EA%B7%8C%E9%80%8C%EC%BF%91%E7%A0%93=%E8%B6%B7%E5%80%A2%E9%8B%93%E4%8B%AF%E2%81%BD%E8%9C%B0%EA%B3%BE%E5%98%97%E0%A5%86%E4%B8%B0&%E7%91%B0%E9%8C%94%E9%80%9C%E9%BA%AE%E4%83%98%E4%88%81%E8%8B%98%E8%B1%B0%E1%B4%B1%EA%81%82=%E1%9F%99%E0%AE%A8%E9%8D%98%EA%AB%9F%EA%90%AA%E4%A2%BE%EF%AE%96%E6%BF%A9%EB%9F%BF%E3%8B%B3&%EC%8B%85%E2%B0%9D%E2%98%A0%E3%98%97%E9%9A%B3F%E8%98%85%E2%83%A8%EA%B0%A1%E5%A4%B4=%EF%AE%A9%E4%86%AA%EB%B6%83%E8%90%8B%E2%98%95%E3%B9%AE%E6%94%AD%EA%A2%B5%ED%95%ABU";

    #[test]
    fn params_are_encoded_and_sorted_like_duo() {
        // duo_client_python TestQueryParameters.
        assert_eq!(canon_params(&[]), "");
        assert_eq!(
            canon_params(&[("realname", "First Last")]),
            "realname=First%20Last"
        );
        assert_eq!(
            canon_params(&[("username", "root"), ("realname", "First Last")]),
            "realname=First%20Last&username=root"
        );
        assert_eq!(
            canon_params(&[
                ("digits", "0123456789"),
                (
                    "letters",
                    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                ),
                ("punctuation", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
                ("whitespace", "\t\n\x0b\x0c\r "),
            ]),
            "digits=0123456789&letters=abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\
             &punctuation=%21%22%23%24%25%26%27%28%29%2A%2B%2C-.%2F%3A%3B%3C%3D%3E%3F%40%5B%5C%5D%5E_%60%7B%7C%7D~\
             &whitespace=%09%0A%0B%0C%0D%20"
        );
        assert_eq!(canon_params(&FUZZ), FUZZ_CANON);
        assert_eq!(
            canon_params(&[("username", "alice@example.com")]),
            "username=alice%40example.com"
        );
    }

    #[test]
    fn canonical_request_v2_matches_duo_client_python() {
        // TestCanonicalize.test_v2.
        let c = canonical(
            "Fri, 07 Dec 2012 17:18:00 -0000",
            "PoSt",
            "foO.BAr52.cOm",
            "/Foo/BaR2/qux",
            &FUZZ,
        );
        assert_eq!(
            c,
            format!(
                "Fri, 07 Dec 2012 17:18:00 -0000\nPOST\nfoo.bar52.com\n/Foo/BaR2/qux\n{FUZZ_CANON}"
            )
        );
    }

    #[test]
    fn hmac_sha512_signature_matches_duo_client_python() {
        // TestSign.test_hmac_sha512 in duo_client_python's test_client.py.
        let c = canonical(
            "Fri, 07 Dec 2012 17:18:00 -0000",
            "PoSt",
            "foO.BAr52.cOm",
            "/Foo/BaR2/qux",
            &FUZZ,
        );
        let want_sig = "0508065035a03b2a1de2f453e629e791d180329e157f65df6b3e0f08299d4321\
                        e1c5c7a7c7ee6b9e5fc80d1fb6fbf3ad5eb7c44dd3b3985a02c37aca53ec3698";
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("test_ikey:{want_sig}"))
        );
        assert_eq!(
            authorization("test_ikey", "gtdfxv9YgVBYcF6dl2Eq17KUQJN2PLM2ODVTkvoT", &c),
            want
        );
        // Any change to the text changes the signature.
        assert_ne!(
            authorization(
                "test_ikey",
                "gtdfxv9YgVBYcF6dl2Eq17KUQJN2PLM2ODVTkvoT",
                &c.replace("POST", "GET")
            ),
            want
        );
    }

    #[test]
    fn pushinfo_keeps_order_and_encodes() {
        assert_eq!(
            encode_pushinfo(&[
                ("Login".into(), "host1 (sshd) from 192.0.2.7".into()),
                ("Server IP".into(), "10.0.0.1".into()),
                ("".into(), "dropped".into()),
                ("Bell".into(), "a\x07b\nc".into()),
            ]),
            "Login=host1%20%28sshd%29%20from%20192.0.2.7&Server%20IP=10.0.0.1&Bell=abc"
        );
        assert_eq!(encode_pushinfo(&[]), "");
        let long = vec![("k".to_string(), "x".repeat(1000)); 20];
        let e = encode_pushinfo(&long);
        assert_eq!(e.matches('&').count(), 9);
        assert!(e.len() <= 10 * (2 + 256) + 9);
    }

    #[test]
    fn hosts_are_normalised() {
        assert_eq!(
            normalize_host("API-XXXXXXXX.duosecurity.com").unwrap(),
            "api-xxxxxxxx.duosecurity.com"
        );
        assert_eq!(normalize_host("api.example:443").unwrap(), "api.example");
        assert_eq!(normalize_host("127.0.0.1:8443").unwrap(), "127.0.0.1:8443");
        assert_eq!(normalize_host("[::1]:8443").unwrap(), "[::1]:8443");
        // What the signature covers: the host name alone.
        for (h, want) in [
            (
                "api-xxxxxxxx.duosecurity.com",
                "api-xxxxxxxx.duosecurity.com",
            ),
            ("127.0.0.1:8443", "127.0.0.1"),
            ("api.example:8443", "api.example"),
            ("[::1]:8443", "[::1]"),
            ("[::1]", "[::1]"),
        ] {
            assert_eq!(host_without_port(h), want, "{h}");
        }
        for bad in [
            "",
            "https://api.example",
            "api.example/x",
            "user@api.example",
            "api example",
            "api.example?x",
            ":443",
        ] {
            assert!(
                matches!(normalize_host(bad), Err(DuoError::Setup(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn inputs_are_checked_before_sending() {
        assert!(check_username("alice@example.com").is_ok());
        assert!(check_username("Jörg").is_ok());
        assert!(check_username("").is_err());
        assert!(check_username("a\nb").is_err());
        assert!(check_username(&"a".repeat(257)).is_err());
        assert!(check_device("auto").is_ok());
        assert!(check_device("DPFZRS9FB0D46QFTM891").is_ok());
        assert!(check_device("").is_err());
        assert!(check_device("DP1&factor=passcode").is_err());
        assert!(check_passcode("123456").is_ok());
        assert!(check_passcode("cccccbhuinjdnlvjdfbrdfuvhvgngirbhdjkvfrcdnlg").is_ok());
        let e = check_passcode("12 3456").unwrap_err();
        assert!(!e.to_string().contains("3456"), "{e}");
        assert!(check_passcode("").is_err());
        assert!(!is_txid(""));
        assert!(!is_txid("abc/def"));
        assert!(is_txid("45f7c92b-f45f-4862-8545-e0f58e78075a"));
    }

    #[test]
    fn envelope_outcomes() {
        let p = "/auth/v2/preauth";
        assert_eq!(
            parse_envelope(p, 200, br#"{"stat":"OK","response":{"a":1}}"#).unwrap(),
            json!({"a": 1})
        );
        let e = parse_envelope(
            p,
            401,
            br#"{"stat":"FAIL","code":40103,"message":"Invalid signature in request credentials"}"#,
        )
        .unwrap_err();
        assert_eq!(
            e,
            DuoError::Rejected {
                code: 40103,
                message: "Invalid signature in request credentials".into()
            }
        );
        assert!(!e.failmode_applies());
        let e = parse_envelope(
            p,
            400,
            br#"{"stat":"FAIL","code":40002,"message":"Invalid request parameters","message_detail":"username"}"#,
        )
        .unwrap_err();
        assert!(
            matches!(&e, DuoError::Rejected { code: 40002, message } if message == "Invalid request parameters username"),
            "{e:?}"
        );
        // Rate limiting is Duo answering: not an outage, so no failmode
        // bypass for someone who floods the API.
        let e = parse_envelope(
            p,
            429,
            br#"{"stat":"FAIL","code":42901,"message":"Too Many Requests"}"#,
        )
        .unwrap_err();
        assert!(!e.failmode_applies());
        for (status, body) in [
            (200, &b"<html>"[..]),
            (200, br#"{"stat":"OK"}"#),
            (200, br#"{"stat":"OK","response":null}"#),
            (200, br#"{"stat":"WHAT","response":{}}"#),
            (200, br#"[1,2]"#),
            (401, br#"{"stat":"FAIL"}"#),
            (401, br#"{"stat":"FAIL","code":"x","message":"m"}"#),
            (400, br#"{"stat":"FAIL","code":40002}"#),
            (302, br#"{"stat":"OK","response":{}}"#),
            (403, b"Forbidden"),
        ] {
            let e = parse_envelope(p, status, body).unwrap_err();
            assert!(
                matches!(e, DuoError::Malformed(_)),
                "{status} {body:?}: {e:?}"
            );
            // Anyone between us and Duo can send this: a refusal, not an
            // outage, whatever the failmode.
            assert!(!e.failmode_applies());
            assert!(e.to_string().starts_with("Duo protocol error: "), "{e}");
        }
        let e = parse_envelope(p, 503, b"{}").unwrap_err();
        assert!(matches!(e, DuoError::Unreachable(_)) && e.failmode_applies());
    }

    #[test]
    fn preauth_answers() {
        let r = json!({"result": "auth", "status_msg": "Account is active", "devices": [
            {"device": "DPFZRS9FB0D46QFTM891", "display_name": "iOS (XXX-XXX-0100)",
             "name": "", "type": "phone", "capabilities": ["auto", "push", "sms", "phone", "mobile_otp", 7, "Bad Cap"]},
            {"device": "DHEKH0JJIYC1LX3AZWO4", "name": "YubiKey", "type": "token"}]});
        let Preauth::Auth(d) = parse_preauth(&r).unwrap() else {
            panic!()
        };
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].device, "DPFZRS9FB0D46QFTM891");
        assert_eq!(d[0].display_name, "iOS (XXX-XXX-0100)");
        assert_eq!(
            d[0].capabilities,
            ["auto", "push", "sms", "phone", "mobile_otp"]
        );
        assert!(d[0].can("push") && !d[1].can("push"));
        assert_eq!(d[1].display_name, "YubiKey");
        assert!(d[1].capabilities.is_empty());

        assert_eq!(
            parse_preauth(&json!({"result": "allow", "status_msg": "Allowing"})).unwrap(),
            Preauth::Allow("Allowing".into())
        );
        assert_eq!(
            parse_preauth(&json!({"result": "deny", "status_msg": "Locked\u{1b}[2J out"})).unwrap(),
            Preauth::Deny("Locked[2J out".into())
        );
        assert_eq!(
            parse_preauth(&json!({"result": "enroll", "status_msg": "Enroll",
                "enroll_portal_url": "https://api-x.duosecurity.com/portal?code=1"}))
            .unwrap(),
            Preauth::Enroll {
                msg: "Enroll".into(),
                url: "https://api-x.duosecurity.com/portal?code=1".into()
            }
        );
        assert_eq!(
            parse_preauth(&json!({"result": "enroll", "enroll_portal_url": "javascript:alert(1)"}))
                .unwrap(),
            Preauth::Enroll {
                msg: String::new(),
                url: String::new()
            }
        );
        for bad in [
            json!({"result": "auth"}),
            json!({"result": "auth", "devices": "DP1"}),
            json!({"result": "auth", "devices": [{"display_name": "x"}]}),
            json!({"result": "auth", "devices": [{"device": ""}]}),
            json!({"result": "auth", "devices": [{"device": "DP1&x=y"}]}),
            json!({"result": "auth", "devices": [{"device": 12}]}),
            json!({"result": "maybe"}),
            json!({"result": "Allow"}),
            json!({"status_msg": "no result"}),
            json!({"unexpected": true}),
        ] {
            assert!(
                matches!(parse_preauth(&bad), Err(DuoError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn auth_answers() {
        assert_eq!(
            parse_txid(&json!({"txid": "45f7c92b-f45f-4862-8545-e0f58e78075a"})).unwrap(),
            "45f7c92b-f45f-4862-8545-e0f58e78075a"
        );
        for bad in [
            json!({}),
            json!({"txid": ""}),
            json!({"txid": 5}),
            json!({"txid": "a/b"}),
            json!({"txid": "x".repeat(101)}),
        ] {
            assert!(
                matches!(parse_txid(&bad), Err(DuoError::Malformed(_))),
                "{bad}"
            );
        }
        let s = parse_status(&json!({"result": "deny", "status": "sent",
            "status_msg": "New SMS passcodes sent."}))
        .unwrap();
        assert_eq!(
            (s.result, s.status.as_str(), s.status_msg.as_str()),
            (AuthResult::Deny, "sent", "New SMS passcodes sent.")
        );
        assert_eq!(
            parse_status(&json!({"result": "allow"})).unwrap().result,
            AuthResult::Allow
        );
        assert_eq!(
            parse_status(&json!({"result": "waiting", "status": "pushed"}))
                .unwrap()
                .result,
            AuthResult::Waiting
        );
        for bad in [
            json!({}),
            json!({"result": "ALLOW"}),
            json!({"result": "allow\n"}),
            json!({"result": true}),
            json!({"status": "allow"}),
        ] {
            assert!(
                matches!(parse_status(&bad), Err(DuoError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(
            parse_time(&json!({"time": 1_700_000_000})).unwrap(),
            1_700_000_000
        );
        assert!(parse_time(&json!({"time": "now"})).is_err());
    }

    #[test]
    fn failmode_classification() {
        assert!(DuoError::Unreachable("x".into()).failmode_applies());
        assert!(!DuoError::Malformed("x".into()).failmode_applies());
        assert!(!DuoError::Tls("x".into()).failmode_applies());
        assert!(
            !DuoError::Rejected {
                code: 40103,
                message: "Invalid signature".into()
            }
            .failmode_applies()
        );
        assert!(!DuoError::Setup("x".into()).failmode_applies());
        assert!(!DuoError::BadInput("x".into()).failmode_applies());
    }

    #[test]
    fn setup_checks_keys_and_host() {
        let cfg = DuoConfig {
            enabled: true,
            ikey: "DIWJ8X6AEYOR5OMC6TQ1".into(),
            skey: "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep".into(),
            api_host: "api-xxxxxxxx.duosecurity.com".into(),
            ..DuoConfig::default()
        };
        assert!(DuoClient::new(&cfg, Trust::test_runner()).is_ok());
        for bad in [
            DuoConfig {
                ikey: "DI:X".into(),
                ..cfg.clone()
            },
            DuoConfig {
                ikey: String::new(),
                ..cfg.clone()
            },
            DuoConfig {
                api_host: "https://api.example".into(),
                ..cfg.clone()
            },
            DuoConfig {
                skey: String::new(),
                skey_file: String::new(),
                ..cfg.clone()
            },
        ] {
            let e = DuoClient::new(&bad, Trust::test_runner())
                .err()
                .expect("refused");
            assert!(matches!(e, DuoError::Setup(_)), "{e:?}");
            assert!(!e.to_string().contains("Zh5eGmUq"), "{e}");
        }
    }
}
