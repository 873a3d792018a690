//! Settings of the network factors: SMS and e-mail one-time codes, and Duo.
//!
//! Every network call has a bounded connect and total timeout. Secrets (the
//! Twilio auth token, the SMTP password, the Duo secret key) may be written
//! inline or kept in a separate root-only file (`*_file`); a config file that
//! holds an inline secret must not be readable by group or others (checked in
//! [`super::Config::load`]), as duo_unix insists for its own config.

use super::ConfigError;
use crate::factor::FactorId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// How a one-time code sent by SMS or e-mail behaves. Both channels embed
/// these keys directly in their section (`[sms] code_ttl_seconds = 300`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeRules {
    pub digits: u32,
    pub ttl_seconds: i64,
    pub max_attempts: u32,
    pub max_sends_per_hour: u32,
    pub resend_after_seconds: i64,
}

/// Timeouts and trust for one HTTPS or SMTP peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetRules {
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
    /// Extra PEM CA certificate(s) to trust besides the system's roots.
    pub ca_file: Option<PathBuf>,
}

/// Which SMS gateway sends the codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsGateway {
    /// Twilio's Messages API, or anything that speaks it.
    Twilio,
    /// A generic HTTPS request built from a template.
    Webhook,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    /// Offer SMS codes (to users who enrolled a phone number).
    pub enabled: bool,
    pub gateway: SmsGateway,
    /// Text of the message; `{code}`, `{user}` and `{issuer}` are replaced.
    pub message: String,
    pub digits: u32,
    pub code_ttl_seconds: i64,
    pub max_attempts: u32,
    pub max_sends_per_hour: u32,
    pub resend_after_seconds: i64,
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
    /// Extra CA certificate (PEM) for the gateway; empty: system roots only.
    pub ca_file: String,
    pub twilio: TwilioConfig,
    pub webhook: WebhookConfig,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            enabled: false,
            gateway: SmsGateway::Twilio,
            message: "Your {issuer} login code is {code}. It expires in 5 minutes.".into(),
            digits: 6,
            code_ttl_seconds: 300,
            max_attempts: 3,
            max_sends_per_hour: 5,
            resend_after_seconds: 30,
            connect_timeout_ms: 3000,
            timeout_ms: 10_000,
            ca_file: String::new(),
            twilio: TwilioConfig::default(),
            webhook: WebhookConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwilioConfig {
    /// API base URL; point it at a stand-in for tests.
    pub base_url: String,
    pub account_sid: String,
    /// Inline auth token (config file must then be root-only) ...
    pub auth_token: String,
    /// ... or a root-only file holding it.
    pub auth_token_file: String,
    /// Sender: a phone number in E.164 form, or a Messaging Service SID (MG...).
    pub from: String,
}

impl Default for TwilioConfig {
    fn default() -> Self {
        TwilioConfig {
            base_url: "https://api.twilio.com".into(),
            account_sid: String::new(),
            auth_token: String::new(),
            auth_token_file: String::new(),
            from: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    pub url: String,
    /// POST or PUT (GET would put the code in access logs).
    pub method: String,
    /// Extra request headers, e.g. an API key.
    pub headers: BTreeMap<String, String>,
    pub content_type: String,
    /// Request body; `{phone}`, `{code}`, `{user}` and `{message}` are
    /// replaced, JSON-escaped when the content type is JSON.
    pub body: String,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: String::new(),
            method: "POST".into(),
            headers: BTreeMap::new(),
            content_type: "application/json".into(),
            body: r#"{"to": "{phone}", "message": "{message}"}"#.into(),
        }
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required, not opportunistic).
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No encryption: only for a relay on localhost.
    None,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// Offer e-mail codes (to users who enrolled an address).
    pub enabled: bool,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub tls: SmtpTls,
    /// SMTP AUTH user; empty means no authentication.
    pub username: String,
    pub password: String,
    pub password_file: String,
    /// Sender, e.g. `"Login <2fa@example.com>"`.
    pub from: String,
    /// Subject and body; `{code}`, `{user}` and `{issuer}` are replaced.
    pub subject: String,
    pub body: String,
    pub digits: u32,
    pub code_ttl_seconds: i64,
    pub max_attempts: u32,
    pub max_sends_per_hour: u32,
    pub resend_after_seconds: i64,
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
    pub ca_file: String,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            enabled: false,
            smtp_host: "localhost".into(),
            smtp_port: 587,
            tls: SmtpTls::Starttls,
            username: String::new(),
            password: String::new(),
            password_file: String::new(),
            from: String::new(),
            subject: "Your {issuer} login code".into(),
            body: "Your login code for {user} on {issuer} is {code}.\nIt expires in 5 minutes. If you did not try to log in, tell your administrator.\n".into(),
            digits: 6,
            code_ttl_seconds: 300,
            max_attempts: 3,
            max_sends_per_hour: 5,
            resend_after_seconds: 30,
            connect_timeout_ms: 3000,
            timeout_ms: 10_000,
            ca_file: String::new(),
        }
    }
}

/// What to do when Duo cannot be reached, as in duo_unix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Deny the login (default).
    Secure,
    /// Let the user in without Duo, logged loudly.
    Safe,
}

/// Which users Duo is offered to (`duo.users`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DuoUsers {
    /// Only users enrolled with `2fa-enroll duo` on this host (default).
    #[default]
    Enrolled,
    /// Every user: Duo's preauth decides whether Duo knows them.
    All,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DuoConfig {
    /// Offer Duo to users enrolled with `2fa-enroll duo` (and, with
    /// `users = "all"`, to every user).
    pub enabled: bool,
    /// Who Duo is offered to: `enrolled` (a `2fa-enroll duo` row) or `all`.
    pub users: DuoUsers,
    /// Integration key (DI...).
    pub ikey: String,
    /// Secret key, inline (config must be root-only) or in `skey_file`.
    pub skey: String,
    pub skey_file: String,
    /// API hostname, `api-XXXXXXXX.duosecurity.com` (`host:port` allowed).
    pub api_host: String,
    pub failmode: FailMode,
    /// Send a push at once when push is the user's default factor.
    pub autopush: bool,
    /// Text shown in Duo Mobile with the push (`pushinfo`); `{service}`,
    /// `{rhost}` and `{host}` are replaced.
    pub push_info: String,
    /// How long to wait for the user to answer a push or phone call.
    pub push_timeout_seconds: u64,
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
    pub ca_file: String,
    /// Login name -> Duo username, for users whose names differ.
    pub usernames: BTreeMap<String, String>,
}

impl Default for DuoConfig {
    fn default() -> Self {
        DuoConfig {
            enabled: false,
            users: DuoUsers::Enrolled,
            ikey: String::new(),
            skey: String::new(),
            skey_file: String::new(),
            api_host: String::new(),
            failmode: FailMode::Secure,
            autopush: false,
            push_info: "Login to {host} ({service}) from {rhost}".into(),
            push_timeout_seconds: 60,
            connect_timeout_ms: 3000,
            timeout_ms: 10_000,
            ca_file: String::new(),
            usernames: BTreeMap::new(),
        }
    }
}

fn ca(path: &str) -> Option<PathBuf> {
    (!path.is_empty()).then(|| PathBuf::from(path))
}

impl SmsConfig {
    pub fn rules(&self) -> CodeRules {
        CodeRules {
            digits: self.digits,
            ttl_seconds: self.code_ttl_seconds,
            max_attempts: self.max_attempts,
            max_sends_per_hour: self.max_sends_per_hour,
            resend_after_seconds: self.resend_after_seconds,
        }
    }
    pub fn net(&self) -> NetRules {
        NetRules {
            connect_timeout_ms: self.connect_timeout_ms,
            timeout_ms: self.timeout_ms,
            ca_file: ca(&self.ca_file),
        }
    }
}

impl EmailConfig {
    pub fn rules(&self) -> CodeRules {
        CodeRules {
            digits: self.digits,
            ttl_seconds: self.code_ttl_seconds,
            max_attempts: self.max_attempts,
            max_sends_per_hour: self.max_sends_per_hour,
            resend_after_seconds: self.resend_after_seconds,
        }
    }
    pub fn net(&self) -> NetRules {
        NetRules {
            connect_timeout_ms: self.connect_timeout_ms,
            timeout_ms: self.timeout_ms,
            ca_file: ca(&self.ca_file),
        }
    }
}

impl super::Config {
    /// The code rules of a delivery channel ([`FactorId::CHANNELS`]);
    /// `None` for any other factor.
    pub fn code_rules(&self, channel: FactorId) -> Option<CodeRules> {
        match channel {
            FactorId::Sms => Some(self.sms.rules()),
            FactorId::Email => Some(self.email.rules()),
            _ => None,
        }
    }
}

impl DuoConfig {
    pub fn net(&self) -> NetRules {
        NetRules {
            connect_timeout_ms: self.connect_timeout_ms,
            timeout_ms: self.timeout_ms,
            ca_file: ca(&self.ca_file),
        }
    }

    /// The Duo username for a login name.
    pub fn username<'a>(&'a self, user: &'a str) -> &'a str {
        self.usernames.get(user).map(String::as_str).unwrap_or(user)
    }
}

/// True for a loopback address written literally (127.0.0.0/8, `::1`,
/// also in brackets) and for the name `localhost`. Other names are not
/// resolved: a name that resolves to 127.0.0.1 today (through DNS, which
/// an attacker on the path may answer) is not proof that the traffic
/// stays on this machine.
fn is_loopback_host(host: &str) -> bool {
    let h = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Why a gateway URL would carry credentials or a code in clear: `http://`
/// to a host that is not a loopback address. `None` for `https://` and for
/// `http://` to this machine (a local relay). A URL that does not parse is
/// left to the shape check.
fn plain_http_refusal(key: &str, url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    if u.scheme() != "http" {
        return None;
    }
    // The parsed host: IPv4 in canonical form (so `127.1` is 127.0.0.1),
    // IPv6 in brackets, names lower-cased.
    let host = u.host_str().unwrap_or("");
    (!is_loopback_host(host)).then(|| {
        format!(
            "{key} is a plain http:// URL to {:?}: the credentials and the code would cross \
             the network in clear; use https:// (http:// is allowed only to a loopback \
             address: 127.0.0.1, ::1 or localhost)",
            crate::audit::printable(host, 100)
        )
    })
}

impl SmsConfig {
    /// Why the selected gateway's URL is refused (see
    /// [`plain_http_refusal`]); checked when the config is validated and
    /// again before every send.
    pub fn plain_http_refusal(&self) -> Option<String> {
        match self.gateway {
            SmsGateway::Twilio => plain_http_refusal("sms.twilio.base_url", &self.twilio.base_url),
            SmsGateway::Webhook => plain_http_refusal("sms.webhook.url", &self.webhook.url),
        }
    }
}

impl EmailConfig {
    /// Why this config would put something in clear on the network:
    /// `tls = "none"` to a relay that is not on this machine (the code,
    /// the whole message), or SMTP AUTH without TLS (the password), even to
    /// a local relay. Checked when the config is validated and again
    /// before every send.
    pub fn clear_text_refusal(&self) -> Option<String> {
        if self.tls != SmtpTls::None {
            return None;
        }
        if !is_loopback_host(&self.smtp_host) {
            return Some(format!(
                "email.tls = \"none\" sends the code in clear, so it is allowed only to a relay \
                 on a loopback address (127.0.0.1, ::1 or localhost), not to {:?}; use tls = \
                 \"starttls\" or \"tls\"",
                crate::audit::printable(&self.smtp_host, 100)
            ));
        }
        if !self.username.is_empty() {
            return Some(
                "email.username is set with email.tls = \"none\": SMTP AUTH would send the \
                 password in clear; use tls = \"starttls\" or \"tls\", or leave username \
                 empty for a local relay that needs no login"
                    .into(),
            );
        }
        None
    }
}

/// Largest secret file read (a token or password is one short line).
const SECRET_FILE_MAX: u64 = 64 * 1024;

/// Reads a secret that is given inline or in a file (first line, trimmed).
pub fn secret(
    inline: &str,
    file: &str,
    what: &str,
    trust: crate::secure_fs::Trust,
) -> Result<String, ConfigError> {
    if !inline.is_empty() {
        return Ok(inline.to_string());
    }
    if file.is_empty() {
        return Err(ConfigError(format!("{what} is not set")));
    }
    // Root-owned 0600 in root-owned directories, regular, bounded: read
    // like the key file (a FIFO here must not hang the login).
    let bytes = crate::secure_fs::read_trusted(
        std::path::Path::new(file),
        what,
        crate::secure_fs::NO_GROUP_OR_WORLD,
        SECRET_FILE_MAX,
        trust,
    )
    .map_err(|e| ConfigError(format!("cannot read {what}: {e}")))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ConfigError(format!("{file} ({what}) is not UTF-8 text")))?;
    let line = text.lines().next().unwrap_or("").trim().to_string();
    if line.is_empty() {
        return Err(ConfigError(format!("{file} ({what}) is empty")));
    }
    Ok(line)
}

fn check_rules(name: &str, r: CodeRules) -> Result<(), ConfigError> {
    let bad = |k: &str, v: i64, lo: i64, hi: i64| {
        if v < lo || v > hi {
            Err(ConfigError(format!(
                "{name}.{k} = {v} is out of range {lo}..={hi}"
            )))
        } else {
            Ok(())
        }
    };
    bad("digits", r.digits.into(), 6, 8)?;
    bad("code_ttl_seconds", r.ttl_seconds, 30, 3600)?;
    bad("max_attempts", r.max_attempts.into(), 1, 10)?;
    bad("max_sends_per_hour", r.max_sends_per_hour.into(), 1, 100)?;
    bad("resend_after_seconds", r.resend_after_seconds, 0, 3600)
}

fn check_net(name: &str, n: &NetRules) -> Result<(), ConfigError> {
    if !(100..=60_000).contains(&n.connect_timeout_ms) {
        return Err(ConfigError(format!(
            "{name}.connect_timeout_ms must be 100..=60000"
        )));
    }
    if !(100..=120_000).contains(&n.timeout_ms) {
        return Err(ConfigError(format!(
            "{name}.timeout_ms must be 100..=120000"
        )));
    }
    if let Some(p) = &n.ca_file
        && !p.is_absolute()
    {
        return Err(ConfigError(format!(
            "{name}.ca_file must be an absolute path"
        )));
    }
    Ok(())
}

fn required(name: &str, v: &str) -> Result<(), ConfigError> {
    if v.trim().is_empty() {
        Err(ConfigError(format!(
            "{name} must be set when the factor is enabled"
        )))
    } else {
        Ok(())
    }
}

fn is_http_url(u: &str) -> bool {
    u.starts_with("https://") || u.starts_with("http://")
}

impl super::Config {
    /// Checks the network sections; called from `validate`.
    pub(super) fn validate_network(&self) -> Result<(), ConfigError> {
        check_rules("sms", self.sms.rules())?;
        check_rules("email", self.email.rules())?;
        check_net("sms", &self.sms.net())?;
        check_net("email", &self.email.net())?;
        check_net("duo", &self.duo.net())?;
        if self.sms.message.is_empty() || !self.sms.message.contains("{code}") {
            return Err(ConfigError("sms.message must contain {code}".into()));
        }
        if !self.email.body.contains("{code}") {
            return Err(ConfigError("email.body must contain {code}".into()));
        }
        if self.sms.enabled {
            match self.sms.gateway {
                SmsGateway::Twilio => {
                    let t = &self.sms.twilio;
                    if !is_http_url(&t.base_url) {
                        return Err(ConfigError(
                            "sms.twilio.base_url must be an http(s) URL".into(),
                        ));
                    }
                    if let Some(why) = self.sms.plain_http_refusal() {
                        return Err(ConfigError(why));
                    }
                    required("sms.twilio.account_sid", &t.account_sid)?;
                    required("sms.twilio.from", &t.from)?;
                    if t.auth_token.is_empty() {
                        required(
                            "sms.twilio.auth_token or auth_token_file",
                            &t.auth_token_file,
                        )?;
                    }
                }
                SmsGateway::Webhook => {
                    let w = &self.sms.webhook;
                    if !is_http_url(&w.url) {
                        return Err(ConfigError("sms.webhook.url must be an http(s) URL".into()));
                    }
                    if let Some(why) = self.sms.plain_http_refusal() {
                        return Err(ConfigError(why));
                    }
                    if !matches!(w.method.as_str(), "POST" | "PUT") {
                        return Err(ConfigError("sms.webhook.method must be POST or PUT".into()));
                    }
                    if !w.body.contains("{code}") && !w.body.contains("{message}") {
                        return Err(ConfigError(
                            "sms.webhook.body must contain {code} or {message}".into(),
                        ));
                    }
                }
            }
        }
        if self.email.enabled {
            required("email.smtp_host", &self.email.smtp_host)?;
            required("email.from", &self.email.from)?;
            if let Some(why) = self.email.clear_text_refusal() {
                return Err(ConfigError(why));
            }
            if !self.email.username.is_empty() && self.email.password.is_empty() {
                required("email.password or password_file", &self.email.password_file)?;
            }
        }
        if self.duo.enabled {
            required("duo.ikey", &self.duo.ikey)?;
            required("duo.api_host", &self.duo.api_host)?;
            if self.duo.skey.is_empty() {
                required("duo.skey or skey_file", &self.duo.skey_file)?;
            }
            if self.duo.api_host.contains('/') {
                return Err(ConfigError(
                    "duo.api_host is a host name (host[:port]), not a URL".into(),
                ));
            }
            if !(5..=300).contains(&self.duo.push_timeout_seconds) {
                return Err(ConfigError(
                    "duo.push_timeout_seconds must be 5..=300".into(),
                ));
            }
        }
        Ok(())
    }

    /// True when the file holds a secret inline and so must be root-only.
    pub(super) fn has_inline_secret(&self) -> bool {
        !self.sms.twilio.auth_token.is_empty()
            || !self.email.password.is_empty()
            || !self.duo.skey.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_means_literal_loopback_or_localhost() {
        for h in [
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "[::1]",
            "localhost",
            "LocalHost",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "",
            "192.0.2.1",
            "::ffff:127.0.0.1x",
            "[2001:db8::1]",
            "localhost.",
            "localhost.example.com",
            "127.0.0.1.nip.io",
            "mail.example.com",
            "0.0.0.0",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "https://api.twilio.com",
            "https://192.0.2.1/send",
            "http://127.0.0.1:8080/hook",
            "http://127.1/hook",
            "http://[::1]:99/",
            "http://localhost/x",
            "http://LOCALHOST:1",
        ] {
            assert_eq!(plain_http_refusal("k", ok), None, "{ok}");
        }
        for bad in [
            "http://sms.example.com/send",
            "http://192.0.2.1:8080",
            "http://[2001:db8::1]/",
            "http://127.0.0.1.nip.io/",
            "HTTP://gw.example.com/",
            "http://user:pw@gw.example.com/",
        ] {
            let why = plain_http_refusal("sms.webhook.url", bad).expect(bad);
            assert!(
                why.starts_with("sms.webhook.url is a plain http:// URL"),
                "{why}"
            );
            assert!(!why.contains("pw@"), "{why}");
        }
    }

    #[test]
    fn smtp_in_clear_only_to_a_local_relay_without_auth() {
        let mut e = EmailConfig {
            tls: SmtpTls::None,
            smtp_host: "mail.example.com".into(),
            ..EmailConfig::default()
        };
        let why = e.clear_text_refusal().unwrap();
        assert!(why.contains("email.tls = \"none\""), "{why}");
        e.smtp_host = "127.0.0.1".into();
        assert_eq!(e.clear_text_refusal(), None);
        e.username = "mailer".into();
        let why = e.clear_text_refusal().unwrap();
        assert!(why.contains("email.username"), "{why}");
        e.tls = SmtpTls::Starttls;
        e.smtp_host = "mail.example.com".into();
        assert_eq!(e.clear_text_refusal(), None);
    }
}
