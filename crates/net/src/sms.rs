//! SMS codes: phone numbers (E.164) and the two gateways, Twilio's
//! Messages API and a generic HTTPS webhook.

use super::delivery::{DeliveryError, fill, fill_with, json_escape};
use crate::transport::HttpFailure;
use base64::Engine;
use p2fa_core::config::{SmsConfig, SmsGateway};
use p2fa_core::secure_fs::Trust;
use serde_json::Value;
use zeroize::Zeroizing;

/// `+1 (555) 123-4567` -> `+15551234567`. The country code is required:
/// a number without one would reach someone else's phone abroad.
pub fn normalize_phone(input: &str) -> Result<String, String> {
    let s: String = input
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let Some(digits) = s.strip_prefix('+') else {
        if s.starts_with("00") {
            return Err(format!(
                "{:?}: write + instead of the leading 00, e.g. +49 30 1234 5678",
                p2fa_core::audit::printable(input, 40)
            ));
        }
        return Err(format!(
            "{:?}: enter the phone number with its country code, e.g. +1 555 123 4567",
            p2fa_core::audit::printable(input, 40)
        ));
    };
    if !digits.bytes().all(|b| b.is_ascii_digit())
        || !(8..=15).contains(&digits.len())
        || digits.starts_with('0')
    {
        return Err(format!(
            "{:?} is not a phone number in international form (+, country code, number; 8 to 15 digits)",
            p2fa_core::audit::printable(input, 40)
        ));
    }
    Ok(s)
}

/// ITU country codes are 1 to 3 digits and prefix-free; the 1- and 2-digit
/// ones are listed, everything else is 3 digits.
fn country_code_len(digits: &str) -> usize {
    const ONE: &[&str] = &["1", "7"];
    const TWO: &[&str] = &[
        "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
        "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
        "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
    ];
    if ONE.iter().any(|c| digits.starts_with(c)) {
        1
    } else if TWO.iter().any(|c| digits.starts_with(c)) {
        2
    } else {
        3
    }
}

/// `+15551234567` -> `+1 *** *** 4567`: the country code (its length from
/// the ITU table in `country_code_len`) and the last four digits, enough
/// for the user to recognise their phone; the rest is always `*** ***`,
/// whatever its length. Anything that is not `+` and 8 to 15 digits (it
/// should have gone through [`normalize_phone`]) is shown as `***`.
pub fn mask_phone(e164: &str) -> String {
    let digits = e164.strip_prefix('+').unwrap_or("");
    if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return "***".into();
    }
    let cc = country_code_len(digits);
    format!("+{} *** *** {}", &digits[..cc], &digits[digits.len() - 4..])
}

/// Sends `code` to `phone` through the configured gateway.
///
/// Twilio: `POST {base_url}/2010-04-01/Accounts/{sid}/Messages.json`, Basic
/// auth, form fields `To`, `From` (or `MessagingServiceSid` when `from`
/// starts with `MG`) and `Body`; success is a 2xx answer with a message
/// `sid`. Webhook: the configured method, URL, headers and body template;
/// success is any 2xx. A plain `http://` URL to a host that is not a
/// loopback address is refused before anything is sent (as config
/// validation does). The client is built for this call and dropped before
/// it returns (no thread outlives it). The error's detail never holds the
/// code or a credential (see [`secrets`]), nor the request URL (a webhook
/// URL may carry an API key).
pub fn send(
    cfg: &SmsConfig,
    trust: Trust,
    issuer: &str,
    user: &str,
    phone: &str,
    code: &str,
) -> Result<(), DeliveryError> {
    if let Some(why) = cfg.plain_http_refusal() {
        return Err(DeliveryError::new("SMS", why));
    }
    let message = fill(
        &cfg.message,
        &[("code", code), ("user", user), ("issuer", issuer)],
    );
    let token = match cfg.gateway {
        SmsGateway::Twilio => {
            let t = &cfg.twilio;
            Zeroizing::new(
                p2fa_core::config::secret(
                    &t.auth_token,
                    &t.auth_token_file,
                    "sms.twilio.auth_token",
                    trust,
                )
                .map_err(|e| DeliveryError::new("SMS", e.0))?,
            )
        }
        SmsGateway::Webhook => Zeroizing::new(String::new()),
    };
    let hide = secrets(cfg, &token, code);
    let http = crate::transport::http_client(&cfg.net(), trust)
        .map_err(|e| DeliveryError::new("SMS", e))?;
    let result = match cfg.gateway {
        SmsGateway::Twilio => twilio(cfg, &http, &token, phone, &message),
        SmsGateway::Webhook => webhook(cfg, &http, phone, user, code, &message),
    };
    drop(http);
    result.map_err(|e| e.redact(&hide.iter().map(|s| s.as_str()).collect::<Vec<_>>()))
}

/// Everything configured or sent that must never reach a log line, however
/// it was loaded (inline or from a `*_file`): the code, the Twilio account
/// SID and token, the Basic credentials as they travel (base64 of
/// `SID:token`, which a gateway may echo as it got it), every webhook
/// header value (and the credential after an `Authorization` scheme word),
/// and the webhook URL's password and query values (API keys).
fn secrets(cfg: &SmsConfig, token: &str, code: &str) -> Vec<Zeroizing<String>> {
    let t = &cfg.twilio;
    let mut out: Vec<Zeroizing<String>> = vec![
        Zeroizing::new(code.to_string()),
        Zeroizing::new(token.to_string()),
        Zeroizing::new(t.account_sid.clone()),
    ];
    if !token.is_empty() {
        out.push(Zeroizing::new(
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{token}", t.account_sid)),
        ));
    }
    if cfg.gateway == SmsGateway::Webhook {
        for v in cfg.webhook.headers.values() {
            out.push(Zeroizing::new(v.clone()));
            if let Some((_scheme, cred)) = v.trim().split_once(' ') {
                out.push(Zeroizing::new(cred.trim().to_string()));
            }
        }
        if let Ok(u) = url::Url::parse(&cfg.webhook.url) {
            if let Some(p) = u.password() {
                out.push(Zeroizing::new(p.to_string()));
            }
            for (_, v) in u.query_pairs() {
                out.push(Zeroizing::new(v.into_owned()));
            }
        }
    }
    // Longest first, so a secret that contains another is masked whole.
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

/// A failed request, described without its URL.
fn request_error(e: &ureq::Error, url: &str) -> DeliveryError {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
        })
        .unwrap_or_else(|| "?".into());
    match crate::transport::classify(e) {
        HttpFailure::Timeout { .. } => {
            DeliveryError::new("SMS", format!("gateway timed out ({host})"))
        }
        // Never the URL: classify leaves it out.
        failure => DeliveryError::new("SMS", format!("gateway unreachable ({host}): {failure}")),
    }
}

fn twilio(
    cfg: &SmsConfig,
    http: &ureq::Agent,
    token: &str,
    phone: &str,
    message: &str,
) -> Result<(), DeliveryError> {
    let t = &cfg.twilio;
    let url = format!(
        "{}/2010-04-01/Accounts/{}/Messages.json",
        t.base_url.trim_end_matches('/'),
        t.account_sid
    );
    let from_key = if t.from.starts_with("MG") {
        "MessagingServiceSid"
    } else {
        "From"
    };
    let form = [
        ("To", phone),
        (from_key, t.from.as_str()),
        ("Body", message),
    ];
    let basic = Zeroizing::new(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{token}", t.account_sid))
    ));
    let resp = http
        .post(&url)
        .header("Authorization", basic.as_str())
        .send_form(form)
        .map_err(|e| request_error(&e, &url))?;
    let status = resp.status();
    let body = crate::transport::read_body(resp).map_err(|e| DeliveryError::new("SMS", e))?;
    let json: Option<Value> = serde_json::from_slice(&body).ok();
    if status.is_success() {
        return match json
            .as_ref()
            .and_then(|v| v.get("sid"))
            .and_then(Value::as_str)
        {
            Some(_) => Ok(()),
            None => Err(DeliveryError::new(
                "SMS",
                format!("Twilio answered {status} without a message sid"),
            )),
        };
    }
    let (code, msg) = json
        .as_ref()
        .map(|v| {
            (
                v.get("code").and_then(Value::as_i64).unwrap_or(0),
                v.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .unwrap_or((0, String::new()));
    Err(DeliveryError::new(
        "SMS",
        format!("Twilio answered {status}: {code} {msg}"),
    ))
}

fn webhook(
    cfg: &SmsConfig,
    http: &ureq::Agent,
    phone: &str,
    user: &str,
    code: &str,
    message: &str,
) -> Result<(), DeliveryError> {
    let w = &cfg.webhook;
    let values = [
        ("phone", phone),
        ("code", code),
        ("user", user),
        ("message", message),
    ];
    let ct = w.content_type.to_ascii_lowercase();
    let body = if ct.contains("json") {
        fill_with(&w.body, &values, json_escape)
    } else if ct.contains("x-www-form-urlencoded") {
        fill_with(&w.body, &values, |v| {
            percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
        })
    } else {
        fill(&w.body, &values)
    };
    let mut req = match w.method.as_str() {
        "PUT" => http.put(&w.url),
        _ => http.post(&w.url),
    };
    req = req.header("Content-Type", &w.content_type);
    for (k, v) in &w.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req.send(body).map_err(|e| request_error(&e, &w.url))?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(DeliveryError::new(
            "SMS",
            format!("webhook answered {status}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers() {
        assert_eq!(
            normalize_phone("+1 (555) 123-4567").unwrap(),
            "+15551234567"
        );
        assert_eq!(
            normalize_phone("+49 30 1234.5678").unwrap(),
            "+493012345678"
        );
        let e = normalize_phone("555 123 4567").unwrap_err();
        assert!(e.contains("country code"), "{e}");
        let e = normalize_phone("0049 30 12345678").unwrap_err();
        assert!(e.contains("+ instead of the leading 00"), "{e}");
        assert_eq!(normalize_phone("+12345678").unwrap(), "+12345678");
        assert_eq!(
            normalize_phone("+123456789012345").unwrap(),
            "+123456789012345"
        );
        let e = normalize_phone("+1 555\u{1b}[2J").unwrap_err();
        assert!(!e.contains('\u{1b}'), "{e}");
        for bad in [
            "+1 555",
            "+0123456789",
            "+1555abc4567",
            "+1234567890123456",
            "",
            "+",
        ] {
            assert!(normalize_phone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_configured_secret_is_redacted() {
        let mut c = SmsConfig::default();
        c.twilio.account_sid = "AC0123456789".into();
        let hide = secrets(&c, "tok-from-file", "246810");
        let e = DeliveryError::new(
            "SMS",
            "401 for AC0123456789:tok-from-file (Basic QUMwMTIzNDU2Nzg5OnRvay1mcm9tLWZpbGU=) code 246810",
        )
        .redact(&hide.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        assert_eq!(e.detail(), "401 for ***:*** (Basic ***) code ***");
        c.gateway = SmsGateway::Webhook;
        c.webhook.url = "https://u:url-pass@gw.example/send?api_key=KEY-123&x=1".into();
        c.webhook
            .headers
            .insert("Authorization".into(), "Bearer hook-secret".into());
        c.webhook
            .headers
            .insert("X-Api-Key".into(), "k-456789".into());
        let hide = secrets(&c, "", "1");
        let e = DeliveryError::new(
            "SMS",
            "echo: Bearer hook-secret / hook-secret / k-456789 / url-pass / KEY-123",
        )
        .redact(&hide.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        assert_eq!(e.detail(), "echo: *** / *** / *** / *** / ***");
    }

    #[test]
    fn masks() {
        assert_eq!(mask_phone("+15551234567"), "+1 *** *** 4567");
        assert_eq!(mask_phone("+447700900123"), "+44 *** *** 0123");
        assert_eq!(mask_phone("+353871234567"), "+353 *** *** 4567");
        assert_eq!(mask_phone("+12025550123"), "+1 *** *** 0123");
        assert_eq!(mask_phone("+79161234567"), "+7 *** *** 4567");
        assert_eq!(mask_phone("+8613812345678"), "+86 *** *** 5678");
        assert_eq!(mask_phone("+1"), "***");
        // Not normalised: never a panic, never more digits than intended.
        for odd in [
            "",
            "+",
            "15551234567",
            "+1555123456é",
            "+1555-123-4567",
            "+éééééééé",
        ] {
            assert_eq!(mask_phone(odd), "***", "{odd}");
        }
    }
}
