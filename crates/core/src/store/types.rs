//! The values the store interface ([`super::api`]) passes in and out,
//! the same for every backend.

use crate::config::Algorithm;
use crate::factor::FactorId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpKind {
    Totp,
    Hotp,
}

impl OtpKind {
    /// One of [`FactorId::OTP_KINDS`].
    pub fn factor(self) -> FactorId {
        match self {
            OtpKind::Totp => FactorId::Totp,
            OtpKind::Hotp => FactorId::Hotp,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.factor().as_str()
    }
}

/// An enrolled TOTP/HOTP token; `sealed` is the AEAD blob of the secret.
#[derive(Debug, Clone)]
pub struct OtpRecord {
    pub kind: OtpKind,
    pub sealed: Vec<u8>,
    pub algorithm: Algorithm,
    pub digits: u32,
    pub period: u32,
    pub last_step: Option<i64>,
    pub counter: i64,
    pub created_at: i64,
    /// The host-key generation `sealed` was sealed with (docs/rekey.md).
    pub key_gen: i64,
}

/// Everything the login flow needs about one user.
#[derive(Debug, Clone, Default)]
pub struct UserState {
    pub known: bool,
    pub otp: Option<OtpRecord>,
    /// `(id, keyed hash, key generation of the hash, inner generation)`
    /// of unused backup codes; the inner generation is set on a wrapped
    /// hash (`rekey convert`, docs/rekey.md).
    pub unused_backup: Vec<(i64, Vec<u8>, i64, Option<i64>)>,
    /// Backup codes already spent: a user who has used them all is still
    /// enrolled (and must not fall under the `unenrolled` policy).
    pub used_backup: u32,
    /// Verified phone number (E.164) and e-mail address, if enrolled.
    pub sms: Option<String>,
    pub email: Option<String>,
    /// Enrolled for Duo (`2fa-enroll duo`).
    pub duo: bool,
    /// The factor an empty answer at the first prompt starts.
    pub default_factor: Option<String>,
    /// Security questions answered at enrollment.
    pub questions: u32,
    /// Registered WebAuthn credentials.
    pub webauthn: u32,
    /// Local FIDO2 keys (console, through libfido2's tools).
    pub local_keys: u32,
    pub failures: u32,
    pub locked_until: i64,
}

impl UserState {
    /// Something the user can still log in with.
    pub fn has_factor(&self) -> bool {
        self.otp.is_some()
            || !self.unused_backup.is_empty()
            || self.sms.is_some()
            || self.email.is_some()
            || self.duo
            || self.questions > 0
            || self.webauthn > 0
            || self.local_keys > 0
    }

    /// Was ever set up and not removed by an admin: only users for whom this
    /// is false are "unenrolled" in the policy's sense.
    pub fn is_enrolled(&self) -> bool {
        self.has_factor() || self.used_backup > 0
    }
}

/// What `2fa-enroll status` shows: no secrets, no hashes.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct UserStatus {
    pub user: String,
    pub enrolled: bool,
    pub otp: Option<OtpSummary>,
    pub backup_codes_remaining: u32,
    pub backup_codes_used: u32,
    /// Phone number for SMS codes, e-mail address, Duo: not secrets, and
    /// the admin needs them to help a user.
    pub sms: Option<String>,
    pub email: Option<String>,
    pub duo: bool,
    pub default_factor: Option<String>,
    pub questions: u32,
    pub webauthn: u32,
    /// Local FIDO2 keys (console).
    #[serde(default)]
    pub local_keys: u32,
    /// First login attempt seen while unenrolled (grace periods).
    pub first_seen: Option<i64>,
    pub failures: u32,
    pub locked_until: Option<i64>,
    pub last_success: Option<LastSuccess>,
    /// The newest successful logins with a second factor, newest first
    /// (at most [`super::RECENT_LOGINS`]).
    #[serde(default)]
    pub recent_logins: Vec<Login>,
    /// Security keys that answered with a counter that went back.
    #[serde(default)]
    pub key_warnings: Vec<super::KeyWarning>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OtpSummary {
    pub kind: String,
    pub algorithm: String,
    pub digits: u32,
    pub period: Option<u32>,
    pub counter: Option<i64>,
    pub enrolled_at: i64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LastSuccess {
    pub time: i64,
    pub service: String,
    pub rhost: String,
    pub factor: String,
}

/// One successful login with a second factor, kept for the user's page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Login {
    pub time: i64,
    pub service: String,
    pub rhost: String,
    pub factor: String,
    /// The host it was made on (fleet mode; empty on a single host).
    #[serde(default)]
    pub host: String,
}

/// Why a code was sent: to log in, or to prove a new phone/address works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Login,
    Enroll,
}

impl Purpose {
    /// The name stored for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Login => "login",
            Purpose::Enroll => "enroll",
        }
    }
}

/// Whose sent codes an operation sees in a shared (fleet) store. A login
/// code the PAM module sends is valid only on the host that sent it
/// ([`SentScope::HOST`]: the prompt waiting for it is there, and an
/// intercepted SMS must not open every host). A code 2fad sends for its
/// profile page or broker is valid on every 2fad serving the same
/// `webauthn.public_url` ([`SentScope::web`]), since a load balancer may
/// send the typed code to another one. A web scope is named
/// `2fad:<origin>`, which is never a host id (those have no colon), so
/// the two never see each other's codes. A host-local (SQLite) store has
/// one host and ignores the scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentScope(Option<String>);

impl SentScope {
    /// This host's own codes (the PAM module, `2fa-enroll`).
    pub const HOST: SentScope = SentScope(None);

    /// The codes of every 2fad serving `public_url` (its origin: scheme,
    /// host and port, lowercased, without path or trailing slash).
    pub fn web(public_url: &str) -> SentScope {
        let url = public_url.trim().to_ascii_lowercase();
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url.as_str()));
        let origin = rest.split(['/', '?', '#']).next().unwrap_or("");
        SentScope(Some(format!("2fad:{scheme}://{origin}")))
    }

    /// The shared scope's name (`None`: this host's).
    pub fn web_name(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

/// The outcome of checking a typed code against the live sent codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentCheck {
    Accepted,
    Wrong,
    /// Nothing to check against: expired, used up, or never sent.
    NoLiveCode,
}

/// A remembered (user, service, source), as `2fa-enroll devices` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Remembered {
    pub id: i64,
    pub user: String,
    pub service: String,
    /// Shown to the user ("rhost 192.0.2.7", "tty pts/1"); the lookup uses
    /// only the keyed hash.
    pub source: String,
    pub factor: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// One stored security question; the answer only as an argon2id hash.
#[derive(Debug, Clone)]
pub struct StoredQuestion {
    pub idx: i64,
    pub question: String,
    pub answer_hash: String,
    /// The host-key generation whose pepper `answer_hash` used; for a
    /// wrapped hash, the generation of the wrap.
    pub key_gen: i64,
    /// Set on a wrapped hash: the generation whose pepper made the
    /// argon2 output inside the wrap.
    pub inner_gen: Option<i64>,
}

/// One backup code row as `rekey convert` reads it (used or not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRow {
    pub id: i64,
    pub hash: Vec<u8>,
    pub key_gen: i64,
    pub inner_gen: Option<i64>,
}

/// Rows per host-key generation (`2fa-enroll rekey status`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GenCount {
    /// `otp_tokens`, `backup_codes` (unused only) or `questions`.
    pub table: String,
    pub key_gen: i64,
    /// Set for wrapped rows: the generation inside the wrap.
    pub inner_gen: Option<i64>,
    pub rows: i64,
}

/// A user with keyed one-way rows (unused backup codes, security
/// answers) of a generation below the current one (`rekey finish`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OldGenItems {
    pub user: String,
    pub backup_codes: i64,
    pub questions: i64,
    /// Sealed OTP secrets not converted yet.
    pub otp: i64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredCredential {
    pub name: String,
    /// JSON of the verifier's credential type.
    pub credential: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A security key that answered with a signature counter not above the
/// stored one: the assertion was refused, and this stays on record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyWarning {
    /// The key's name.
    pub key: String,
    pub at: i64,
    /// Counter on record, and the one the key presented.
    pub stored: u32,
    pub presented: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalKey {
    pub name: String,
    pub credential_id: Vec<u8>,
    /// Uncompressed SEC1 P-256 point.
    pub public_key: Vec<u8>,
    pub rp_id: String,
    pub counter: u32,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A sealed OTP secret, for proving which key the store was made with.
#[derive(Debug, Clone)]
pub struct SealedSecret {
    pub user: String,
    pub sealed: Vec<u8>,
    pub created_at: i64,
}

/// A pending WebAuthn ceremony kept in the shared store (fleet mode), so
/// that any 2fad of the fleet can serve its link and any can read its
/// result. Keyed by a hash of the link's token (never the token).
/// SQLite does not keep these: one host's 2fad keeps them in memory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredCeremony {
    pub user: String,
    /// The host whose 2fad started it (the backend's host on insert).
    pub host: String,
    /// The uid that asked for it (for the log).
    pub by_uid: u32,
    /// `login`, `register` or `proof`; logins have their own quota.
    pub kind: String,
    pub service: String,
    pub rhost: String,
    /// Opaque to the store: 2fad's server-side ceremony state (JSON).
    pub state: String,
    /// The page's options (JSON).
    pub options: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// Claimed by a 2fad that is verifying the browser's answer.
    pub busy: bool,
    /// None while pending; then whether it was approved, and the key
    /// name (approved) or why not.
    pub result: Option<(bool, String)>,
}

/// A profile-page link kept in the shared store (fleet mode), keyed by
/// the SHA-256 of its token (never the token). SQLite does not keep
/// these: one host's 2fad keeps them in memory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredProfileLink {
    pub user: String,
    /// The uid that asked for it (0: root acting for `user`).
    pub by_uid: u32,
    pub expires_at: i64,
    /// The hash of the session id it opened, once opened.
    pub session_hash: Option<Vec<u8>>,
}

/// A profile-page session kept in the shared store (fleet mode), keyed
/// by the SHA-256 of its id. Everything secret is in `state`, sealed by
/// 2fad with the fleet key: opaque to the store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredProfileSession {
    /// The hash of the link that opened it.
    pub link_hash: Vec<u8>,
    pub user: String,
    pub by_uid: u32,
    /// The address that opened it (the session is bound to it).
    pub peer: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// Set when it was ended for safety (`ended`): the page says so
    /// until an hour after its natural end; its state is wiped.
    pub ended: Option<String>,
    /// The sealed session state.
    pub state: Vec<u8>,
}

/// What [`super::api::TxOps::insert_profile_link`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileQuota {
    Added,
    /// The user has the most open links and sessions allowed.
    UserFull,
    /// The fleet has the most open links and sessions allowed.
    AllFull,
}

/// What [`super::api::TxOps::open_profile_link`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileOpen {
    /// Claimed for the new session: whose it is.
    Opened { user: String, by_uid: u32 },
    /// Opened before: the link is gone and the session it opened ended.
    Reused,
    /// Unknown or expired.
    Expired,
}

#[cfg(test)]
mod scope_tests {
    use super::SentScope;

    #[test]
    fn a_web_scope_is_the_origin_and_never_a_host_id() {
        let a = SentScope::web("https://2FA.example.com/profile/");
        let b = SentScope::web("https://2fa.example.com");
        assert_eq!(a, b);
        assert_eq!(a.web_name(), Some("2fad:https://2fa.example.com"));
        assert_ne!(a, SentScope::web("https://2fa.example.com:8443"));
        assert_ne!(a, SentScope::HOST);
        assert!(a.web_name().unwrap().contains(':'));
        assert_eq!(SentScope::HOST.web_name(), None);
    }
}
