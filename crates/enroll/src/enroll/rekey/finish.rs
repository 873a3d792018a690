//! `2fa-enroll rekey finish`: after `convert` nothing is keyed by the
//! previous generation alone, so finishing needs no user action
//! (docs/rekey.md). That key stays the inner key of wrapped hashes until
//! their users make new ones (or, for security answers, log in with them:
//! a login re-hashes the answers it verified); `--drop` destroys the need
//! at once.

use super::output::now;
use super::{CliError, CliResult, Ctx, recorded};
use p2fa_core::keycheck::{self, KEY_GEN, check_name};
use p2fa_core::store::{OldGenItems, Store};

/// (users, unused backup codes, answers) in `items`.
pub(super) fn totals(items: &[OldGenItems]) -> (usize, i64, i64) {
    let (c, q) = items
        .iter()
        .fold((0, 0), |(c, q), i| (c + i.backup_codes, q + i.questions));
    (items.len(), c, q)
}

pub(super) fn finish(ctx: &mut Ctx, store: &mut Store, drop: bool) -> CliResult {
    let g = keycheck::current_gen(&**store).map_err(CliError)?;
    if g == 0 || recorded(&**store, g - 1)?.is_none() {
        return Err(CliError("no previous generation to retire".into()));
    }
    let prev = g - 1;
    let clean = p2fa_core::audit::clean;
    let old = store.old_gen_items(g)?;
    if old.iter().any(|i| i.otp > 0) || (!old.is_empty() && !drop) {
        for i in &old {
            println!(
                "  {}: {} TOTP/HOTP secrets, {} unused backup codes, {} security answers",
                clean(&i.user),
                i.otp,
                i.backup_codes,
                i.questions
            );
        }
        return Err(CliError(format!(
            "{} users have rows keyed by generation {prev} alone (above): run \
             `2fa-enroll rekey convert` first",
            old.len()
        )));
    }
    let wrapped = store.wrapped_items(g)?;
    if !drop {
        if wrapped.is_empty() {
            return retire(ctx, store, g);
        }
        let (users, codes, qs) = totals(&wrapped);
        ctx.audit.notice(&format!(
            "rekey finish: nothing is keyed by generation {prev} alone; {codes} backup codes and \
             {qs} answers of {users} users are wrapped around it"
        ));
        println!(
            "Nothing is keyed by generation {prev} alone any more: every secret is sealed with \
             generation {g}, and its backup-code and answer hashes are wrapped under generation {g}."
        );
        println!(
            "{codes} unused backup codes and {qs} security answers of {users} users are wrapped: \
             verifying them still needs the generation {prev} key as their inner key. Keep \
             previous_key_file on every host until `2fa-enroll rekey status` shows no wrapped rows \
             (they go as those users make new backup codes or answers, and as logins re-hash the \
             answers they verify), then run `rekey finish` \
             again to retire generation {prev}; or `rekey finish --drop` retires it now."
        );
        return Ok(());
    }
    let mut users: Vec<String> = old.iter().chain(&wrapped).map(|i| i.user.clone()).collect();
    users.sort();
    users.dedup();
    let mut kept = Vec::new();
    for user in &users {
        let tx = store.write()?;
        let (codes, qs) = tx.drop_old_gen(user, g, now())?;
        if !tx.user_state(user)?.is_enrolled() {
            // Their answers were all they had: dropping them would make
            // them "unenrolled" (the unenrolled policy could let them in).
            kept.push(user.clone());
            continue; // rolled back
        }
        tx.commit()?;
        ctx.audit.notice(&format!(
            "rekey finish: user={} dropped {codes} backup codes, {qs} answers needing generation {prev}",
            clean(user)
        ));
        println!(
            "  {}: dropped {codes} unused backup codes, {qs} security answers",
            clean(user)
        );
    }
    if !kept.is_empty() {
        return Err(CliError(format!(
            "kept generation {prev} for users whose only factor it is (enroll another factor for them, \
             or `2fa-enroll reset` them): {}",
            kept.iter().map(|u| clean(u)).collect::<Vec<_>>().join(", ")
        )));
    }
    retire(ctx, store, g)
}

/// Empties the previous generation's check value: hosts ignore that key
/// from now on.
fn retire(ctx: &mut Ctx, store: &mut Store, g: i64) -> CliResult {
    let tx = store.write()?;
    tx.lock_rekey()?;
    if keycheck::parse_gen(tx.meta(KEY_GEN)?).map_err(CliError)? != g {
        return Err(CliError(
            "the store was rekeyed meanwhile; nothing done".into(),
        ));
    }
    tx.set_meta(&check_name(g - 1), b"")?;
    tx.commit()?;
    ctx.audit
        .notice(&format!("rekey finish: generation {} retired", g - 1));
    println!(
        "Generation {} retired. Remove previous_key_file from every host's config and destroy that key.",
        g - 1
    );
    Ok(())
}
