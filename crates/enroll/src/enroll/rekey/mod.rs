//! `2fa-enroll rekey new|switch|convert|status|finish`: rotates the host
//! (fleet) key without re-enrolling anyone (docs/rekey.md).
//!
//! At most two key generations are in play. Every keyed row carries the
//! generation it was made with (`key_gen`); the store's `meta` holds the
//! generation written now (`key_gen`) and each generation's check value
//! (`key_check`, `key_check:<g>`). Hosts recognise their key files by
//! those check values ([`p2fa_core::keycheck::ring`]). Everything goes
//! through the store interface, so it works on SQLite and PostgreSQL.

mod convert;
mod finish;

use super::output::now;
use super::{CliError, CliResult, Ctx, output};
use clap::{Args, Subcommand};
use p2fa_core::crypto::{HostKey, KeyRing};
use p2fa_core::keycheck::{self, KEY_GEN, check_name};
use p2fa_core::store::{Backend, Kind, Store};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct RekeyArgs {
    #[command(subcommand)]
    pub step: Step,
}

#[derive(Subcommand, Debug)]
pub enum Step {
    /// Make the next generation's key and record its check value; hosts
    /// still write with the current one. Distribute the file as
    /// `next_key_file`.
    New {
        /// Where to write the new key (default: key_file + ".next").
        #[arg(long, value_name = "PATH")]
        key_file: Option<PathBuf>,
        /// Replace a next key recorded earlier (not switched to yet).
        #[arg(long)]
        replace: bool,
    },
    /// Start writing with the next generation everywhere. Run it on a
    /// host whose config names the next key (`next_key_file`); hosts
    /// without it are unavailable from then on. On PostgreSQL it refuses
    /// while a host seen within --active-days has not reported the next
    /// key (each host reports when any `rekey` command, e.g. `rekey
    /// status`, runs on it).
    Switch {
        /// Hosts registered in the fleet and seen (`2fa-enroll init`)
        /// within this many days must have reported the next key.
        #[arg(long, default_value_t = 7, value_name = "DAYS")]
        active_days: u32,
        /// Switch even so (those hosts become unavailable).
        #[arg(long)]
        force: bool,
    },
    /// Re-seal every TOTP/HOTP secret with the current key, wrap every
    /// backup-code and security-answer hash of the previous generation
    /// under the current key, and forget remembered devices.
    Convert,
    /// Show the generations and how many rows each has.
    Status,
    /// After `convert`: check that nothing is keyed by the previous
    /// generation alone, and retire it once no wrapped hash needs it as
    /// its inner key (until then hosts keep `previous_key_file`; a login
    /// that answers wrapped security answers right re-hashes them).
    Finish {
        /// Retire the previous generation now: spend the unused backup
        /// codes and delete the security answers that need it (wrapped
        /// ones included; those users make new ones), and report whom that
        /// concerned.
        #[arg(long)]
        drop: bool,
    },
}

pub fn run(ctx: &mut Ctx, a: RekeyArgs) -> CliResult {
    let mut store = ctx.require_store()?;
    report_keys(ctx, &mut store);
    match a.step {
        Step::New { key_file, replace } => new(ctx, &mut store, key_file, replace),
        Step::Switch { active_days, force } => switch(ctx, &mut store, active_days, force),
        Step::Convert => convert::convert(ctx, &mut store),
        Step::Status => status(ctx, &mut store),
        Step::Finish { drop } => finish::finish(ctx, &mut store, drop),
    }
}

/// The `meta` row where a fleet host reports the key generations it has.
fn host_keys_name(host: &str) -> String {
    format!("host_keys:{host}")
}

/// On a shared store, records which generations this host has keys for
/// (`rekey switch` checks them). Best effort: a host whose keys do not
/// load reports nothing.
fn report_keys(ctx: &Ctx, store: &mut Store) {
    if store.kind() != Kind::Postgres {
        return;
    }
    let Ok(ring) = keycheck::ring(&ctx.cfg, ctx.trust, store) else {
        return;
    };
    let mut gens = vec![ring.current().key_gen()];
    gens.extend(ring.other().map(HostKey::key_gen));
    gens.sort_unstable();
    let value = gens
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let host = p2fa_core::config::host_name(&ctx.cfg.host_id);
    let _ = (|| -> Result<(), p2fa_core::store::StoreError> {
        let tx = store.write()?;
        tx.set_meta(&host_keys_name(&host), value.as_bytes())?;
        tx.commit()
    })();
}

/// Fleet hosts seen within `active_days` that have not reported a key of
/// generation `g`.
fn hosts_without(store: &Store, g: i64, active_days: u32) -> Result<Vec<String>, CliError> {
    let since = now() - i64::from(active_days) * 86_400;
    let mut missing = Vec::new();
    for (host, last_seen) in store.fleet_hosts()? {
        if last_seen < since {
            continue;
        }
        let reported = store.meta(&host_keys_name(&host))?.unwrap_or_default();
        let has = String::from_utf8_lossy(&reported)
            .split(',')
            .any(|x| x == g.to_string());
        if !has {
            missing.push(host);
        }
    }
    Ok(missing)
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A recorded, not retired, check value.
fn recorded(store: &dyn Backend, g: i64) -> Result<Option<Vec<u8>>, CliError> {
    if g < 0 {
        return Ok(None);
    }
    Ok(store.meta(&check_name(g))?.filter(|v| !v.is_empty()))
}

/// The keys this host has; an error says why the store cannot be used.
fn ring(ctx: &Ctx, store: &mut Store) -> Result<KeyRing, CliError> {
    keycheck::ring(&ctx.cfg, ctx.trust, store).map_err(CliError)
}

fn new(ctx: &mut Ctx, store: &mut Store, path: Option<PathBuf>, replace: bool) -> CliResult {
    let ring = ring(ctx, store)?;
    let g = keycheck::current_gen(&**store).map_err(CliError)?;
    if recorded(&**store, g)?.is_none() {
        return Err(CliError(
            "the store does not record the current key's check value yet: run `2fa-enroll init` first"
                .into(),
        ));
    }
    if ring.current().key_gen() != g {
        return Err(CliError(
            "this host has no key of the current generation".into(),
        ));
    }
    if recorded(&**store, g - 1)?.is_some() {
        let (users, codes, qs) = finish::totals(&store.wrapped_items(g)?);
        if users > 0 {
            return Err(CliError(format!(
                "{codes} backup codes and {qs} security answers of {users} users are still wrapped \
                 around generation {} (a hash is never wrapped twice): they go when those users log in \
                 with their security questions (the answers are re-hashed) or make new ones \
                 (`2fa-enroll backup`, `2fa-enroll questions`), or retire that generation now with \
                 `2fa-enroll rekey finish --drop`",
                g - 1
            )));
        }
        return Err(CliError(format!(
            "generation {} is still in use: run `2fa-enroll rekey finish` first (two generations at most)",
            g - 1
        )));
    }
    if recorded(&**store, g + 1)?.is_some() && !replace {
        return Err(CliError(format!(
            "a key of generation {} is recorded already: distribute it and run `rekey switch`, \
             or make another with --replace",
            g + 1
        )));
    }
    let path = path.unwrap_or_else(|| {
        let mut p = ctx.cfg.key_file.clone().into_os_string();
        p.push(".next");
        PathBuf::from(p)
    });
    if std::fs::symlink_metadata(&path).is_ok() {
        return Err(CliError(format!(
            "{} exists already: move it away or name another file with --key-file",
            path.display()
        )));
    }
    let (key, created) = HostKey::load_or_create(&path, ctx.trust)?;
    if !created {
        return Err(CliError(format!("{} appeared meanwhile", path.display())));
    }
    let recorded_ok = (|| -> Result<(), CliError> {
        let tx = store.write()?;
        tx.lock_rekey()?;
        if keycheck::parse_gen(tx.meta(KEY_GEN)?).map_err(CliError)? != g {
            return Err(CliError(
                "the store was rekeyed meanwhile; nothing done".into(),
            ));
        }
        tx.set_meta(&check_name(g + 1), &key.check_value())?;
        tx.commit()?;
        Ok(())
    })();
    if let Err(e) = recorded_ok {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    ctx.audit.notice(&format!(
        "rekey new: generation {} key {} (check {})",
        g + 1,
        path.display(),
        hex(&key.check_value()[..8])
    ));
    println!("New key (generation {}): {}", g + 1, path.display());
    println!("Check value: {}", hex(&key.check_value()));
    println!(
        "Next: copy it (root 0600) to every host and set `next_key_file = \"{}\"` there;\n\
         then run `2fa-enroll rekey switch` on one of them.",
        path.display()
    );
    Ok(())
}

fn switch(ctx: &mut Ctx, store: &mut Store, active_days: u32, force: bool) -> CliResult {
    let ring = ring(ctx, store)?;
    let g = keycheck::current_gen(&**store).map_err(CliError)?;
    let Some(next) = ring.for_gen(g + 1) else {
        return Err(CliError(format!(
            "this host has no key of generation {} (run `rekey new`, then set next_key_file \
             in {} to the new key)",
            g + 1,
            ctx.config_path.display()
        )));
    };
    let check = next.check_value();
    let missing = hosts_without(store, g + 1, active_days)?;
    if !missing.is_empty() {
        let list = missing
            .iter()
            .map(|h| p2fa_core::audit::clean(h))
            .collect::<Vec<_>>()
            .join(", ");
        if !force {
            return Err(CliError(format!(
                "hosts seen in the last {active_days} days have not reported a key of generation {}: \
                 {list}. Give them next_key_file and run `2fa-enroll rekey status` on each \
                 (or --force: they are unavailable until they have it)",
                g + 1
            )));
        }
        eprintln!("Switching although these hosts lack the new key (--force): {list}");
        ctx.audit.notice(&format!(
            "rekey switch --force: hosts without the key: {list}"
        ));
    }
    let tx = store.write()?;
    tx.lock_rekey()?;
    if keycheck::parse_gen(tx.meta(KEY_GEN)?).map_err(CliError)? != g {
        return Err(CliError(
            "the store was rekeyed meanwhile; nothing done".into(),
        ));
    }
    match tx.meta(&check_name(g + 1))? {
        Some(v) if p2fa_core::crypto::ct_eq(&v, &check) => {}
        _ => {
            return Err(CliError(
                "the next key changed meanwhile; nothing done".into(),
            ));
        }
    }
    tx.set_meta(KEY_GEN, (g + 1).to_string().as_bytes())?;
    // Codes sent by SMS/e-mail are hashed with the old key: gone, the
    // user asks for a new one (never a wrong-code failure).
    let sent = tx.clear_sent_codes()?;
    tx.commit()?;
    ctx.audit
        .notice(&format!("rekey switch: writing with generation {}", g + 1));
    println!(
        "The store now writes with generation {} ({} pending sent codes dropped).",
        g + 1,
        sent
    );
    println!(
        "Next: on every host set key_file to the new key and previous_key_file to the old one,\n\
         then run `2fa-enroll rekey convert`."
    );
    Ok(())
}

fn status(ctx: &mut Ctx, store: &mut Store) -> CliResult {
    let g = keycheck::current_gen(&**store).map_err(CliError)?;
    println!("Writing with generation {g}.");
    for (what, kg) in [("previous", g - 1), ("current", g), ("next", g + 1)] {
        if let Some(v) = recorded(&**store, kg)? {
            println!("  {what:8} generation {kg}: check {}", hex(&v));
        }
    }
    match keycheck::ring(&ctx.cfg, ctx.trust, store) {
        Ok(r) => {
            let mut gens = vec![r.current().key_gen()];
            gens.extend(r.other().map(HostKey::key_gen));
            println!(
                "This host has generation(s) {}",
                gens.iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Err(e) => println!("This host: {e}"),
    }
    for c in store.key_gen_counts()? {
        match c.inner_gen {
            Some(i) => println!(
                "  {:13} generation {} wrapping {i}: {} rows",
                c.table, c.key_gen, c.rows
            ),
            None => println!("  {:13} generation {}: {} rows", c.table, c.key_gen, c.rows),
        }
    }
    let old = store.old_gen_items(g)?;
    if !old.is_empty() {
        println!(
            "{} users still have rows keyed by an older generation alone (run `rekey convert`).",
            old.len()
        );
    }
    let (users, codes, qs) = finish::totals(&store.wrapped_items(g)?);
    if users > 0 {
        println!(
            "{users} users have {codes} unused backup codes and {qs} security answers wrapped around \
             generation {}: hosts need previous_key_file to verify them.",
            g - 1
        );
    } else if g > 0 && recorded(&**store, g - 1)?.is_some() && old.is_empty() {
        println!(
            "No row needs generation {} any more: `rekey finish` retires it.",
            g - 1
        );
    }
    Ok(())
}
