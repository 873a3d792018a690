//! Security questions at login: a random subset, every answer must match;
//! the question answered wrong first is not drawn again next time.

use super::{Run, Verdict, answer_text, locked};
use p2fa_core::factor::{FactorId, questions};

impl Run<'_> {
    pub(super) fn questions(&mut self) -> Verdict {
        let user = self.login.user;
        let (stored, last_failed) = match self.store.questions(user) {
            Ok(q) => q,
            Err(e) => return self.unavailable(&e.to_string()),
        };
        if stored.is_empty() {
            return self.bad_input("no security questions are set up");
        }
        let avoid = last_failed.and_then(|i| stored.iter().position(|q| q.idx == i));
        let ask = (self.cfg.questions.ask as usize).min(stored.len());
        let picked = match questions::draw(stored.len(), ask, avoid) {
            Ok(p) => p,
            Err(e) => return self.unavailable(&e.to_string()),
        };
        let mut first_wrong = None;
        for &i in &picked {
            let q = &stored[i];
            let shown = p2fa_core::audit::printable(&q.question, 200);
            let a = match self.conv.ask(&format!("{shown} "), false) {
                Ok(a) => a,
                Err(e) => return self.conv_failed(&e),
            };
            let text = match answer_text(&a) {
                Ok(t) => t,
                Err(why) => return self.bad_input(why),
            };
            // Every answer is checked (argon2 each time), so the time
            // taken does not tell which one was wrong.
            let ok = questions::valid(&text).is_ok()
                && questions::verify(&self.key, user, &q.question, &text, &q.answer_hash);
            if !ok && first_wrong.is_none() {
                first_wrong = Some(q.idx);
            }
        }
        let now = self.now();
        if first_wrong.is_none() {
            let _ = self.store.write().and_then(|tx| {
                tx.set_last_failed_question(user, None)?;
                tx.commit()
            });
            return self.succeed(FactorId::Questions, "");
        }
        let res = self.store.write().and_then(|tx| {
            let state = tx.user_state(user)?;
            if state.locked_until > now {
                return Ok(Err((state.locked_until - now, state.failures)));
            }
            tx.set_last_failed_question(user, first_wrong)?;
            let r = tx.record_failure(user, now, &self.cfg.rate_limit)?;
            tx.commit()?;
            Ok(Ok(r))
        });
        match res {
            Ok(Ok((failures, locked_until))) => self.rejected(
                Some(FactorId::Questions),
                "wrong-answer",
                failures,
                locked_until,
            ),
            Ok(Err((remaining, failures))) => {
                locked(self.conv, self.audit, &self.who, remaining, failures)
            }
            Err(e) => self.unavailable(&e.to_string()),
        }
    }
}
