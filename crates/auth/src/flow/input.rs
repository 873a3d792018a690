//! What the user typed, checked before anything looks at it.

use p2fa_core::factor;
use zeroize::Zeroizing;

/// Longest answer we look at; codes are at most a few dozen characters.
pub const MAX_INPUT: usize = 64;

/// Checks raw conversation bytes: bounded, UTF-8, no control characters.
/// Empty is allowed (it means "the default" at the menu).
pub(super) fn answer_text(raw: &[u8]) -> Result<Zeroizing<String>, &'static str> {
    if raw.len() > MAX_INPUT {
        return Err("too long");
    }
    let text = std::str::from_utf8(raw).map_err(|_| "not valid UTF-8 text")?;
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err("contains control characters");
    }
    Ok(Zeroizing::new(text.to_string()))
}

/// Validates raw conversation bytes and returns the normalised code.
pub fn parse_answer(raw: &[u8]) -> Result<Zeroizing<String>, &'static str> {
    let text = answer_text(raw)?;
    if text.trim().is_empty() {
        return Err("empty");
    }
    factor::normalize_code(&text)
        .map(Zeroizing::new)
        .ok_or("use only the digits (or letters) of the code")
}
