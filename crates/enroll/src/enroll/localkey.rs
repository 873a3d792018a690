//! `2fa-enroll webauthn add --local`: registers a FIDO2 key plugged into
//! this machine for console logins, through libfido2's `fido2-cred`, and
//! the root side of `webauthn list|remove` (root reads the store directly).
//!
//! Root only: the key must be at this machine and the store is
//! root-only; ordinary users list and remove their keys through 2fad.
//! The new credential is checked here (relying party hash, presence
//! flag, attested credential id and COSE P-256 key, self-attestation
//! signature when there is no certificate), not taken on the tool's word.

use super::output::utc;
use super::{CliError, CliResult, Ctx};
use p2fa_core::audit::{clean, printable};
use p2fa_core::factor::fido2;
use p2fa_core::fido2_tools::{self, ToolError};
use p2fa_core::store::LocalKey;

/// A key's name: what `list` shows and `remove` takes.
pub fn valid_name(name: &str) -> Result<&str, CliError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(CliError(
            "a key name needs 1 to 64 printable characters".into(),
        ));
    }
    Ok(name)
}

pub fn add(ctx: &mut Ctx, user: Option<&str>, name: &str, device: Option<&str>) -> CliResult {
    let w = ctx.cfg.webauthn.clone();
    if !w.local_keys {
        return Err(CliError(format!(
            "local security keys are off: set `local_keys = true` under [webauthn] in {}",
            ctx.config_path.display()
        )));
    }
    let name = valid_name(name)?;
    let user = ctx.target(user)?;
    // The module needs the host key for every login (remembered devices).
    ctx.host_key()?;
    let tools = fido2_tools::from_config(&w, ctx.trust);
    let devices = tools.devices().map_err(|e| CliError(e.to_string()))?;
    let dev = match device {
        Some(p) => devices.iter().find(|d| d.path == p).ok_or_else(|| {
            CliError(format!(
                "no security key at {p} (fido2-token -L lists: {})",
                if devices.is_empty() {
                    "none".to_string()
                } else {
                    devices
                        .iter()
                        .map(|d| d.path.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ))
        })?,
        None => devices.first().ok_or_else(|| {
            CliError(
                "no security key found (fido2-token -L lists none): plug it in and try again"
                    .into(),
            )
        })?,
    };
    let rp_id = fido2_tools::rp_id(&w);
    let cdh = p2fa_core::crypto::random_array::<{ fido2::CDH_LEN }>()?;
    let user_id = p2fa_core::crypto::random_array::<32>()?;
    println!(
        "Touch your security key ({} at {}) to register it as {:?} for {user} (relying party {rp_id}).",
        if dev.description.is_empty() {
            "FIDO2 key"
        } else {
            &dev.description
        },
        printable(&dev.path, 80),
        name
    );
    let made = match tools.make_credential(&dev.path, &rp_id, &user, &user_id, &cdh) {
        Ok(Ok(m)) => m,
        Ok(Err(msg)) => {
            return Err(CliError(format!(
                "the security key did not register: {msg}; nothing was saved"
            )));
        }
        Err(ToolError::Timeout) => {
            return Err(CliError(format!(
                "no touch within {} seconds; nothing was saved",
                w.local_timeout_seconds
            )));
        }
        Err(e) => return Err(CliError(format!("{e}; nothing was saved"))),
    };
    if made.cdh != cdh || made.rp_id != rp_id {
        return Err(CliError(
            "fido2-cred answered for another request; nothing was saved".into(),
        ));
    }
    // Packed self attestation is signed by the new key itself: check it.
    // A certificate (basic attestation) is not verified, as with pam_u2f.
    let self_sig = (made.x5c.is_empty() && made.format == "packed").then_some(&made.signature[..]);
    let reg =
        fido2::check_registration(&rp_id, &made.auth_data, &made.credential_id, &cdh, self_sig)
            .map_err(|r| {
                CliError(format!(
                    "the new credential was refused: {r}; nothing was saved"
                ))
            })?;
    let key = LocalKey {
        name: name.to_string(),
        credential_id: reg.credential_id,
        public_key: reg.public_key,
        rp_id,
        counter: reg.counter,
        created_at: p2fa_core::clock::unix_now(),
        last_used_at: None,
    };
    let now = p2fa_core::clock::unix_now();
    let mut store = ctx.open_store()?;
    let tx = store.write()?;
    if !tx.add_local_key(&user, &key, now)? {
        return Err(CliError(format!(
            "{user} already has a key named {name:?}, or this credential is registered already"
        )));
    }
    tx.commit()?;
    ctx.audit.notice(&format!(
        "added local key user={} name={} format={} by={}",
        clean(&user),
        clean(name),
        clean(&made.format),
        clean(&ctx.invoker)
    ));
    println!("Registered the local security key {name:?} for {user}.");
    if !ctx.cfg.webauthn.local_remote {
        println!(
            "It is offered at this machine's console (not for remote logins: webauthn.local_remote = false)."
        );
    }
    Ok(())
}

/// Root's `webauthn list`: both kinds, from the store.
pub fn list(ctx: &mut Ctx, user: Option<&str>) -> CliResult {
    let user = ctx.target(user)?;
    let Some(store) = ctx.existing_store()? else {
        println!("No security keys registered ({}).", ctx.no_store());
        return Ok(());
    };
    let browser = store.webauthn_credentials(&user)?;
    let local = store.local_keys(&user)?;
    if browser.is_empty() && local.is_empty() {
        println!("No security keys registered.");
    }
    for (name, created, used, kind) in browser
        .iter()
        .map(|c| (&c.name, c.created_at, c.last_used_at, ""))
        .chain(
            local
                .iter()
                .map(|k| (&k.name, k.created_at, k.last_used_at, "  (local)")),
        )
    {
        println!(
            "  {:<24} added {}  last used {}{kind}",
            printable(name, 24),
            utc(created),
            used.map(utc).unwrap_or_else(|| "never".into())
        );
    }
    Ok(())
}

/// Root's `webauthn remove NAME` for a local key: `Ok(false)` when the
/// user has no local key by that name (then it may be a browser key).
pub fn remove(ctx: &mut Ctx, user: Option<&str>, name: &str) -> Result<bool, CliError> {
    let user = ctx.target(user)?;
    let mut store = ctx.require_store()?;
    let tx = store.write()?;
    let removed = tx.remove_local_key(&user, name)?;
    tx.commit()?;
    if removed {
        ctx.audit.notice(&format!(
            "removed local key user={} name={} by={}",
            clean(&user),
            clean(name),
            clean(&ctx.invoker)
        ));
        println!("Removed the key {name:?}.");
    }
    Ok(removed)
}
