//! Security questions at login: a random subset, every answer must match;
//! the question answered wrong first is not drawn again next time.
//!
//! After `2fa-enroll rekey convert` an answer hash is wrapped (it needs
//! the previous key too, docs/rekey.md). When every answer of a login is
//! right, each wrapped one among them is hashed anew, plainly, under the
//! current generation (argon2 as for newly set answers, done here with
//! the others, outside the transaction) and written in the attempt's
//! transaction, the one that records the success: both are kept or
//! neither. A wrong answer, a refused or locked attempt writes nothing.

use super::super::attempt::{At, Check, Factor, Stop};
use super::super::error::AuthError;
use super::super::{Run, Verdict, answer_text};
use p2fa_core::factor::{FactorId, questions};
use p2fa_core::store::StoredQuestion;

impl Run<'_> {
    pub(in super::super) fn questions(&mut self) -> Verdict {
        self.attempt(&mut Questions {
            first_wrong: None,
            rehash: Vec::new(),
        })
    }
}

struct Questions {
    /// The stored index of the first question answered wrong, if any.
    first_wrong: Option<i64>,
    /// Wrapped answers this login answered right, all of them right:
    /// what to write if the attempt succeeds.
    rehash: Vec<Rehash>,
}

/// One wrapped answer hash to replace by a plain one of `key_gen`.
struct Rehash {
    idx: i64,
    /// The wrapped hash as read (the write is conditional on it).
    wrapped: String,
    plain: String,
    key_gen: i64,
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
        // Wrapped answers answered right, with their normalised text.
        let mut right_wrapped = Vec::new();
        for &i in &picked {
            let q = &stored[i];
            let shown = questions::shown(&q.question, 200);
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
            match questions::valid(&text) {
                Ok(normalized) if matched => {
                    if q.inner_gen.is_some() {
                        right_wrapped.push((q, normalized));
                    }
                }
                _ => {
                    if self.first_wrong.is_none() {
                        self.first_wrong = Some(q.idx);
                    }
                }
            }
        }
        if self.first_wrong.is_none() {
            self.rehash = rehashes(run, user, &right_wrapped);
        }
        Ok(())
    }

    fn verify(&mut self, at: &At<'_>) -> Result<Check, AuthError> {
        let user = at.login.user;
        at.tx.set_last_failed_question(user, self.first_wrong)?;
        if self.first_wrong.is_some() {
            return Ok(Check::refused(FactorId::Questions, "wrong-answer"));
        }
        // Only reached when the attempt is not locked; the success is
        // recorded in this transaction next. A store error here rolls
        // the attempt back ("unavailable", nothing counted); a row that
        // changed meanwhile is left as it is.
        let mut n = 0;
        for r in &self.rehash {
            n += usize::from(
                at.tx
                    .rehash_answer(user, r.idx, &r.wrapped, &r.plain, r.key_gen)?,
            );
        }
        Ok(match n {
            0 => Check::ok(FactorId::Questions),
            n => Check::Accepted {
                factor: FactorId::Questions,
                note: format!(" rehashed-answers={n}"),
                backup_left: None,
            },
        })
    }
}

/// Plain hashes under the current generation of the wrapped answers a
/// login answered right. One that cannot be made (no randomness, an
/// argon2 error) is left wrapped, with a warning: it still verifies with
/// both keys, and the login is not refused for it.
fn rehashes(run: &mut Run<'_>, user: &str, right: &[(&StoredQuestion, String)]) -> Vec<Rehash> {
    let current = run.key.current();
    let key_gen = current.key_gen();
    let mut out = Vec::new();
    for (q, normalized) in right {
        if q.key_gen > key_gen {
            continue;
        }
        match questions::hash(current, user, &q.question, normalized) {
            Ok(plain) => out.push(Rehash {
                idx: q.idx,
                wrapped: q.answer_hash.clone(),
                plain,
                key_gen,
            }),
            Err(e) => run.audit.warning(&format!(
                "questions not-rehashed {} question={} reason={e}",
                run.who, q.idx
            )),
        }
    }
    out
}
