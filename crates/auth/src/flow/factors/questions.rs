//! Security questions at login: a random subset, every answer must match;
//! the question answered wrong first is not drawn again next time.

use super::super::attempt::{At, Check, Factor, Stop};
use super::super::error::AuthError;
use super::super::{Run, Verdict, answer_text};
use p2fa_core::factor::{FactorId, questions};

impl Run<'_> {
    pub(in super::super) fn questions(&mut self) -> Verdict {
        self.attempt(&mut Questions { first_wrong: None })
    }
}

struct Questions {
    /// The stored index of the first question answered wrong, if any.
    first_wrong: Option<i64>,
}

impl Factor for Questions {
    /// Asks and checks the answers here, outside the transaction: argon2
    /// takes a while per answer, and answers are not single-use.
    fn challenge(&mut self, run: &mut Run<'_>) -> Result<(), Stop> {
        let user = run.login.user;
        let (stored, last_failed) = match run.store.questions(user) {
            Ok(q) => q,
            Err(e) => return Err(Stop::Done(run.unavailable(&e.to_string()))),
        };
        if stored.is_empty() {
            return Err(Stop::Done(
                run.bad_input("no security questions are set up"),
            ));
        }
        let avoid = last_failed.and_then(|i| stored.iter().position(|q| q.idx == i));
        let ask = (run.cfg.questions.ask as usize).min(stored.len());
        let picked = match questions::draw(stored.len(), ask, avoid) {
            Ok(p) => p,
            Err(e) => return Err(Stop::Done(run.unavailable(&e.to_string()))),
        };
        for &i in &picked {
            let q = &stored[i];
            let shown = p2fa_core::audit::printable(&q.question, 200);
            let a = match run.conv.ask(&format!("{shown} "), false) {
                Ok(a) => a,
                Err(e) => return Err(Stop::Done(run.conv_failed(&e))),
            };
            let text = match answer_text(&a) {
                Ok(t) => t,
                Err(why) => return Err(Stop::Done(run.bad_input(why))),
            };
            // Every answer is checked (argon2 each time), so the time
            // taken does not tell which one was wrong.
            // A wrapped hash needs the keys of both its generations.
            let Some(matched) = questions::verify_stored(&run.key, user, q, &text) else {
                let g = match q.inner_gen {
                    Some(i) if run.key.for_gen(i).is_none() => i,
                    _ => q.key_gen,
                };
                let e = super::code::missing_gen(g);
                return Err(Stop::Done(run.unavailable(&e.to_string())));
            };
            let ok = questions::valid(&text).is_ok() && matched;
            if !ok && self.first_wrong.is_none() {
                self.first_wrong = Some(q.idx);
            }
        }
        Ok(())
    }

    fn verify(&mut self, at: &At<'_>) -> Result<Check, AuthError> {
        at.tx
            .set_last_failed_question(at.login.user, self.first_wrong)?;
        Ok(match self.first_wrong {
            None => Check::ok(FactorId::Questions),
            Some(_) => Check::refused(FactorId::Questions, "wrong-answer"),
        })
    }
}
