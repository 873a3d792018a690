//! The factors `2fa-enroll` commands take as arguments, as clap values
//! over [`FactorId`]. Written by hand because p2fa-core (and so the
//! module) does not depend on clap; the names are FactorId's, only the
//! help texts are the CLI's own.

use clap::ValueEnum;
use clap::builder::PossibleValue;
use p2fa_core::factor::FactorId::{self, *};

/// A factor `remove` and `reset --method` take away: only the values
/// below (clap makes it from a command line, the menu from a word).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Removable(FactorId);

impl Removable {
    pub fn factor(self) -> FactorId {
        self.0
    }

    /// What is removed, in messages and the log.
    pub fn noun(self) -> &'static str {
        match self.0 {
            Totp | Hotp => "OTP token",
            Backup => "backup codes",
            Sms => "SMS phone number",
            Email => "e-mail address",
            Duo => "Duo enrollment",
            Questions => "security questions",
            other => other.as_str(),
        }
    }
}

impl ValueEnum for Removable {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            Removable(Totp),
            Removable(Hotp),
            Removable(Backup),
            Removable(Sms),
            Removable(Email),
            Removable(Duo),
            Removable(Questions),
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let help = match self.0 {
            Totp => "The TOTP or HOTP token",
            Hotp => "Same as totp (there is one OTP token per user)",
            Backup => "All backup codes",
            Sms => "The phone number for SMS codes",
            Email => "The e-mail address for e-mail codes",
            Duo => "Duo",
            Questions => "Security questions",
            _ => return None,
        };
        Some(PossibleValue::new(self.0.as_str()).help(help))
    }
}

/// What `default` sets: a factor started from the login menu, stored as
/// its menu word, or no default (`none`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefaultArg(Option<FactorId>);

impl DefaultArg {
    pub fn factor(self) -> Option<FactorId> {
        self.0
    }

    /// The word typed and stored (`push`, `sms`, ..., `none`).
    pub fn name(self) -> &'static str {
        self.0.and_then(FactorId::menu_word).unwrap_or("none")
    }
}

impl ValueEnum for DefaultArg {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            DefaultArg(Some(DuoPush)),
            DefaultArg(Some(DuoPhone)),
            DefaultArg(Some(Sms)),
            DefaultArg(Some(Email)),
            DefaultArg(Some(Questions)),
            DefaultArg(None),
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let help = match self.0 {
            Some(DuoPush) => "Duo push",
            Some(DuoPhone) => "Duo phone call",
            Some(Sms) => "Code by SMS",
            Some(Email) => "Code by e-mail",
            Some(Questions) => "Security questions",
            None => "No default: Enter at the prompt does nothing",
            Some(_) => return None,
        };
        Some(PossibleValue::new(self.name()).help(help))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_the_factor_names() {
        let names = |v: Vec<PossibleValue>| -> Vec<String> {
            v.iter().map(|p| p.get_name().to_string()).collect()
        };
        let removable = Removable::value_variants()
            .iter()
            .filter_map(ValueEnum::to_possible_value)
            .collect();
        assert_eq!(
            names(removable),
            ["totp", "hotp", "backup", "sms", "email", "duo", "questions"]
        );
        let defaults = DefaultArg::value_variants()
            .iter()
            .filter_map(ValueEnum::to_possible_value)
            .collect();
        assert_eq!(
            names(defaults),
            ["push", "phone", "sms", "email", "questions", "none"]
        );
        for d in DefaultArg::value_variants() {
            if let Some(f) = d.0 {
                assert_eq!(FactorId::from_menu_word(d.name()), Some(f));
            }
        }
        assert_eq!(
            <Removable as ValueEnum>::from_str("hotp", false),
            Ok(Removable(Hotp))
        );
        assert!(<DefaultArg as ValueEnum>::from_str("key", false).is_err());
    }
}
