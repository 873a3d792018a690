//! What the login flow needs from the network factors, as a trait.
//!
//! The PAM module always uses [`Live`], which calls the real SMS/e-mail
//! senders and the real Duo client; the flow's unit tests substitute a
//! scripted implementation. Everything [`Live`] opens (HTTP clients and
//! their connections; no thread) is dropped with it at the end of the PAM
//! call.

use crate::duo::{AuthResult, AuthStatus, DuoClient, DuoError, Preauth};
use p2fa_core::config::Config;
use p2fa_core::factor::FactorId;
use p2fa_core::secure_fs::Trust;
use std::time::Duration;

/// A message could not be sent. `user` is safe to show; `detail` is for
/// the log and never holds the code or a credential.
#[derive(Debug, Clone)]
pub struct SendFailure {
    pub user: String,
    pub detail: String,
}

/// Why Duo could not be asked; the flow treats each kind differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuoFailKind {
    /// No answer at all: connection refused or reset, timeout, HTTP 5xx.
    /// The only kind the admin's `failmode` may apply to (at preauth, for
    /// a caller whose real uid is 0).
    Outage,
    /// A certificate or TLS protocol error: a refusal, never an outage.
    Tls,
    /// An answer that is not Duo's (invalid, truncated or wrongly shaped
    /// JSON): a refusal, never an outage.
    Protocol,
    /// Duo's well-formed refusal (bad keys, bad request, rate limit), a
    /// local setup error or input that cannot be sent.
    Refused,
}

/// Duo could not be asked: the kind, and a detail for the log (never a
/// secret or a passcode).
#[derive(Debug, Clone)]
pub struct DuoFailure {
    pub detail: String,
    pub kind: DuoFailKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuoDevice {
    pub id: String,
    pub name: String,
    pub push: bool,
    pub phone: bool,
    pub sms: bool,
}

/// Duo's `preauth` verdict for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DuoPreauth {
    Auth(Vec<DuoDevice>),
    /// Bypass: Duo lets this user in without a second factor.
    Allow(String),
    Deny(String),
    /// Not enrolled in Duo; the text includes the enrollment URL if any.
    Enroll(String),
}

/// How an authentication attempt stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DuoAnswer {
    Allow,
    /// Refused; the text is Duo's status message (e.g. "Login request denied").
    Deny(String),
    Waiting,
}

pub trait Network {
    fn send_code(
        &mut self,
        cfg: &Config,
        channel: FactorId,
        user: &str,
        address: &str,
        code: &str,
    ) -> Result<(), SendFailure>;
    fn duo_preauth(&mut self, cfg: &Config, username: &str) -> Result<DuoPreauth, DuoFailure>;
    /// Starts a push or call (returns its transaction id) or an SMS (empty
    /// id): `how` is [`FactorId::DuoPush`], `DuoPhone` or `DuoSms` (Duo
    /// texts passcodes to the device; they are then typed as a passcode).
    fn duo_start(
        &mut self,
        cfg: &Config,
        username: &str,
        how: FactorId,
        device: &str,
        push_info: &[(String, String)],
    ) -> Result<String, DuoFailure>;
    /// One long-poll of a started push or call, waiting at most `wait`.
    fn duo_status(
        &mut self,
        cfg: &Config,
        txid: &str,
        wait: Duration,
    ) -> Result<DuoAnswer, DuoFailure>;
    fn duo_passcode(
        &mut self,
        cfg: &Config,
        username: &str,
        passcode: &str,
    ) -> Result<DuoAnswer, DuoFailure>;
}

/// The real network factors: the SMS/e-mail senders and the Duo client.
/// The Duo client (and its HTTP connections) is made on first use and
/// dropped with this value at the end of the PAM call.
pub struct Live {
    duo: Option<DuoClient>,
    /// The login's source address, sent to Duo as `ipaddr`.
    ipaddr: Option<std::net::IpAddr>,
    /// Whose secret and CA files to believe ([`Trust::ROOT`] outside tests).
    trust: Trust,
}

impl Live {
    /// Outside a login (`2fa-enroll`): no source address for Duo.
    pub fn new(trust: Trust) -> Live {
        Live {
            duo: None,
            ipaddr: None,
            trust,
        }
    }

    /// For one login from `rhost` (PAM_RHOST): Duo is told the source
    /// address when `rhost` is an IP address (not a host name).
    pub fn for_rhost(rhost: &str, trust: Trust) -> Live {
        Live {
            duo: None,
            ipaddr: rhost.parse().ok(),
            trust,
        }
    }

    fn duo(&mut self, cfg: &Config) -> Result<&DuoClient, DuoFailure> {
        match &mut self.duo {
            Some(client) => Ok(client),
            empty => {
                let client = DuoClient::new(&cfg.duo, self.trust).map_err(failure)?;
                Ok(empty.insert(client.with_ipaddr(self.ipaddr)))
            }
        }
    }
}

fn failure(e: DuoError) -> DuoFailure {
    let kind = match e {
        DuoError::Unreachable(_) => DuoFailKind::Outage,
        DuoError::Tls(_) => DuoFailKind::Tls,
        DuoError::Malformed(_) => DuoFailKind::Protocol,
        DuoError::Rejected { .. } | DuoError::Setup(_) | DuoError::BadInput(_) => {
            DuoFailKind::Refused
        }
    };
    debug_assert_eq!(kind == DuoFailKind::Outage, e.failmode_applies());
    DuoFailure {
        kind,
        detail: e.to_string(),
    }
}

fn answer(s: AuthStatus) -> DuoAnswer {
    match s.result {
        AuthResult::Allow => DuoAnswer::Allow,
        AuthResult::Waiting => DuoAnswer::Waiting,
        AuthResult::Deny => DuoAnswer::Deny(if s.status_msg.is_empty() {
            s.status
        } else {
            s.status_msg
        }),
    }
}

impl Network for Live {
    fn send_code(
        &mut self,
        cfg: &Config,
        channel: FactorId,
        user: &str,
        address: &str,
        code: &str,
    ) -> Result<(), SendFailure> {
        let issuer = cfg.issuer_name();
        let sent = match channel {
            FactorId::Sms => crate::sms::send(&cfg.sms, self.trust, &issuer, user, address, code),
            FactorId::Email => {
                crate::email::send(&cfg.email, self.trust, &issuer, user, address, code)
            }
            other => {
                return Err(SendFailure {
                    user: "Codes cannot be sent that way.".into(),
                    detail: format!("{other} is not a delivery channel"),
                });
            }
        };
        sent.map_err(|e| SendFailure {
            user: e.user_message(),
            detail: e.detail().to_string(),
        })
    }

    fn duo_preauth(&mut self, cfg: &Config, username: &str) -> Result<DuoPreauth, DuoFailure> {
        Ok(match self.duo(cfg)?.preauth(username).map_err(failure)? {
            Preauth::Auth(devices) => DuoPreauth::Auth(
                devices
                    .into_iter()
                    .map(|d| {
                        let has = |c: &str| d.capabilities.iter().any(|x| x == c);
                        DuoDevice {
                            push: has("push"),
                            phone: has("phone"),
                            sms: has("sms"),
                            name: if d.display_name.is_empty() {
                                d.device.clone()
                            } else {
                                d.display_name.clone()
                            },
                            id: d.device,
                        }
                    })
                    .collect(),
            ),
            Preauth::Allow(m) => DuoPreauth::Allow(m),
            Preauth::Deny(m) => DuoPreauth::Deny(m),
            Preauth::Enroll { msg, url } => DuoPreauth::Enroll(if url.is_empty() {
                msg
            } else {
                format!("{msg} {url}")
            }),
        })
    }

    fn duo_start(
        &mut self,
        cfg: &Config,
        username: &str,
        how: FactorId,
        device: &str,
        push_info: &[(String, String)],
    ) -> Result<String, DuoFailure> {
        let duo = self.duo(cfg)?;
        match how {
            FactorId::DuoPush => duo.auth_push(username, device, push_info),
            FactorId::DuoPhone => duo.auth_phone(username, device),
            FactorId::DuoSms => duo.auth_sms(username, device).map(|_| String::new()),
            other => {
                return Err(DuoFailure {
                    detail: format!("{other} is not a way to start Duo"),
                    kind: DuoFailKind::Refused,
                });
            }
        }
        .map_err(failure)
    }

    fn duo_status(
        &mut self,
        cfg: &Config,
        txid: &str,
        wait: Duration,
    ) -> Result<DuoAnswer, DuoFailure> {
        self.duo(cfg)?
            .auth_status(txid, wait)
            .map(answer)
            .map_err(failure)
    }

    fn duo_passcode(
        &mut self,
        cfg: &Config,
        username: &str,
        passcode: &str,
    ) -> Result<DuoAnswer, DuoFailure> {
        self.duo(cfg)?
            .auth_passcode(username, passcode)
            .map(answer)
            .map_err(failure)
    }
}
