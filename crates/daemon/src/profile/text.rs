//! Every word the profile page shows, in one place so that it can be
//! translated: copy [`EN`], translate the strings (keep the `{name}`
//! placeholders), and select it in [`text`]. The page never builds a
//! sentence from pieces of another language's grammar: each message is
//! whole, with placeholders.

/// The page's strings.
pub struct Text {
    pub lang: &'static str,
    pub title: &'static str,
    pub heading: &'static str,
    /// `{user}`, `{host}`, `{until}`.
    pub for_user: &'static str,
    /// `{user}`.
    pub acting_as_root: &'static str,
    pub logout: &'static str,
    pub logged_out: &'static str,
    pub skip_to_main: &'static str,

    pub prove_heading: &'static str,
    pub prove_intro: &'static str,
    pub prove_code_label: &'static str,
    pub prove_code_hint: &'static str,
    pub prove_button: &'static str,
    pub prove_key_button: &'static str,
    /// `{to}`.
    pub prove_send: &'static str,
    pub prove_sent_label: &'static str,
    /// `{factor}`.
    pub proved: &'static str,

    pub methods_heading: &'static str,
    pub methods_caption: &'static str,
    pub col_method: &'static str,
    pub col_status: &'static str,
    pub col_last_used: &'static str,
    pub col_actions: &'static str,
    pub not_configured: &'static str,
    pub not_allowed: &'static str,
    /// `{date}`.
    pub configured_since: &'static str,
    /// `{left}`, `{total}`.
    pub codes_left: &'static str,
    /// `{n}`.
    pub keys_count: &'static str,
    pub never: &'static str,
    pub set_up: &'static str,
    pub replace: &'static str,
    pub remove: &'static str,
    pub new_codes: &'static str,
    pub ask_admin: &'static str,
    /// `{number}`.
    pub method_names: [(&'static str, &'static str); 8],

    pub phone_label: &'static str,
    pub email_label: &'static str,
    pub send_code: &'static str,
    pub contact_heading: &'static str,
    pub contact_code_label: &'static str,
    pub contact_confirm: &'static str,
    pub duo_use: &'static str,
    /// `{devices}`.
    pub duo_known: &'static str,
    pub duo_allow: &'static str,
    pub duo_enroll: &'static str,
    pub duo_enroll_link: &'static str,
    pub duo_deny: &'static str,
    pub duo_unavailable: &'static str,
    pub questions_heading: &'static str,
    /// `{count}`.
    pub questions_intro: &'static str,
    /// `{n}`.
    pub question_legend: &'static str,
    pub question_label: &'static str,
    pub answer_label: &'static str,
    pub answer_again_label: &'static str,
    pub questions_save: &'static str,
    /// `{n}`.
    pub questions_count: &'static str,
    pub answers_differ: &'static str,
    /// `{count}`: the intro when users may write their own questions.
    pub questions_intro_custom: &'static str,
    pub questions_current: &'static str,
    pub question_own_option: &'static str,
    pub question_own_label: &'static str,
    /// `{min}`, `{max}`.
    pub question_own_hint: &'static str,
    /// The refusals of a chosen question, each `{n}` (which question);
    /// `question_length` also `{min}`, `{max}`.
    pub question_empty: &'static str,
    pub question_own_not_allowed: &'static str,
    pub question_length: &'static str,
    pub question_not_printable: &'static str,
    pub question_repeated: &'static str,
    /// A question written in the field while a listed one was chosen.
    pub question_own_unused: &'static str,

    pub totp_heading: &'static str,
    pub totp_intro: &'static str,
    pub totp_qr_label: &'static str,
    pub totp_key_label: &'static str,
    pub totp_code_label: &'static str,
    pub totp_confirm: &'static str,
    pub cancel: &'static str,

    pub codes_heading: &'static str,
    pub codes_intro: &'static str,
    pub codes_download: &'static str,
    pub codes_done: &'static str,

    pub keys_heading: &'static str,
    pub keys_caption: &'static str,
    pub col_name: &'static str,
    pub col_added: &'static str,
    pub key_local: &'static str,
    pub no_keys: &'static str,
    pub key_name_label: &'static str,
    pub key_add: &'static str,
    pub key_needs_script: &'static str,
    pub keys_disabled: &'static str,

    pub devices_heading: &'static str,
    pub devices_caption: &'static str,
    pub col_service: &'static str,
    pub col_from: &'static str,
    pub col_remembered: &'static str,
    pub col_expires: &'static str,
    pub no_devices: &'static str,
    pub forget: &'static str,
    pub forget_all: &'static str,
    pub this_machine: &'static str,

    pub history_heading: &'static str,
    pub history_caption: &'static str,
    pub col_time: &'static str,
    pub col_factor: &'static str,
    pub no_logins: &'static str,

    pub expired_title: &'static str,
    pub expired_text: &'static str,
    pub ended_title: &'static str,
    pub ended_text: &'static str,
    pub no_session_title: &'static str,
    pub no_session_text: &'static str,
    pub reused_title: &'static str,
    pub reused_text: &'static str,
    pub used_text: &'static str,
    pub used_button: &'static str,
    pub landing_title: &'static str,
    pub landing_text: &'static str,
    pub landing_button: &'static str,
    pub forbidden: &'static str,
    pub needs_proof: &'static str,
    pub key_waiting: &'static str,
    pub key_failed: &'static str,
    pub key_done: &'static str,
    pub unavailable: &'static str,
}

pub const EN: Text = Text {
    lang: "en",
    title: "Two-factor authentication",
    heading: "Two-factor authentication",
    for_user: "Account {user} on {host}. This page works until {until}.",
    acting_as_root: "You are acting for {user} as root: no proof is needed, and every change is logged as made by root.",
    logout: "Log out",
    logged_out: "You are logged out of the profile page. Run 2fa-enroll web for a new link.",
    skip_to_main: "Skip to the content",

    prove_heading: "Confirm it is you",
    prove_intro: "You already have a second factor. Before you change anything, prove that you hold it: this counts like a login, and wrong codes count towards the lockout.",
    prove_code_label: "Current code",
    prove_code_hint: "From your authenticator app, or one of your backup codes.",
    prove_button: "Confirm",
    prove_key_button: "Use my security key instead",
    prove_send: "Send a code to {to}",
    prove_sent_label: "Code we sent",
    proved: "Confirmed with {factor}. You can make changes until this page expires.",

    methods_heading: "Your methods",
    methods_caption: "The methods your administrator allows for you, and which you have set up",
    col_method: "Method",
    col_status: "Status",
    col_last_used: "Last used",
    col_actions: "Actions",
    not_configured: "Not set up",
    not_allowed: "Not allowed for you",
    configured_since: "Set up on {date}",
    codes_left: "{left} of {total} left",
    keys_count: "{n} registered",
    never: "Never",
    set_up: "Set up",
    replace: "Replace",
    remove: "Remove",
    new_codes: "New codes",
    ask_admin: "Ask your administrator",
    method_names: [
        ("totp", "Authenticator app"),
        ("hotp", "Hardware token (counter codes)"),
        ("backup", "Backup codes"),
        ("sms", "Text message (SMS)"),
        ("email", "E-mail"),
        ("duo", "Duo"),
        ("questions", "Security questions"),
        ("webauthn", "Security keys and passkeys"),
    ],

    phone_label: "Phone number with country code",
    email_label: "E-mail address",
    send_code: "Send a code",
    contact_heading: "Confirm the code we sent",
    contact_code_label: "Code you received",
    contact_confirm: "Confirm and save",
    duo_use: "Use Duo",
    duo_known: "Duo knows you ({devices})",
    duo_allow: "Duo lets you in without a prompt",
    duo_enroll: "You have not finished enrolling with Duo",
    duo_enroll_link: "Finish enrolling with Duo",
    duo_deny: "Duo does not accept you; ask your administrator",
    duo_unavailable: "Duo cannot be reached right now",
    questions_heading: "Choose your security questions",
    questions_intro: "Choose {count} different questions and answer them. Answers others can find out (social media, public records) protect little.",
    question_legend: "Question {n}",
    question_label: "Question",
    answer_label: "Answer",
    answer_again_label: "Answer again",
    questions_save: "Save the questions",
    questions_count: "{n} questions",
    answers_differ: "The two answers to a question differ; nothing was saved.",
    questions_intro_custom: "Choose {count} different questions, from the list or written by you, and answer them. Answers others can find out (social media, public records) protect little.",
    questions_current: "Your questions now (saving replaces them all):",
    question_own_option: "Write my own question…",
    question_own_label: "My own question",
    question_own_hint: "Used when “Write my own question…” is chosen above: {min} to {max} characters. Ask something only you know, whose answer does not change.",
    question_empty: "Question {n} is empty: choose one from the list, or write your own. Nothing was saved.",
    question_own_not_allowed: "Question {n}: your administrator does not allow questions of your own; choose one from the list. Nothing was saved.",
    question_length: "Question {n}: a question of your own needs {min} to {max} characters. Nothing was saved.",
    question_not_printable: "Question {n}: a question cannot contain line breaks, control characters or invisible characters. Nothing was saved.",
    question_repeated: "Question {n} is the same as an earlier one; choose different questions. Nothing was saved.",
    question_own_unused: "Question {n}: you wrote a question of your own but chose one from the list. To use yours, choose “Write my own question…”; otherwise clear the field. Nothing was saved.",

    totp_heading: "Set up an authenticator app",
    totp_intro: "Scan this code with your authenticator app (or type the key), then enter the code the app shows to confirm. The key is shown only now.",
    totp_qr_label: "QR code with the new key",
    totp_key_label: "Key",
    totp_code_label: "Code from the app",
    totp_confirm: "Confirm and save",
    cancel: "Cancel",

    codes_heading: "Your new backup codes",
    codes_intro: "Each code works once. Save them now: they are shown only on this page, and the old codes no longer work.",
    codes_download: "Download as a text file",
    codes_done: "I have saved them",

    keys_heading: "Security keys and passkeys",
    keys_caption: "Keys that can approve your logins",
    col_name: "Name",
    col_added: "Added",
    key_local: "(this machine's console)",
    no_keys: "No keys yet.",
    key_name_label: "Name for a new key",
    key_add: "Add a security key",
    key_needs_script: "Adding a key needs JavaScript in this browser.",
    keys_disabled: "Security keys are not enabled on this system.",

    devices_heading: "Remembered devices",
    devices_caption: "Places where you are not asked for a second factor for a while",
    col_service: "Service",
    col_from: "From",
    col_remembered: "Remembered",
    col_expires: "Until",
    no_devices: "No remembered devices.",
    forget: "Forget",
    forget_all: "Forget all",
    this_machine: "this machine",

    history_heading: "Recent logins",
    history_caption: "Your newest logins with a second factor; tell your administrator about one that was not you",
    col_time: "Time",
    col_factor: "Second factor",
    no_logins: "No successful login with a second factor yet.",

    expired_title: "This page has expired",
    expired_text: "For your safety the page works only for a few minutes. Run 2fa-enroll web in your terminal for a new link.",
    ended_title: "This page was closed for your safety",
    ended_text: "The link was opened a second time, or from another address, so it no longer works anywhere. If that was not you, tell your administrator. Run 2fa-enroll web for a new link.",
    no_session_title: "No open profile page",
    no_session_text: "Open the link that 2fa-enroll web printed, in the browser you want to use.",
    reused_title: "This link was already used",
    reused_text: "A profile link works once. The page it opened is now closed too, in case someone else has the link. Run 2fa-enroll web for a new one.",
    used_text: "A profile link works once, and this one was opened already. If that was not you, close the page it opened, tell your administrator, and run 2fa-enroll web for a new link.",
    used_button: "Close the page it opened",
    landing_title: "Open your two-factor profile",
    landing_text: "This link works once, in this browser. Continue to open your page.",
    landing_button: "Continue",
    forbidden: "This request did not come from your profile page, so nothing was changed. Reload the page and try again.",
    needs_proof: "First confirm it is you (at the top of the page).",
    key_waiting: "Waiting for your security key…",
    key_failed: "Not done: ",
    key_done: "Done.",
    unavailable: "The 2FA service is unavailable right now; nothing was changed. Try again later or tell your administrator.",
};

/// The strings for this page (one language today).
pub fn text() -> &'static Text {
    &EN
}

/// `template` with each `{name}` replaced by its value.
/// One pass: a value is never scanned for placeholders itself.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after
            .find('}')
            .and_then(|close| Some((close, values.iter().find(|(k, _)| *k == &after[..close])?)))
        {
            Some((close, (_, v))) => {
                out.push_str(v);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

impl Text {
    /// The page's message for a refused question `n` (from 1).
    pub fn question_refused(
        &self,
        why: p2fa_core::factor::questions::QuestionRefusal,
        n: usize,
    ) -> String {
        use p2fa_core::factor::questions::{MAX_QUESTION, MIN_QUESTION, QuestionRefusal as R};
        let template = match why {
            R::Empty => self.question_empty,
            R::CustomNotAllowed => self.question_own_not_allowed,
            R::Length => self.question_length,
            R::NotPrintable => self.question_not_printable,
            R::Repeated => self.question_repeated,
        };
        fill(
            template,
            &[
                ("n", &n.to_string()),
                ("min", &MIN_QUESTION.to_string()),
                ("max", &MAX_QUESTION.to_string()),
            ],
        )
    }

    /// The display name of a method (`totp`, `sms`, ...).
    pub fn method(&self, id: &str) -> &'static str {
        self.method_names
            .iter()
            .find(|(k, _)| *k == id)
            .map_or("?", |(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_every_placeholder() {
        assert_eq!(
            fill("{a} and {b}, {a}", &[("a", "x"), ("b", "y")]),
            "x and y, x"
        );
        // A value is not scanned again for placeholders.
        assert_eq!(fill("{a}{b}", &[("a", "{b}"), ("b", "z")]), "{b}z");
        assert_eq!(fill("{x} {", &[("a", "1")]), "{x} {");
    }
}
