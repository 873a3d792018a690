//! One file per local second factor (the network ones, Duo, SMS and
//! e-mail, are in p2fa-net). Factors are plain Rust: they compute and
//! compare codes; storing, counting and logging happen in p2fa-auth's
//! `flow` and in `store`. [`FactorId`] names them all, local or not.

pub mod backup;
pub mod fido2;
mod id;
pub mod questions;
pub mod totp;

pub use id::{FactorId, UnknownFactor};

/// Strips the separators people type or paste (spaces, dashes) and lowercases.
/// Returns `None` unless what is left is 1..=32 ASCII letters or digits.
pub fn normalize_code(input: &str) -> Option<String> {
    let s: String = input
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '\t'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if s.is_empty() || s.len() > 32 || !s.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::normalize_code;

    #[test]
    fn normalizes() {
        assert_eq!(normalize_code(" 123 456 ").as_deref(), Some("123456"));
        assert_eq!(normalize_code("12345-67890").as_deref(), Some("1234567890"));
        assert_eq!(normalize_code("AbC").as_deref(), Some("abc"));
        assert_eq!(normalize_code(""), None);
        assert_eq!(normalize_code(" - "), None);
        assert_eq!(normalize_code("12;34"), None);
        assert_eq!(normalize_code("１２３"), None);
        assert_eq!(normalize_code(&"1".repeat(33)), None);
    }
}
