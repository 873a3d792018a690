//! The start of a login: who the user is (the canonical passwd name),
//! whether policy exempts them, what they have and may use, lockout, the
//! host key, a remembered device; then the unenrolled policy or a
//! [`Run`] through the menu. Without a store yet, only the unenrolled
//! policy (`unenrolled.rs`, [`without_store`]).

use super::factors::localkey;
use super::first_pass::pass_through;
use super::offer::Offer;
use super::remember;
use super::report::{denied, locked, unavailable};
use super::run::Run;
use super::unenrolled::{unenrolled, without_store};
use super::{Conversation, Login, Network, Verdict};
use p2fa_core::audit::{Audit, clean};
use p2fa_core::clock::Clock;
use p2fa_core::config::{Config, DuoUsers};
use p2fa_core::crypto::KeyRing;
use p2fa_core::factor::FactorId;
use p2fa_core::policy;
use p2fa_core::secure_fs::Trust;
use p2fa_core::store::{Store, StoreError};
use p2fa_core::users;
use p2fa_net::network;

/// Runs one authentication with the live network factors. `clock` gives
/// the login its time: the module passes
/// [`SystemClock`](p2fa_core::clock::SystemClock), tests a
/// [`StartedAt`](p2fa_core::clock::StartedAt) set wherever they need.
/// `trust` says whose files to believe: the module passes
/// [`Trust::ROOT`].
pub fn authenticate(
    cfg: &Config,
    trust: Trust,
    login: Login<'_>,
    clock: &dyn Clock,
    conv: &mut dyn Conversation,
    audit: &mut Audit,
) -> Verdict {
    let mut net = network::Live::for_rhost(login.rhost, trust);
    authenticate_with(cfg, trust, login, clock, conv, audit, &mut net)
}

/// [`authenticate`] with the network factors supplied by the caller.
pub fn authenticate_with(
    cfg: &Config,
    trust: Trust,
    login: Login<'_>,
    clock: &dyn Clock,
    conv: &mut dyn Conversation,
    audit: &mut Audit,
    net: &mut dyn Network,
) -> Verdict {
    let now = clock.unix_now();
    let canonical = match users::canonical(login.user) {
        Some(name) => name,
        None => {
            audit.warning(&format!(
                "auth denied user={} service={} rhost={} reason=unknown-user",
                clean(login.user),
                clean(login.service),
                clean(login.rhost)
            ));
            return Verdict::UnknownUser;
        }
    };
    // From here on the user is the passwd entry's own name, whatever case
    // or form NSS accepted; the log line keeps what was typed when it
    // differs.
    let typed = if canonical != login.user {
        format!(" typed={}", clean(login.user))
    } else {
        String::new()
    };
    let login = Login {
        user: &canonical,
        ..login
    };
    let who = format!(
        "user={} service={} rhost={}{typed}",
        clean(login.user),
        clean(login.service),
        clean(login.rhost)
    );
    // The group database is read only when the policy names groups.
    let groups = if cfg.policy.exempt_groups.is_empty() && cfg.policy.groups.is_empty() {
        Vec::new()
    } else {
        users::groups(login.user)
    };
    if let Some(why) = policy::exempt(cfg, login.user, &groups) {
        audit.notice(&format!("auth skipped {who} factor=none reason={why}"));
        return pass_through(cfg, conv, audit, &who);
    }
    let opened = p2fa_core::clock::Stopwatch::start();
    let mut store = match p2fa_pg::open(cfg, trust, p2fa_pg::Mode::Login) {
        Ok(s) => s,
        // Not there yet (`2fa-enroll init` has not run), and only root
        // could have removed it: nobody has a factor.
        Err(e @ StoreError::Missing(_)) => {
            return without_store(cfg, login, conv, audit, &who, &e.to_string());
        }
        Err(e) => return store_failed(cfg, &login, conv, audit, &who, &e),
    };
    let state = match store.user_state(login.user) {
        Ok(s) => s,
        Err(e) => return store_failed(cfg, &login, conv, audit, &who, &e),
    };
    let (allowed, _) = policy::allowed_methods(cfg, &groups);
    audit.debug(|| {
        format!(
            "debug: {who} store {} read in {} ms; enrolled: {}; allowed for the user's groups: {}",
            match cfg.store {
                p2fa_core::config::StoreKind::Sqlite => clean(&cfg.db.to_string_lossy()),
                p2fa_core::config::StoreKind::Postgres => "postgres".into(),
            },
            opened.elapsed().as_millis(),
            Offer::enrolled(&state),
            allowed.as_ref().map_or("all".into(), |a| a.join(","))
        )
    });
    // `duo.users = "all"`: Duo is offered as if the user had a
    // `2fa-enroll duo` row, and its preauth decides whether Duo knows
    // them. A user with no factor at all is then "unenrolled" only once
    // preauth has said so (`enroll`), never on an outage (`duo.rs`).
    let duo_by_all = !state.duo
        && cfg.duo.users == DuoUsers::All
        && cfg.duo.enabled
        && policy::allows_factor(&allowed, FactorId::Duo);
    let only_duo_by_all = duo_by_all && !state.is_enrolled();
    if !state.is_enrolled() && !duo_by_all {
        let v = unenrolled(
            cfg, trust, login, now, conv, audit, &mut store, &who, &allowed,
        );
        return if v == Verdict::Ignore {
            pass_through(cfg, conv, audit, &who)
        } else {
            v
        };
    }
    let mut state = state;
    if duo_by_all {
        state.duo = true;
        audit.debug(|| format!("debug: {who} duo offered by duo.users = all"));
    }
    let mut offer = Offer::of(cfg, &state, &allowed);
    // A key plugged into this machine approves only logins at it, unless
    // the admin says otherwise (`webauthn.local_remote`).
    let console_only =
        offer.local_key && !cfg.webauthn.local_remote && !localkey::is_local_rhost(login.rhost);
    if console_only {
        offer.local_key = false;
        audit.debug(|| {
            format!(
                "debug: {who} local security key not offered: rhost is not local and webauthn.local_remote is off"
            )
        });
    }
    audit.debug(|| format!("debug: {who} offered: {}", offer.describe()));
    if offer.is_empty() {
        // Enrolled, but nothing usable: spent backup codes, factors the
        // admin has since disabled, or not allowed for the user's groups.
        // Never the `unenrolled` policy.
        let all = Offer::of(cfg, &state, &None);
        let (reason, msg) = if console_only {
            (
                "local-key-console-only",
                "Your security key works only at this machine's console. Ask an administrator for a factor that works remotely.",
            )
        } else if !all.is_empty() {
            (
                "factor-not-allowed-for-group",
                "Your second factor is not allowed for your group on this system. Ask an administrator.",
            )
        } else if state.used_backup > 0 && !state.has_factor() {
            (
                "backup-codes-exhausted",
                "All your backup codes are used and no other factor is set up. Ask an administrator for new codes.",
            )
        } else {
            (
                "no-usable-factor",
                "None of your second factors is enabled on this system. Ask an administrator.",
            )
        };
        return denied(conv, audit, &who, reason, msg);
    }
    if state.locked_until > now {
        return locked(conv, audit, &who, state.locked_until - now, state.failures);
    }
    // Before anything is verified: with the wrong key no code can match,
    // and "wrong code" would count toward the user's lockout.
    let key = match load_key(cfg, trust, &mut store) {
        Ok(k) => k,
        Err(e) => return unavailable(conv, audit, &who, &e),
    };
    // A remembered device would skip the code but leave it on the
    // password that goes on to the next module: not with one field.
    let device = (cfg.remembers(login.service) && !cfg.pass.any())
        .then(|| remember::Device::of(&key, login));
    if let Some(d) = &device {
        match store.remembered(login.user, login.service, &d.hash, now) {
            Ok(Some(r)) => {
                audit.info(&format!(
                    "auth ok {who} factor=remembered (device {} since {}, first factor {})",
                    r.id,
                    r.created_at,
                    clean(&r.factor)
                ));
                return Verdict::Success;
            }
            Ok(None) => {}
            Err(e) => return unavailable(conv, audit, &who, &e.to_string()),
        }
    }
    let mut run = Run {
        cfg,
        trust,
        login,
        who,
        conv,
        audit,
        net,
        store,
        key,
        state,
        clock,
        proven: None,
        quiet_refusal: false,
        only_duo_by_all: only_duo_by_all.then_some(allowed),
    };
    let verdict = if cfg.pass.any() {
        run.single_field(offer)
    } else {
        run.go(offer)
    };
    if verdict == Verdict::Success
        && let (Some(d), Some(factor)) = (&device, run.proven)
    {
        run.remember(d, factor.as_str());
    }
    verdict
}

/// Loads the host key(s) and checks that they are the ones the store was
/// made with ([`p2fa_core::keycheck::ring`]: during a rotation, two
/// generations); any problem is "unavailable".
pub(super) fn load_key(cfg: &Config, trust: Trust, store: &mut Store) -> Result<KeyRing, String> {
    p2fa_core::keycheck::ring(cfg, trust, store)
}

/// The store could not be opened or read before the prompt: unavailable,
/// or for console root with `postgres.break_glass` on, a pass on the
/// password alone, logged at alert ([`super::break_glass`]).
fn store_failed(
    cfg: &Config,
    login: &Login<'_>,
    conv: &mut dyn Conversation,
    audit: &mut Audit,
    who: &str,
    e: &StoreError,
) -> Verdict {
    let unreachable = matches!(e, StoreError::Unreachable(_) | StoreError::Busy(_));
    if unreachable && super::break_glass::applies(cfg, login) {
        audit.alert(&format!(
            "auth break-glass {who} tty={} reason=store-unreachable: {}",
            clean(login.tty),
            p2fa_core::audit::detail(&e.to_string())
        ));
        conv.info("The 2FA store cannot be reached: console break-glass used; this is logged.");
        return pass_through(cfg, conv, audit, who);
    }
    unavailable(conv, audit, who, &e.to_string())
}
