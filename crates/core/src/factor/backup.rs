//! Single-use backup codes: 10 random digits, shown once as `12345-67890`.
//!
//! Digits rather than letters because they are typed on phone keyboards and
//! read aloud over the phone to a helpdesk; 10 digits (33 bits) per code is
//! ample behind the store's failure limit. Only keyed hashes are stored.

use crate::crypto::{self, CryptoError};

/// Digits in a generated code.
pub const CODE_DIGITS: usize = 10;

/// Makes `count` fresh codes (unformatted digit strings), all distinct.
pub fn generate(count: usize) -> Result<Vec<String>, CryptoError> {
    let mut codes: Vec<String> = Vec::with_capacity(count);
    while codes.len() < count {
        let mut code = String::with_capacity(CODE_DIGITS);
        for _ in 0..CODE_DIGITS {
            let d = crypto::random_below(10)?;
            code.push(char::from(b'0' + d as u8));
        }
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    Ok(codes)
}

/// `1234567890` -> `12345-67890`, for display.
pub fn format(code: &str) -> String {
    if code.len() == CODE_DIGITS {
        format!("{}-{}", &code[..5], &code[5..])
    } else {
        code.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_distinct_digit_codes() {
        let codes = generate(15).unwrap();
        assert_eq!(codes.len(), 15);
        for c in &codes {
            assert_eq!(c.len(), CODE_DIGITS);
            assert!(c.chars().all(|c| c.is_ascii_digit()));
        }
        let mut sorted = codes.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 15);
    }

    #[test]
    fn formats() {
        assert_eq!(format("1234567890"), "12345-67890");
        assert_eq!(format("12345678"), "12345678");
    }
}
