//! Rendering the profile page from the user's state (through the
//! broker, as the socket would answer them), and the one-time download of
//! new backup codes.

use super::text::{Text, text};
use super::{Answer, Req, Site, ask, no_session, page, sid};
use p2fa_core::clock::unix_now;
use p2fa_core::factor::FactorId;
use p2fa_proto::protocol::{Op, Response};

pub(super) fn show(site: &Site, t: &'static Text, r: &Req) -> Answer {
    // Take what the page shows once (the message of the last change).
    let got = site.profiles.with(sid(r), r.peer, |s| {
        (
            s.owner.clone(),
            s.csrf.clone(),
            s.elevated,
            s.flash.take(),
            s.totp.as_ref().map(|x| (x.uri.clone(), x.secret.clone())),
            s.codes.clone(),
            s.expires,
            (s.contact.clone(), s.questions, s.sent_via.clone()),
        )
    });
    let (owner, csrf, elevated, flash, totp, codes, expires, (contact, questions, sent_via)) =
        match got {
            Ok(x) => x,
            Err(why) => return no_session(t, why),
        };
    let status = match ask(site, &owner, elevated, Op::Status) {
        Response::Status { status } => serde_json::from_value(status).unwrap_or_default(),
        Response::Error { message, .. } => {
            return Answer::html(503, page::notice(t, t.unavailable, &message));
        }
        _ => return Answer::html(503, page::notice(t, t.unavailable, t.unavailable)),
    };
    let keys = match ask(site, &owner, elevated, Op::WebauthnList) {
        Response::Keys { keys } => keys,
        _ => Vec::new(),
    };
    let devices = match ask(site, &owner, elevated, Op::DevicesList) {
        Response::Devices { devices } => devices,
        _ => Vec::new(),
    };
    let cfg = &site.cfg;
    let status: p2fa_core::store::UserStatus = status;
    let groups = p2fa_core::users::groups(&owner.user);
    let (allowed, _) = p2fa_core::policy::allowed_methods(cfg, &groups);
    let offered = |f: FactorId| match f {
        FactorId::Sms => cfg.sms.enabled,
        FactorId::Email => cfg.email.enabled,
        FactorId::Duo => cfg.duo.enabled,
        FactorId::Questions => cfg.questions.enabled,
        FactorId::Hotp => status.otp.as_ref().is_some_and(|o| o.kind == "hotp"),
        _ => true,
    };
    let methods: Vec<(&'static str, bool)> = [
        FactorId::Totp,
        FactorId::Hotp,
        FactorId::Backup,
        FactorId::Webauthn,
        FactorId::Sms,
        FactorId::Email,
        FactorId::Duo,
        FactorId::Questions,
    ]
    .into_iter()
    .filter(|f| offered(*f))
    .map(|f| (f.as_str(), p2fa_core::policy::allows_factor(&allowed, f)))
    .collect();
    let allowed_here = |f: FactorId| methods_allow(&methods, f);
    let duo = (cfg.duo.enabled && allowed_here(FactorId::Duo))
        .then(|| match ask(site, &owner, elevated, Op::DuoStatus) {
            Response::Duo {
                state,
                portal,
                devices,
                ..
            } => Some(page::DuoView {
                state,
                portal,
                devices,
            }),
            _ => None,
        })
        .flatten();
    let questions = questions
        .then(|| match ask(site, &owner, elevated, Op::QuestionsChoices) {
            Response::Questions {
                choices,
                count,
                allow_custom,
                current,
            } => Some(page::QuestionsForm {
                choices,
                count,
                allow_custom,
                current,
            }),
            _ => None,
        })
        .flatten();
    let has_factor = status.enrolled;
    let host = p2fa_core::config::host_name(&cfg.host_id);
    let totp = totp.map(|(uri, secret)| (qr_svg(&uri), secret.to_string()));
    let view = page::View {
        t,
        user: &owner.user,
        host: &host,
        by_root: owner.by_root(),
        until: page::utc(expires),
        csrf: &csrf,
        needs_proof: has_factor && !owner.by_root() && elevated.is_none(),
        can_prove_key: status.webauthn > 0 && cfg.webauthn.enabled,
        send_to: [
            (FactorId::Sms, status.sms.as_ref(), cfg.sms.enabled),
            (FactorId::Email, status.email.as_ref(), cfg.email.enabled),
        ]
        .into_iter()
        .filter_map(|(ch, a, on)| {
            let a = a.filter(|_| on)?;
            Some((ch.as_str(), p2fa_net::delivery::mask(ch, a)))
        })
        .collect(),
        sent_via,
        flash,
        backup_total: status.backup_codes_remaining + status.backup_codes_used,
        status,
        methods,
        keys_enabled: cfg.webauthn.enabled,
        keys,
        devices,
        totp,
        codes: codes.map(|c| c.to_vec()),
        contact,
        duo,
        questions,
    };
    Answer::html(200, page::render(&view))
}

/// Whether the listed `methods` have `f` allowed by the policy.
fn methods_allow(methods: &[(&'static str, bool)], f: FactorId) -> bool {
    methods.iter().any(|(id, ok)| *id == f.as_str() && *ok)
}

/// The otpauth URI as an SVG QR code (dark on light, scaled by CSS).
fn qr_svg(uri: &str) -> String {
    use qrcode::render::svg;
    qrcode::QrCode::with_error_correction_level(uri, qrcode::EcLevel::M)
        .map(|c| {
            c.render::<svg::Color>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build()
        })
        .unwrap_or_default()
}

pub(super) fn download(site: &Site, r: &Req) -> Answer {
    let got = site
        .profiles
        .with(sid(r), r.peer, |s| (s.codes.clone(), s.owner.user.clone()));
    match got {
        Ok((Some(codes), user)) => {
            let host = p2fa_core::config::host_name(&site.cfg.host_id);
            let mut body = format!(
                "Backup codes for {user} on {host} ({})\nEach code works once.\n\n",
                page::utc(unix_now())
            );
            for c in codes.iter() {
                body.push_str(c);
                body.push('\n');
            }
            Answer {
                ctype: "text/plain; charset=utf-8",
                disposition: Some("attachment; filename=\"backup-codes.txt\""),
                ..Answer::html(200, body)
            }
        }
        Ok((None, _)) => Answer::html(404, page::notice(text(), "Not found", "No new codes.")),
        Err(why) => no_session(text(), why),
    }
}
