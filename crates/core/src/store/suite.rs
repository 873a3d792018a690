//! The store interface's contract, one case per operation's promise,
//! written against [`Store`]/[`Tx`] only so every backend runs the same
//! cases. `new` gives a fresh, empty, migrated store on each call.
//! (Run on SQLite by the test below; docs/fleet.md step 4 runs it on
//! PostgreSQL too.)

use super::{OtpKind, OtpRecord, Store};
use crate::config::{Algorithm, RateLimitConfig};

pub type Case = fn(&mut dyn FnMut() -> Store);

/// Every case, with its name for the failure message.
pub const CASES: &[(&str, Case)] = &[
    ("unknown_user_is_not_enrolled", unknown_user_is_not_enrolled),
    ("otp_round_trips", otp_round_trips),
    ("step_only_moves_forward", step_only_moves_forward),
    ("counter_only_moves_forward", counter_only_moves_forward),
    ("backup_code_works_once", backup_code_works_once),
    (
        "failures_lock_and_success_resets",
        failures_lock_and_success_resets,
    ),
    ("unlock_clears_the_lock", unlock_clears_the_lock),
    ("uncommitted_writes_vanish", uncommitted_writes_vanish),
    (
        "remembered_is_scoped_and_expires",
        remembered_is_scoped_and_expires,
    ),
    ("revoke_is_scoped_to_its_user", revoke_is_scoped_to_its_user),
    (
        "remove_otp_reports_what_it_did",
        remove_otp_reports_what_it_did,
    ),
    ("meta_round_trips", meta_round_trips),
];

const NOW: i64 = 1_700_000_000;

fn otp(kind: OtpKind, last_step: Option<i64>, counter: i64) -> OtpRecord {
    OtpRecord {
        kind,
        sealed: vec![7; 40],
        algorithm: Algorithm::Sha1,
        digits: 6,
        period: 30,
        last_step,
        counter,
        created_at: NOW,
    }
}

fn enroll(s: &mut Store, user: &str, rec: &OtpRecord) {
    let tx = s.write().unwrap();
    tx.ensure_user(user, NOW).unwrap();
    tx.put_otp(user, rec, NOW).unwrap();
    tx.commit().unwrap();
}

fn unknown_user_is_not_enrolled(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let st = s.user_state("alice").unwrap();
    assert!(!st.known && !st.is_enrolled() && !st.has_factor());
    assert_eq!((st.failures, st.locked_until), (0, 0));
    assert!(s.users().unwrap().is_empty());
}

fn otp_round_trips(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    enroll(&mut s, "alice", &otp(OtpKind::Totp, Some(5), 0));
    let st = s.user_state("alice").unwrap();
    assert!(st.known && st.is_enrolled());
    let o = st.otp.unwrap();
    assert_eq!(
        (o.kind, o.last_step, o.sealed),
        (OtpKind::Totp, Some(5), vec![7; 40])
    );
    assert_eq!(s.users().unwrap(), vec!["alice".to_string()]);
    assert!(s.user_state("bob").unwrap().otp.is_none());
}

fn step_only_moves_forward(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    enroll(&mut s, "alice", &otp(OtpKind::Totp, None, 0));
    let tx = s.write().unwrap();
    assert!(tx.set_last_step("alice", 10).unwrap(), "first step");
    assert!(!tx.set_last_step("alice", 10).unwrap(), "same step again");
    assert!(!tx.set_last_step("alice", 9).unwrap(), "older step");
    assert!(tx.set_last_step("alice", 11).unwrap(), "newer step");
    assert!(!tx.set_last_step("bob", 12).unwrap(), "no token");
    tx.commit().unwrap();
    let o = s.user_state("alice").unwrap().otp.unwrap();
    assert_eq!(o.last_step, Some(11));
}

fn counter_only_moves_forward(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    enroll(&mut s, "alice", &otp(OtpKind::Hotp, None, 3));
    let tx = s.write().unwrap();
    assert!(!tx.set_counter("alice", 3).unwrap(), "same counter");
    assert!(!tx.set_counter("alice", 2).unwrap(), "older counter");
    assert!(tx.set_counter("alice", 5).unwrap(), "newer counter");
    tx.commit().unwrap();
    let o = s.user_state("alice").unwrap().otp.unwrap();
    assert_eq!(o.counter, 5);
}

fn backup_code_works_once(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let tx = s.write().unwrap();
    tx.replace_backup_codes("alice", &[[1; 32], [2; 32]], NOW)
        .unwrap();
    tx.commit().unwrap();
    let st = s.user_state("alice").unwrap();
    assert_eq!(st.unused_backup.len(), 2);
    assert!(st.is_enrolled());
    let id = st.unused_backup[0].0;
    let tx = s.write().unwrap();
    assert!(tx.mark_backup_used(id, NOW, "sshd").unwrap(), "first use");
    assert!(!tx.mark_backup_used(id, NOW, "sshd").unwrap(), "second use");
    tx.commit().unwrap();
    let st = s.user_state("alice").unwrap();
    assert_eq!((st.unused_backup.len(), st.used_backup), (1, 1));
    assert_eq!(s.used_backup_hashes("alice").unwrap().len(), 1);
    let tx = s.write().unwrap();
    assert!(
        !tx.mark_backup_used(id, NOW, "sshd").unwrap(),
        "after commit"
    );
}

fn failures_lock_and_success_resets(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let rl = RateLimitConfig::default();
    let tx = s.write().unwrap();
    for n in 1..rl.max_failures {
        assert_eq!(tx.record_failure("alice", NOW, &rl).unwrap(), (n, 0));
    }
    let until = NOW + rl.lockout_seconds as i64;
    assert_eq!(
        tx.record_failure("alice", NOW, &rl).unwrap(),
        (rl.max_failures, until)
    );
    tx.commit().unwrap();
    let st = s.user_state("alice").unwrap();
    assert_eq!((st.failures, st.locked_until), (rl.max_failures, until));
    let tx = s.write().unwrap();
    tx.record_success("alice", NOW, "sshd", "192.0.2.7", "totp")
        .unwrap();
    tx.commit().unwrap();
    let st = s.user_state("alice").unwrap();
    assert_eq!((st.failures, st.locked_until), (0, 0));
    let status = s.status("alice").unwrap();
    let last = status.last_success.unwrap();
    assert_eq!((last.time, last.factor.as_str()), (NOW, "totp"));
}

fn unlock_clears_the_lock(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let rl = RateLimitConfig::default();
    let tx = s.write().unwrap();
    for _ in 0..rl.max_failures {
        tx.record_failure("alice", NOW, &rl).unwrap();
    }
    assert!(tx.unlock("alice").unwrap());
    assert!(!tx.unlock("bob").unwrap(), "unknown user");
    tx.commit().unwrap();
    let st = s.user_state("alice").unwrap();
    assert_eq!((st.failures, st.locked_until), (0, 0));
}

fn uncommitted_writes_vanish(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let tx = s.write().unwrap();
    tx.ensure_user("alice", NOW).unwrap();
    tx.put_otp("alice", &otp(OtpKind::Totp, None, 0), NOW)
        .unwrap();
    drop(tx);
    assert!(!s.user_state("alice").unwrap().known);
}

fn remembered_is_scoped_and_expires(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let tx = s.write().unwrap();
    tx.ensure_user("alice", NOW).unwrap();
    tx.remember(
        "alice",
        "sshd",
        &[1; 32],
        "rhost 192.0.2.7",
        "totp",
        NOW,
        NOW + 10,
    )
    .unwrap();
    tx.commit().unwrap();
    let r = s
        .remembered("alice", "sshd", &[1; 32], NOW)
        .unwrap()
        .unwrap();
    assert_eq!((r.user.as_str(), r.expires_at), ("alice", NOW + 10));
    assert!(
        s.remembered("alice", "sudo", &[1; 32], NOW)
            .unwrap()
            .is_none()
    );
    assert!(
        s.remembered("alice", "sshd", &[2; 32], NOW)
            .unwrap()
            .is_none()
    );
    assert!(
        s.remembered("bob", "sshd", &[1; 32], NOW)
            .unwrap()
            .is_none()
    );
    assert!(
        s.remembered("alice", "sshd", &[1; 32], NOW + 10)
            .unwrap()
            .is_none(),
        "expired"
    );
    assert_eq!(s.remembered_list(Some("alice"), NOW).unwrap().len(), 1);
}

fn revoke_is_scoped_to_its_user(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let tx = s.write().unwrap();
    for u in ["alice", "bob"] {
        tx.ensure_user(u, NOW).unwrap();
        tx.remember(u, "sshd", &[1; 32], "tty pts/1", "totp", NOW, NOW + 100)
            .unwrap();
    }
    tx.commit().unwrap();
    let bobs = s.remembered_list(Some("bob"), NOW).unwrap()[0].id;
    let tx = s.write().unwrap();
    assert_eq!(tx.revoke("alice", Some(bobs)).unwrap(), 0, "bob's id");
    assert_eq!(tx.revoke("alice", None).unwrap(), 1);
    tx.commit().unwrap();
    assert!(s.remembered_list(Some("alice"), NOW).unwrap().is_empty());
    assert_eq!(s.remembered_list(None, NOW).unwrap().len(), 1);
}

fn remove_otp_reports_what_it_did(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    enroll(&mut s, "alice", &otp(OtpKind::Totp, None, 0));
    let tx = s.write().unwrap();
    assert!(tx.remove_otp("alice").unwrap());
    assert!(!tx.remove_otp("alice").unwrap());
    tx.commit().unwrap();
    assert!(!s.user_state("alice").unwrap().is_enrolled());
}

fn meta_round_trips(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    assert_eq!(s.meta("suite-test").unwrap(), None);
    let tx = s.write().unwrap();
    tx.set_meta("suite-test", b"one").unwrap();
    tx.set_meta("suite-test", b"two").unwrap();
    assert_eq!(tx.meta("suite-test").unwrap(), Some(b"two".to_vec()));
    tx.commit().unwrap();
    assert_eq!(s.meta("suite-test").unwrap(), Some(b"two".to_vec()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secure_fs::Trust;

    #[test]
    fn the_suite_on_sqlite() {
        for (name, case) in CASES {
            let mut dirs = Vec::new();
            let mut new = || {
                let dir = tempfile::tempdir().unwrap();
                let db = dir.path().join("state").join("state.db");
                let s = Store::open_or_create(&db, 1000, Trust::test_runner()).unwrap();
                dirs.push(dir);
                s
            };
            eprintln!("case {name}");
            case(&mut new);
        }
    }

    #[test]
    fn lock_until_doubles_up_to_the_cap() {
        let rl = RateLimitConfig::default();
        let at = |f| super::super::lock_until(f, NOW, &rl) - NOW;
        assert_eq!(super::super::lock_until(4, NOW, &rl), 0);
        assert_eq!((at(5), at(6), at(7)), (60, 120, 240));
        assert_eq!((at(11), at(12), at(1_000_000)), (3600, 3600, 3600));
    }
}
