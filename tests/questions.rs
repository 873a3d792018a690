//! Security questions through the real libpam: enrollment by the CLI
//! (listed questions and, with allow_custom, the user's own),
//! a random subset asked at login, normalised answers, the failed question
//! not drawn again, and the factor switched off by the admin.

mod common;

use common::interactive::Session;
use common::{Env, output_text, system_user};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const QS: [(&str, &str); 3] = [
    (
        "What was the name of your first school?",
        "  Springfield   Elementary ",
    ),
    ("In which city did your parents meet?", "Zürich"),
    ("What was the make of your first car?", "FORD"),
];

fn answer_for(prompt: &str, tweak: bool) -> String {
    for (q, a) in QS {
        if prompt.contains(q) {
            return if tweak {
                // Same answer, other case, spacing and Unicode form.
                a.to_lowercase()
                    .replace("zürich", "Zu\u{308}rich")
                    .trim()
                    .to_string()
            } else {
                a.to_string()
            };
        }
    }
    panic!("unexpected prompt {prompt}");
}

#[test]
fn questions_enroll_login_and_no_fishing() {
    let user = system_user("p2fa-quest", "Qu3stions-p2fa");
    let env = Env::with_config("[questions]\nenabled = true\ncount = 3\nask = 2\n");
    let input: String = QS
        .iter()
        .enumerate()
        .map(|(i, (_, a))| format!("{}\n{a}\n{a}\n", i + 1))
        .collect();
    // A mismatched repeat is asked again, not saved.
    let input = input.replacen("FORD\nFORD\n", "FORD\nFIAT\nFORD\nFORD\n", 1);
    let out = env.enroll_ok(&["questions", "--user", &user], &input);
    assert!(out.contains("Saved 3 security questions"), "{out}");
    assert_eq!(env.status_json(&user)["questions"], 3);
    let hashes = env.sql(&format!(
        "SELECT answer_hash FROM questions WHERE user='{user}'"
    ));
    assert!(
        hashes.lines().all(|h| h.starts_with("$argon2id$")),
        "{hashes}"
    );
    assert!(!hashes.to_lowercase().contains("ford"), "no plain answers");

    // Login: the only factor, so the questions come straight away.
    let mut s = Session::start(&env.svc_dir, "p2fa", &user);
    for _ in 0..2 {
        let p = s.expect_prompt("?", WAIT);
        s.answer(&answer_for(&p, true));
    }
    let o = s.finish(WAIT);
    assert!(o.ok, "{}", o.transcript);

    // One wrong answer: denied; the failed question is not asked next time.
    let mut s = Session::start(&env.svc_dir, "p2fa", &user);
    let p1 = s.expect_prompt("?", WAIT);
    s.answer("wrong answer");
    let p2 = s.expect_prompt("?", WAIT);
    s.answer(&answer_for(&p2, false));
    let o = s.finish(WAIT);
    assert!(!o.ok, "{}", o.transcript);
    let failed = QS.iter().find(|(q, _)| p1.contains(q)).unwrap().0;
    let mut s = Session::start(&env.svc_dir, "p2fa", &user);
    let a = s.expect_prompt("?", WAIT);
    s.answer(&answer_for(&a, false));
    let b = s.expect_prompt("?", WAIT);
    s.answer(&answer_for(&b, false));
    let o = s.finish(WAIT);
    assert!(o.ok, "{}", o.transcript);
    // With three questions and two asked, the pair is exactly the others.
    assert!(
        !a.contains(failed) && !b.contains(failed),
        "the failed question {failed:?} was drawn again:\n{}",
        o.transcript
    );
    assert_eq!(env.status_json(&user)["failures"], 0);

    // The admin switches the factor off: nothing usable is left.
    env.write_config("[questions]\nenabled = false\n");
    let a = env.attempt("p2fa", &user, "", None);
    assert!(!a.ok);
    assert!(a.log.contains("reason=no-usable-factor"), "{}", a.log);
}

/// `allow_custom = true` with one listed question for three: `2fa-enroll
/// questions` takes "c" and the user's own question, with the same
/// checks as 2fad (too short, a repeat ignoring case: asked again), and
/// the login asks them.
#[test]
fn own_questions_from_the_command_line() {
    let user = system_user("p2fa-quest2", "Qu3stions-p2fa2");
    let env = Env::with_config(
        "[questions]\nenabled = true\ncount = 3\nask = 3\nallow_custom = true\n\
         list = [\"Wie hieß Ihr erstes Auto?\"]\n",
    );
    let input = "c\nWhy?\nc\nWho was my <i>hero</i>?\nZorro\nZorro\n\
                 c\nwho WAS my  <i>hero</i>?\n1\nFord\nFord\n\
                 c\nWhere did Zoë learn to swim?\nLake Tahoe\nLake Tahoe\n";
    let o = env.enroll(&["questions", "--user", &user], input);
    let out = output_text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("c. write your own question"), "{out}");
    assert!(
        out.contains("Not accepted: a question needs 5 to 200 characters."),
        "{out}"
    );
    assert!(
        out.contains("Not accepted: that question was chosen already."),
        "{out}"
    );
    assert!(out.contains("Saved 3 security questions"), "{out}");
    assert_eq!(
        env.sql(&format!(
            "SELECT question FROM questions WHERE user='{user}' ORDER BY idx"
        )),
        "Who was my <i>hero</i>?\nWie hieß Ihr erstes Auto?\nWhere did Zoë learn to swim?"
    );
    assert!(
        env.logs().join("\n").contains("count=3 custom=2"),
        "the log counts the own questions"
    );
    let a = env.attempt("p2fa", &user, "zorro\nford\nlake  tahoe\n", None);
    assert!(a.ok, "{}\n{}", a.output, a.log);
    // Asked as written: letters of any script are not turned into '?'.
    for q in ["Where did Zoë learn to swim?", "Wie hieß Ihr erstes Auto?"] {
        assert!(a.output.contains(q), "{q}: {}", a.output);
    }
}
