//! The one prompt a user with several factors sees, and reading the answer.
//!
//! A code typed at the first prompt is checked at once; a factor's name or
//! its number starts that factor; Enter starts the user's default. Only
//! factors the user has enrolled (and the admin enabled) are listed, e.g.
//! `Verification code, or 1 push, 2 sms [Enter: push]: `.

use p2fa_core::factor;
use zeroize::Zeroizing;

/// A factor that is started from the menu rather than typed as a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Push,
    Phone,
    Sms,
    Email,
    /// Duo texts passcodes (offered as `sms` when the user has no own SMS).
    DuoSms,
    Questions,
    /// A security key or platform authenticator (WebAuthn, via 2fad).
    Key,
}

impl Choice {
    pub fn keyword(self) -> &'static str {
        match self {
            Choice::Push => "push",
            Choice::Phone => "phone",
            Choice::Sms | Choice::DuoSms => "sms",
            Choice::Email => "email",
            Choice::Questions => "questions",
            Choice::Key => "key",
        }
    }

    /// The stored name for `2fa-enroll default`.
    pub fn from_keyword(s: &str) -> Option<Choice> {
        match s {
            "push" => Some(Choice::Push),
            "phone" => Some(Choice::Phone),
            "sms" => Some(Choice::Sms),
            "email" => Some(Choice::Email),
            "questions" => Some(Choice::Questions),
            "key" | "webauthn" => Some(Choice::Key),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    pub choices: Vec<Choice>,
    /// Started by an empty answer.
    pub default: Option<Choice>,
    /// A code (TOTP, HOTP, backup or Duo passcode) may be typed.
    pub accepts_code: bool,
}

/// What the user answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Start(Choice),
    Code(Zeroizing<String>),
    /// Malformed: the reason is shown; not counted as a failed attempt.
    Invalid(&'static str),
}

impl Menu {
    /// Picks the default: the user's own if it is offered, else the only
    /// choice when nothing can be typed.
    pub fn new(choices: Vec<Choice>, user_default: Option<&str>, accepts_code: bool) -> Menu {
        let wanted = user_default.and_then(Choice::from_keyword);
        let default = choices
            .iter()
            .copied()
            .find(|c| Some(*c) == wanted || (wanted == Some(Choice::Sms) && *c == Choice::DuoSms))
            .or_else(|| (choices.len() == 1 && !accepts_code).then(|| choices[0]));
        Menu {
            choices,
            default,
            accepts_code,
        }
    }

    /// True when there is nothing to ask: one factor to start, no code.
    pub fn start_directly(&self) -> Option<Choice> {
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
            .map(|(i, c)| format!("{} {}", i + 1, c.keyword()))
            .collect::<Vec<_>>()
            .join(", ");
        let default = self
            .default
            .map(|d| format!(" [Enter: {}]", d.keyword()))
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
        if let Some(c) = self.choices.iter().find(|c| c.keyword() == word) {
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
        if let Some(wanted) = Choice::from_keyword(&word) {
            // Aliases ("webauthn" for key, "sms" for Duo's SMS).
            return match self
                .choices
                .iter()
                .find(|c| **c == wanted || (wanted == Choice::Sms && **c == Choice::DuoSms))
            {
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
        let m = Menu::new(vec![Choice::Push, Choice::Sms], Some("sms"), true);
        assert_eq!(
            m.prompt("Verification code: "),
            "Verification code, or 1 push, 2 sms [Enter: sms]: "
        );
        let m = Menu::new(vec![], None, true);
        assert_eq!(m.prompt("Verification code: "), "Verification code: ");
        let m = Menu::new(vec![Choice::Sms, Choice::Email], Some("push"), false);
        assert_eq!(m.prompt("Code: "), "Choose 1 sms, 2 email: ");
        assert_eq!(m.default, None, "push is not offered");
        let m = Menu::new(vec![Choice::Email], None, false);
        assert_eq!(m.start_directly(), Some(Choice::Email));
    }

    #[test]
    fn answers() {
        let m = Menu::new(vec![Choice::Push, Choice::Email], Some("push"), true);
        assert_eq!(m.read(b""), Answer::Start(Choice::Push));
        assert_eq!(m.read(b" EMAIL "), Answer::Start(Choice::Email));
        assert_eq!(m.read(b"2"), Answer::Start(Choice::Email));
        assert_eq!(m.read(b"3"), Answer::Code(Zeroizing::new("3".into())));
        assert_eq!(
            m.read(b"123 456"),
            Answer::Code(Zeroizing::new("123456".into()))
        );
        assert!(
            matches!(m.read(b"sms"), Answer::Invalid(_)),
            "not offered, not a code either"
        );
        let m = Menu::new(vec![Choice::Key, Choice::DuoSms], None, true);
        assert_eq!(m.read(b"webauthn"), Answer::Start(Choice::Key));
        assert_eq!(m.read(b"sms"), Answer::Start(Choice::DuoSms));
        assert!(matches!(m.read(b"\x1b[A"), Answer::Invalid(_)));
        assert!(matches!(m.read(&[0xff, 0xfe]), Answer::Invalid(_)));
        let m = Menu::new(vec![Choice::Sms], None, false);
        assert!(matches!(m.read(b"123456"), Answer::Invalid(_)));
        let m = Menu::new(vec![], None, true);
        assert!(matches!(m.read(b""), Answer::Invalid("empty")));
    }
}
