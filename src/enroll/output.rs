//! Terminal helpers: QR codes, reading a line, dates.

use std::io::{BufRead, Write};

/// A QR code drawn with half-block characters: two modules per character
/// row, so a typical otpauth URI fits well inside 80 columns. Light-on-dark
/// inversion keeps it scannable on the usual dark terminal.
pub fn qr(text: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::L).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

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

/// Unix seconds -> `2026-11-24 12:06 UTC` (proleptic Gregorian, no deps).
pub fn utc(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

pub use crate::clock::unix_now as now;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_234_567_890), "2009-02-13 23:31 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn qr_fits_80_columns() {
        let uri = "otpauth://totp/some-long-hostname.example.com:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=some-long-hostname.example.com&algorithm=SHA1&digits=6&period=30";
        let q = qr(uri).unwrap();
        let width = q.lines().map(|l| l.chars().count()).max().unwrap();
        assert!(width <= 80, "QR is {width} columns wide");
        assert!(q.lines().count() <= 40);
    }
}
