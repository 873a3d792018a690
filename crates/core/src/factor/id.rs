//! [`FactorId`]: the one list of second factors and every name each goes
//! by: in the store and the logs, in the config's `methods` lists, at the
//! login menu and in `2fa-enroll`.
//!
//! Before this type each of those places kept its own list, and a new
//! factor had to be added to all of them by hand. The names are what
//! stored data, config files, scripts and users already use; they never
//! change (the store's CHECK constraints are tested against them).

use std::fmt;
use std::str::FromStr;

/// A second factor, or a way one was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FactorId {
    /// Time-based codes (authenticator app).
    Totp,
    /// Counter-based codes (hardware token).
    Hotp,
    /// Single-use backup codes.
    Backup,
    /// A code sent by SMS.
    Sms,
    /// A code sent by e-mail.
    Email,
    /// Duo, as enrolled and as the config's method; how a login used it
    /// is one of the `Duo*` kinds below.
    Duo,
    DuoPush,
    DuoPhone,
    /// Duo texted passcodes (offered as `sms` to users without their own).
    DuoSms,
    DuoPasscode,
    /// Duo's own policy let the user in (a bypass set in Duo): recorded,
    /// but nothing was proven.
    DuoBypass,
    /// Security questions.
    Questions,
    /// A security key or platform authenticator, through 2fad; at the
    /// menu it stands for "a security key", local or not.
    Webauthn,
    /// A FIDO2 key plugged into this machine (console logins).
    LocalKey,
    /// A remembered device skipped the second factor.
    Remembered,
}

use FactorId::*;

impl FactorId {
    /// Every factor, in declaration order.
    pub const ALL: [FactorId; 15] = [
        Totp,
        Hotp,
        Backup,
        Sms,
        Email,
        Duo,
        DuoPush,
        DuoPhone,
        DuoSms,
        DuoPasscode,
        DuoBypass,
        Questions,
        Webauthn,
        LocalKey,
        Remembered,
    ];

    /// What the config's `methods` lists may name, in the order error
    /// messages list them.
    pub const METHODS: [FactorId; 8] = [Totp, Hotp, Backup, Sms, Email, Duo, Questions, Webauthn];

    /// The kinds of OTP token (`otp_tokens.kind`).
    pub const OTP_KINDS: [FactorId; 2] = [Totp, Hotp];

    /// Factors whose codes are sent to a contact (`contacts.channel`,
    /// `sent_codes.channel`).
    pub const CHANNELS: [FactorId; 2] = [Sms, Email];

    /// The name in the store, the logs and `2fa-enroll`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Totp => "totp",
            Hotp => "hotp",
            Backup => "backup",
            Sms => "sms",
            Email => "email",
            Duo => "duo",
            DuoPush => "duo-push",
            DuoPhone => "duo-phone",
            DuoSms => "duo-sms",
            DuoPasscode => "duo-passcode",
            DuoBypass => "duo-bypass",
            Questions => "questions",
            Webauthn => "webauthn",
            LocalKey => "localkey",
            Remembered => "remembered",
        }
    }

    /// The config method that allows this factor: a Duo kind is allowed
    /// by `duo`, a local key by `webauthn`. `None` for a remembered
    /// device, which no method list governs.
    pub const fn method(self) -> Option<FactorId> {
        Some(match self {
            Duo | DuoPush | DuoPhone | DuoSms | DuoPasscode | DuoBypass => Duo,
            Webauthn | LocalKey => Webauthn,
            Remembered => return None,
            f => f,
        })
    }

    /// A config `methods` entry, if it names one.
    pub fn from_method(name: &str) -> Option<FactorId> {
        FactorId::METHODS.into_iter().find(|m| m.as_str() == name)
    }

    /// The word for a factor started from the login menu, which is also
    /// what `2fa-enroll default` stores; `None` for factors that are
    /// typed as a code rather than started.
    pub const fn menu_word(self) -> Option<&'static str> {
        Some(match self {
            DuoPush => "push",
            DuoPhone => "phone",
            Sms | DuoSms => "sms",
            Email => "email",
            Questions => "questions",
            Webauthn => "key",
            _ => return None,
        })
    }

    /// Reads a menu word (or a stored default). `webauthn` is an alias of
    /// `key`; `sms` is the user's own SMS (the menu falls back to Duo's).
    pub fn from_menu_word(word: &str) -> Option<FactorId> {
        match word {
            "webauthn" => Some(Webauthn),
            w => [DuoPush, DuoPhone, Sms, Email, Questions, Webauthn]
                .into_iter()
                .find(|f| f.menu_word() == Some(w)),
        }
    }
}

impl fmt::Display for FactorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no factor's; the message lists the known names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFactor(pub String);

impl fmt::Display for UnknownFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known: Vec<&str> = FactorId::ALL.iter().map(|x| x.as_str()).collect();
        write!(
            f,
            "unknown factor {:?} (known: {})",
            self.0,
            known.join(", ")
        )
    }
}

impl std::error::Error for UnknownFactor {}

/// Parses the name [`FactorId::as_str`] gives (exactly, as stored).
impl FromStr for FactorId {
    type Err = UnknownFactor;
    fn from_str(s: &str) -> Result<FactorId, UnknownFactor> {
        FactorId::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFactor(s.to_string()))
    }
}

impl serde::Serialize for FactorId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for FactorId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<FactorId, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_complete_and_names_round_trip() {
        for (i, f) in FactorId::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i, "ALL is in declaration order");
            assert_eq!(f.as_str().parse::<FactorId>(), Ok(*f));
            assert_eq!(f.to_string(), f.as_str());
        }
        assert_eq!(FactorId::ALL.len(), Remembered as usize + 1);
        assert!("TOTP".parse::<FactorId>().is_err());
        assert!("".parse::<FactorId>().is_err());
    }

    #[test]
    fn methods_cover_every_factor_but_remembered() {
        assert_eq!(
            FactorId::METHODS.map(FactorId::as_str).join(", "),
            "totp, hotp, backup, sms, email, duo, questions, webauthn"
        );
        for f in FactorId::ALL {
            match f.method() {
                Some(m) => assert!(FactorId::METHODS.contains(&m), "{f}"),
                None => assert_eq!(f, Remembered),
            }
        }
        assert_eq!(FactorId::from_method("duo"), Some(Duo));
        assert_eq!(FactorId::from_method("duo-push"), None);
        assert_eq!(FactorId::from_method("localkey"), None);
    }

    #[test]
    fn menu_words() {
        assert_eq!(FactorId::from_menu_word("push"), Some(DuoPush));
        assert_eq!(FactorId::from_menu_word("sms"), Some(Sms));
        assert_eq!(FactorId::from_menu_word("key"), Some(Webauthn));
        assert_eq!(FactorId::from_menu_word("webauthn"), Some(Webauthn));
        assert_eq!(FactorId::from_menu_word("totp"), None);
        assert_eq!(FactorId::from_menu_word("none"), None);
        assert_eq!(DuoSms.menu_word(), Some("sms"));
    }

    #[test]
    fn serde_uses_the_stored_names() {
        #[derive(serde::Deserialize, serde::Serialize, PartialEq, Debug)]
        struct T {
            f: Vec<FactorId>,
        }
        let t: T = toml::from_str(r#"f = ["duo-bypass", "localkey", "totp"]"#).unwrap();
        assert_eq!(t.f, vec![DuoBypass, LocalKey, Totp]);
        assert_eq!(
            toml::to_string(&t).unwrap().trim(),
            r#"f = ["duo-bypass", "localkey", "totp"]"#
        );
        let e = toml::from_str::<T>(r#"f = ["sms", "pigeon"]"#).unwrap_err();
        assert!(e.to_string().contains("unknown factor \"pigeon\""), "{e}");
    }
}
