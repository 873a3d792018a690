//! The store interface's contract, one case per operation's promise,
//! written against [`Store`]/[`Tx`] only so every backend runs the same
//! cases. `new` gives a fresh, empty, migrated store on each call.
//! (Run on SQLite by the test below; docs/fleet.md step 4 runs it on
//! PostgreSQL too.) Each case states today's SQLite behaviour.
//!
//! Outside this crate it is exported behind the `testsuite` feature, for
//! a backend crate's tests (dev-dependency only, never in what ships):
//! `p2fa_core::store::suite::run_all(&mut || make_store())`.

use super::{
    KeyWarning, Kind, LocalKey, OtpKind, OtpRecord, ProfileOpen, ProfileQuota, Purpose, SentCheck,
    SentScope, Store, StoredCeremony, StoredProfileSession, Tx,
};
use crate::config::{Algorithm, RateLimitConfig};
use crate::factor::FactorId;

pub type Case = fn(&mut dyn FnMut() -> Store);

/// Every case, with its name for the failure message.
pub const CASES: &[(&str, Case)] = &[
    ("unknown_user_is_not_enrolled", unknown_user_is_not_enrolled),
    ("a_fresh_store_checks_ok", a_fresh_store_checks_ok),
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
    ("sent_code_is_accepted_once", sent_code_is_accepted_once),
    ("sent_code_expires", sent_code_expires),
    (
        "sent_code_burns_out_after_max_attempts",
        sent_code_burns_out_after_max_attempts,
    ),
    ("sent_code_is_scoped", sent_code_is_scoped),
    (
        "sent_code_hit_uses_up_its_siblings",
        sent_code_hit_uses_up_its_siblings,
    ),
    (
        "sent_code_miss_counts_against_every_live_code",
        sent_code_miss_counts_against_every_live_code,
    ),
    ("deleted_sent_code_is_gone", deleted_sent_code_is_gone),
    (
        "a_web_scope_keeps_its_sent_codes_apart",
        a_web_scope_keeps_its_sent_codes_apart,
    ),
    (
        "newest_sent_code_is_the_address_waiting",
        newest_sent_code_is_the_address_waiting,
    ),
    (
        "sends_last_hour_counts_the_channel_for_an_hour",
        sends_last_hour_counts_the_channel_for_an_hour,
    ),
    ("contacts_round_trip", contacts_round_trip),
    ("duo_round_trips", duo_round_trips),
    (
        "default_factor_sets_and_clears",
        default_factor_sets_and_clears,
    ),
    ("questions_replace_and_remove", questions_replace_and_remove),
    (
        "last_failed_question_round_trips",
        last_failed_question_round_trips,
    ),
    ("webauthn_add_update_remove", webauthn_add_update_remove),
    (
        "key_warnings_newest_first_at_most_20",
        key_warnings_newest_first_at_most_20,
    ),
    ("local_keys_add_use_remove", local_keys_add_use_remove),
    (
        "replacing_unused_backup_codes_keeps_spent_ones",
        replacing_unused_backup_codes_keeps_spent_ones,
    ),
    (
        "remove_backup_codes_counts_them",
        remove_backup_codes_counts_them,
    ),
    (
        "reset_user_forgets_one_user_entirely",
        reset_user_forgets_one_user_entirely,
    ),
    ("first_seen_is_set_once", first_seen_is_set_once),
    ("merge_counters_never_loosens", merge_counters_never_loosens),
    ("users_are_listed_sorted", users_are_listed_sorted),
    ("status_summarises_the_state", status_summarises_the_state),
    (
        "record_success_keeps_the_latest_login",
        record_success_keeps_the_latest_login,
    ),
    (
        "recent_logins_keep_the_newest_per_user",
        recent_logins_keep_the_newest_per_user,
    ),
    (
        "failures_keep_doubling_the_lock",
        failures_keep_doubling_the_lock,
    ),
    ("tx_reads_its_own_writes", tx_reads_its_own_writes),
    ("put_otp_replaces_the_token", put_otp_replaces_the_token),
    (
        "remember_replaces_the_same_source",
        remember_replaces_the_same_source,
    ),
    ("keyed_items_are_reported", keyed_items_are_reported),
    (
        "rows_keep_their_key_generation",
        rows_keep_their_key_generation,
    ),
    (
        "reseal_keeps_the_token_and_moves_its_generation",
        reseal_keeps_the_token_and_moves_its_generation,
    ),
    (
        "drop_old_gen_spends_codes_and_deletes_answers",
        drop_old_gen_spends_codes_and_deletes_answers,
    ),
    (
        "wrapping_moves_one_way_rows_to_the_new_generation",
        wrapping_moves_one_way_rows_to_the_new_generation,
    ),
    (
        "drop_old_gen_takes_wrapped_rows_too",
        drop_old_gen_takes_wrapped_rows_too,
    ),
    (
        "a_verified_wrapped_answer_is_rehashed_once",
        a_verified_wrapped_answer_is_rehashed_once,
    ),
    ("clear_sent_codes_clears_all", clear_sent_codes_clears_all),
    (
        "fleet_hosts_are_listed_by_name",
        fleet_hosts_are_listed_by_name,
    ),
    // WebAuthn ceremonies in the shared store.
    (
        "ceremonies_claim_once_and_are_taken_once",
        ceremonies_claim_once_and_are_taken_once,
    ),
    (
        "ceremonies_have_a_quota_per_class",
        ceremonies_have_a_quota_per_class,
    ),
    // Profile-page links and sessions in the shared store.
    (
        "profile_links_open_once_and_a_second_opening_ends_the_session",
        profile_links_open_once_and_a_second_opening_ends_the_session,
    ),
    (
        "profile_links_have_quotas_and_are_swept",
        profile_links_have_quotas_and_are_swept,
    ),
    (
        "profile_sessions_update_end_and_log_out",
        profile_sessions_update_end_and_log_out,
    ),
];

/// Runs every case, each on fresh stores from `new`; panics on the first
/// broken promise, naming the case on stderr.
pub fn run_all(new: &mut dyn FnMut() -> Store) {
    for (name, case) in CASES {
        eprintln!("store contract case {name}");
        case(new);
    }
}

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
        key_gen: 0,
    }
}

fn enroll(s: &mut Store, user: &str, rec: &OtpRecord) {
    let tx = s.write().unwrap();
    tx.ensure_user(user, NOW).unwrap();
    tx.put_otp(user, rec, NOW).unwrap();
    tx.commit().unwrap();
}

fn a_fresh_store_checks_ok(new: &mut dyn FnMut() -> Store) {
    let s = new();
    assert!(s.schema_version().unwrap() > 0);
    assert_eq!(s.quick_check().unwrap(), "ok");
    assert_eq!(s.integrity_check().unwrap(), "ok");
    assert!(!s.has_keyed_items().unwrap());
    assert!(s.users().unwrap().is_empty());
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
    tx.replace_backup_codes("alice", &[[1; 32], [2; 32]], NOW, 0)
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

// ---- sent codes (SMS / e-mail) ----

const TTL: i64 = 300;
const SMS: FactorId = FactorId::Sms;
const EMAIL: FactorId = FactorId::Email;
const ADDR: &str = "+15555550100";

fn send(s: &mut Store, user: &str, ch: FactorId, purpose: Purpose, hash: u8, at: i64) -> i64 {
    let tx = s.write().unwrap();
    let id = tx
        .insert_sent_code(
            user,
            ch,
            purpose,
            ADDR,
            &[hash; 32],
            at,
            TTL,
            &SentScope::HOST,
        )
        .unwrap();
    tx.commit().unwrap();
    id
}

fn check(s: &mut Store, purpose: Purpose, addr: Option<&str>, hash: u8, at: i64) -> SentCheck {
    let tx = s.write().unwrap();
    let r = tx
        .check_sent_code(
            "alice",
            SMS,
            purpose,
            addr,
            &[hash; 32],
            at,
            3,
            &SentScope::HOST,
        )
        .unwrap();
    tx.commit().unwrap();
    r
}

/// A shared store keeps a web scope's codes (2fad's page, every 2fad of
/// one public_url) apart from the host's (login codes): each is checked
/// only in its own scope, by any host of the store; the send limit still
/// counts both. A host-local store (one host) ignores the scope.
fn a_web_scope_keeps_its_sent_codes_apart(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let web = SentScope::web("https://2fa.example.com/");
    let shared = s.kind() == Kind::Postgres;
    let tx = s.write().unwrap();
    tx.insert_sent_code("alice", SMS, Purpose::Login, ADDR, &[3; 32], NOW, TTL, &web)
        .unwrap();
    tx.insert_sent_code(
        "alice",
        SMS,
        Purpose::Login,
        ADDR,
        &[4; 32],
        NOW,
        TTL,
        &SentScope::HOST,
    )
    .unwrap();
    assert_eq!(tx.sends_last_hour("alice", SMS, NOW).unwrap(), 2);
    let other = |h: u8, scope: &SentScope| {
        tx.check_sent_code(
            "alice",
            SMS,
            Purpose::Login,
            Some(ADDR),
            &[h; 32],
            NOW,
            3,
            scope,
        )
        .unwrap()
    };
    if shared {
        // The host's code is no good in the web scope and the other way.
        assert_eq!(other(4, &web), SentCheck::Wrong);
        assert_eq!(other(3, &SentScope::HOST), SentCheck::Wrong);
        assert_eq!(other(3, &web), SentCheck::Accepted);
        assert_eq!(other(3, &web), SentCheck::NoLiveCode, "single use");
        assert_eq!(other(4, &SentScope::HOST), SentCheck::Accepted);
    } else {
        assert_eq!(other(3, &SentScope::HOST), SentCheck::Accepted);
        assert_eq!(
            other(4, &web),
            SentCheck::NoLiveCode,
            "used with its sibling"
        );
    }
    tx.commit().unwrap();
}

/// The number or address waiting for its code is where the newest code of
/// the purpose went, while that code is unused and unexpired.
fn newest_sent_code_is_the_address_waiting(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let web = SentScope::web("https://2fa.example.com");
    let shared = s.kind() == Kind::Postgres;
    let tx = s.write().unwrap();
    let newest = |at: i64| {
        tx.newest_sent_code("alice", Purpose::Enroll, &web, at)
            .unwrap()
    };
    assert_eq!(newest(NOW), None);
    tx.insert_sent_code(
        "alice",
        SMS,
        Purpose::Enroll,
        ADDR,
        &[3; 32],
        NOW,
        TTL,
        &web,
    )
    .unwrap();
    tx.insert_sent_code(
        "alice",
        EMAIL,
        Purpose::Enroll,
        "a@example.com",
        &[4; 32],
        NOW + 1,
        TTL,
        &web,
    )
    .unwrap();
    tx.insert_sent_code(
        "alice",
        SMS,
        Purpose::Login,
        ADDR,
        &[5; 32],
        NOW + 2,
        TTL,
        &web,
    )
    .unwrap();
    assert_eq!(newest(NOW + 2), Some((EMAIL, "a@example.com".to_string())));
    assert_eq!(newest(NOW + 1 + TTL), None, "expired");
    assert_eq!(
        tx.newest_sent_code("bob", Purpose::Enroll, &web, NOW + 2)
            .unwrap(),
        None
    );
    if shared {
        assert_eq!(
            tx.newest_sent_code("alice", Purpose::Enroll, &SentScope::HOST, NOW + 2)
                .unwrap(),
            None,
            "another scope's"
        );
    }
    // A wrong try leaves it waiting; the right code uses it up, and the
    // older code to another address does not take its place.
    tx.check_sent_code(
        "alice",
        EMAIL,
        Purpose::Enroll,
        Some("a@example.com"),
        &[9; 32],
        NOW + 2,
        3,
        &web,
    )
    .unwrap();
    assert_eq!(newest(NOW + 2), Some((EMAIL, "a@example.com".to_string())));
    tx.check_sent_code(
        "alice",
        EMAIL,
        Purpose::Enroll,
        Some("a@example.com"),
        &[4; 32],
        NOW + 2,
        3,
        &web,
    )
    .unwrap();
    assert_eq!(newest(NOW + 2), None);
    tx.commit().unwrap();
}

fn sent_code_is_accepted_once(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    send(&mut s, "alice", SMS, Purpose::Login, 3, NOW);
    assert!(
        s.user_state("alice").unwrap().known,
        "insert creates the user"
    );
    assert_eq!(
        check(&mut s, Purpose::Login, None, 4, NOW),
        SentCheck::Wrong
    );
    assert_eq!(
        check(&mut s, Purpose::Login, None, 3, NOW + 1),
        SentCheck::Accepted
    );
    assert_eq!(
        check(&mut s, Purpose::Login, None, 3, NOW + 2),
        SentCheck::NoLiveCode,
        "used"
    );
}

fn sent_code_expires(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    send(&mut s, "alice", SMS, Purpose::Login, 3, NOW);
    assert_eq!(
        check(&mut s, Purpose::Login, None, 3, NOW + TTL),
        SentCheck::NoLiveCode,
        "at expiry"
    );
    assert_eq!(
        check(&mut s, Purpose::Login, None, 3, NOW + TTL - 1),
        SentCheck::Accepted,
        "just before expiry"
    );
}

fn sent_code_burns_out_after_max_attempts(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    send(&mut s, "alice", SMS, Purpose::Login, 3, NOW);
    for _ in 0..3 {
        assert_eq!(
            check(&mut s, Purpose::Login, None, 9, NOW),
            SentCheck::Wrong
        );
    }
    assert_eq!(
        check(&mut s, Purpose::Login, None, 3, NOW),
        SentCheck::NoLiveCode,
        "the right code after max_attempts wrong ones"
    );
    let tx = s.write().unwrap();
    assert_eq!(
        tx.live_code_sent_at("alice", SMS, Purpose::Login, NOW, 3)
            .unwrap(),
        None
    );
    assert_eq!(
        tx.live_code_sent_at("alice", SMS, Purpose::Login, NOW, 4)
            .unwrap(),
        Some(NOW),
        "attempts are counted, not the code deleted"
    );
}

fn sent_code_is_scoped(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    send(&mut s, "alice", SMS, Purpose::Enroll, 3, NOW);
    assert_eq!(
        check(&mut s, Purpose::Login, None, 3, NOW),
        SentCheck::NoLiveCode,
        "other purpose"
    );
    assert_eq!(
        check(&mut s, Purpose::Enroll, Some("+15555550199"), 3, NOW),
        SentCheck::NoLiveCode,
        "other address"
    );
    let tx = s.write().unwrap();
    let other_channel = tx
        .check_sent_code(
            "alice",
            EMAIL,
            Purpose::Enroll,
            None,
            &[3; 32],
            NOW,
            3,
            &SentScope::HOST,
        )
        .unwrap();
    let other_user = tx
        .check_sent_code(
            "bob",
            SMS,
            Purpose::Enroll,
            None,
            &[3; 32],
            NOW,
            3,
            &SentScope::HOST,
        )
        .unwrap();
    tx.commit().unwrap();
    assert_eq!(other_channel, SentCheck::NoLiveCode, "other channel");
    assert_eq!(other_user, SentCheck::NoLiveCode, "other user");
    assert_eq!(
        check(&mut s, Purpose::Enroll, Some(ADDR), 3, NOW),
        SentCheck::Accepted,
        "misses above burned nothing"
    );
}

fn sent_code_hit_uses_up_its_siblings(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    send(&mut s, "alice", SMS, Purpose::Login, 3, NOW);
    send(&mut s, "alice", SMS, Purpose::Login, 4, NOW + 10);
    let tx = s.write().unwrap();
    assert_eq!(
        tx.live_code_sent_at("alice", SMS, Purpose::Login, NOW + 10, 3)
            .unwrap(),
        Some(NOW + 10),
        "the newest"
    );
    tx.commit().unwrap();
    assert_eq!(
        check(&mut s, Purpose::Login, None, 3, NOW + 11),
        SentCheck::Accepted,
        "an older live code"
    );
    assert_eq!(
        check(&mut s, Purpose::Login, None, 4, NOW + 12),
        SentCheck::NoLiveCode,
        "the newer one went with it"
    );
    let tx = s.write().unwrap();
    assert_eq!(
        tx.live_code_sent_at("alice", SMS, Purpose::Login, NOW + 12, 3)
            .unwrap(),
        None
    );
}

fn sent_code_miss_counts_against_every_live_code(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    send(&mut s, "alice", SMS, Purpose::Login, 3, NOW);
    send(&mut s, "alice", SMS, Purpose::Login, 4, NOW);
    for _ in 0..3 {
        assert_eq!(
            check(&mut s, Purpose::Login, None, 9, NOW),
            SentCheck::Wrong
        );
    }
    assert_eq!(
        check(&mut s, Purpose::Login, None, 4, NOW),
        SentCheck::NoLiveCode
    );
}

fn deleted_sent_code_is_gone(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let id = send(&mut s, "alice", SMS, Purpose::Login, 3, NOW);
    let tx = s.write().unwrap();
    assert_eq!(tx.sends_last_hour("alice", SMS, NOW).unwrap(), 1);
    tx.delete_sent_code(id).unwrap();
    assert_eq!(tx.sends_last_hour("alice", SMS, NOW).unwrap(), 0);
    tx.commit().unwrap();
    assert_eq!(
        check(&mut s, Purpose::Login, None, 3, NOW),
        SentCheck::NoLiveCode
    );
}

fn sends_last_hour_counts_the_channel_for_an_hour(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    send(&mut s, "alice", SMS, Purpose::Login, 1, NOW - 3600);
    send(&mut s, "alice", SMS, Purpose::Login, 2, NOW - 3599);
    send(&mut s, "alice", SMS, Purpose::Enroll, 3, NOW);
    send(&mut s, "alice", EMAIL, Purpose::Login, 4, NOW);
    send(&mut s, "bob", SMS, Purpose::Login, 5, NOW);
    assert_eq!(
        check(&mut s, Purpose::Enroll, None, 3, NOW),
        SentCheck::Accepted
    );
    let tx = s.write().unwrap();
    assert_eq!(
        tx.sends_last_hour("alice", SMS, NOW).unwrap(),
        2,
        "both purposes, used ones too, not an hour old"
    );
    assert_eq!(tx.sends_last_hour("alice", EMAIL, NOW).unwrap(), 1);
    assert_eq!(tx.sends_last_hour("carol", SMS, NOW).unwrap(), 0);
}

// ---- contacts, Duo, default factor ----

fn contacts_round_trip(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let tx = s.write().unwrap();
    tx.set_contact("alice", SMS, "+15555550100", NOW).unwrap();
    tx.set_contact("alice", EMAIL, "a@example.org", NOW)
        .unwrap();
    tx.set_contact("alice", SMS, "+15555550111", NOW).unwrap();
    tx.commit().unwrap();
    let st = s.user_state("alice").unwrap();
    assert_eq!(st.sms.as_deref(), Some("+15555550111"), "replaced");
    assert_eq!(st.email.as_deref(), Some("a@example.org"));
    assert!(st.has_factor());
    let tx = s.write().unwrap();
    assert!(tx.remove_contact("alice", SMS).unwrap());
    assert!(!tx.remove_contact("alice", SMS).unwrap());
    assert!(!tx.remove_contact("bob", EMAIL).unwrap());
    tx.commit().unwrap();
    let st = s.user_state("alice").unwrap();
    assert_eq!((st.sms, st.email.as_deref()), (None, Some("a@example.org")));
    let status = s.status("alice").unwrap();
    assert_eq!(status.email.as_deref(), Some("a@example.org"));
}

fn duo_round_trips(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let tx = s.write().unwrap();
    tx.set_duo("alice", NOW).unwrap();
    tx.set_duo("alice", NOW + 1).unwrap();
    tx.commit().unwrap();
    let st = s.user_state("alice").unwrap();
    assert!(st.duo && st.has_factor());
    assert!(!s.user_state("bob").unwrap().duo);
    let tx = s.write().unwrap();
    assert!(tx.remove_duo("alice").unwrap());
    assert!(!tx.remove_duo("alice").unwrap());
    tx.commit().unwrap();
    let st = s.user_state("alice").unwrap();
    assert!(st.known && !st.duo && !st.is_enrolled());
}

fn default_factor_sets_and_clears(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let tx = s.write().unwrap();
    tx.set_default_factor("alice", Some("sms"), NOW).unwrap();
    tx.commit().unwrap();
    let st = s.user_state("alice").unwrap();
    assert!(st.known, "creates the user");
    assert_eq!(st.default_factor.as_deref(), Some("sms"));
    assert!(!st.has_factor(), "a default is not a factor");
    assert_eq!(
        s.status("alice").unwrap().default_factor.as_deref(),
        Some("sms")
    );
    let tx = s.write().unwrap();
    tx.set_default_factor("alice", None, NOW).unwrap();
    tx.commit().unwrap();
    assert_eq!(s.user_state("alice").unwrap().default_factor, None);
}

// ---- security questions ----

fn qs(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("question {i}"), format!("$argon2id$hash{i}")))
        .collect()
}

fn questions_replace_and_remove(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    assert!(s.questions("alice").unwrap().0.is_empty());
    let tx = s.write().unwrap();
    tx.set_questions("alice", &qs(3), NOW, 0).unwrap();
    tx.commit().unwrap();
    let (got, last) = s.questions("alice").unwrap();
    assert_eq!(last, None);
    assert_eq!(
        got.iter()
            .map(|q| (q.idx, q.question.as_str(), q.answer_hash.as_str()))
            .collect::<Vec<_>>(),
        [
            (0, "question 0", "$argon2id$hash0"),
            (1, "question 1", "$argon2id$hash1"),
            (2, "question 2", "$argon2id$hash2"),
        ]
    );
    assert_eq!(s.user_state("alice").unwrap().questions, 3);
    let tx = s.write().unwrap();
    tx.set_questions("alice", &qs(2)[1..], NOW, 0).unwrap();
    tx.commit().unwrap();
    let (got, _) = s.questions("alice").unwrap();
    assert_eq!(got.len(), 1, "replaced, not added");
    assert_eq!((got[0].idx, got[0].question.as_str()), (0, "question 1"));
    let tx = s.write().unwrap();
    assert!(tx.remove_questions("alice").unwrap());
    assert!(!tx.remove_questions("alice").unwrap());
    tx.commit().unwrap();
    assert!(s.questions("alice").unwrap().0.is_empty());
    assert_eq!(s.user_state("alice").unwrap().questions, 0);
}

fn last_failed_question_round_trips(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let tx = s.write().unwrap();
    tx.set_questions("alice", &qs(3), NOW, 0).unwrap();
    tx.set_questions("bob", &qs(3), NOW, 0).unwrap();
    tx.set_last_failed_question("alice", Some(2)).unwrap();
    tx.commit().unwrap();
    assert_eq!(s.questions("alice").unwrap().1, Some(2));
    assert_eq!(s.questions("bob").unwrap().1, None);
    let tx = s.write().unwrap();
    tx.set_last_failed_question("alice", None).unwrap();
    tx.commit().unwrap();
    assert_eq!(s.questions("alice").unwrap().1, None);
}

// ---- WebAuthn ----

fn webauthn_add_update_remove(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let tx = s.write().unwrap();
    assert!(tx.add_webauthn("alice", "phone", "{\"c\":1}", NOW).unwrap());
    assert!(
        tx.add_webauthn("alice", "laptop", "{\"c\":2}", NOW)
            .unwrap()
    );
    assert!(
        !tx.add_webauthn("alice", "phone", "{\"c\":9}", NOW + 1)
            .unwrap(),
        "name taken"
    );
    assert!(tx.add_webauthn("bob", "phone", "{\"b\":1}", NOW).unwrap());
    tx.commit().unwrap();
    let creds = s.webauthn_credentials("alice").unwrap();
    assert_eq!(
        creds
            .iter()
            .map(|c| (c.name.as_str(), c.credential.as_str(), c.created_at))
            .collect::<Vec<_>>(),
        [("laptop", "{\"c\":2}", NOW), ("phone", "{\"c\":1}", NOW)],
        "by created_at then name; the refused add changed nothing"
    );
    assert!(creds.iter().all(|c| c.last_used_at.is_none()));
    assert_eq!(s.user_state("alice").unwrap().webauthn, 2);
    assert!(s.user_state("alice").unwrap().has_factor());
    let tx = s.write().unwrap();
    tx.update_webauthn("alice", "phone", "{\"c\":3}", NOW + 5)
        .unwrap();
    let inside = tx.webauthn_credentials("alice").unwrap();
    assert_eq!(inside[1].credential, "{\"c\":3}", "seen inside the tx");
    assert!(tx.remove_webauthn("alice", "laptop").unwrap());
    assert!(!tx.remove_webauthn("alice", "laptop").unwrap());
    tx.commit().unwrap();
    let creds = s.webauthn_credentials("alice").unwrap();
    assert_eq!(creds.len(), 1);
    assert_eq!(
        (creds[0].credential.as_str(), creds[0].last_used_at),
        ("{\"c\":3}", Some(NOW + 5))
    );
    let bobs = s.webauthn_credentials("bob").unwrap();
    assert_eq!(
        (bobs[0].credential.as_str(), bobs[0].last_used_at),
        ("{\"b\":1}", None),
        "bob's key of the same name untouched"
    );
}

fn key_warnings_newest_first_at_most_20(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let tx = s.write().unwrap();
    tx.add_webauthn("alice", "phone", "{}", NOW).unwrap();
    tx.add_webauthn("bob", "phone", "{}", NOW).unwrap();
    for i in 0..25u32 {
        let w = KeyWarning {
            key: "phone".into(),
            at: NOW + i64::from(i),
            stored: 100,
            presented: i,
        };
        tx.add_key_warning("alice", &w).unwrap();
    }
    tx.commit().unwrap();
    let w = s.status("alice").unwrap().key_warnings;
    assert_eq!(w.len(), 20);
    assert_eq!(
        w[0],
        KeyWarning {
            key: "phone".into(),
            at: NOW + 24,
            stored: 100,
            presented: 24
        }
    );
    assert_eq!(w[19].at, NOW + 5);
    assert!(s.status("bob").unwrap().key_warnings.is_empty());
}

// ---- local FIDO2 keys ----

/// A local FIDO2 key with credential id `[id; 48]` (also the SQLite
/// store's own tests' key).
pub(crate) fn local_key(name: &str, id: u8) -> LocalKey {
    LocalKey {
        name: name.into(),
        credential_id: vec![id; 48],
        public_key: vec![4; 65],
        rp_id: "pam://host".into(),
        counter: 7,
        created_at: 0,
        last_used_at: None,
    }
}

fn local_keys_add_use_remove(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let tx = s.write().unwrap();
    assert!(tx.add_local_key("alice", &local_key("yk", 1), NOW).unwrap());
    assert!(
        !tx.add_local_key("alice", &local_key("yk", 2), NOW).unwrap(),
        "same name"
    );
    assert!(
        !tx.add_local_key("bob", &local_key("other", 1), NOW)
            .unwrap(),
        "credential id stored for another user"
    );
    assert!(tx.add_webauthn("alice", "browser", "{}", NOW).unwrap());
    assert!(
        !tx.add_local_key("alice", &local_key("browser", 3), NOW)
            .unwrap(),
        "a browser key's name"
    );
    assert!(tx.add_local_key("bob", &local_key("yk", 4), NOW).unwrap());
    assert_eq!(tx.key_names("alice").unwrap(), ["browser", "yk"]);
    assert_eq!(
        tx.local_key_owner(&[4; 48]).unwrap(),
        Some(("bob".into(), "yk".into()))
    );
    tx.use_local_key("alice", &[1; 48], 9, NOW + 5).unwrap();
    tx.use_local_key("alice", &[4; 48], 99, NOW + 5).unwrap();
    assert_eq!(tx.local_key("alice", &[1; 48]).unwrap().unwrap().counter, 9);
    assert_eq!(tx.local_key("alice", &[4; 48]).unwrap(), None, "bob's");
    tx.commit().unwrap();
    let keys = s.local_keys("alice").unwrap();
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert_eq!(
        (
            k.name.as_str(),
            k.credential_id.clone(),
            k.public_key.clone(),
            k.rp_id.as_str()
        ),
        ("yk", vec![1; 48], vec![4; 65], "pam://host")
    );
    assert_eq!(
        (k.counter, k.created_at, k.last_used_at),
        (9, NOW, Some(NOW + 5))
    );
    let bobs = s.local_keys("bob").unwrap();
    assert_eq!(
        (bobs[0].counter, bobs[0].last_used_at),
        (7, None),
        "untouched"
    );
    assert_eq!(s.key_names("alice").unwrap(), ["browser", "yk"]);
    assert_eq!(
        s.local_key_owner(&[1; 48]).unwrap(),
        Some(("alice".into(), "yk".into()))
    );
    assert_eq!(s.local_key_owner(&[2; 48]).unwrap(), None);
    assert_eq!(s.user_state("alice").unwrap().local_keys, 1);
    let tx = s.write().unwrap();
    assert!(
        !tx.remove_local_key("alice", "browser").unwrap(),
        "not a local key"
    );
    assert!(tx.remove_local_key("alice", "yk").unwrap());
    assert!(!tx.remove_local_key("alice", "yk").unwrap());
    tx.commit().unwrap();
    assert!(s.local_keys("alice").unwrap().is_empty());
    assert_eq!(s.local_key_owner(&[1; 48]).unwrap(), None);
    assert_eq!(s.key_names("alice").unwrap(), ["browser"]);
    assert_eq!(s.local_keys("bob").unwrap().len(), 1);
}

// ---- backup codes ----

fn replacing_unused_backup_codes_keeps_spent_ones(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let tx = s.write().unwrap();
    tx.replace_backup_codes("alice", &[[1; 32], [2; 32], [3; 32]], NOW, 0)
        .unwrap();
    tx.commit().unwrap();
    let st = s.user_state("alice").unwrap();
    let spent = st
        .unused_backup
        .iter()
        .find(|(_, h, _, _)| h == &vec![2u8; 32])
        .unwrap()
        .0;
    let tx = s.write().unwrap();
    assert!(tx.mark_backup_used(spent, NOW, "sshd").unwrap());
    tx.replace_unused_backup_codes("alice", &[[4; 32], [5; 32]], NOW, 0)
        .unwrap();
    assert_eq!(tx.used_backup_hashes("alice").unwrap(), vec![vec![2u8; 32]]);
    tx.commit().unwrap();
    let st = s.user_state("alice").unwrap();
    let mut unused: Vec<_> = st
        .unused_backup
        .iter()
        .map(|(_, h, _, _)| h.clone())
        .collect();
    unused.sort();
    assert_eq!(unused, vec![vec![4u8; 32], vec![5u8; 32]]);
    assert_eq!(st.used_backup, 1);
    assert_eq!(s.used_backup_hashes("alice").unwrap(), vec![vec![2u8; 32]]);
    assert!(s.used_backup_hashes("bob").unwrap().is_empty());
    let status = s.status("alice").unwrap();
    assert_eq!(
        (status.backup_codes_remaining, status.backup_codes_used),
        (2, 1)
    );
    // replace_backup_codes replaces all, spent ones too.
    let tx = s.write().unwrap();
    tx.replace_backup_codes("alice", &[[6; 32]], NOW, 0)
        .unwrap();
    tx.commit().unwrap();
    let st = s.user_state("alice").unwrap();
    assert_eq!((st.unused_backup.len(), st.used_backup), (1, 0));
    assert!(s.used_backup_hashes("alice").unwrap().is_empty());
}

fn remove_backup_codes_counts_them(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let tx = s.write().unwrap();
    tx.replace_backup_codes("alice", &[[1; 32], [2; 32]], NOW, 0)
        .unwrap();
    tx.replace_backup_codes("bob", &[[1; 32]], NOW, 0).unwrap();
    tx.commit().unwrap();
    let id = s.user_state("alice").unwrap().unused_backup[0].0;
    let tx = s.write().unwrap();
    tx.mark_backup_used(id, NOW, "sshd").unwrap();
    assert_eq!(tx.remove_backup_codes("alice").unwrap(), 2, "used ones too");
    assert_eq!(tx.remove_backup_codes("alice").unwrap(), 0);
    tx.commit().unwrap();
    let st = s.user_state("alice").unwrap();
    assert!(st.known && !st.is_enrolled());
    assert_eq!(s.user_state("bob").unwrap().unused_backup.len(), 1);
}

// ---- users ----

fn everything(tx: &Tx<'_>, user: &str, cred: u8) {
    tx.put_otp(user, &otp(OtpKind::Totp, None, 0), NOW).unwrap();
    tx.replace_backup_codes(user, &[[1; 32]], NOW, 0).unwrap();
    tx.set_contact(user, SMS, ADDR, NOW).unwrap();
    tx.set_contact(user, EMAIL, "x@example.org", NOW).unwrap();
    tx.set_duo(user, NOW).unwrap();
    tx.set_default_factor(user, Some("totp"), NOW).unwrap();
    tx.set_questions(user, &qs(2), NOW, 0).unwrap();
    tx.set_last_failed_question(user, Some(1)).unwrap();
    tx.add_webauthn(user, "phone", "{}", NOW).unwrap();
    let w = KeyWarning {
        key: "phone".into(),
        at: NOW,
        stored: 2,
        presented: 1,
    };
    tx.add_key_warning(user, &w).unwrap();
    assert!(tx.add_local_key(user, &local_key("yk", cred), NOW).unwrap());
    tx.first_seen(user, NOW).unwrap();
    tx.remember(user, "sshd", &[1; 32], "tty pts/1", "totp", NOW, NOW + 100)
        .unwrap();
    tx.insert_sent_code(
        user,
        SMS,
        Purpose::Login,
        ADDR,
        &[3; 32],
        NOW,
        TTL,
        &SentScope::HOST,
    )
    .unwrap();
    tx.record_success(user, NOW, "sshd", "192.0.2.7", "totp")
        .unwrap();
    tx.record_failure(user, NOW, &RateLimitConfig::default())
        .unwrap();
}

fn reset_user_forgets_one_user_entirely(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let tx = s.write().unwrap();
    everything(&tx, "alice", 1);
    everything(&tx, "bob", 2);
    tx.commit().unwrap();
    let tx = s.write().unwrap();
    assert!(tx.reset_user("alice").unwrap());
    assert!(!tx.reset_user("alice").unwrap());
    assert!(!tx.reset_user("carol").unwrap());
    assert_eq!(tx.sends_last_hour("alice", SMS, NOW).unwrap(), 0);
    assert_eq!(
        tx.live_code_sent_at("alice", SMS, Purpose::Login, NOW, 3)
            .unwrap(),
        None
    );
    assert_eq!(tx.key_names("alice").unwrap(), Vec::<String>::new());
    assert_eq!(
        tx.first_seen("alice", NOW + 50).unwrap(),
        NOW + 50,
        "seen anew"
    );
    tx.commit().unwrap();
    let st = s.user_state("alice").unwrap();
    assert!(!st.is_enrolled() && st.otp.is_none() && st.sms.is_none() && !st.duo);
    assert_eq!((st.failures, st.default_factor), (0, None));
    let status = s.status("alice").unwrap();
    assert!(status.last_success.is_none() && status.key_warnings.is_empty());
    assert!(s.used_backup_hashes("alice").unwrap().is_empty());
    let (questions, last_failed) = s.questions("alice").unwrap();
    assert!(questions.is_empty() && last_failed.is_none());
    assert!(s.webauthn_credentials("alice").unwrap().is_empty());
    assert!(s.local_keys("alice").unwrap().is_empty());
    assert_eq!(s.local_key_owner(&[1; 48]).unwrap(), None);
    assert!(s.remembered_list(Some("alice"), NOW).unwrap().is_empty());
    assert!(
        s.remembered("alice", "sshd", &[1; 32], NOW)
            .unwrap()
            .is_none()
    );
    // Bob keeps all of his.
    let st = s.user_state("bob").unwrap();
    assert!(st.otp.is_some() && st.duo && st.sms.is_some() && st.email.is_some());
    assert_eq!(
        (
            st.unused_backup.len(),
            st.questions,
            st.webauthn,
            st.local_keys,
            st.failures
        ),
        (1, 2, 1, 1, 1)
    );
    assert_eq!(st.default_factor.as_deref(), Some("totp"));
    let status = s.status("bob").unwrap();
    assert_eq!(
        (status.first_seen, status.key_warnings.len()),
        (Some(NOW), 1)
    );
    assert!(status.last_success.is_some());
    assert_eq!(s.questions("bob").unwrap().1, Some(1));
    assert_eq!(
        s.local_key_owner(&[2; 48]).unwrap(),
        Some(("bob".into(), "yk".into()))
    );
    assert_eq!(s.remembered_list(None, NOW).unwrap().len(), 1);
    let tx = s.write().unwrap();
    assert_eq!(tx.sends_last_hour("bob", SMS, NOW).unwrap(), 1);
    assert!(
        tx.add_local_key("carol", &local_key("yk", 1), NOW).unwrap(),
        "alice's credential id is free again"
    );
}

fn first_seen_is_set_once(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    enroll(&mut s, "bob", &otp(OtpKind::Totp, None, 0));
    assert_eq!(
        s.status("bob").unwrap().first_seen,
        None,
        "enrolling is not being seen"
    );
    let tx = s.write().unwrap();
    assert_eq!(tx.first_seen("alice", NOW).unwrap(), NOW);
    assert_eq!(tx.first_seen("alice", NOW + 100).unwrap(), NOW);
    tx.commit().unwrap();
    let tx = s.write().unwrap();
    assert_eq!(
        tx.first_seen("alice", NOW + 200).unwrap(),
        NOW,
        "after commit"
    );
    tx.commit().unwrap();
    let st = s.user_state("alice").unwrap();
    assert!(st.known && !st.is_enrolled());
    assert_eq!(s.status("alice").unwrap().first_seen, Some(NOW));
}

fn merge_counters_never_loosens(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let rl = RateLimitConfig::default();
    let tx = s.write().unwrap();
    tx.merge_counters("alice", 2, NOW + 60, Some(NOW), NOW)
        .unwrap();
    tx.commit().unwrap();
    let st = s.status("alice").unwrap();
    assert_eq!(
        (st.failures, st.locked_until, st.first_seen),
        (2, Some(NOW + 60), Some(NOW)),
        "a new user takes the values"
    );
    let tx = s.write().unwrap();
    tx.merge_counters("alice", 1, NOW + 10, Some(NOW + 50), NOW)
        .unwrap();
    tx.merge_counters("alice", 0, 0, None, NOW).unwrap();
    tx.commit().unwrap();
    let st = s.status("alice").unwrap();
    assert_eq!(
        (st.failures, st.locked_until, st.first_seen),
        (2, Some(NOW + 60), Some(NOW)),
        "smaller failures and lock, a later first_seen change nothing"
    );
    let tx = s.write().unwrap();
    tx.merge_counters("alice", 5, NOW + 90, Some(NOW - 40), NOW)
        .unwrap();
    tx.first_seen("bob", NOW).unwrap();
    tx.merge_counters("bob", 0, 0, None, NOW).unwrap();
    tx.commit().unwrap();
    let st = s.status("alice").unwrap();
    assert_eq!(
        (st.failures, st.locked_until, st.first_seen),
        (5, Some(NOW + 90), Some(NOW - 40)),
        "larger failures and lock, an earlier first_seen are taken"
    );
    assert_eq!(s.status("bob").unwrap().first_seen, Some(NOW));
    // Failures merged in count on: the next one locks as usual.
    let tx = s.write().unwrap();
    let (n, _) = tx.record_failure("alice", NOW, &rl).unwrap();
    assert_eq!(n, 6);
}

fn users_are_listed_sorted(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let tx = s.write().unwrap();
    for u in ["carol", "alice", "bob"] {
        tx.ensure_user(u, NOW).unwrap();
    }
    tx.ensure_user("alice", NOW + 1).unwrap();
    tx.commit().unwrap();
    assert_eq!(s.users().unwrap(), ["alice", "bob", "carol"]);
    let st = s.user_state("carol").unwrap();
    assert!(st.known && !st.is_enrolled());
}

fn status_summarises_the_state(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let unknown = s.status("alice").unwrap();
    assert_eq!(unknown.user, "alice");
    assert!(!unknown.enrolled && unknown.otp.is_none() && unknown.last_success.is_none());
    assert_eq!((unknown.first_seen, unknown.locked_until), (None, None));
    let mut rec = otp(OtpKind::Hotp, None, 42);
    rec.digits = 8;
    rec.algorithm = Algorithm::Sha256;
    enroll(&mut s, "alice", &rec);
    let rl = RateLimitConfig::default();
    let tx = s.write().unwrap();
    tx.replace_backup_codes("alice", &[[1; 32], [2; 32]], NOW, 0)
        .unwrap();
    for _ in 0..rl.max_failures {
        tx.record_failure("alice", NOW, &rl).unwrap();
    }
    tx.commit().unwrap();
    let st = s.status("alice").unwrap();
    assert!(st.enrolled);
    let o = st.otp.unwrap();
    assert_eq!(
        (
            o.kind.as_str(),
            o.algorithm.as_str(),
            o.digits,
            o.period,
            o.counter,
            o.enrolled_at
        ),
        ("hotp", "SHA256", 8, None, Some(42), NOW)
    );
    assert_eq!((st.backup_codes_remaining, st.backup_codes_used), (2, 0));
    assert_eq!(st.failures, rl.max_failures);
    assert_eq!(st.locked_until, Some(NOW + rl.lockout_seconds as i64));
    assert!(st.last_success.is_none());
    enroll(&mut s, "bob", &otp(OtpKind::Totp, None, 0));
    let o = s.status("bob").unwrap().otp.unwrap();
    assert_eq!(
        (o.kind.as_str(), o.period, o.counter),
        ("totp", Some(30), None)
    );
}

fn record_success_keeps_the_latest_login(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    enroll(&mut s, "alice", &otp(OtpKind::Totp, None, 0));
    enroll(&mut s, "bob", &otp(OtpKind::Totp, None, 0));
    let tx = s.write().unwrap();
    tx.record_success("alice", NOW, "sshd", "192.0.2.7", "totp")
        .unwrap();
    tx.record_success("alice", NOW + 60, "sudo", "", "backup")
        .unwrap();
    tx.commit().unwrap();
    let last = s.status("alice").unwrap().last_success.unwrap();
    assert_eq!(
        (
            last.time,
            last.service.as_str(),
            last.rhost.as_str(),
            last.factor.as_str()
        ),
        (NOW + 60, "sudo", "", "backup")
    );
    assert!(s.status("bob").unwrap().last_success.is_none());
}

fn recent_logins_keep_the_newest_per_user(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    enroll(&mut s, "alice", &otp(OtpKind::Totp, None, 0));
    enroll(&mut s, "bob", &otp(OtpKind::Totp, None, 0));
    let n = super::RECENT_LOGINS + 5;
    for i in 0..n {
        let tx = s.write().unwrap();
        tx.record_success("alice", NOW + i, &format!("svc{i}"), "192.0.2.7", "totp")
            .unwrap();
        tx.commit().unwrap();
    }
    let tx = s.write().unwrap();
    tx.record_success("bob", NOW, "sudo", "", "backup").unwrap();
    tx.commit().unwrap();
    let recent = s.status("alice").unwrap().recent_logins;
    assert_eq!(recent.len() as i64, super::RECENT_LOGINS);
    assert_eq!(
        (
            recent[0].time,
            recent[0].service.as_str(),
            recent[0].rhost.as_str()
        ),
        (NOW + n - 1, format!("svc{}", n - 1).as_str(), "192.0.2.7")
    );
    assert!(
        recent.windows(2).all(|w| w[0].time > w[1].time),
        "newest first"
    );
    assert_eq!(recent.last().unwrap().time, NOW + 5, "the oldest are gone");
    let bob = s.status("bob").unwrap().recent_logins;
    assert_eq!(bob.len(), 1);
    assert_eq!(
        (bob[0].service.as_str(), bob[0].factor.as_str()),
        ("sudo", "backup")
    );
    // The history is not a factor: a reset leaves it for the audit.
    let tx = s.write().unwrap();
    assert!(tx.reset_user("bob").unwrap());
    tx.commit().unwrap();
    enroll(&mut s, "bob", &otp(OtpKind::Totp, None, 0));
    assert_eq!(s.status("bob").unwrap().recent_logins.len(), 1);
}

fn failures_keep_doubling_the_lock(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let rl = RateLimitConfig::default();
    let tx = s.write().unwrap();
    for _ in 0..rl.max_failures {
        tx.record_failure("alice", NOW, &rl).unwrap();
    }
    let (n, until) = tx.record_failure("alice", NOW + 10, &rl).unwrap();
    assert_eq!(
        (n, until),
        (
            rl.max_failures + 1,
            super::lock_until(i64::from(n), NOW + 10, &rl)
        )
    );
    assert_eq!(
        tx.record_failure("bob", NOW, &rl).unwrap(),
        (1, 0),
        "per user"
    );
    tx.commit().unwrap();
    assert_eq!(s.user_state("alice").unwrap().locked_until, until);
}

fn tx_reads_its_own_writes(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let tx = s.write().unwrap();
    assert!(!tx.user_state("alice").unwrap().known);
    tx.put_otp("alice", &otp(OtpKind::Totp, Some(3), 0), NOW)
        .unwrap();
    tx.set_last_step("alice", 4).unwrap();
    let st = tx.user_state("alice").unwrap();
    assert!(st.known, "put_otp creates the user");
    assert_eq!(st.otp.unwrap().last_step, Some(4));
    tx.commit().unwrap();
    assert_eq!(
        s.user_state("alice").unwrap().otp.unwrap().last_step,
        Some(4)
    );
}

fn put_otp_replaces_the_token(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    enroll(&mut s, "alice", &otp(OtpKind::Totp, Some(99), 0));
    let mut rec = otp(OtpKind::Hotp, None, 5);
    rec.sealed = vec![8; 40];
    enroll(&mut s, "alice", &rec);
    let o = s.user_state("alice").unwrap().otp.unwrap();
    assert_eq!(
        (o.kind, o.sealed, o.last_step, o.counter),
        (OtpKind::Hotp, vec![8; 40], None, 5)
    );
}

fn remember_replaces_the_same_source(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let tx = s.write().unwrap();
    tx.ensure_user("alice", NOW).unwrap();
    tx.remember("alice", "sudo", &[2; 32], "tty pts/2", "totp", NOW, NOW + 5)
        .unwrap();
    tx.remember("alice", "sshd", &[1; 32], "rhost a", "totp", NOW, NOW + 10)
        .unwrap();
    tx.remember(
        "alice",
        "sshd",
        &[1; 32],
        "rhost b",
        "sms",
        NOW + 1,
        NOW + 20,
    )
    .unwrap();
    tx.commit().unwrap();
    let list = s.remembered_list(Some("alice"), NOW + 1).unwrap();
    assert_eq!(list.len(), 2, "the same source again replaces");
    let r = s
        .remembered("alice", "sshd", &[1; 32], NOW + 15)
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            r.source.as_str(),
            r.factor.as_str(),
            r.created_at,
            r.expires_at
        ),
        ("rhost b", "sms", NOW + 1, NOW + 20)
    );
    assert_eq!(s.remembered_list(Some("alice"), NOW + 5).unwrap().len(), 1);
}

fn keyed_items_are_reported(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    assert!(!s.has_keyed_items().unwrap());
    assert!(s.sealed_secrets().unwrap().is_empty());
    let tx = s.write().unwrap();
    assert_eq!(tx.oldest_hashed_item().unwrap(), None);
    tx.set_duo("alice", NOW).unwrap();
    tx.add_webauthn("alice", "phone", "{}", NOW).unwrap();
    tx.commit().unwrap();
    assert!(
        !s.has_keyed_items().unwrap(),
        "Duo and public keys are not keyed"
    );
    let tx = s.write().unwrap();
    tx.set_questions("alice", &qs(1), NOW + 20, 0).unwrap();
    tx.replace_backup_codes("bob", &[[1; 32]], NOW + 10, 0)
        .unwrap();
    assert_eq!(tx.oldest_hashed_item().unwrap(), Some(NOW + 10));
    tx.put_otp("carol", &otp(OtpKind::Totp, None, 0), NOW + 30)
        .unwrap();
    let sealed = tx.sealed_secrets().unwrap();
    assert_eq!(sealed.len(), 1);
    assert_eq!(
        (
            sealed[0].user.as_str(),
            sealed[0].sealed.clone(),
            sealed[0].created_at
        ),
        ("carol", vec![7; 40], NOW + 30)
    );
    tx.commit().unwrap();
    assert!(s.has_keyed_items().unwrap());
    assert_eq!(s.sealed_secrets().unwrap().len(), 1);
}

/// Every keyed row keeps the host-key generation it was written with
/// (`rekey`); status and the old-generation list count them.
fn rows_keep_their_key_generation(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let mut rec = otp(OtpKind::Totp, Some(5), 0);
    rec.key_gen = 1;
    let tx = s.write().unwrap();
    tx.lock_rekey().unwrap();
    tx.put_otp("alice", &rec, NOW).unwrap();
    tx.replace_backup_codes("alice", &[[1; 32], [2; 32]], NOW, 0)
        .unwrap();
    tx.set_questions("bob", &qs(2), NOW, 2).unwrap();
    tx.replace_backup_codes("bob", &[[3; 32]], NOW, 2).unwrap();
    tx.commit().unwrap();
    let st = s.user_state("alice").unwrap();
    assert_eq!(st.otp.as_ref().unwrap().key_gen, 1);
    assert_eq!(st.unused_backup.len(), 2);
    assert!(
        st.unused_backup
            .iter()
            .all(|(_, _, g, i)| *g == 0 && i.is_none())
    );
    let (q, _) = s.questions("bob").unwrap();
    assert!(q.iter().all(|q| q.key_gen == 2) && q.len() == 2);
    // Inside a transaction too.
    let tx = s.write().unwrap();
    assert_eq!(tx.user_state("bob").unwrap().unused_backup[0].2, 2);
    // A used code is not counted, an unused one of a replaced set is.
    let id = tx.user_state("alice").unwrap().unused_backup[0].0;
    assert!(tx.mark_backup_used(id, NOW, "sshd").unwrap());
    tx.replace_unused_backup_codes("bob", &[[4; 32], [5; 32]], NOW, 1)
        .unwrap();
    tx.commit().unwrap();
    let counts: Vec<(String, i64, i64)> = s
        .key_gen_counts()
        .unwrap()
        .into_iter()
        .map(|c| (c.table, c.key_gen, c.rows))
        .collect();
    assert!(
        s.key_gen_counts()
            .unwrap()
            .iter()
            .all(|c| c.inner_gen.is_none())
    );
    assert_eq!(
        counts,
        vec![
            ("backup_codes".to_string(), 0, 1),
            ("backup_codes".to_string(), 1, 2),
            ("otp_tokens".to_string(), 1, 1),
            ("questions".to_string(), 2, 2),
        ]
    );
    let old = s.old_gen_items(2).unwrap();
    assert_eq!(old.len(), 2);
    assert_eq!(
        (
            old[0].user.as_str(),
            old[0].backup_codes,
            old[0].questions,
            old[0].otp
        ),
        ("alice", 1, 0, 1)
    );
    assert_eq!(
        (
            old[1].user.as_str(),
            old[1].backup_codes,
            old[1].questions,
            old[1].otp
        ),
        ("bob", 2, 0, 0)
    );
    assert!(s.old_gen_items(0).unwrap().is_empty());
}

/// `reseal_otp` swaps the sealed secret and its generation only: the
/// step (replay protection) and everything else stay.
fn reseal_keeps_the_token_and_moves_its_generation(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    enroll(&mut s, "alice", &otp(OtpKind::Totp, Some(42), 0));
    let before = s.user_state("alice").unwrap().otp.unwrap();
    let tx = s.write().unwrap();
    assert!(tx.reseal_otp("alice", &[9; 40], 3).unwrap());
    assert!(!tx.reseal_otp("nobody", &[9; 40], 3).unwrap());
    tx.commit().unwrap();
    let after = s.user_state("alice").unwrap().otp.unwrap();
    assert_eq!(after.sealed, vec![9; 40]);
    assert_eq!(after.key_gen, 3);
    assert_eq!(after.last_step, Some(42));
    assert_eq!(
        (after.kind, after.digits, after.period, after.created_at),
        (before.kind, before.digits, before.period, before.created_at)
    );
    assert!(s.old_gen_items(3).unwrap().is_empty());
}

/// `drop_old_gen` marks old unused codes used (the user stays enrolled,
/// the codes never verify) and deletes old answers; newer rows and other
/// users stay.
fn drop_old_gen_spends_codes_and_deletes_answers(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let tx = s.write().unwrap();
    tx.replace_backup_codes("alice", &[[1; 32], [2; 32]], NOW, 0)
        .unwrap();
    tx.set_questions("alice", &qs(3), NOW, 0).unwrap();
    tx.replace_backup_codes("bob", &[[3; 32]], NOW, 0).unwrap();
    tx.commit().unwrap();
    let tx = s.write().unwrap();
    assert_eq!(tx.drop_old_gen("alice", 1, NOW + 1).unwrap(), (2, 3));
    assert_eq!(tx.drop_old_gen("alice", 1, NOW + 1).unwrap(), (0, 0));
    tx.commit().unwrap();
    let st = s.user_state("alice").unwrap();
    assert!(st.unused_backup.is_empty());
    assert_eq!(st.used_backup, 2);
    assert!(st.is_enrolled(), "spent codes keep the user enrolled");
    assert_eq!(st.questions, 0);
    assert_eq!(s.user_state("bob").unwrap().unused_backup.len(), 1);
    let old = s.old_gen_items(1).unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].user, "bob");
}

/// `rekey convert`'s rows: every backup code (used too) and question is
/// read in the transaction; wrapping replaces the hash, sets `key_gen`
/// and `inner_gen`, and happens once (a wrapped row, another user's row
/// or a row of another generation is left alone).
fn wrapping_moves_one_way_rows_to_the_new_generation(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let tx = s.write().unwrap();
    tx.replace_backup_codes("alice", &[[1; 32], [2; 32]], NOW, 0)
        .unwrap();
    tx.set_questions("alice", &qs(2), NOW, 0).unwrap();
    tx.replace_backup_codes("bob", &[[3; 32]], NOW, 1).unwrap();
    tx.commit().unwrap();
    let used = s.user_state("alice").unwrap().unused_backup[0].0;
    let tx = s.write().unwrap();
    assert!(tx.mark_backup_used(used, NOW, "sshd").unwrap());
    let rows = tx.backup_rows("alice").unwrap();
    assert_eq!(rows.len(), 2, "used codes are read too");
    assert!(rows.iter().all(|r| r.key_gen == 0 && r.inner_gen.is_none()));
    let bob_id = tx.backup_rows("bob").unwrap()[0].id;
    assert!(
        !tx.wrap_backup_code("alice", bob_id, 1, &[9; 32], 2)
            .unwrap(),
        "another user's row"
    );
    assert!(
        !tx.wrap_backup_code("bob", bob_id, 0, &[9; 32], 1).unwrap(),
        "another generation"
    );
    for (i, r) in rows.iter().enumerate() {
        assert!(
            tx.wrap_backup_code("alice", r.id, 0, &[10 + i as u8; 32], 1)
                .unwrap()
        );
        assert!(
            !tx.wrap_backup_code("alice", r.id, 0, &[20; 32], 1).unwrap(),
            "once"
        );
    }
    let q = tx.question_rows("alice").unwrap();
    assert_eq!(q.len(), 2);
    assert!(q.iter().all(|q| q.key_gen == 0 && q.inner_gen.is_none()));
    for x in &q {
        let w = format!("{}-wrapped", x.answer_hash);
        assert!(tx.wrap_answer("alice", x.idx, 0, &w, 1).unwrap());
        assert!(
            !tx.wrap_answer("alice", x.idx, 0, "again", 1).unwrap(),
            "once"
        );
    }
    assert!(
        !tx.wrap_answer("bob", 0, 0, "x", 1).unwrap(),
        "no such question"
    );
    let after = tx.backup_rows("alice").unwrap();
    assert_eq!(after[1].hash, vec![11; 32]);
    assert!(
        after
            .iter()
            .all(|r| r.key_gen == 1 && r.inner_gen == Some(0))
    );
    tx.commit().unwrap();
    let st = s.user_state("alice").unwrap();
    assert_eq!(st.unused_backup.len(), 1);
    assert_eq!(st.unused_backup[0].1, vec![11; 32]);
    assert_eq!((st.unused_backup[0].2, st.unused_backup[0].3), (1, Some(0)));
    assert_eq!(st.used_backup, 1);
    assert_eq!(s.used_backup_hashes("alice").unwrap(), vec![vec![10; 32]]);
    let (stored, _) = s.questions("alice").unwrap();
    assert!(
        stored.iter().all(|x| x.key_gen == 1
            && x.inner_gen == Some(0)
            && x.answer_hash.ends_with("-wrapped"))
    );
    let counts: Vec<(String, i64, Option<i64>, i64)> = s
        .key_gen_counts()
        .unwrap()
        .into_iter()
        .map(|c| (c.table, c.key_gen, c.inner_gen, c.rows))
        .collect();
    assert_eq!(
        counts,
        vec![
            ("backup_codes".to_string(), 1, None, 1),
            ("backup_codes".to_string(), 1, Some(0), 1),
            ("questions".to_string(), 1, Some(0), 2),
        ]
    );
    assert!(
        s.old_gen_items(1).unwrap().is_empty(),
        "nothing keyed by 0 alone"
    );
    let w = s.wrapped_items(1).unwrap();
    assert_eq!(w.len(), 1);
    assert_eq!(
        (
            w[0].user.as_str(),
            w[0].backup_codes,
            w[0].questions,
            w[0].otp
        ),
        ("alice", 1, 2, 0)
    );
    assert!(s.wrapped_items(0).unwrap().is_empty());
    // New codes replace the wrapped unused ones.
    let tx = s.write().unwrap();
    tx.replace_unused_backup_codes("alice", &[[4; 32]], NOW, 1)
        .unwrap();
    tx.commit().unwrap();
    let w = s.wrapped_items(1).unwrap();
    assert_eq!((w[0].backup_codes, w[0].questions), (0, 2));
    let st = s.user_state("alice").unwrap();
    assert_eq!(st.unused_backup.len(), 1);
    assert_eq!(st.unused_backup[0].3, None);
}

/// A login's re-hash of a wrapped answer it verified: only that wrapped
/// hash is replaced (a plain one, one changed meanwhile, another user's
/// or a missing question are left alone), once, with `inner_gen`
/// cleared and the given generation; the row then counts as plain and
/// no longer needs the inner generation.
fn a_verified_wrapped_answer_is_rehashed_once(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let tx = s.write().unwrap();
    tx.set_questions("alice", &qs(2), NOW, 0).unwrap();
    tx.set_questions("bob", &qs(1), NOW, 0).unwrap();
    let q = tx.question_rows("alice").unwrap();
    assert!(
        !tx.rehash_answer("alice", q[0].idx, &q[0].answer_hash, "plain", 1)
            .unwrap(),
        "a plain row is not re-hashed"
    );
    for x in &q {
        let w = format!("{}-wrapped", x.answer_hash);
        assert!(tx.wrap_answer("alice", x.idx, 0, &w, 1).unwrap());
    }
    let b = tx.question_rows("bob").unwrap();
    assert!(
        tx.wrap_answer("bob", b[0].idx, 0, "bob-wrapped", 1)
            .unwrap()
    );
    tx.commit().unwrap();
    let (stored, _) = s.questions("alice").unwrap();
    let tx = s.write().unwrap();
    let w0 = &stored[0].answer_hash;
    assert!(
        !tx.rehash_answer("alice", stored[0].idx, "something else", "new", 1)
            .unwrap(),
        "a hash changed meanwhile"
    );
    assert!(
        !tx.rehash_answer("bob", stored[0].idx, w0, "new", 1)
            .unwrap(),
        "another user's row"
    );
    assert!(
        !tx.rehash_answer("alice", 99, w0, "new", 1).unwrap(),
        "no such question"
    );
    assert!(
        !tx.rehash_answer("alice", stored[0].idx, w0, "new", 0)
            .unwrap(),
        "never to a generation below the wrap's"
    );
    assert!(
        tx.rehash_answer("alice", stored[0].idx, w0, "$argon2id$new0", 1)
            .unwrap()
    );
    assert!(
        !tx.rehash_answer("alice", stored[0].idx, w0, "again", 1)
            .unwrap(),
        "once"
    );
    let rows = tx.question_rows("alice").unwrap();
    assert_eq!(rows[0].answer_hash, "$argon2id$new0");
    assert_eq!((rows[0].key_gen, rows[0].inner_gen), (1, None));
    assert_eq!(rows[1].answer_hash, stored[1].answer_hash, "the other one");
    assert_eq!((rows[1].key_gen, rows[1].inner_gen), (1, Some(0)));
    tx.commit().unwrap();
    let counts: Vec<(String, i64, Option<i64>, i64)> = s
        .key_gen_counts()
        .unwrap()
        .into_iter()
        .map(|c| (c.table, c.key_gen, c.inner_gen, c.rows))
        .collect();
    assert_eq!(
        counts,
        vec![
            ("questions".to_string(), 1, None, 1),
            ("questions".to_string(), 1, Some(0), 2),
        ]
    );
    // Uncommitted: nothing is kept.
    let tx = s.write().unwrap();
    let w1 = stored[1].answer_hash.clone();
    assert!(
        tx.rehash_answer("alice", stored[1].idx, &w1, "$argon2id$new1", 1)
            .unwrap()
    );
    drop(tx);
    assert_eq!(s.questions("alice").unwrap().0[1].answer_hash, w1);
    let tx = s.write().unwrap();
    assert!(
        tx.rehash_answer("alice", stored[1].idx, &w1, "$argon2id$new1", 1)
            .unwrap()
    );
    tx.commit().unwrap();
    let w = s.wrapped_items(1).unwrap();
    assert_eq!(w.len(), 1, "alice needs generation 0 no more");
    assert_eq!((w[0].user.as_str(), w[0].questions), ("bob", 1));
    assert!(s.old_gen_items(1).unwrap().is_empty());
}

/// `rekey finish --drop` after `convert`: rows that need the previous
/// generation as their inner one are dropped too; plain rows of the
/// current generation stay.
fn drop_old_gen_takes_wrapped_rows_too(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    let tx = s.write().unwrap();
    tx.replace_backup_codes("alice", &[[1; 32], [2; 32]], NOW, 0)
        .unwrap();
    tx.set_questions("alice", &qs(2), NOW, 0).unwrap();
    let r = tx.backup_rows("alice").unwrap();
    assert!(
        tx.wrap_backup_code("alice", r[0].id, 0, &[5; 32], 1)
            .unwrap()
    );
    assert!(tx.wrap_answer("alice", 1, 0, "w", 1).unwrap());
    tx.commit().unwrap();
    let tx = s.write().unwrap();
    assert_eq!(tx.drop_old_gen("alice", 1, NOW + 1).unwrap(), (2, 2));
    tx.commit().unwrap();
    assert!(s.wrapped_items(1).unwrap().is_empty());
    let st = s.user_state("alice").unwrap();
    assert!(st.unused_backup.is_empty() && st.questions == 0);
    assert!(st.is_enrolled(), "spent codes keep the user enrolled");
    let tx = s.write().unwrap();
    tx.replace_unused_backup_codes("alice", &[[7; 32]], NOW, 1)
        .unwrap();
    assert_eq!(tx.drop_old_gen("alice", 1, NOW + 2).unwrap(), (0, 0));
    tx.commit().unwrap();
}

/// SQLite has no fleet; PostgreSQL lists `p2fa.hosts` by name.
fn fleet_hosts_are_listed_by_name(new: &mut dyn FnMut() -> Store) {
    let s = new();
    let hosts = s.fleet_hosts().unwrap();
    if s.kind() == super::Kind::Sqlite {
        assert!(hosts.is_empty());
    }
    let mut sorted = hosts.clone();
    sorted.sort();
    sorted.dedup_by(|a, b| a.0 == b.0);
    assert_eq!(hosts, sorted);
}

fn clear_sent_codes_clears_all(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    send(&mut s, "alice", FactorId::Sms, Purpose::Login, 7, NOW);
    send(&mut s, "bob", FactorId::Email, Purpose::Enroll, 8, NOW);
    let tx = s.write().unwrap();
    assert_eq!(tx.clear_sent_codes().unwrap(), 2);
    tx.commit().unwrap();
    assert_eq!(
        check(&mut s, Purpose::Login, None, 7, NOW + 1),
        SentCheck::NoLiveCode
    );
}

// WebAuthn ceremonies in the shared store (fleet mode): PostgreSQL keeps
// them; SQLite refuses every operation (2fad keeps them in memory there).

fn ceremony(user: &str, kind: &str, expires_at: i64) -> StoredCeremony {
    StoredCeremony {
        user: user.into(),
        by_uid: 1000,
        kind: kind.into(),
        service: "sshd".into(),
        rhost: "192.0.2.1".into(),
        state: "{\"s\":1}".into(),
        options: "{\"o\":1}".into(),
        created_at: NOW,
        expires_at,
        ..StoredCeremony::default()
    }
}

/// On SQLite: every ceremony operation is an error, and nothing else of
/// the transaction is lost by trying. True if `s` keeps ceremonies.
fn keeps_ceremonies(s: &mut Store) -> bool {
    if s.kind() == Kind::Postgres {
        return true;
    }
    let tx = s.write().unwrap();
    let h = [1u8; 32];
    assert!(
        tx.insert_ceremony(&h, &ceremony("alice", "login", NOW + 120), 5, NOW)
            .is_err()
    );
    assert!(tx.ceremony(&h).is_err());
    assert!(tx.claim_ceremony(&h, NOW).is_err());
    assert!(tx.finish_ceremony(&h, true, "k", NOW).is_err());
    assert!(tx.delete_ceremony(&h).is_err());
    false
}

fn ceremonies_claim_once_and_are_taken_once(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    if !keeps_ceremonies(&mut s) {
        return;
    }
    let (a, b) = ([1u8; 32], [2u8; 32]);
    let tx = s.write().unwrap();
    assert!(
        tx.insert_ceremony(&a, &ceremony("alice", "login", NOW + 120), 5, NOW)
            .unwrap()
    );
    assert!(
        tx.insert_ceremony(&b, &ceremony("alice", "proof", NOW + 120), 5, NOW)
            .unwrap()
    );
    tx.commit().unwrap();
    let tx = s.write().unwrap();
    let got = tx.ceremony(&a).unwrap().unwrap();
    assert_eq!(
        (
            got.user.as_str(),
            got.kind.as_str(),
            got.state.as_str(),
            got.options.as_str()
        ),
        ("alice", "login", "{\"s\":1}", "{\"o\":1}")
    );
    assert_eq!(
        (got.by_uid, got.service.as_str(), got.rhost.as_str()),
        (1000, "sshd", "192.0.2.1")
    );
    assert_eq!(
        (got.expires_at, got.busy, got.result.clone()),
        (NOW + 120, false, None)
    );
    assert!(!got.host.is_empty());
    assert!(tx.ceremony(&[3u8; 32]).unwrap().is_none());
    // Not after it expired; then once.
    assert!(tx.claim_ceremony(&a, NOW + 120).unwrap().is_none());
    assert!(tx.claim_ceremony(&a, NOW).unwrap().unwrap().busy);
    assert!(tx.claim_ceremony(&a, NOW).unwrap().is_none());
    // Not finished unless claimed; finished once.
    assert!(!tx.finish_ceremony(&b, true, "k", NOW).unwrap());
    assert!(tx.finish_ceremony(&a, true, "yubi", NOW).unwrap());
    assert!(!tx.finish_ceremony(&a, false, "again", NOW).unwrap());
    let got = tx.ceremony(&a).unwrap().unwrap();
    assert_eq!((got.busy, got.result), (false, Some((true, "yubi".into()))));
    // Answered: no second claim.
    assert!(tx.claim_ceremony(&a, NOW).unwrap().is_none());
    // A refusal is kept as such.
    assert!(tx.claim_ceremony(&b, NOW).is_ok());
    assert!(tx.finish_ceremony(&b, false, "refused", NOW).unwrap());
    assert_eq!(
        tx.ceremony(&b).unwrap().unwrap().result,
        Some((false, "refused".into()))
    );
    // Taken once.
    assert!(tx.delete_ceremony(&a).unwrap());
    assert!(!tx.delete_ceremony(&a).unwrap());
    assert!(tx.ceremony(&a).unwrap().is_none());
    tx.commit().unwrap();
    // Nothing is kept from a transaction rolled back.
    let tx = s.write().unwrap();
    assert!(tx.delete_ceremony(&b).unwrap());
    drop(tx);
    assert!(s.write().unwrap().ceremony(&b).unwrap().is_some());
}

fn ceremonies_have_a_quota_per_class(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    if !keeps_ceremonies(&mut s) {
        return;
    }
    let tx = s.write().unwrap();
    let ins = |n: u8, user: &str, kind: &str, exp: i64, now: i64| {
        tx.insert_ceremony(&[n; 32], &ceremony(user, kind, exp), 2, now)
            .unwrap()
    };
    assert!(ins(1, "alice", "login", NOW + 120, NOW));
    assert!(ins(2, "alice", "login", NOW + 120, NOW));
    assert!(!ins(3, "alice", "login", NOW + 120, NOW), "a third login");
    // Registrations and proofs count apart, and so do other users.
    assert!(ins(4, "alice", "register", NOW + 120, NOW));
    assert!(ins(5, "alice", "proof", NOW + 120, NOW));
    assert!(!ins(6, "alice", "register", NOW + 120, NOW));
    assert!(ins(7, "bob", "login", NOW + 120, NOW));
    // An answered login frees its place.
    tx.claim_ceremony(&[1; 32], NOW).unwrap().unwrap();
    tx.finish_ceremony(&[1; 32], false, "refused", NOW).unwrap();
    assert!(ins(8, "alice", "login", NOW + 120, NOW));
    // Expired ones free theirs, and are deleted a minute after expiry.
    assert!(ins(9, "alice", "login", NOW + 120, NOW + 120));
    assert!(tx.ceremony(&[2; 32]).unwrap().is_some());
    assert!(ins(10, "carol", "login", NOW + 400, NOW + 180));
    assert!(tx.ceremony(&[2; 32]).unwrap().is_none());
    assert!(tx.ceremony(&[10; 32]).unwrap().is_some());
    tx.commit().unwrap();
}

// Profile-page links and sessions in the shared store (fleet mode):
// PostgreSQL keeps them; SQLite refuses every operation (2fad keeps them
// in memory there).

fn profile_session(link: u8, user: &str, expires_at: i64) -> StoredProfileSession {
    StoredProfileSession {
        link_hash: vec![link; 32],
        user: user.into(),
        by_uid: 1000,
        peer: "192.0.2.7".into(),
        created_at: NOW,
        expires_at,
        ended: None,
        state: vec![9, 8, 7],
    }
}

/// On SQLite: every profile operation is an error, and nothing else of
/// the transaction is lost by trying. True if `s` keeps profiles.
fn keeps_profiles(s: &mut Store) -> bool {
    if s.kind() == Kind::Postgres {
        return true;
    }
    let tx = s.write().unwrap();
    let h = [1u8; 32];
    assert!(
        tx.insert_profile_link(&h, "alice", 1000, NOW + 60, 3, 100, NOW)
            .is_err()
    );
    assert!(tx.profile_link(&h).is_err());
    assert!(tx.open_profile_link(&h, &h, NOW, NOW + 60).is_err());
    assert!(
        tx.insert_profile_session(&h, &profile_session(1, "alice", NOW + 60))
            .is_err()
    );
    assert!(tx.lock_profile_session(&h).is_err());
    assert!(tx.update_profile_session(&h, b"x").is_err());
    assert!(tx.end_profile_session(&h, true, NOW).is_err());
    tx.ensure_user("alice", NOW).unwrap();
    tx.commit().unwrap();
    assert_eq!(s.users().unwrap(), vec!["alice".to_string()]);
    false
}

fn profile_links_open_once_and_a_second_opening_ends_the_session(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    if !keeps_profiles(&mut s) {
        return;
    }
    let (l, sh, sh2) = ([1u8; 32], [11u8; 32], [12u8; 32]);
    let tx = s.write().unwrap();
    assert_eq!(
        tx.insert_profile_link(&l, "alice", 0, NOW + 60, 3, 100, NOW)
            .unwrap(),
        ProfileQuota::Added
    );
    tx.commit().unwrap();
    let tx = s.write().unwrap();
    let got = tx.profile_link(&l).unwrap().unwrap();
    assert_eq!(
        (
            got.user.as_str(),
            got.by_uid,
            got.expires_at,
            got.session_hash
        ),
        ("alice", 0, NOW + 60, None)
    );
    assert!(tx.profile_link(&[2u8; 32]).unwrap().is_none());
    // Not after it expired (and then it is gone).
    let t2 = [3u8; 32];
    tx.insert_profile_link(&t2, "bob", 1001, NOW + 60, 3, 100, NOW)
        .unwrap();
    assert_eq!(
        tx.open_profile_link(&t2, &sh, NOW + 60, NOW + 600).unwrap(),
        ProfileOpen::Expired
    );
    assert!(tx.profile_link(&t2).unwrap().is_none());
    // Opened once: whose it is; the link now names its session and
    // lives as long as it.
    assert_eq!(
        tx.open_profile_link(&l, &sh, NOW, NOW + 600).unwrap(),
        ProfileOpen::Opened {
            user: "alice".into(),
            by_uid: 0
        }
    );
    tx.insert_profile_session(&sh, &profile_session(1, "alice", NOW + 600))
        .unwrap();
    let got = tx.profile_link(&l).unwrap().unwrap();
    assert_eq!(
        (got.expires_at, got.session_hash),
        (NOW + 600, Some(sh.to_vec()))
    );
    tx.commit().unwrap();
    // A second opening: refused, the link gone, the session ended.
    let tx = s.write().unwrap();
    assert_eq!(
        tx.open_profile_link(&l, &sh2, NOW + 1, NOW + 601).unwrap(),
        ProfileOpen::Reused
    );
    assert!(tx.profile_link(&l).unwrap().is_none());
    let got = tx.lock_profile_session(&sh).unwrap().unwrap();
    assert_eq!(got.ended.as_deref(), Some("ended"));
    assert!(got.state.is_empty(), "an ended session keeps no state");
    assert!(tx.lock_profile_session(&sh2).unwrap().is_none());
    assert_eq!(
        tx.open_profile_link(&l, &sh2, NOW + 1, NOW + 601).unwrap(),
        ProfileOpen::Expired
    );
    // An opened link after its session's end: expired, and the session
    // is left as it was (expired, not ended).
    let (l3, sh3) = ([4u8; 32], [13u8; 32]);
    tx.insert_profile_link(&l3, "carol", 1000, NOW + 60, 3, 100, NOW)
        .unwrap();
    tx.open_profile_link(&l3, &sh3, NOW, NOW + 600).unwrap();
    tx.insert_profile_session(&sh3, &profile_session(4, "carol", NOW + 600))
        .unwrap();
    assert_eq!(
        tx.open_profile_link(&l3, &[14u8; 32], NOW + 600, NOW + 1200)
            .unwrap(),
        ProfileOpen::Expired
    );
    assert_eq!(tx.lock_profile_session(&sh3).unwrap().unwrap().ended, None);
    tx.commit().unwrap();
}

fn profile_links_have_quotas_and_are_swept(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    if !keeps_profiles(&mut s) {
        return;
    }
    let tx = s.write().unwrap();
    let ins = |n: u8, user: &str, exp: i64, all: u32, now: i64| {
        tx.insert_profile_link(&[n; 32], user, 1000, exp, 2, all, now)
            .unwrap()
    };
    assert_eq!(ins(1, "alice", NOW + 60, 5, NOW), ProfileQuota::Added);
    assert_eq!(ins(2, "alice", NOW + 60, 5, NOW), ProfileQuota::Added);
    assert_eq!(ins(3, "alice", NOW + 60, 5, NOW), ProfileQuota::UserFull);
    // A link that opened a session still counts (as the session).
    tx.open_profile_link(&[1; 32], &[21; 32], NOW, NOW + 600)
        .unwrap();
    tx.insert_profile_session(&[21; 32], &profile_session(1, "alice", NOW + 600))
        .unwrap();
    assert_eq!(ins(4, "alice", NOW + 60, 5, NOW), ProfileQuota::UserFull);
    // Other users have their own quota, within the store's.
    assert_eq!(ins(5, "bob", NOW + 60, 5, NOW), ProfileQuota::Added);
    assert_eq!(ins(6, "bob", NOW + 60, 3, NOW), ProfileQuota::AllFull);
    // An ended session frees its place; its marker stays.
    assert!(tx.end_profile_session(&[21; 32], true, NOW).unwrap());
    assert_eq!(ins(7, "alice", NOW + 60, 5, NOW), ProfileQuota::Added);
    // Expired links are deleted by the next insert; an expired session
    // loses its state at once and its marker an hour after its end.
    tx.insert_profile_session(&[22; 32], &profile_session(9, "carol", NOW + 100))
        .unwrap();
    assert_eq!(ins(8, "dave", NOW + 300, 5, NOW + 200), ProfileQuota::Added);
    assert!(tx.profile_link(&[2; 32]).unwrap().is_none());
    let carol = tx.lock_profile_session(&[22; 32]).unwrap().unwrap();
    assert!(carol.state.is_empty());
    assert!(tx.lock_profile_session(&[21; 32]).unwrap().is_some());
    assert_eq!(
        ins(9, "dave", NOW + 9000, 5, NOW + 4300),
        ProfileQuota::Added
    );
    assert!(tx.lock_profile_session(&[22; 32]).unwrap().is_none());
    assert!(tx.lock_profile_session(&[21; 32]).unwrap().is_none());
    tx.commit().unwrap();
}

fn profile_sessions_update_end_and_log_out(new: &mut dyn FnMut() -> Store) {
    let mut s = new();
    if !keeps_profiles(&mut s) {
        return;
    }
    let (l, sh) = ([1u8; 32], [11u8; 32]);
    let tx = s.write().unwrap();
    tx.insert_profile_link(&l, "alice", 1000, NOW + 60, 3, 100, NOW)
        .unwrap();
    tx.open_profile_link(&l, &sh, NOW, NOW + 600).unwrap();
    tx.insert_profile_session(&sh, &profile_session(1, "alice", NOW + 600))
        .unwrap();
    tx.commit().unwrap();
    let tx = s.write().unwrap();
    let got = tx.lock_profile_session(&sh).unwrap().unwrap();
    assert_eq!(got, profile_session(1, "alice", NOW + 600));
    assert!(tx.update_profile_session(&sh, b"new state").unwrap());
    assert!(!tx.update_profile_session(&[2u8; 32], b"x").unwrap());
    tx.commit().unwrap();
    // Nothing is kept from a transaction rolled back.
    let tx = s.write().unwrap();
    assert!(tx.update_profile_session(&sh, b"lost").unwrap());
    drop(tx);
    let tx = s.write().unwrap();
    assert_eq!(
        tx.lock_profile_session(&sh).unwrap().unwrap().state,
        b"new state"
    );
    // Ended: marked, its state wiped and never replaced, its link gone.
    assert!(tx.end_profile_session(&sh, true, NOW + 5).unwrap());
    assert!(!tx.end_profile_session(&sh, true, NOW + 5).unwrap());
    assert!(!tx.update_profile_session(&sh, b"again").unwrap());
    let got = tx.lock_profile_session(&sh).unwrap().unwrap();
    assert_eq!((got.ended.as_deref(), got.state.len()), (Some("ended"), 0));
    assert!(tx.profile_link(&l).unwrap().is_none());
    // Logout forgets a session and its link.
    let (l2, sh2) = ([2u8; 32], [12u8; 32]);
    tx.insert_profile_link(&l2, "alice", 1000, NOW + 60, 3, 100, NOW)
        .unwrap();
    tx.open_profile_link(&l2, &sh2, NOW, NOW + 600).unwrap();
    tx.insert_profile_session(&sh2, &profile_session(2, "alice", NOW + 600))
        .unwrap();
    assert!(tx.end_profile_session(&sh2, false, NOW).unwrap());
    assert!(tx.lock_profile_session(&sh2).unwrap().is_none());
    assert!(tx.profile_link(&l2).unwrap().is_none());
    assert!(!tx.end_profile_session(&sh2, false, NOW).unwrap());
    tx.commit().unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secure_fs::Trust;

    #[test]
    fn the_suite_on_sqlite() {
        let mut dirs = Vec::new();
        run_all(&mut || {
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("state").join("state.db");
            let s = Store::open_or_create(&db, 1000, Trust::test_runner()).unwrap();
            dirs.push(dir);
            s
        });
        assert!(CASES.len() >= 40, "{} cases", CASES.len());
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
