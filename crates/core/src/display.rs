//! Text shown on a terminal by more than one program: the QR code the
//! login flow and `2fa-enroll` draw.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_fits_80_columns() {
        let uri = "otpauth://totp/some-long-hostname.example.com:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=some-long-hostname.example.com&algorithm=SHA1&digits=6&period=30";
        let q = qr(uri).unwrap();
        let width = q.lines().map(|l| l.chars().count()).max().unwrap();
        assert!(width <= 80, "QR is {width} columns wide");
        assert!(q.lines().count() <= 40);
    }
}
