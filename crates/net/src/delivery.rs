//! Shared by the SMS and e-mail senders: the error type, templates and
//! the masked address shown to the user.

use p2fa_core::factor::FactorId;
use std::fmt;

/// "+1 *** *** 4567" or "j***@example.com": where a code went, as shown
/// to the user. `channel` is one of [`FactorId::CHANNELS`]; anything else
/// shows nothing of the address.
pub fn mask(channel: FactorId, address: &str) -> String {
    match channel {
        FactorId::Sms => super::sms::mask_phone(address),
        FactorId::Email => super::email::mask_address(address),
        _ => "***".into(),
    }
}

/// Longest detail shown (in characters).
const SHOWN: usize = 300;

/// A message that could not be sent. `detail` is for the admin's log and
/// never contains the code or a credential; the user sees a fixed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    channel: &'static str,
    /// Sanitised but kept long (a gateway's answer is at most a few KiB
    /// here), so [`DeliveryError::redact`] sees a secret whole even where
    /// the shown part ends in the middle of it.
    detail: String,
}

impl DeliveryError {
    pub fn new(channel: &'static str, detail: impl Into<String>) -> DeliveryError {
        let detail: String = detail.into();
        DeliveryError {
            channel,
            detail: p2fa_core::audit::printable(&detail, 4 * 1024),
        }
    }

    /// The first 300 characters of the (redacted) detail.
    pub fn detail(&self) -> &str {
        match self.detail.char_indices().nth(SHOWN) {
            Some((end, _)) => &self.detail[..end],
            None => &self.detail,
        }
    }

    /// Replaces every occurrence of the given secrets (the code, a token,
    /// a password) in the detail with `***`, in case a gateway or server
    /// echoed one back. Secrets shorter than 4 characters are left alone:
    /// masking "1" would garble every number in the text.
    pub fn redact(mut self, secrets: &[&str]) -> DeliveryError {
        for s in secrets {
            if s.len() >= 4 {
                self.detail = self.detail.replace(s, "***");
            }
        }
        self
    }

    pub fn user_message(&self) -> String {
        format!(
            "Could not send the {} code right now. Use another factor or contact your administrator.",
            self.channel
        )
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} delivery failed: {}", self.channel, self.detail())
    }
}

/// Replaces `{name}` placeholders; `escape` is applied to each value.
pub fn fill_with(
    template: &str,
    values: &[(&str, &str)],
    escape: impl Fn(&str) -> String,
) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}').map(|end| (&after[..end], end)) {
            Some((name, end)) if values.iter().any(|(k, _)| *k == name) => {
                let v = values
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| *v)
                    .unwrap_or("");
                out.push_str(&escape(v));
                rest = &after[end + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// [`fill_with`] without escaping.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    fill_with(template, values, str::to_string)
}

/// A JSON string's contents (without the quotes).
pub fn json_escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted[1..quoted.len().saturating_sub(1).max(1)].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let v = [("code", "123456"), ("user", "al\"ice")];
        assert_eq!(
            fill("Code {code} for {user}", &v),
            "Code 123456 for al\"ice"
        );
        assert_eq!(fill("{unknown} {code", &v), "{unknown} {code");
        assert_eq!(
            fill_with(r#"{"u":"{user}"}"#, &v, json_escape),
            r#"{"u":"al\"ice"}"#
        );
        assert_eq!(json_escape("a\nb\\"), "a\\nb\\\\");
        // Substituted values are not scanned again: a user called "{code}"
        // does not pull the code into a field it was not meant for.
        assert_eq!(
            fill("{user}: {code}", &[("user", "{code}"), ("code", "42")]),
            "{code}: 42"
        );
        assert_eq!(fill("", &v), "");
        assert_eq!(fill("{}{{code}}", &v), "{}{123456}");
        assert_eq!(json_escape(""), "");
    }

    #[test]
    fn errors_hide_secrets() {
        let e = DeliveryError::new(
            "SMS",
            "gateway said: code 246810 \x1b[2J rejected for tok-secret",
        )
        .redact(&["246810", "tok-secret", "1"]);
        assert_eq!(e.detail(), "gateway said: code *** ?[2J rejected for ***");
        assert!(!e.user_message().contains("246810"));
        assert!(e.to_string().starts_with("SMS delivery failed: "));
        let long = DeliveryError::new("e-mail", "x".repeat(1000));
        assert_eq!(long.detail().len(), 300);
        // A secret across the 300-character mark is still masked whole.
        let e = DeliveryError::new("SMS", format!("{}tok-secret-123 z", "y".repeat(295)))
            .redact(&["tok-secret-123"]);
        assert_eq!(e.detail(), format!("{}*** z", "y".repeat(295)));
        assert!(!e.to_string().contains("tok-"), "{e}");
    }
}
