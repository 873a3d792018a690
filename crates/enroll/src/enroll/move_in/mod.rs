//! `2fa-enroll migrate --to postgres`: moves this host's SQLite store into
//! the fleet database (docs/fleet.md §7). The config in effect names the
//! destination (`store = "postgres"`, its `key_file` is the fleet key);
//! the source is `--from-db` and `--from-key`.
//!
//! Without `--apply` it is a dry run: every user's plan is worked out in
//! a write transaction that is rolled back, so nothing changes, and the
//! exit status is 3 when there are conflicts. With `--apply` each user is
//! one transaction on the fleet store (holding that user's lock); a
//! conflict is decided by `--choose user=local|fleet`, else `--prefer`
//! (default: the fleet's). Running it again changes nothing more.

mod merge;

use super::{CliError, CliResult, Ctx};
use clap::{Args, ValueEnum};
use p2fa_core::config::{Config, StoreKind};
use p2fa_core::crypto::{HostKey, ct_eq};
use p2fa_core::keycheck::{self, KeyCheck};
use p2fa_core::store::Store;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

/// Exit status of a dry run that found conflicts.
const EXIT_CONFLICTS: i32 = 3;

#[derive(Args, Debug, Default)]
pub struct MigrateArgs {
    /// Copy this host's SQLite store into the fleet database named by the
    /// config (`store = "postgres"`); a dry run unless --apply.
    #[arg(long, value_name = "BACKEND", value_parser = ["postgres"])]
    pub to: Option<String>,
    /// The SQLite store to copy (default: the config's `db`).
    #[arg(long, value_name = "PATH", requires = "to")]
    pub from_db: Option<PathBuf>,
    /// This host's key file (default: /etc/security/2fa.key; the
    /// config's `key_file` is the fleet key).
    #[arg(long, value_name = "PATH", requires = "to")]
    pub from_key: Option<PathBuf>,
    /// Write to the fleet database (without it: a dry run).
    #[arg(long, requires = "to")]
    pub apply: bool,
    /// Whose value a conflict keeps unless --choose says otherwise.
    #[arg(long, value_enum, value_name = "SIDE", requires = "to")]
    pub prefer: Option<Side>,
    /// The WebAuthn RP id this host's 2fad served when its security keys
    /// were registered (its `webauthn.rp_id` before the move). Needed
    /// with --apply when this host has security keys: a key registered
    /// for another RP id than the fleet's cannot work in the fleet, so it
    /// is left out and reported.
    #[arg(long, value_name = "RP_ID", requires = "to")]
    pub from_rp_id: Option<String>,
    /// Per-user choices: alice=local,bob=fleet.
    #[arg(
        long,
        value_name = "USER=SIDE,...",
        value_delimiter = ',',
        requires = "to"
    )]
    pub choose: Vec<String>,
}

/// Which side a conflict keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Side {
    /// The fleet database's value (the default).
    Fleet,
    /// This host's value.
    Local,
}

fn parse_choices(items: &[String]) -> Result<HashMap<String, Side>, CliError> {
    let mut out = HashMap::new();
    for item in items.iter().filter(|i| !i.is_empty()) {
        let (user, side) = item
            .split_once('=')
            .ok_or_else(|| CliError(format!("--choose {item:?}: expected USER=local|fleet")))?;
        let side = Side::from_str(side, true)
            .map_err(|_| CliError(format!("--choose {item:?}: the side is local or fleet")))?;
        if out.insert(user.to_string(), side).is_some() {
            return Err(CliError(format!("--choose names {user} twice")));
        }
    }
    Ok(out)
}

pub fn run(ctx: &mut Ctx, a: MigrateArgs) -> CliResult {
    if ctx.cfg.store != StoreKind::Postgres {
        return Err(CliError(format!(
            "migrate --to postgres writes to the fleet database: the config in effect ({}) \
             must say store = \"postgres\"; the SQLite store to copy is --from-db",
            ctx.config_path.display()
        )));
    }
    let choices = parse_choices(&a.choose)?;
    let prefer = a.prefer.unwrap_or(Side::Fleet);
    let from_db = a.from_db.unwrap_or_else(|| ctx.cfg.db.clone());
    let from_key_path = a.from_key.unwrap_or_else(|| Config::default().key_file);
    let host_key = HostKey::load(&from_key_path, ctx.trust)?;
    let mut src = Store::open_existing(&from_db, ctx.cfg.busy_timeout_ms, ctx.trust)
        .map_err(|e| CliError(format!("source store {}: {e}", from_db.display())))?;
    keycheck::inspect(&src, &host_key, &from_key_path.display().to_string())
        .map_err(|e| CliError(format!("source store {}: {e}", from_db.display())))?;
    let fleet_key_path = ctx.cfg.key_file.display().to_string();
    let fleet_key = HostKey::load(&ctx.cfg.key_file, ctx.trust)?;
    let mut fleet = p2fa_pg::open(&ctx.cfg, ctx.trust, p2fa_pg::Mode::Login)?;
    match keycheck::inspect(&fleet, &fleet_key, &fleet_key_path) {
        Ok(KeyCheck::Matches) => {}
        Ok(_) => {
            return Err(CliError(format!(
                "the fleet database records no key check value yet: run `2fa-enroll init` \
                 with the fleet key {fleet_key_path} first"
            )));
        }
        Err(e) => return Err(CliError(format!("fleet database: {e}"))),
    }
    let keys = merge::Keys {
        same: ct_eq(&host_key.check_value(), &fleet_key.check_value()),
        host: host_key,
        fleet: fleet_key,
    };
    let rp = merge::RpIds {
        from: a.from_rp_id.map(checked_rp_id).transpose()?,
        fleet: ctx.cfg.webauthn.rp_id.clone(),
    };
    if a.apply && rp.from.is_none() {
        refuse_unknown_rp_id(&src, &rp.fleet)?;
    }
    let now = p2fa_core::clock::unix_now();
    if !a.apply {
        println!("Dry run: nothing is changed (run again with --apply to write).");
    }
    println!(
        "Moving {} into the fleet database ({}); backup codes and security answers {}.",
        from_db.display(),
        if keys.same {
            "this host's key is the fleet key"
        } else {
            "this host's key is not the fleet key"
        },
        if keys.same {
            "move with them"
        } else {
            "cannot move (hashed with this host's key)"
        }
    );
    let (mut conflicts, mut failed, mut changed) = (0usize, 0usize, 0usize);
    for user in src.users()? {
        let choice = choices.get(&user).copied().unwrap_or(prefer);
        let local = match merge::Local::read(&mut src, &user) {
            Ok(l) => l,
            Err(e) => {
                println!("{user}: ERROR reading this host's store: {e}");
                failed += 1;
                continue;
            }
        };
        match merge::user(&mut fleet, &keys, &rp, &local, choice, a.apply, now) {
            Ok(report) => {
                conflicts += report.conflicts;
                let line = report.line(&user);
                println!("{line}");
                if a.apply && report.wrote {
                    changed += 1;
                    ctx.audit.notice(&format!(
                        "migrated to the fleet user={user} by={}: {}",
                        ctx.invoker,
                        report.summary()
                    ));
                }
            }
            Err(e) => {
                println!("{user}: ERROR, nothing moved: {e}");
                failed += 1;
            }
        }
    }
    if a.apply {
        println!(
            "Done: {changed} users changed in the fleet database, {conflicts} conflicts decided."
        );
    } else {
        println!(
            "Dry run: {conflicts} conflicts{}; nothing was changed.",
            if conflicts > 0 {
                " (decide them with --prefer or --choose USER=local|fleet, then --apply)"
            } else {
                ""
            }
        );
    }
    drop(fleet);
    drop(src);
    if failed > 0 {
        return Err(CliError(format!(
            "{failed} users could not be moved (see above)"
        )));
    }
    if !a.apply && conflicts > 0 {
        let _ = std::io::stdout().flush();
        std::process::exit(EXIT_CONFLICTS);
    }
    Ok(())
}

/// An RP id is a domain name: at most 253 characters, no spaces or
/// control characters.
fn checked_rp_id(id: String) -> Result<String, CliError> {
    if id.is_empty() || id.len() > 253 || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(CliError(format!(
            "--from-rp-id {id:?}: expected a domain name, as in webauthn.rp_id"
        )));
    }
    Ok(id)
}

/// `--apply` without `--from-rp-id` while this host has security keys:
/// whether they can work in the fleet depends on the RP id they were
/// registered for, which the store does not record, so the admin says.
fn refuse_unknown_rp_id(src: &Store, fleet_rp_id: &str) -> CliResult {
    let mut users = Vec::new();
    for user in src.users()? {
        if !src.webauthn_credentials(&user)?.is_empty() {
            users.push(user);
        }
    }
    if users.is_empty() {
        return Ok(());
    }
    Err(CliError(format!(
        "this host's store has security keys (WebAuthn) for {} ({}): say which RP id \
         they were registered for with --from-rp-id (this host's webauthn.rp_id before \
         the move; the fleet's is {fleet_rp_id:?}). Keys registered for another RP id \
         cannot work in the fleet and are left out. Nothing was changed.",
        if users.len() == 1 {
            "1 user".to_string()
        } else {
            format!("{} users", users.len())
        },
        users.join(", ")
    )))
}
