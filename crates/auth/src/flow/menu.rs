//! The one prompt a user with several factors sees, and reading the answer.
//!
//! A code typed at the first prompt is checked at once; a factor's name or
//! its number starts that factor; Enter starts the user's default. Only
//! factors the user has enrolled (and the admin enabled) are listed, e.g.
//! `Verification code, or 1 push, 2 sms [Enter: push]: `.

use p2fa_core::factor::{self, FactorId};
use zeroize::Zeroizing;

/// A factor's word at the menu ([`FactorId::menu_word`]). The menu
/// offers `DuoPush`, `DuoPhone`, `Sms`, `Email`, `DuoSms` (Duo texts
/// passcodes; offered as `sms` when the user has no own SMS), `Questions`
/// and `Webauthn` (a security key, local or through 2fad); the other
/// factors are typed as a code, not started.
fn keyword(f: FactorId) -> &'static str {
    f.menu_word().unwrap_or(f.as_str())
}

/// `wanted` (a word the user typed or a stored default) names `offered`:
/// the same factor, or `sms` when only Duo's SMS is offered.
fn names(wanted: FactorId, offered: FactorId) -> bool {
    offered == wanted || (wanted == FactorId::Sms && offered == FactorId::DuoSms)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    pub choices: Vec<FactorId>,
    /// Started by an empty answer.
    pub default: Option<FactorId>,
    /// A code (TOTP, HOTP, backup or Duo passcode) may be typed.
    pub accepts_code: bool,
}

/// What the user answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Start(FactorId),
    Code(Zeroizing<String>),
    /// Malformed: the reason is shown; not counted as a failed attempt.
    Invalid(&'static str),
}

impl Menu {
    /// Picks the default: the user's own if it is offered, else the only
    /// choice when nothing can be typed.
    pub fn new(choices: Vec<FactorId>, user_default: Option<&str>, accepts_code: bool) -> Menu {
        let wanted = user_default.and_then(FactorId::from_menu_word);
        let default = choices
            .iter()
            .copied()
            .find(|c| wanted.is_some_and(|w| names(w, *c)))
            .or_else(|| (choices.len() == 1 && !accepts_code).then(|| choices[0]));
        Menu {
            choices,
            default,
            accepts_code,
        }
    }

    /// True when there is nothing to ask: one factor to start, no code.
    pub fn start_directly(&self) -> Option<FactorId> {
        (!self.accepts_code && self.choices.len() == 1).then(|| self.choices[0])
    }

    pub fn prompt(&self, code_prompt: &str) -> String {
        if self.choices.is_empty() {
            return code_prompt.to_string();
        }
        let list = self
            .choices
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} {}", i + 1, keyword(*c)))
            .collect::<Vec<_>>()
            .join(", ");
        let default = self
            .default
            .map(|d| format!(" [Enter: {}]", keyword(d)))
            .unwrap_or_default();
        if self.accepts_code {
            let base = code_prompt.trim_end().trim_end_matches(':');
            format!("{base}, or {list}{default}: ")
        } else {
            format!("Choose {list}{default}: ")
        }
    }

    pub fn read(&self, raw: &[u8]) -> Answer {
        let text = match super::answer_text(raw) {
            Ok(t) => t,
            Err(why) => return Answer::Invalid(why),
        };
        let word = text.trim().to_ascii_lowercase();
        if word.is_empty() {
            return match self.default {
                Some(d) => Answer::Start(d),
                None => Answer::Invalid("empty"),
            };
        }
        if let Some(c) = self.choices.iter().find(|c| keyword(**c) == word) {
            return Answer::Start(*c);
        }
        if !self.choices.is_empty()
            && word.len() == 1
            && let Some(n) = word
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=self.choices.len()).contains(n))
        {
            return Answer::Start(self.choices[n - 1]);
        }
        if let Some(wanted) = FactorId::from_menu_word(&word) {
            // Aliases ("webauthn" for key, "sms" for Duo's SMS).
            return match self.choices.iter().find(|c| names(wanted, **c)) {
                Some(c) => Answer::Start(*c),
                None => Answer::Invalid("that factor is not set up for this account"),
            };
        }
        if !self.accepts_code {
            return Answer::Invalid("choose one of the listed options");
        }
        match factor::normalize_code(&text) {
            Some(c) => Answer::Code(Zeroizing::new(c)),
            None => Answer::Invalid("use only the digits (or letters) of the code"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_lists_only_offered_factors_with_default() {
        let m = Menu::new(vec![FactorId::DuoPush, FactorId::Sms], Some("sms"), true);
        assert_eq!(
            m.prompt("Verification code: "),
            "Verification code, or 1 push, 2 sms [Enter: sms]: "
        );
        let m = Menu::new(vec![], None, true);
        assert_eq!(m.prompt("Verification code: "), "Verification code: ");
        let m = Menu::new(vec![FactorId::Sms, FactorId::Email], Some("push"), false);
        assert_eq!(m.prompt("Code: "), "Choose 1 sms, 2 email: ");
        assert_eq!(m.default, None, "push is not offered");
        let m = Menu::new(vec![FactorId::Email], None, false);
        assert_eq!(m.start_directly(), Some(FactorId::Email));
    }

    #[test]
    fn answers() {
        let m = Menu::new(vec![FactorId::DuoPush, FactorId::Email], Some("push"), true);
        assert_eq!(m.read(b""), Answer::Start(FactorId::DuoPush));
        assert_eq!(m.read(b" EMAIL "), Answer::Start(FactorId::Email));
        assert_eq!(m.read(b"2"), Answer::Start(FactorId::Email));
        assert_eq!(m.read(b"3"), Answer::Code(Zeroizing::new("3".into())));
        assert_eq!(
            m.read(b"123 456"),
            Answer::Code(Zeroizing::new("123456".into()))
        );
        assert!(
            matches!(m.read(b"sms"), Answer::Invalid(_)),
            "not offered, not a code either"
        );
        let m = Menu::new(vec![FactorId::Webauthn, FactorId::DuoSms], None, true);
        assert_eq!(m.read(b"webauthn"), Answer::Start(FactorId::Webauthn));
        assert_eq!(m.read(b"sms"), Answer::Start(FactorId::DuoSms));
        assert!(matches!(m.read(b"\x1b[A"), Answer::Invalid(_)));
        assert!(matches!(m.read(&[0xff, 0xfe]), Answer::Invalid(_)));
        let m = Menu::new(vec![FactorId::Sms], None, false);
        assert!(matches!(m.read(b"123456"), Answer::Invalid(_)));
        let m = Menu::new(vec![], None, true);
        assert!(matches!(m.read(b""), Answer::Invalid("empty")));
    }
}
