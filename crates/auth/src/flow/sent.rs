//! SMS and e-mail codes at login: reserve a code in the store (limits
//! checked in the same transaction), send it outside the lock, prompt, and
//! check the answer against the stored keyed hash.

use super::{Run, Verdict, locked, parse_answer};
use p2fa_core::audit::clean;
use p2fa_core::config::CodeRules;
use p2fa_core::crypto::random_code;
use p2fa_core::factor::FactorId;
use p2fa_core::store::{Purpose, SentCheck, StoreError};
use p2fa_net::delivery::mask;
use zeroize::Zeroizing;

enum Reserved {
    /// A fresh code to send; its row is deleted again if sending fails.
    New {
        id: i64,
        code: Zeroizing<String>,
    },
    /// A code went out moments ago: do not send another.
    Recent,
    Limit,
    Locked {
        remaining: i64,
        failures: u32,
    },
}

impl Run<'_> {
    /// `ch` is one of [`FactorId::CHANNELS`].
    pub(super) fn sent_code(&mut self, ch: FactorId, to: &str) -> Verdict {
        let Some(rules) = self.cfg.code_rules(ch) else {
            return self.unavailable(&format!("{ch} is not a delivery channel"));
        };
        let shown = mask(ch, to);
        let reserved = match self.reserve(ch, to, &rules) {
            Ok(r) => r,
            Err(e) => return self.unavailable(&e),
        };
        match reserved {
            Reserved::Locked {
                remaining,
                failures,
            } => return locked(self.conv, self.audit, &self.who, remaining, failures),
            Reserved::Limit => {
                self.audit.warning(&format!(
                    "auth denied {} factor={} reason=send-limit ({} per hour)",
                    self.who,
                    ch.as_str(),
                    rules.max_sends_per_hour
                ));
                self.conv.error(
                    "Too many codes were sent to you in the last hour. Use another factor or try again later.",
                );
                return Verdict::Denied;
            }
            Reserved::Recent => {
                self.audit.info(&format!(
                    "reusing code sent moments ago {} factor={}",
                    self.who,
                    ch.as_str()
                ));
                self.conv.info(&format!(
                    "A code was sent to {shown} less than {} seconds ago; enter that one.",
                    rules.resend_after_seconds
                ));
            }
            Reserved::New { id, code } => {
                let sent = self.net.send_code(self.cfg, ch, self.login.user, to, &code);
                drop(code);
                if let Err(f) = sent {
                    // Never leave a code behind that the user cannot have.
                    let _ = self.store.write().and_then(|tx| {
                        tx.delete_sent_code(id)?;
                        tx.commit()
                    });
                    self.audit.err(&format!(
                        "auth denied {} factor={} reason=send-failed: {}",
                        self.who,
                        ch.as_str(),
                        p2fa_core::audit::detail(&f.detail)
                    ));
                    self.conv.error(&f.user);
                    return Verdict::Unavailable;
                }
                self.audit.info(&format!(
                    "code sent {} factor={} to={}",
                    self.who,
                    ch.as_str(),
                    clean(&shown)
                ));
            }
        }
        let answer = match self
            .conv
            .ask(&format!("Code sent to {shown}: "), self.cfg.echo_code)
        {
            Ok(a) => a,
            Err(e) => return self.conv_failed(&e),
        };
        let code = match parse_answer(&answer) {
            Ok(c) => c,
            Err(why) => return self.bad_input(why),
        };
        drop(answer);
        self.check_sent(ch, to, &rules, &code)
    }

    fn reserve(&mut self, ch: FactorId, to: &str, rules: &CodeRules) -> Result<Reserved, String> {
        let now = self.now();
        let user = self.login.user;
        let se = |e: StoreError| e.to_string();
        let tx = self.store.write().map_err(se)?;
        let state = tx.user_state(user).map_err(se)?;
        if state.locked_until > now {
            return Ok(Reserved::Locked {
                remaining: state.locked_until - now,
                failures: state.failures,
            });
        }
        if let Some(at) = tx
            .live_code_sent_at(user, ch, Purpose::Login, now, rules.max_attempts)
            .map_err(se)?
            && now - at < rules.resend_after_seconds
        {
            return Ok(Reserved::Recent);
        }
        if tx.sends_last_hour(user, ch, now).map_err(se)? >= rules.max_sends_per_hour {
            return Ok(Reserved::Limit);
        }
        let code = random_code(rules.digits).map_err(|e| e.to_string())?;
        let hash = self.key.sent_code_hash(ch.as_str(), user, &code);
        let id = tx
            .insert_sent_code(user, ch, Purpose::Login, to, &hash, now, rules.ttl_seconds)
            .map_err(se)?;
        tx.commit().map_err(se)?;
        Ok(Reserved::New { id, code })
    }

    fn check_sent(&mut self, ch: FactorId, to: &str, rules: &CodeRules, code: &str) -> Verdict {
        let now = self.now();
        let user = self.login.user;
        let hash = self.key.sent_code_hash(ch.as_str(), user, code);
        let res = self.store.write().and_then(|tx| {
            let state = tx.user_state(user)?;
            if state.locked_until > now {
                return Ok(Err((state.locked_until - now, state.failures)));
            }
            let check = tx.check_sent_code(
                user,
                ch,
                Purpose::Login,
                Some(to),
                &hash,
                now,
                rules.max_attempts,
            )?;
            let out = if check == SentCheck::Accepted {
                tx.record_success(user, now, self.login.service, self.login.rhost, ch.as_str())?;
                (check, 0, 0)
            } else {
                let (f, l) = tx.record_failure(user, now, &self.cfg.rate_limit)?;
                (check, f, l)
            };
            tx.commit()?;
            Ok(Ok(out))
        });
        match res {
            Err(e) => self.unavailable(&e.to_string()),
            Ok(Err((remaining, failures))) => {
                locked(self.conv, self.audit, &self.who, remaining, failures)
            }
            Ok(Ok((SentCheck::Accepted, _, _))) => {
                self.audit
                    .info(&format!("auth ok {} factor={}", self.who, ch.as_str()));
                self.proven = Some(ch);
                Verdict::Success
            }
            Ok(Ok((SentCheck::Wrong, failures, locked_until))) => {
                self.rejected(Some(ch), "wrong-code", failures, locked_until)
            }
            Ok(Ok((SentCheck::NoLiveCode, failures, locked_until))) => {
                let v = self.rejected(Some(ch), "code-expired-or-used-up", failures, locked_until);
                if v == Verdict::Denied {
                    self.conv
                        .info("That code has expired or had too many wrong tries; log in again for a new one.");
                }
                v
            }
        }
    }
}
