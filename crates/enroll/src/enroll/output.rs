//! Terminal helpers: reading a line, dates (the QR code is
//! `p2fa_core::display::qr`, shared with the login flow).

use std::io::{BufRead, Write};

/// Prints `prompt` and reads one line from stdin; `None` at end of input.
pub fn read_line(prompt: &str) -> std::io::Result<Option<String>> {
    print!("{prompt}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    let n = std::io::stdin().lock().read_line(&mut line)?;
    if n == 0 {
        println!();
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_string()))
}

pub use p2fa_core::clock::unix_now as now;
/// Unix seconds -> `2026-11-24 12:06 UTC`.
pub use p2fa_core::clock::utc_minutes as utc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_234_567_890), "2009-02-13 23:31 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
    }
}
