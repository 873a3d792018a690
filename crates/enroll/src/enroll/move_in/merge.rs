//! One user's move into the fleet: what this host has, what the fleet
//! has, the plan (docs/fleet.md §7's table), and its writes, all in one
//! write transaction on the fleet store (which takes the user's lock).

use super::Side;
use p2fa_core::crypto::{HostKey, ct_eq};
use p2fa_core::factor::FactorId;
use p2fa_core::factor::totp::seal_aad;
use p2fa_core::store::{
    KeyWarning, LocalKey, OtpKind, OtpRecord, Store, StoreError, StoredCredential, StoredQuestion,
    Tx, UserState, UserStatus,
};

/// Who marks backup codes spent here.
const SERVICE: &str = "2fa-enroll migrate";

pub struct Keys {
    pub host: HostKey,
    pub fleet: HostKey,
    /// The host key is the fleet key: keyed hashes can move.
    pub same: bool,
}

/// The WebAuthn RP ids on both sides: a credential works only with the
/// RP id it was registered for, and the store does not record it.
pub struct RpIds {
    /// What this host served (`--from-rp-id`); `None`: not said.
    pub from: Option<String>,
    /// The fleet's `webauthn.rp_id` (the config in effect).
    pub fleet: String,
}

/// Everything this host's store holds about one user.
pub struct Local {
    user: String,
    state: UserState,
    status: UserStatus,
    used_backup: Vec<Vec<u8>>,
    questions: Vec<StoredQuestion>,
    webauthn: Vec<StoredCredential>,
    local_keys: Vec<LocalKey>,
}

impl Local {
    pub fn read(src: &mut Store, user: &str) -> Result<Local, StoreError> {
        Ok(Local {
            user: user.to_string(),
            state: src.user_state(user)?,
            status: src.status(user)?,
            used_backup: src.used_backup_hashes(user)?,
            questions: src.questions(user)?.0,
            webauthn: src.webauthn_credentials(user)?,
            local_keys: src.local_keys(user)?,
        })
    }
}

/// What the move did (or, in a dry run, would do) for one user.
#[derive(Default)]
pub struct Report {
    added: Vec<String>,
    updated: Vec<String>,
    conflicts_text: Vec<String>,
    dropped: Vec<String>,
    pub conflicts: usize,
    /// Something was written (only with --apply).
    pub wrote: bool,
}

impl Report {
    fn conflict(&mut self, what: String) {
        self.conflicts += 1;
        self.conflicts_text.push(what);
    }

    /// The parts, `; `-separated, without the user.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!("new in fleet: {}", self.added.join(", ")));
        }
        if !self.updated.is_empty() {
            parts.push(format!("updated: {}", self.updated.join(", ")));
        }
        parts.extend(self.conflicts_text.iter().cloned());
        parts.extend(self.dropped.iter().cloned());
        if parts.is_empty() {
            parts.push("nothing to move (the fleet has it all)".into());
        }
        parts.join("; ")
    }

    pub fn line(&self, user: &str) -> String {
        format!("{user}: {}", self.summary())
    }
}

/// One write to the fleet store.
enum Write {
    PutOtp(OtpRecord),
    RaiseStep(i64),
    RaiseCounter(i64),
    /// The unused codes to keep, and hashes to record as used.
    Backup {
        unused: Vec<[u8; 32]>,
        spend: Vec<[u8; 32]>,
    },
    Questions(Vec<(String, String)>),
    Contact(FactorId, String),
    Duo,
    DefaultFactor(String),
    Webauthn(StoredCredential),
    LocalKey(LocalKey),
    KeyWarning(KeyWarning),
    Counters {
        failures: u32,
        locked_until: i64,
        first_seen: Option<i64>,
    },
}

fn kept(choice: Side) -> &'static str {
    match choice {
        Side::Fleet => "kept fleet's",
        Side::Local => "took this host's",
    }
}

/// Plans and (with `apply`) writes one user's move, in one transaction
/// on the fleet store; a dry run rolls it back.
pub fn user(
    fleet: &mut Store,
    keys: &Keys,
    rp: &RpIds,
    l: &Local,
    choice: Side,
    apply: bool,
    now: i64,
) -> Result<Report, String> {
    let u = l.user.as_str();
    let e = |e: StoreError| e.to_string();
    // Reads the transaction interface does not offer, taken first: they
    // only ever feed max/min merges and append-only lists.
    let f_status = fleet.status(u).map_err(e)?;
    let f_questions = fleet.questions(u).map_err(e)?.0;
    let tx = fleet.write().map_err(e)?;
    let f = tx.user_state(u).map_err(e)?;
    let mut r = Report::default();
    let mut w = Vec::new();
    otp(keys, l, &f, choice, &mut r, &mut w)?;
    backup(&tx, keys, l, &f, choice, &mut r, &mut w)?;
    questions(keys, l, &f_questions, choice, &mut r, &mut w);
    contacts(l, &f, choice, &mut r, &mut w);
    webauthn(&tx, rp, l, &mut r, &mut w)?;
    keys_and_flags(&tx, l, &f, &f_status, &mut r, &mut w)?;
    counters(l, &f, &f_status, &mut r, &mut w);
    if apply && !w.is_empty() {
        for op in w {
            write(&tx, u, op, now, keys.fleet.key_gen()).map_err(e)?;
        }
        tx.commit().map_err(e)?;
        r.wrote = true;
    }
    Ok(r)
}

fn otp(
    keys: &Keys,
    l: &Local,
    f: &UserState,
    choice: Side,
    r: &mut Report,
    w: &mut Vec<Write>,
) -> Result<(), String> {
    let Some(lo) = &l.state.otp else {
        return Ok(());
    };
    let aad = seal_aad(&l.user);
    let name = lo.kind.as_str();
    let secret = keys
        .host
        .open(&lo.sealed, &aad)
        .map_err(|e| format!("{name} secret: {e}"))?;
    let Some(fo) = &f.otp else {
        let mut rec = lo.clone();
        rec.sealed = keys.fleet.seal(&secret, &aad).map_err(|e| e.to_string())?;
        w.push(Write::PutOtp(rec));
        r.added.push(name.into());
        return Ok(());
    };
    let fleet_secret = keys
        .fleet
        .open(&fo.sealed, &aad)
        .map_err(|e| format!("the fleet's {} secret: {e}", fo.kind.as_str()))?;
    let same_params = lo.kind == fo.kind
        && lo.algorithm == fo.algorithm
        && lo.digits == fo.digits
        && (lo.kind == OtpKind::Hotp || lo.period == fo.period);
    if same_params && ct_eq(&secret, &fleet_secret) {
        match lo.kind {
            OtpKind::Totp => {
                if let Some(step) = lo.last_step.filter(|s| fo.last_step < Some(*s)) {
                    w.push(Write::RaiseStep(step));
                    r.updated.push("totp last step".into());
                }
            }
            OtpKind::Hotp => {
                if lo.counter > fo.counter {
                    w.push(Write::RaiseCounter(lo.counter));
                    r.updated.push("hotp counter".into());
                }
            }
        }
        return Ok(());
    }
    r.conflict(format!(
        "{name} conflict (different {}; {})",
        if same_params { "secret" } else { "token" },
        kept(choice)
    ));
    if choice == Side::Local {
        let mut rec = lo.clone();
        rec.sealed = keys.fleet.seal(&secret, &aad).map_err(|e| e.to_string())?;
        // A TOTP step is time: the later one refuses only past codes, and
        // the fleet's step never goes back. An HOTP counter belongs to its
        // token: this host's.
        if lo.kind == OtpKind::Totp && fo.kind == OtpKind::Totp {
            rec.last_step = rec.last_step.max(fo.last_step);
        }
        w.push(Write::PutOtp(rec));
    }
    Ok(())
}

fn hash32(h: &[u8]) -> Result<[u8; 32], String> {
    h.try_into()
        .map_err(|_| "a stored backup code hash is not 32 bytes".to_string())
}

fn has(set: &[[u8; 32]], h: &[u8; 32]) -> bool {
    set.iter().any(|s| ct_eq(s, h))
}

fn same_set(a: &[[u8; 32]], b: &[[u8; 32]]) -> bool {
    a.iter().all(|h| has(b, h)) && b.iter().all(|h| has(a, h))
}

fn backup(
    tx: &Tx<'_>,
    keys: &Keys,
    l: &Local,
    f: &UserState,
    choice: Side,
    r: &mut Report,
    w: &mut Vec<Write>,
) -> Result<(), String> {
    let u = &l.user;
    // Only rows of the host key's generation can be this key's hashes.
    let l_unused: Vec<[u8; 32]> = l
        .state
        .unused_backup
        .iter()
        .filter(|(_, _, g, inner)| *g == keys.host.key_gen() && inner.is_none())
        .map(|(_, h, _, _)| hash32(h))
        .collect::<Result<_, _>>()?;
    let l_used: Vec<[u8; 32]> = l
        .used_backup
        .iter()
        .map(|h| hash32(h))
        .collect::<Result<_, _>>()?;
    if l_unused.is_empty() && l_used.is_empty() {
        return Ok(());
    }
    if !keys.same {
        if !l_unused.is_empty() {
            r.dropped.push(format!(
                "{} unused backup codes hashed with this host's key cannot move: \
                 run `2fa-enroll backup --user {u}`",
                l_unused.len()
            ));
        }
        return Ok(());
    }
    let f_unused: Vec<[u8; 32]> = f
        .unused_backup
        .iter()
        .map(|(_, h, _, _)| hash32(h))
        .collect::<Result<_, _>>()?;
    let f_used: Vec<[u8; 32]> = tx
        .used_backup_hashes(u)
        .map_err(|e| e.to_string())?
        .iter()
        .map(|h| hash32(h))
        .collect::<Result<_, _>>()?;
    // A code spent on either side stays spent.
    let spent = |h: &[u8; 32]| has(&f_used, h) || has(&l_used, h);
    let l_live: Vec<[u8; 32]> = l_unused.iter().filter(|h| !spent(h)).copied().collect();
    let f_live: Vec<[u8; 32]> = f_unused.iter().filter(|h| !spent(h)).copied().collect();
    let unused = if f_live.is_empty() {
        if !l_live.is_empty() {
            r.added.push(format!("{} backup codes", l_live.len()));
        }
        l_live
    } else if same_set(&f_live, &l_live) {
        f_live
    } else {
        r.conflict(format!(
            "backup codes conflict (different unused codes; {})",
            kept(choice)
        ));
        match choice {
            Side::Fleet => f_live,
            Side::Local => l_live,
        }
    };
    let spend: Vec<[u8; 32]> = l_used
        .iter()
        .filter(|h| !has(&f_used, h))
        .copied()
        .collect();
    if !spend.is_empty() {
        r.updated
            .push(format!("{} used backup codes (stay used)", spend.len()));
    }
    if !same_set(&unused, &f_unused) || !spend.is_empty() {
        w.push(Write::Backup { unused, spend });
    }
    Ok(())
}

fn questions(
    keys: &Keys,
    l: &Local,
    fq: &[StoredQuestion],
    choice: Side,
    r: &mut Report,
    w: &mut Vec<Write>,
) {
    let lq = &l.questions;
    if lq.is_empty() {
        return;
    }
    if !keys.same {
        r.dropped.push(format!(
            "{} security answers hashed with this host's key cannot move: \
             run `2fa-enroll questions --user {}`",
            lq.len(),
            l.user
        ));
        return;
    }
    let pairs = |qs: &[StoredQuestion]| -> Vec<(String, String)> {
        qs.iter()
            .map(|q| (q.question.clone(), q.answer_hash.clone()))
            .collect()
    };
    if fq.is_empty() {
        w.push(Write::Questions(pairs(lq)));
        r.added.push(format!("{} security questions", lq.len()));
    } else if pairs(fq) != pairs(lq) {
        r.conflict(format!(
            "security questions conflict (different questions or answers; {})",
            kept(choice)
        ));
        if choice == Side::Local {
            w.push(Write::Questions(pairs(lq)));
        }
    }
}

fn contacts(l: &Local, f: &UserState, choice: Side, r: &mut Report, w: &mut Vec<Write>) {
    for (ch, mine, theirs) in [
        (FactorId::Sms, &l.state.sms, &f.sms),
        (FactorId::Email, &l.state.email, &f.email),
    ] {
        let Some(mine) = mine else { continue };
        match theirs {
            None => {
                w.push(Write::Contact(ch, mine.clone()));
                r.added.push(ch.as_str().into());
            }
            Some(t) if t == mine => {}
            Some(_) => {
                r.conflict(format!(
                    "{} conflict (different address; {})",
                    ch.as_str(),
                    kept(choice)
                ));
                if choice == Side::Local {
                    w.push(Write::Contact(ch, mine.clone()));
                }
            }
        }
    }
}

/// The credential id inside a stored WebAuthn credential (JSON).
fn webauthn_id(c: &StoredCredential) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(&c.credential).ok()?;
    v["cred"]["cred_id"].as_str().map(str::to_string)
}

/// Security keys (WebAuthn): moved when registered for the fleet's RP
/// id; left out and reported when registered for another (they cannot
/// work with the fleet's 2fad); a conflict when the RP id was not said
/// (a dry run; --apply refuses before it starts).
fn webauthn(
    tx: &Tx<'_>,
    rp: &RpIds,
    l: &Local,
    r: &mut Report,
    w: &mut Vec<Write>,
) -> Result<(), String> {
    let u = &l.user;
    let e = |e: StoreError| e.to_string();
    if l.webauthn.is_empty() {
        return Ok(());
    }
    match &rp.from {
        None => {
            r.conflict(format!(
                "{} security keys registered for an RP id not given: run again with \
                 --from-rp-id (this host's webauthn.rp_id before the move; the fleet's is {:?})",
                l.webauthn.len(),
                rp.fleet
            ));
            return Ok(());
        }
        Some(from) if *from != rp.fleet => {
            let names: Vec<String> = l.webauthn.iter().map(|c| format!("{:?}", c.name)).collect();
            r.dropped.push(format!(
                "security keys {} were registered for RP id {from:?} and cannot work with the \
                 fleet's {:?}: left out; {u} registers them again (`2fa-enroll webauthn add` \
                 or the profile page)",
                names.join(", "),
                rp.fleet
            ));
            return Ok(());
        }
        Some(_) => {}
    }
    let names = tx.key_names(u).map_err(e)?;
    let f_webauthn = tx.webauthn_credentials(u).map_err(e)?;
    for c in &l.webauthn {
        match f_webauthn.iter().find(|x| x.name == c.name) {
            Some(x) if x.credential == c.credential => {}
            Some(x) if webauthn_id(x).is_some() && webauthn_id(x) == webauthn_id(c) => {}
            Some(_) => r.conflict(format!(
                "security key name {:?} taken by another credential in the fleet \
                 (kept fleet's; rename it here and run again)",
                c.name
            )),
            None if names.contains(&c.name) => r.conflict(format!(
                "security key name {:?} taken by a local key in the fleet (kept fleet's)",
                c.name
            )),
            None => {
                w.push(Write::Webauthn(c.clone()));
                r.added.push(format!("security key {:?}", c.name));
            }
        }
    }
    Ok(())
}

fn keys_and_flags(
    tx: &Tx<'_>,
    l: &Local,
    f: &UserState,
    f_status: &UserStatus,
    r: &mut Report,
    w: &mut Vec<Write>,
) -> Result<(), String> {
    let u = &l.user;
    let e = |e: StoreError| e.to_string();
    if l.state.duo && !f.duo {
        w.push(Write::Duo);
        r.added.push("duo".into());
    }
    if let (Some(d), None) = (&l.state.default_factor, &f.default_factor) {
        w.push(Write::DefaultFactor(d.clone()));
        r.added.push(format!("default {d}"));
    }
    let names = tx.key_names(u).map_err(e)?;
    for k in &l.local_keys {
        if tx.local_key(u, &k.credential_id).map_err(e)?.is_some() {
            continue;
        }
        if let Some((owner, name)) = tx.local_key_owner(&k.credential_id).map_err(e)? {
            r.conflict(format!(
                "local key {:?} is registered in the fleet as {owner}'s {name:?} (kept fleet's)",
                k.name
            ));
        } else if names.contains(&k.name) {
            r.conflict(format!(
                "local key name {:?} taken by another credential in the fleet (kept fleet's)",
                k.name
            ));
        } else {
            w.push(Write::LocalKey(k.clone()));
            r.added.push(format!("local key {:?}", k.name));
        }
    }
    let mut warnings = 0;
    for kw in &l.status.key_warnings {
        if !f_status.key_warnings.contains(kw) {
            w.push(Write::KeyWarning(kw.clone()));
            warnings += 1;
        }
    }
    if warnings > 0 {
        r.added.push(format!("{warnings} key warnings"));
    }
    Ok(())
}

fn counters(l: &Local, f: &UserState, f_status: &UserStatus, r: &mut Report, w: &mut Vec<Write>) {
    let s = &l.state;
    let first_seen = l
        .status
        .first_seen
        .filter(|t| f_status.first_seen.is_none_or(|ft| t < &ft));
    if s.failures > f.failures || s.locked_until > f.locked_until || first_seen.is_some() {
        w.push(Write::Counters {
            failures: s.failures,
            locked_until: s.locked_until,
            first_seen,
        });
        r.updated
            .push("failures/lockout/first seen (max/max/min)".into());
    }
}

/// One planned change; `key_gen` is the fleet key's generation, which the
/// moved hashes were made with (they move only when the host key is it).
fn write(tx: &Tx<'_>, u: &str, op: Write, now: i64, key_gen: i64) -> Result<(), StoreError> {
    match op {
        Write::PutOtp(rec) => tx.put_otp(u, &rec, now),
        Write::RaiseStep(s) => tx.set_last_step(u, s).map(drop),
        Write::RaiseCounter(c) => tx.set_counter(u, c).map(drop),
        Write::Backup { unused, spend } => {
            let all: Vec<[u8; 32]> = unused.iter().chain(&spend).copied().collect();
            tx.replace_unused_backup_codes(u, &all, now, key_gen)?;
            for (id, h, _, _) in tx.user_state(u)?.unused_backup {
                if spend.iter().any(|s| ct_eq(s, &h)) {
                    tx.mark_backup_used(id, now, SERVICE)?;
                }
            }
            Ok(())
        }
        Write::Questions(qs) => tx.set_questions(u, &qs, now, key_gen),
        Write::Contact(ch, a) => tx.set_contact(u, ch, &a, now),
        Write::Duo => tx.set_duo(u, now),
        Write::DefaultFactor(d) => tx.set_default_factor(u, Some(&d), now),
        Write::Webauthn(c) => tx.add_webauthn(u, &c.name, &c.credential, now).map(drop),
        Write::LocalKey(k) => tx.add_local_key(u, &k, now).map(drop),
        Write::KeyWarning(kw) => tx.add_key_warning(u, &kw),
        Write::Counters {
            failures,
            locked_until,
            first_seen,
        } => tx.merge_counters(u, failures, locked_until, first_seen, now),
    }
}
