//! Security questions: normalised answers, argon2id hashes, random subsets.
//!
//! This is the weakest factor (answers can often be researched or
//! guessed), so it is off unless the admin enables it. Answers are
//! normalised (Unicode NFKC, lower case, surrounding and repeated
//! whitespace removed) so "  New   York" and "new york" match; the hash is
//! argon2id with a per-answer salt and the host key's pepper as argon2's
//! secret, bound to the user and question.

use crate::config::QuestionsConfig;
use crate::crypto::{self, CryptoError, HostKey, KeyRing};
use crate::store::StoredQuestion;
use argon2::password_hash::{Output, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use unicode_normalization::UnicodeNormalization;

/// Longest answer accepted (after normalisation), in characters.
pub const MAX_ANSWER: usize = 100;

/// The canonical form of an answer.
pub fn normalize(answer: &str) -> String {
    let nfkc: String = answer.nfkc().collect();
    nfkc.to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks a typed answer is usable: not empty, bounded, printable.
pub fn valid(answer: &str) -> Result<String, &'static str> {
    if answer.chars().any(|c| c.is_control() && c != '\t') {
        return Err("contains control characters");
    }
    let n = normalize(answer);
    if n.is_empty() {
        return Err("empty");
    }
    if n.chars().count() > MAX_ANSWER {
        return Err("too long");
    }
    Ok(n)
}

/// Shortest question a user may write, in characters.
pub const MIN_QUESTION: usize = 5;
/// Longest question a user may write, in characters (the login prompt
/// shows at most this many).
pub const MAX_QUESTION: usize = 200;

/// Why a chosen question was refused ([`choose`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuestionRefusal {
    /// Nothing chosen or written.
    Empty,
    /// Not one of the admin's questions, and users may not write their
    /// own (`allow_custom = false`).
    CustomNotAllowed,
    /// A question of the user's own that is too short or too long.
    Length,
    /// A question with control characters, or characters that hide or
    /// reorder text (bidirectional overrides, zero-width characters).
    NotPrintable,
    /// The same as an earlier one (ignoring case and spacing).
    Repeated,
}

impl std::fmt::Display for QuestionRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QuestionRefusal::Empty => "no question was chosen or written",
            QuestionRefusal::CustomNotAllowed => {
                "your own questions are not allowed here: choose one from the list"
            }
            QuestionRefusal::Length => "a question needs 5 to 200 characters",
            QuestionRefusal::NotPrintable => {
                "a question may not contain control or invisible characters"
            }
            QuestionRefusal::Repeated => "that question was chosen already",
        })
    }
}

/// A question accepted by [`choose`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    /// The question as it is stored and asked.
    pub text: String,
    /// Written by the user (not one of the admin's list).
    pub custom: bool,
}

/// Characters a question may not contain: control characters, and those
/// that hide or reorder what is shown (zero-width characters, line and
/// paragraph separators, bidirectional embeddings, overrides and
/// isolates, the byte order mark).
fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')
}

/// A question as the login prompt shows it: at most `max` characters,
/// each control or invisible character (see [`invisible`]) as `?`, so
/// that a stored question (written before these checks, or by whoever
/// can write the store) cannot move a terminal's cursor or hide text,
/// while letters of any script stay as they are: "Wie hieß ...?" is
/// asked as written. A PAM conversation carries UTF-8, as ssh's
/// keyboard-interactive prompts do (RFC 4256).
pub fn shown(question: &str, max: usize) -> String {
    question
        .chars()
        .take(max)
        .map(|c| if invisible(c) { '?' } else { c })
        .collect()
}

/// Checks one question a user chose, after the `earlier` ones, against
/// the admin's rules, the same for `2fa-enroll questions` and 2fad: one of
/// `cfg.list` exactly, or (only with `allow_custom`) the user's own
/// question of [`MIN_QUESTION`] to [`MAX_QUESTION`] characters without
/// control or invisible characters; never empty, never the same as an
/// earlier one (ignoring case and spacing). Surrounding spaces are
/// removed. The caller's word on whether a question is listed is never
/// asked: text that is not exactly a listed question is the user's own.
pub fn choose<'a>(
    cfg: &QuestionsConfig,
    earlier: impl IntoIterator<Item = &'a str>,
    question: &str,
) -> Result<Chosen, QuestionRefusal> {
    let text = question.trim();
    if text.is_empty() {
        return Err(QuestionRefusal::Empty);
    }
    let custom = !cfg.list.iter().any(|l| l == text);
    if custom {
        if !cfg.allow_custom {
            return Err(QuestionRefusal::CustomNotAllowed);
        }
        if text.chars().any(invisible) {
            return Err(QuestionRefusal::NotPrintable);
        }
        if !(MIN_QUESTION..=MAX_QUESTION).contains(&text.chars().count()) {
            return Err(QuestionRefusal::Length);
        }
    }
    let key = normalize(text);
    if earlier.into_iter().any(|e| normalize(e) == key) {
        return Err(QuestionRefusal::Repeated);
    }
    Ok(Chosen {
        text: text.to_string(),
        custom,
    })
}

fn hasher(key: &HostKey) -> Result<Argon2<'_>, CryptoError> {
    Argon2::new_with_secret(
        key.answer_pepper(),
        Algorithm::Argon2id,
        Version::V0x13,
        Params::default(),
    )
    .map_err(|e| CryptoError(format!("argon2: {e}")))
}

/// What is hashed: the answer bound to its user and question.
fn material(user: &str, question: &str, normalized: &str) -> Vec<u8> {
    format!("{user}\0{question}\0{normalized}").into_bytes()
}

/// argon2id PHC string of a (normalised) answer.
pub fn hash(
    key: &HostKey,
    user: &str,
    question: &str,
    normalized: &str,
) -> Result<String, CryptoError> {
    let salt_bytes = crypto::random_array::<16>()?;
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| CryptoError(format!("salt: {e}")))?;
    Ok(hasher(key)?
        .hash_password(&material(user, question, normalized), &salt)
        .map_err(|e| CryptoError(format!("argon2: {e}")))?
        .to_string())
}

/// Does `answer` (raw, as typed) match the stored hash?
pub fn verify(key: &HostKey, user: &str, question: &str, answer: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(h) = hasher(key) else {
        return false;
    };
    h.verify_password(&material(user, question, &normalize(answer)), &parsed)
        .is_ok()
}

/// The raw argon2 output of `material` under `key`'s pepper, with the
/// salt and parameters of `parsed`.
fn raw_output(key: &HostKey, material: &[u8], parsed: &PasswordHash<'_>) -> Option<Output> {
    let params = Params::try_from(parsed).ok()?;
    let salt = parsed.salt?;
    hasher(key)
        .ok()?
        .hash_password_customized(
            material,
            Some(parsed.algorithm),
            parsed.version,
            params,
            salt,
        )
        .ok()?
        .hash
}

/// `rekey convert`: the stored hash `phc` (made with an older
/// generation's pepper) with its argon2 output wrapped under `outer`
/// ([`HostKey::wrap`]); salt and parameters stay as they are.
pub fn wrap(outer: &HostKey, phc: &str) -> Result<String, CryptoError> {
    let mut parsed =
        PasswordHash::new(phc).map_err(|e| CryptoError(format!("stored answer hash: {e}")))?;
    let inner = parsed
        .hash
        .ok_or_else(|| CryptoError("stored answer hash has no output".into()))?;
    let wrapped = outer.wrap(inner.as_bytes());
    parsed.hash = Some(Output::new(&wrapped).map_err(|e| CryptoError(format!("wrap: {e}")))?);
    Ok(parsed.to_string())
}

/// Does `answer` match a wrapped hash: argon2 with `inner`'s pepper,
/// then the wrap under `outer`, compared in constant time.
pub fn verify_wrapped(
    outer: &HostKey,
    inner: &HostKey,
    user: &str,
    question: &str,
    answer: &str,
    phc: &str,
) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let Some(stored) = parsed.hash else {
        return false;
    };
    let Some(raw) = raw_output(
        inner,
        &material(user, question, &normalize(answer)),
        &parsed,
    ) else {
        return false;
    };
    crypto::ct_eq(&outer.wrap(raw.as_bytes()), stored.as_bytes())
}

/// Checks `answer` against a stored question with the keys its row needs
/// (a wrapped hash needs two): None if this host lacks one of them
/// ("unavailable", never a wrong answer).
pub fn verify_stored(ring: &KeyRing, user: &str, q: &StoredQuestion, answer: &str) -> Option<bool> {
    let k = ring.for_row(q.key_gen, q.inner_gen)?;
    Some(match k.inner {
        Some(inner) => verify_wrapped(k.outer, inner, user, &q.question, answer, &q.answer_hash),
        None => verify(k.outer, user, &q.question, answer, &q.answer_hash),
    })
}

/// Picks `ask` of `total` questions at random, leaving out `avoid` (the one
/// the user just failed) when there are enough others, so a guesser cannot
/// retry the same question at once.
pub fn draw(total: usize, ask: usize, avoid: Option<usize>) -> Result<Vec<usize>, CryptoError> {
    let mut pool: Vec<usize> = (0..total)
        .filter(|i| Some(*i) != avoid || total <= ask)
        .collect();
    let want = ask.min(pool.len());
    let mut picked = Vec::new();
    while picked.len() < want {
        let i = crypto::random_below(pool.len() as u32)? as usize;
        picked.push(pool.swap_remove(i));
    }
    picked.sort_unstable();
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation() {
        assert_eq!(normalize("  New   York "), "new york");
        assert_eq!(normalize("NEW\tYORK"), "new york");
        // NFKC: full-width letters, ligatures and the like fold.
        assert_eq!(normalize("Ｍｕｎｉｃｈ"), "munich");
        assert_eq!(normalize("ﬁsh"), "fish");
        // Composed and decomposed forms are one answer.
        assert_eq!(normalize("Zu\u{308}rich"), normalize("Zürich"));
        assert_eq!(normalize("ÆRØ"), "ærø");
        assert!(valid("   ").is_err());
        assert!(valid("a\u{1b}b").is_err());
        assert!(valid(&"x".repeat(101)).is_err());
    }

    #[test]
    fn shown_keeps_letters_of_any_script_and_hides_controls() {
        assert_eq!(
            shown("Wie hieß Ihre erste Schule?", 200),
            "Wie hieß Ihre erste Schule?"
        );
        assert_eq!(shown("Zoë 名前?", 200), "Zoë 名前?");
        assert_eq!(shown("a\u{1b}[2Jb\r\nc", 200), "a?[2Jb??c");
        assert_eq!(shown("x\u{202E}y\u{200B}z\u{9b}", 200), "x?y?z?");
        assert_eq!(shown("äöü", 2), "äö");
    }

    #[test]
    fn hashes_verify_only_the_right_answer_for_the_right_user_and_question() {
        let key = HostKey::from_bytes(&[7u8; 32]);
        let h = hash(&key, "alice", "Q1?", &normalize("New York")).unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify(&key, "alice", "Q1?", "  new   YORK", &h));
        assert!(!verify(&key, "alice", "Q1?", "Boston", &h));
        assert!(
            !verify(&key, "bob", "Q1?", "New York", &h),
            "bound to the user"
        );
        assert!(
            !verify(&key, "alice", "Q2?", "New York", &h),
            "bound to the question"
        );
        let other = HostKey::from_bytes(&[8u8; 32]);
        assert!(
            !verify(&other, "alice", "Q1?", "New York", &h),
            "needs the host key"
        );
        assert_ne!(h, hash(&key, "alice", "Q1?", "new york").unwrap(), "salted");
    }

    #[test]
    fn wrapped_hashes_need_both_keys() {
        let old = HostKey::from_bytes(&[7u8; 32]);
        let new = HostKey::from_bytes(&[9u8; 32]);
        new.set_key_gen(1);
        let h = hash(&old, "alice", "Q1?", &normalize("New York")).unwrap();
        let w = wrap(&new, &h).unwrap();
        assert_ne!(w, h);
        let salt_params = |s: &str| s.rsplit_once('$').unwrap().0.to_string();
        assert_eq!(
            salt_params(&w),
            salt_params(&h),
            "salt and parameters in clear"
        );
        assert!(
            !verify(&old, "alice", "Q1?", "new york", &w),
            "no longer a plain hash"
        );
        assert!(verify_wrapped(&new, &old, "alice", "Q1?", " NEW york", &w));
        assert!(!verify_wrapped(&new, &old, "alice", "Q1?", "Boston", &w));
        assert!(!verify_wrapped(&old, &new, "alice", "Q1?", "new york", &w));
        assert!(!verify_wrapped(&new, &new, "alice", "Q1?", "new york", &w));
        let q = StoredQuestion {
            idx: 0,
            question: "Q1?".into(),
            answer_hash: w,
            key_gen: 1,
            inner_gen: Some(0),
        };
        let both = KeyRing::new(new.clone(), Some(old.clone()));
        assert_eq!(verify_stored(&both, "alice", &q, "new york"), Some(true));
        assert_eq!(verify_stored(&both, "alice", &q, "boston"), Some(false));
        let only_new = KeyRing::single(new.clone());
        assert_eq!(verify_stored(&only_new, "alice", &q, "new york"), None);
    }

    #[test]
    fn draws_subsets_and_avoids_the_failed_question() {
        for _ in 0..200 {
            let d = draw(3, 2, Some(1)).unwrap();
            assert_eq!(d, vec![0, 2]);
            let d = draw(5, 2, None).unwrap();
            assert_eq!(d.len(), 2);
            assert!(d[0] < d[1] && d[1] < 5);
        }
        // Not enough others: the failed one may come back.
        assert_eq!(draw(2, 2, Some(0)).unwrap(), vec![0, 1]);
        let mut seen = [0u32; 5];
        for _ in 0..500 {
            for i in draw(5, 2, None).unwrap() {
                seen[i] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n > 100), "roughly uniform: {seen:?}");
    }

    #[test]
    fn chosen_questions_follow_the_admins_rules() {
        use QuestionRefusal as R;
        let mut cfg = QuestionsConfig {
            list: vec![
                "Name of your first pet?".into(),
                "City you were born in?".into(),
            ],
            allow_custom: false,
            ..QuestionsConfig::default()
        };
        let none: [&str; 0] = [];
        // A listed question, exactly (surrounding spaces aside).
        let c = choose(&cfg, none, "  Name of your first pet? ").unwrap();
        assert_eq!(
            (c.text.as_str(), c.custom),
            ("Name of your first pet?", false)
        );
        // Anything else is the user's own: refused without allow_custom,
        // however close to a listed one it is.
        for q in [
            "name of your first pet?",
            "Name of your first pet",
            "My own question?",
        ] {
            assert_eq!(choose(&cfg, none, q), Err(R::CustomNotAllowed), "{q}");
        }
        for q in ["", "   ", "\t"] {
            assert_eq!(choose(&cfg, none, q), Err(R::Empty), "{q:?}");
        }
        cfg.allow_custom = true;
        let c = choose(&cfg, none, " Who was my <b>hero</b>? ").unwrap();
        assert_eq!(
            (c.text.as_str(), c.custom),
            ("Who was my <b>hero</b>?", true)
        );
        assert!(
            choose(&cfg, none, "Wo hast du geheiratet, Zoë?")
                .unwrap()
                .custom
        );
        assert_eq!(choose(&cfg, none, "Why?"), Err(R::Length));
        assert!(choose(&cfg, none, &"x".repeat(MAX_QUESTION)).is_ok());
        assert_eq!(
            choose(&cfg, none, &"x".repeat(MAX_QUESTION + 1)),
            Err(R::Length)
        );
        // 200 characters, not bytes.
        assert!(choose(&cfg, none, &"é".repeat(MAX_QUESTION)).is_ok());
        for q in [
            "Line\nbreak?",
            "Bell\u{7} here?",
            "evil\u{202E}?txt",
            "zero\u{200B}width?",
        ] {
            assert_eq!(choose(&cfg, none, q), Err(R::NotPrintable), "{q:?}");
        }
        // No question twice, ignoring case and spacing; listed ones too.
        let earlier = ["My Own  Question?", "City you were born in?"];
        assert_eq!(choose(&cfg, earlier, "my own question?"), Err(R::Repeated));
        assert_eq!(
            choose(&cfg, earlier, "City you were born in?"),
            Err(R::Repeated)
        );
        assert_eq!(
            choose(&cfg, earlier, "CITY you were born in?"),
            Err(R::Repeated)
        );
        assert!(choose(&cfg, earlier, "Name of your first pet?").is_ok());
    }
}
