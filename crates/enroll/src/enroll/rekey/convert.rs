//! `2fa-enroll rekey convert`: moves every user's keyed rows off the
//! previous generation, one transaction per user (docs/rekey.md).
//!
//! OTP secrets are re-sealed with the current key. Backup-code hashes
//! (used and unused) and security-answer hashes are one-way, so they are
//! wrapped: `HMAC-SHA256(mac_cur, "p2fa wrap v1\0" || hash)`, stored with
//! `key_gen = cur, inner_gen = prev` (for argon2 answers the raw output is
//! wrapped; salt and parameters stay in clear). Wrapping needs only the
//! current key; a second run finds nothing left to do.

use super::{CliError, CliResult, Ctx, recorded, ring};
use p2fa_core::factor::{questions, totp};
use p2fa_core::keycheck;
use p2fa_core::store::Store;

#[derive(Default)]
struct Done {
    resealed: usize,
    codes: usize,
    answers: usize,
    forgotten: usize,
}

pub(super) fn convert(ctx: &mut Ctx, store: &mut Store) -> CliResult {
    let ring = ring(ctx, store)?;
    let g = keycheck::current_gen(&**store).map_err(CliError)?;
    if g == 0 || recorded(&**store, g - 1)?.is_none() {
        return Err(CliError(
            "no rotation in progress (`rekey new` and `rekey switch` come first)".into(),
        ));
    }
    if ring.current().key_gen() != g {
        return Err(CliError(format!(
            "this host has no key of generation {g}: set key_file to it"
        )));
    }
    let prev = g - 1;
    let clean = p2fa_core::audit::clean;
    let mut n = Done::default();
    for user in store.users()? {
        let tx = store.write()?;
        if let Some(otp) = tx.user_state(&user)?.otp.filter(|o| o.key_gen < g) {
            let old = ring.for_gen(otp.key_gen).ok_or_else(|| {
                CliError(format!(
                    "no key of generation {} on this host: set previous_key_file",
                    otp.key_gen
                ))
            })?;
            let aad = totp::seal_aad(&user);
            let secret = old
                .open(&otp.sealed, &aad)
                .map_err(|e| CliError(format!("{}: {e}", clean(&user))))?;
            let sealed = ring.current().seal(&secret, &aad)?;
            tx.reseal_otp(&user, &sealed, g)?;
            n.resealed += 1;
        }
        for row in tx.backup_rows(&user)? {
            if row.key_gen == prev && row.inner_gen.is_none() {
                let wrapped = ring.current().wrap(&row.hash);
                n.codes += usize::from(tx.wrap_backup_code(&user, row.id, prev, &wrapped, g)?);
            }
        }
        for q in tx.question_rows(&user)? {
            if q.key_gen == prev && q.inner_gen.is_none() {
                let wrapped = questions::wrap(ring.current(), &q.answer_hash)
                    .map_err(|e| CliError(format!("{}: {e}", clean(&user))))?;
                n.answers += usize::from(tx.wrap_answer(&user, q.idx, prev, &wrapped, g)?);
            }
        }
        // Remembered devices are found by a hash keyed with the old key.
        n.forgotten += tx.revoke(&user, None)?;
        tx.commit()?;
    }
    ctx.audit.notice(&format!(
        "rekey convert: {} OTP secrets re-sealed with generation {g}, {} backup codes and {} answers \
         wrapped, {} remembered devices forgotten",
        n.resealed, n.codes, n.answers, n.forgotten
    ));
    println!(
        "Re-sealed {} TOTP/HOTP secrets with generation {g}.",
        n.resealed
    );
    println!(
        "Wrapped {} backup codes and {} security answers of generation {prev} under generation {g}.",
        n.codes, n.answers
    );
    println!(
        "Forgot {} remembered devices (users prove once more).",
        n.forgotten
    );
    let left = store.old_gen_items(g)?;
    if !left.is_empty() {
        return Err(CliError(format!(
            "{} users still have rows of a generation below {prev} (see `rekey status`)",
            left.len()
        )));
    }
    println!("Next: `2fa-enroll rekey finish`.");
    Ok(())
}
