//! Codes sent to a phone number or e-mail address outside a login:
//! confirming a new one before it becomes a factor (a code is sent to it
//! and must be typed back, so a typo never becomes a factor that silently
//! locks someone out), and proving to 2fad that a user holds the one they
//! have ([`Purpose::Login`]). Shared by `2fa-enroll sms|email` (root, at
//! the terminal) and 2fad (the profile page). These codes share the
//! store's hourly send limit with login codes, and only a keyed hash of a
//! code is stored.

use crate::delivery::mask;
use crate::network::{Live, Network};
use p2fa_core::clock::unix_now;
use p2fa_core::config::{CodeRules, Config};
use p2fa_core::crypto::{HostKey, random_code};
use p2fa_core::factor::FactorId;
use p2fa_core::secure_fs::Trust;
use p2fa_core::store::{Purpose, SentCheck, SentScope, Store};

/// Why a confirmation code was not sent, for the user.
#[derive(Debug)]
pub struct NotSent(pub String);

impl std::fmt::Display for NotSent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The rules for `ch` and what it is called ("phone number").
pub fn channel(cfg: &Config, ch: FactorId) -> Result<(&'static str, CodeRules), NotSent> {
    match (ch, cfg.code_rules(ch)) {
        (FactorId::Sms, Some(r)) if cfg.sms.enabled => Ok(("phone number", r)),
        (FactorId::Email, Some(r)) if cfg.email.enabled => Ok(("e-mail address", r)),
        (FactorId::Sms | FactorId::Email, _) => Err(NotSent(format!(
            "{} codes are not enabled on this system",
            if ch == FactorId::Sms { "SMS" } else { "e-mail" }
        ))),
        _ => Err(NotSent(format!("{ch} is not a delivery channel"))),
    }
}

/// The address in its stored form (a phone number in E.164, a checked
/// e-mail address), or why it is not one.
pub fn normalize(ch: FactorId, address: &str) -> Result<String, NotSent> {
    match ch {
        FactorId::Sms => crate::sms::normalize_phone(address).map_err(NotSent),
        FactorId::Email => crate::email::normalize_address(address).map_err(NotSent),
        _ => Err(NotSent(format!("{ch} is not a delivery channel"))),
    }
}

/// Sends a code for `purpose` to `address`, valid in `scope` (2fa-enroll:
/// this host; 2fad: every 2fad of its public_url); returns the address
/// masked for display ("+1 *** *** **67").
#[allow(clippy::too_many_arguments)]
pub fn send(
    cfg: &Config,
    trust: Trust,
    store: &mut Store,
    key: &HostKey,
    user: &str,
    ch: FactorId,
    address: &str,
    purpose: Purpose,
    scope: &SentScope,
) -> Result<String, NotSent> {
    let (_, rules) = channel(cfg, ch)?;
    let store_err = |e: p2fa_core::store::StoreError| NotSent(e.to_string());
    let code = random_code(rules.digits).map_err(|e| NotSent(e.to_string()))?;
    let hash = key.sent_code_hash(ch.as_str(), user, &code);
    let t = unix_now();
    let tx = store.write().map_err(store_err)?;
    if tx.sends_last_hour(user, ch, t).map_err(store_err)? >= rules.max_sends_per_hour {
        return Err(NotSent(format!(
            "too many codes were sent to {user} in the last hour; try again later"
        )));
    }
    let id = tx
        .insert_sent_code(
            user,
            ch,
            purpose,
            address,
            &hash,
            t,
            rules.ttl_seconds,
            scope,
        )
        .map_err(store_err)?;
    tx.commit().map_err(store_err)?;
    let sent = Live::new(trust).send_code(cfg, ch, user, address, &code);
    drop(code);
    if let Err(f) = sent {
        if let Ok(tx) = store.write() {
            let _ = tx.delete_sent_code(id).and_then(|()| tx.commit());
        }
        return Err(NotSent(format!(
            "{} ({}); nothing saved",
            f.user.trim_end_matches('.'),
            f.detail
        )));
    }
    Ok(mask(ch, address))
}

/// Checks a typed code against the live code for `purpose` sent to
/// `address` in `scope` (counting a wrong one against the code's
/// attempts).
#[allow(clippy::too_many_arguments)]
pub fn check(
    cfg: &Config,
    store: &mut Store,
    key: &HostKey,
    user: &str,
    ch: FactorId,
    address: &str,
    typed: &str,
    purpose: Purpose,
    scope: &SentScope,
) -> Result<SentCheck, NotSent> {
    let (_, rules) = channel(cfg, ch)?;
    let store_err = |e: p2fa_core::store::StoreError| NotSent(e.to_string());
    let hash = key.sent_code_hash(ch.as_str(), user, typed);
    let tx = store.write().map_err(store_err)?;
    let result = tx
        .check_sent_code(
            user,
            ch,
            purpose,
            Some(address),
            &hash,
            unix_now(),
            rules.max_attempts,
            scope,
        )
        .map_err(store_err)?;
    tx.commit().map_err(store_err)?;
    Ok(result)
}

/// Saves `address` as `user`'s `ch`; returns the one it replaced.
pub fn save(
    store: &mut Store,
    user: &str,
    ch: FactorId,
    address: &str,
) -> Result<Option<String>, p2fa_core::store::StoreError> {
    let tx = store.write()?;
    let old = tx.user_state(user)?;
    tx.set_contact(user, ch, address, unix_now())?;
    tx.commit()?;
    Ok(if ch == FactorId::Sms {
        old.sms
    } else {
        old.email
    })
}
