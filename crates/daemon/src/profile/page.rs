//! The profile page's HTML (maud: every value is escaped at compile
//! time). Plain forms that work without JavaScript; only WebAuthn needs
//! the small same-origin script. Landmarks, headings, tables with
//! captions and scoped headers, labels on every field, and the page's
//! messages in a live region, so that it works with a keyboard and a
//! screen reader.

use super::text::{Text, fill};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use p2fa_core::factor::questions::{MAX_QUESTION, MIN_QUESTION};
use p2fa_core::store::{Remembered, UserStatus};
use p2fa_proto::protocol::KeyInfo;

/// Everything one rendering of the page shows.
pub struct View<'a> {
    pub t: &'static Text,
    pub user: &'a str,
    pub host: &'a str,
    pub by_root: bool,
    /// When the session ends, as text.
    pub until: String,
    pub csrf: &'a str,
    /// Changes need a proof first (the user has a factor, is not root,
    /// and has not proved one in this session).
    pub needs_proof: bool,
    /// The user holds a security key that 2fad can check.
    pub can_prove_key: bool,
    /// Where a proof code can be sent: (channel, masked address).
    pub send_to: Vec<(&'static str, String)>,
    /// A proof code was sent by this channel.
    pub sent_via: Option<String>,
    pub flash: Option<(bool, String)>,
    pub status: UserStatus,
    /// The methods the page lists: (id, allowed by policy, offered on
    /// this system).
    pub methods: Vec<(&'static str, bool)>,
    pub keys_enabled: bool,
    pub keys: Vec<KeyInfo>,
    pub devices: Vec<Remembered>,
    /// A TOTP setup in progress: (QR code as SVG, key).
    pub totp: Option<(String, String)>,
    pub codes: Option<Vec<String>>,
    pub backup_total: u32,
    /// Where a confirmation code was sent, while it waits to be typed.
    pub contact: Option<String>,
    /// Duo's word on the user (only when Duo is on and allowed).
    pub duo: Option<DuoView>,
    /// The question form, when open.
    pub questions: Option<QuestionsForm>,
}

/// What the security-question form offers.
pub struct QuestionsForm {
    /// The admin's questions.
    pub choices: Vec<String>,
    /// How many to choose and answer.
    pub count: u32,
    /// Users may write their own questions too.
    pub allow_custom: bool,
    /// The questions the user has now (theirs may be their own text).
    pub current: Vec<String>,
}

/// The value of the "Write my own question…" choice: no listed question
/// is empty (config validation), so it is never one of them.
pub const OWN_QUESTION: &str = "";

/// What Duo said about the user (preauth).
pub struct DuoView {
    pub state: String,
    pub portal: String,
    pub devices: Vec<String>,
}

/// `YYYY-MM-DD HH:MM UTC`.
pub use p2fa_core::clock::utc_minutes as utc;

fn head(t: &Text, title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " – " (t.title) }
            link rel="stylesheet" href="/static/profile.css";
        }
    }
}

/// A page with only a heading and a sentence (expired, ended, ...).
pub fn notice(t: &Text, title: &str, text: &str) -> String {
    short_page(t, title, text, html! {})
}

/// A page of a title, a sentence (`#notice`) and `more`.
fn short_page(t: &Text, title: &str, text: &str, more: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang=(t.lang) {
            (head(t, title))
            body {
                main id="main" {
                    h1 { (title) }
                    p id="notice" { (text) }
                    (more)
                }
            }
        }
    }
    .into_string()
}

/// What a link shows when fetched: `text` and one button that posts
/// back to the link (which opens it, or for a used link ends the page it
/// opened). Fetching uses nothing up, so link previews and prefetching
/// browsers do no harm.
pub fn landing(t: &Text, token: &str, title: &str, text: &str, button: &str) -> String {
    let form = html! {
        form id="open" method="post" action={ "/p/" (token) } {
            button type="submit" { (button) }
        }
    };
    short_page(t, title, text, form)
}

/// A change form: one button, the CSRF token, an action and its fields.
fn action(csrf: &str, act: &str, fields: &[(&str, &str)], label: &str, class: &str) -> Markup {
    html! {
        form method="post" action="/profile/do" class="inline" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="action" value=(act);
            @for (k, v) in fields {
                input type="hidden" name=(k) value=(v);
            }
            button type="submit" class=(class) { (label) }
        }
    }
}

pub fn render(v: &View) -> String {
    let t = v.t;
    html! {
        (DOCTYPE)
        html lang=(t.lang) {
            (head(t, t.title))
            body data-csrf=(v.csrf) {
                a href="#main" class="skip" { (t.skip_to_main) }
                header {
                    h1 { (t.heading) }
                    p id="who" { (fill(t.for_user, &[("user", v.user), ("host", v.host), ("until", &v.until)])) }
                    form method="post" action="/profile/logout" {
                        input type="hidden" name="csrf" value=(v.csrf);
                        button type="submit" id="logout" class="secondary" { (t.logout) }
                    }
                }
                main id="main" tabindex="-1" {
                    div id="flash" role="status" aria-live="polite" {
                        @if let Some((ok, msg)) = &v.flash {
                            p class=(if *ok { "ok" } else { "bad" }) { (msg) }
                        }
                    }
                    @if v.by_root {
                        p class="banner" id="acting" { (fill(t.acting_as_root, &[("user", v.user)])) }
                    }
                    @if let Some(codes) = &v.codes { (codes_section(v, codes)) }
                    @if let Some((svg, key)) = &v.totp { (totp_section(v, svg, key)) }
                    @if let Some(sent) = &v.contact { (contact_section(v, sent)) }
                    @if let Some(q) = &v.questions { (questions_section(v, q)) }
                    @if v.needs_proof { (prove_section(v)) }
                    (methods_section(v))
                    (keys_section(v))
                    (devices_section(v))
                    (history_section(v))
                }
                script src="/static/credential.js" {}
                script src="/static/profile.js" {}
            }
        }
    }
    .into_string()
}

fn prove_section(v: &View) -> Markup {
    let t = v.t;
    html! {
        section id="prove" aria-labelledby="prove-h" {
            h2 id="prove-h" { (t.prove_heading) }
            p { (t.prove_intro) }
            form method="post" action="/profile/do" {
                input type="hidden" name="csrf" value=(v.csrf);
                input type="hidden" name="action" value="prove";
                label for="proof-code" { (t.prove_code_label) }
                input id="proof-code" name="code" type="text" inputmode="numeric"
                    autocomplete="one-time-code" required aria-describedby="proof-hint";
                p id="proof-hint" class="hint" { (t.prove_code_hint) }
                button type="submit" id="prove-code" { (t.prove_button) }
            }
            @if v.can_prove_key {
                p { button type="button" id="prove-key" class="secondary" { (t.prove_key_button) } }
            }
            @for (ch, to) in &v.send_to {
                (action(v.csrf, "proof-send", &[("channel", ch)], &fill(t.prove_send, &[("to", to)]), "secondary"))
            }
            @if let Some(ch) = &v.sent_via {
                form method="post" action="/profile/do" {
                    input type="hidden" name="csrf" value=(v.csrf);
                    input type="hidden" name="action" value="prove-sent";
                    input type="hidden" name="channel" value=(ch);
                    label for="sent-code" { (t.prove_sent_label) }
                    input id="sent-code" name="code" type="text" inputmode="numeric"
                        autocomplete="one-time-code" required;
                    button type="submit" id="prove-sent" { (t.prove_button) }
                }
            }
        }
    }
}

fn totp_section(v: &View, svg: &str, key: &str) -> Markup {
    let t = v.t;
    html! {
        section id="totp-setup" aria-labelledby="totp-h" {
            h2 id="totp-h" { (t.totp_heading) }
            p { (t.totp_intro) }
            figure id="totp-qr" role="img" aria-label=(t.totp_qr_label) { (PreEscaped(svg)) }
            p { (t.totp_key_label) ": " code id="totp-secret" { (key) } }
            form method="post" action="/profile/do" {
                input type="hidden" name="csrf" value=(v.csrf);
                input type="hidden" name="action" value="totp-finish";
                label for="totp-code" { (t.totp_code_label) }
                input id="totp-code" name="code" type="text" inputmode="numeric"
                    autocomplete="one-time-code" required;
                button type="submit" id="totp-confirm" { (t.totp_confirm) }
            }
            (action(v.csrf, "totp-cancel", &[], t.cancel, "secondary"))
        }
    }
}

fn codes_section(v: &View, codes: &[String]) -> Markup {
    let t = v.t;
    html! {
        section id="codes" aria-labelledby="codes-h" {
            h2 id="codes-h" { (t.codes_heading) }
            p { (t.codes_intro) }
            ol id="code-list" {
                @for c in codes { li { code { (c) } } }
            }
            p {
                a id="codes-download" href="/profile/backup-codes.txt" download="backup-codes.txt" { (t.codes_download) }
            }
            (action(v.csrf, "codes-done", &[], t.codes_done, "secondary"))
        }
    }
}

fn contact_section(v: &View, sent: &str) -> Markup {
    let t = v.t;
    html! {
        section id="contact-confirm" aria-labelledby="contact-h" {
            h2 id="contact-h" { (t.contact_heading) }
            p { (sent) }
            form method="post" action="/profile/do" {
                input type="hidden" name="csrf" value=(v.csrf);
                input type="hidden" name="action" value="contact-finish";
                label for="contact-code" { (t.contact_code_label) }
                input id="contact-code" name="code" type="text" inputmode="numeric"
                    autocomplete="one-time-code" required;
                button type="submit" id="contact-confirm-button" { (t.contact_confirm) }
            }
            (action(v.csrf, "contact-cancel", &[], t.cancel, "secondary"))
        }
    }
}

/// The question form: per question a select of the admin's questions
/// and, when users may write their own, a "Write my own question…"
/// choice with a text field for it. Without JavaScript every field shows
/// (the hint says when the own question counts); profile.js shows the
/// text field only while that choice is selected.
fn questions_section(v: &View, q: &QuestionsForm) -> Markup {
    let t = v.t;
    let limits = [
        ("min", MIN_QUESTION.to_string()),
        ("max", MAX_QUESTION.to_string()),
    ];
    let limits: Vec<(&str, &str)> = limits.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let intro = if q.allow_custom {
        t.questions_intro_custom
    } else {
        t.questions_intro
    };
    html! {
        section id="questions-setup" aria-labelledby="questions-h" {
            h2 id="questions-h" { (t.questions_heading) }
            p { (fill(intro, &[("count", &q.count.to_string())])) }
            @if !q.current.is_empty() {
                p id="questions-current-h" { (t.questions_current) }
                ol id="questions-current" aria-labelledby="questions-current-h" {
                    @for c in &q.current { li { (c) } }
                }
            }
            form method="post" action="/profile/do" {
                input type="hidden" name="csrf" value=(v.csrf);
                input type="hidden" name="action" value="questions-set";
                @for i in 0..q.count as usize {
                    fieldset {
                        legend { (fill(t.question_legend, &[("n", &(i + 1).to_string())])) }
                        label for={ "q" (i) } { (t.question_label) }
                        @if q.allow_custom {
                            select id={ "q" (i) } name={ "q" (i) } data-own={ "own" (i) } {
                                @for (j, c) in q.choices.iter().enumerate() {
                                    option value=(c) selected[j == i] { (c) }
                                }
                                option value=(OWN_QUESTION) selected[i >= q.choices.len()] { (t.question_own_option) }
                            }
                            div class="own-question" id={ "own" (i) } {
                                label for={ "c" (i) } { (t.question_own_label) }
                                input id={ "c" (i) } name={ "c" (i) } type="text" autocomplete="off"
                                    maxlength=(MAX_QUESTION) aria-describedby={ "c" (i) "-hint" };
                                p id={ "c" (i) "-hint" } class="hint" { (fill(t.question_own_hint, &limits)) }
                            }
                        } @else {
                            select id={ "q" (i) } name={ "q" (i) } required {
                                @for (j, c) in q.choices.iter().enumerate() {
                                    option value=(c) selected[j == i] { (c) }
                                }
                            }
                        }
                        label for={ "a" (i) } { (t.answer_label) }
                        input id={ "a" (i) } name={ "a" (i) } type="text" autocomplete="off" required;
                        label for={ "r" (i) } { (t.answer_again_label) }
                        input id={ "r" (i) } name={ "r" (i) } type="text" autocomplete="off" required;
                    }
                }
                button type="submit" id="questions-save" { (t.questions_save) }
            }
            (action(v.csrf, "questions-cancel", &[], t.cancel, "secondary"))
        }
    }
}

/// The small form that sends a confirmation code to a new number or
/// address.
fn contact_form(v: &View, id: &str) -> Markup {
    let t = v.t;
    let (label, kind, mode) = if id == "sms" {
        (t.phone_label, "tel", "tel")
    } else {
        (t.email_label, "email", "email")
    };
    html! {
        form method="post" action="/profile/do" class="contact" {
            input type="hidden" name="csrf" value=(v.csrf);
            input type="hidden" name="action" value="contact-begin";
            input type="hidden" name="channel" value=(id);
            label for={ "address-" (id) } { (label) }
            input id={ "address-" (id) } name="address" type=(kind) inputmode=(mode)
                autocomplete=(if id == "sms" { "tel" } else { "email" }) required;
            button type="submit" { (t.send_code) }
        }
    }
}

fn duo_status(v: &View) -> String {
    let t = v.t;
    match &v.duo {
        Some(d) => match d.state.as_str() {
            "auth" => fill(t.duo_known, &[("devices", &d.devices.join(", "))]),
            "allow" => t.duo_allow.into(),
            "enroll" => t.duo_enroll.into(),
            "deny" => t.duo_deny.into(),
            _ => t.duo_unavailable.into(),
        },
        None => t.duo_unavailable.into(),
    }
}

fn method_row(v: &View, id: &'static str, allowed: bool) -> Markup {
    let t = v.t;
    let s = &v.status;
    let locked = v.needs_proof;
    let (status, configured): (String, bool) = match id {
        "totp" | "hotp" => match &s.otp {
            Some(o) if o.kind == id => (
                fill(t.configured_since, &[("date", &utc(o.enrolled_at))]),
                true,
            ),
            _ => (t.not_configured.into(), false),
        },
        "backup" if s.backup_codes_remaining + s.backup_codes_used > 0 => (
            fill(
                t.codes_left,
                &[
                    ("left", &s.backup_codes_remaining.to_string()),
                    (
                        "total",
                        &(s.backup_codes_remaining + s.backup_codes_used).to_string(),
                    ),
                ],
            ),
            true,
        ),
        "sms" => s
            .sms
            .clone()
            .map_or((t.not_configured.into(), false), |n| (n, true)),
        "email" => s
            .email
            .clone()
            .map_or((t.not_configured.into(), false), |n| (n, true)),
        "duo" => (duo_status(v), s.duo),
        "questions" if s.questions > 0 => (
            fill(t.questions_count, &[("n", &s.questions.to_string())]),
            true,
        ),
        "webauthn" if s.webauthn + s.local_keys > 0 => (
            fill(
                t.keys_count,
                &[("n", &(s.webauthn + s.local_keys).to_string())],
            ),
            true,
        ),
        _ => (t.not_configured.into(), false),
    };
    // The newest login with this method, from the history (or, for a
    // store without history yet, the last success).
    let by = |f: &str| {
        f == id || (id == "webauthn" && f == "localkey") || (id == "duo" && f.starts_with("duo-"))
    };
    let last = s
        .recent_logins
        .iter()
        .find(|l| by(&l.factor))
        .map(|l| l.time)
        .or_else(|| {
            s.last_success
                .as_ref()
                .filter(|l| by(&l.factor))
                .map(|l| l.time)
        })
        .map_or(t.never.to_string(), utc);
    html! {
        tr id={ "method-" (id) } {
            th scope="row" { (t.method(id)) }
            td class="status" { @if allowed { (status) } @else { (t.not_allowed) } }
            td { (last) }
            td class="actions" {
                @if allowed && !locked {
                    @match id {
                        "totp" => {
                            (action(v.csrf, "totp-begin", &[], if configured { t.replace } else { t.set_up }, ""))
                            @if configured { (action(v.csrf, "remove", &[("method", "totp")], t.remove, "danger")) }
                        }
                        "backup" => {
                            (action(v.csrf, "backup-new", &[], if configured { t.new_codes } else { t.set_up }, ""))
                            @if configured { (action(v.csrf, "remove", &[("method", "backup")], t.remove, "danger")) }
                        }
                        "webauthn" => {
                            @if v.keys_enabled { a href="#keys" { (t.keys_heading) } }
                        }
                        "sms" | "email" => {
                            (contact_form(v, id))
                            @if configured { (action(v.csrf, "remove", &[("method", id)], t.remove, "danger")) }
                        }
                        "duo" => {
                            @if let Some(d) = &v.duo {
                                @if d.state == "enroll" && !d.portal.is_empty() {
                                    p { a id="duo-portal" href=(d.portal) rel="noopener noreferrer" { (t.duo_enroll_link) } }
                                }
                            }
                            @if configured {
                                (action(v.csrf, "remove", &[("method", "duo")], t.remove, "danger"))
                            } @else {
                                (action(v.csrf, "duo-enroll", &[], t.duo_use, ""))
                            }
                        }
                        "questions" => {
                            (action(v.csrf, "questions-begin", &[], if configured { t.replace } else { t.set_up }, ""))
                            @if configured { (action(v.csrf, "remove", &[("method", "questions")], t.remove, "danger")) }
                        }
                        _ => { span class="hint" { (t.ask_admin) } }
                    }
                }
            }
        }
    }
}

fn methods_section(v: &View) -> Markup {
    let t = v.t;
    html! {
        section id="methods" aria-labelledby="methods-h" {
            h2 id="methods-h" { (t.methods_heading) }
            table {
                caption { (t.methods_caption) }
                thead { tr {
                    th scope="col" { (t.col_method) }
                    th scope="col" { (t.col_status) }
                    th scope="col" { (t.col_last_used) }
                    th scope="col" { (t.col_actions) }
                } }
                tbody {
                    @for (id, allowed) in &v.methods { (method_row(v, id, *allowed)) }
                }
            }
        }
    }
}

fn keys_section(v: &View) -> Markup {
    let t = v.t;
    html! {
        section id="keys" aria-labelledby="keys-h" {
            h2 id="keys-h" { (t.keys_heading) }
            @if v.keys.is_empty() {
                p { (t.no_keys) }
            } @else {
                table {
                    caption { (t.keys_caption) }
                    thead { tr {
                        th scope="col" { (t.col_name) }
                        th scope="col" { (t.col_added) }
                        th scope="col" { (t.col_last_used) }
                        th scope="col" { (t.col_actions) }
                    } }
                    tbody {
                        @for k in &v.keys {
                            tr class="key" {
                                th scope="row" { (k.name) @if k.local { " " (t.key_local) } }
                                td { (utc(k.created_at)) }
                                td { (k.last_used_at.map_or(t.never.to_string(), utc)) }
                                td { @if !v.needs_proof {
                                    (action(v.csrf, "key-remove", &[("name", &k.name)], t.remove, "danger"))
                                } }
                            }
                        }
                    }
                }
            }
            @if !v.keys_enabled {
                p { (t.keys_disabled) }
            } @else if !v.needs_proof {
                form id="add-key" {
                    label for="key-name" { (t.key_name_label) }
                    input id="key-name" name="name" type="text" maxlength="64" required;
                    button type="submit" id="key-add" { (t.key_add) }
                    noscript { p { (t.key_needs_script) } }
                }
            }
        }
    }
}

fn devices_section(v: &View) -> Markup {
    let t = v.t;
    html! {
        section id="devices" aria-labelledby="devices-h" {
            h2 id="devices-h" { (t.devices_heading) }
            @if v.devices.is_empty() {
                p { (t.no_devices) }
            } @else {
                table {
                    caption { (t.devices_caption) }
                    thead { tr {
                        th scope="col" { (t.col_service) }
                        th scope="col" { (t.col_from) }
                        th scope="col" { (t.col_remembered) }
                        th scope="col" { (t.col_expires) }
                        th scope="col" { (t.col_actions) }
                    } }
                    tbody {
                        @for d in &v.devices {
                            tr class="device" {
                                th scope="row" { (d.service) }
                                td { @if d.source.is_empty() { (t.this_machine) } @else { (d.source) } }
                                td { (utc(d.created_at)) }
                                td { (utc(d.expires_at)) }
                                td { (action(v.csrf, "device-forget", &[("id", &d.id.to_string())], t.forget, "")) }
                            }
                        }
                    }
                }
                (action(v.csrf, "device-forget", &[], t.forget_all, "secondary"))
            }
        }
    }
}

fn history_section(v: &View) -> Markup {
    let t = v.t;
    let logins = &v.status.recent_logins;
    html! {
        section id="history" aria-labelledby="history-h" {
            h2 id="history-h" { (t.history_heading) }
            @if logins.is_empty() {
                p { (t.no_logins) }
            } @else {
                table {
                    caption { (t.history_caption) }
                    thead { tr {
                        th scope="col" { (t.col_time) }
                        th scope="col" { (t.col_service) }
                        th scope="col" { (t.col_from) }
                        th scope="col" { (t.col_factor) }
                    } }
                    tbody {
                        @for l in logins {
                            tr class="login" {
                                th scope="row" { (utc(l.time)) }
                                td { (l.service) @if !l.host.is_empty() { " (" (l.host) ")" } }
                                td { @if l.rhost.is_empty() { (t.this_machine) } @else { (l.rhost) } }
                                td { (l.factor) }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_796_601_599), "2026-12-06 23:59 UTC");
    }

    #[test]
    fn notices_escape_their_text() {
        let p = notice(&super::super::text::EN, "<x>", "a & b");
        assert!(p.contains("&lt;x&gt;") && p.contains("a &amp; b"), "{p}");
    }
}
