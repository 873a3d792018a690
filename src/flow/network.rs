//! What the login flow needs from the network factors, as a trait.
//!
//! The PAM module always uses [`Live`], which calls the real SMS/e-mail
//! senders and the real Duo client; the flow's unit tests substitute a
//! scripted implementation. Everything [`Live`] opens (HTTP clients and
//! their runtime threads) is dropped with it at the end of the PAM call.

use crate::config::Config;
use crate::store::Channel;
use std::time::Duration;

/// A message could not be sent. `user` is safe to show; `detail` is for
/// the log and never holds the code or a credential.
#[derive(Debug, Clone)]
pub struct SendFailure {
    pub user: String,
    pub detail: String,
}

/// Duo could not be asked. `failmode` is true when Duo was unreachable,
/// slow, failing or talking nonsense (the admin's `failmode` applies), and
/// false when Duo answered with a well-formed refusal (bad keys, bad request).
#[derive(Debug, Clone)]
pub struct DuoFailure {
    pub detail: String,
    pub failmode: bool,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuoStart {
    Push,
    Phone,
    /// Duo texts passcodes to the device; they are then typed as a passcode.
    Sms,
}

pub trait Network {
    fn send_code(
        &mut self,
        cfg: &Config,
        channel: Channel,
        user: &str,
        address: &str,
        code: &str,
    ) -> Result<(), SendFailure>;
    fn duo_preauth(&mut self, cfg: &Config, username: &str) -> Result<DuoPreauth, DuoFailure>;
    /// Starts a push or call (returns its transaction id) or an SMS (empty id).
    fn duo_start(
        &mut self,
        cfg: &Config,
        username: &str,
        how: DuoStart,
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

/// The real network factors (wired to the SMS/e-mail senders and the Duo
/// client). Holds nothing between calls yet.
#[derive(Default)]
pub struct Live {}

impl Network for Live {
    fn send_code(
        &mut self,
        _cfg: &Config,
        _channel: Channel,
        _user: &str,
        _address: &str,
        _code: &str,
    ) -> Result<(), SendFailure> {
        Err(SendFailure {
            user: "Sending codes is not available.".into(),
            detail: "not wired".into(),
        })
    }
    fn duo_preauth(&mut self, _cfg: &Config, _username: &str) -> Result<DuoPreauth, DuoFailure> {
        Err(DuoFailure {
            detail: "not wired".into(),
            failmode: false,
        })
    }
    fn duo_start(
        &mut self,
        _cfg: &Config,
        _username: &str,
        _how: DuoStart,
        _device: &str,
        _push_info: &[(String, String)],
    ) -> Result<String, DuoFailure> {
        Err(DuoFailure {
            detail: "not wired".into(),
            failmode: false,
        })
    }
    fn duo_status(
        &mut self,
        _cfg: &Config,
        _txid: &str,
        _wait: Duration,
    ) -> Result<DuoAnswer, DuoFailure> {
        Err(DuoFailure {
            detail: "not wired".into(),
            failmode: false,
        })
    }
    fn duo_passcode(
        &mut self,
        _cfg: &Config,
        _username: &str,
        _passcode: &str,
    ) -> Result<DuoAnswer, DuoFailure> {
        Err(DuoFailure {
            detail: "not wired".into(),
            failmode: false,
        })
    }
}
