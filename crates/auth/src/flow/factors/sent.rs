//! SMS and e-mail codes at login: reserve a code in the store (limits
//! checked in the same transaction), send it outside the lock, prompt, and
//! check the answer against the stored keyed hash.

use super::super::attempt::{At, Check, Factor, Stop};
use super::super::error::AuthError;
use super::super::report::locked;
use super::super::{Run, Verdict, parse_answer};
use p2fa_core::audit::clean;
use p2fa_core::config::CodeRules;
use p2fa_core::crypto::random_code;
use p2fa_core::factor::FactorId;
use p2fa_core::store::{Purpose, SentCheck, SentScope, StoreError};
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
    pub(in super::super) fn sent_code(&mut self, ch: FactorId, to: &str) -> Verdict {
        let Some(rules) = self.cfg.code_rules(ch) else {
            return self.unavailable(&format!("{ch} is not a delivery channel"));
        };
        self.attempt(&mut Sent {
            ch,
            to: to.to_string(),
            rules,
            code: None,
        })
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
            .insert_sent_code(
                user,
                ch,
                Purpose::Login,
                to,
                &hash,
                now,
                rules.ttl_seconds,
                &SentScope::HOST,
            )
            .map_err(se)?;
        tx.commit().map_err(se)?;
        Ok(Reserved::New { id, code })
    }
}

/// A code sent by SMS or e-mail, then typed back.
struct Sent {
    ch: FactorId,
    to: String,
    rules: CodeRules,
    /// What the user typed.
    code: Option<Zeroizing<String>>,
}

impl Factor for Sent {
    /// Reserves a code (limits and lockout checked in that transaction),
    /// sends it outside the lock, asks for it.
    fn challenge(&mut self, run: &mut Run<'_>) -> Result<(), Stop> {
        let (ch, to, rules) = (self.ch, self.to.as_str(), &self.rules);
        let shown = mask(ch, to);
        let reserved = match run.reserve(ch, to, rules) {
            Ok(r) => r,
            Err(e) => return Err(Stop::Done(run.unavailable(&e))),
        };
        match reserved {
            Reserved::Locked {
                remaining,
                failures,
            } => {
                let v = locked(run.conv, run.audit, &run.who, remaining, failures);
                return Err(Stop::Done(v));
            }
            Reserved::Limit => {
                run.audit.warning(&format!(
                    "auth denied {} factor={} reason=send-limit ({} per hour)",
                    run.who,
                    ch.as_str(),
                    rules.max_sends_per_hour
                ));
                run.conv.error(
                    "Too many codes were sent to you in the last hour. Use another factor or try again later.",
                );
                return Err(Stop::Done(Verdict::Denied));
            }
            Reserved::Recent => {
                run.audit.info(&format!(
                    "reusing code sent moments ago {} factor={}",
                    run.who,
                    ch.as_str()
                ));
                run.conv.info(&format!(
                    "A code was sent to {shown} less than {} seconds ago; enter that one.",
                    rules.resend_after_seconds
                ));
            }
            Reserved::New { id, code } => {
                let sent = run.net.send_code(run.cfg, ch, run.login.user, to, &code);
                drop(code);
                if let Err(f) = sent {
                    // Never leave a code behind that the user cannot have.
                    let _ = run.store.write().and_then(|tx| {
                        tx.delete_sent_code(id)?;
                        tx.commit()
                    });
                    run.audit.err(&format!(
                        "auth denied {} factor={} reason=send-failed: {}",
                        run.who,
                        ch.as_str(),
                        p2fa_core::audit::detail(&f.detail)
                    ));
                    run.conv.error(&f.user);
                    return Err(Stop::Done(Verdict::Unavailable));
                }
                run.audit.info(&format!(
                    "code sent {} factor={} to={}",
                    run.who,
                    ch.as_str(),
                    clean(&shown)
                ));
            }
        }
        let answer = match run
            .conv
            .ask(&format!("Code sent to {shown}: "), run.cfg.echo_code)
        {
            Ok(a) => a,
            Err(e) => return Err(Stop::Done(run.conv_failed(&e))),
        };
        let code = match parse_answer(&answer) {
            Ok(c) => c,
            Err(why) => return Err(Stop::Done(run.bad_input(why))),
        };
        drop(answer);
        self.code = Some(code);
        Ok(())
    }

    fn verify(&mut self, at: &At<'_>) -> Result<Check, AuthError> {
        let code = self.code.as_deref().map_or("", |c| c.as_str());
        let hash = at.key.sent_code_hash(self.ch.as_str(), at.login.user, code);
        let check = at.tx.check_sent_code(
            at.login.user,
            self.ch,
            Purpose::Login,
            Some(&self.to),
            &hash,
            at.now,
            self.rules.max_attempts,
            &SentScope::HOST,
        )?;
        Ok(match check {
            SentCheck::Accepted => Check::ok(self.ch),
            SentCheck::Wrong => Check::refused(self.ch, "wrong-code"),
            SentCheck::NoLiveCode => Check::Rejected {
                factor: Some(self.ch),
                reason: "code-expired-or-used-up",
                count: true,
                log: None,
                hint: Some(
                    "That code has expired or had too many wrong tries; log in again for a new one.",
                ),
            },
        })
    }
}
