//! The `2fa-enroll` command line: enrollment and administration.
//!
//! Root writes the SQLite store directly. Other users cannot open the
//! root-only store, and the binary is never setuid; they get a message
//! explaining how to get enrolled instead.

mod admin;
mod backup;
mod check;
mod factor_args;
mod import;
mod localkey;
mod menu;
mod move_in;
mod network;
mod otp;
pub(crate) mod output;
mod policy;
mod proof;
mod questions;
mod rekey;
mod via_daemon;
mod web;
mod webauthn;

use clap::{Parser, Subcommand};
use p2fa_core::audit::Audit;
use p2fa_core::config::{Config, DEFAULT_CONFIG_PATH};
use p2fa_core::crypto::HostKey;
use p2fa_core::secure_fs::Trust;
use p2fa_core::store::{Store, StoreError};
use p2fa_core::users;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "2fa-enroll",
    version,
    about = "Set up and manage second factors for pam_2fa",
    after_help = "Examples:\n  sudo 2fa-enroll totp --user alice\n  sudo 2fa-enroll backup --user alice --output /home/alice/backup-codes.txt\n  sudo 2fa-enroll status --all"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// Without a command: an interactive menu of your factors.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Interactive menu: add, replace, remove, regenerate factors.
    Menu(menu::MenuArgs),
    /// Create the host key and the state store (safe to run again).
    Init,
    /// Bring the store's schema up to this release: the SQLite store, or
    /// the fleet database (once for the whole fleet, under a lock; logins
    /// never migrate it). Safe to run again. With `--to postgres`: copy
    /// this host's SQLite store into the fleet database (dry run unless
    /// --apply; exit status 3 when it finds conflicts).
    Migrate(move_in::MigrateArgs),
    /// Enroll a TOTP authenticator app (or provision a known secret).
    Totp(otp::TotpArgs),
    /// Provision an HOTP (counter-based) hardware token.
    Hotp(otp::HotpArgs),
    /// Create new single-use backup codes (old ones stop working).
    Backup(backup::BackupArgs),
    /// Receive login codes by SMS at this phone number (confirmed by a code).
    Sms(network::SmsArgs),
    /// Receive login codes by e-mail at this address (confirmed by a code).
    Email(network::EmailArgs),
    /// Log in with Duo (push, phone call, passcode).
    Duo(network::DuoArgs),
    /// Security keys and platform authenticators (WebAuthn, via 2fad).
    Webauthn(webauthn::WebauthnArgs),
    /// Manage your factors in the browser: prints a one-time link to your
    /// profile page (from 2fad; root: --user U to help a user).
    Web(web::WebArgs),
    /// Import google-authenticator, pam_oath or pam_u2f files (dry run
    /// unless --apply).
    Import(import::ImportArgs),
    /// Pick and answer security questions (if the admin enabled them).
    Questions(questions::QuestionsArgs),
    /// Choose what pressing Enter at the login prompt starts.
    Default(network::DefaultArgs),
    /// Explain the policy for a user and service (`policy check`).
    Policy(policy::PolicyArgs),
    /// List or revoke remembered devices.
    Devices(policy::DevicesArgs),
    /// Show a user's factors, backup codes left and last 2FA login.
    Status(admin::StatusArgs),
    /// Remove one factor from a user.
    Remove(admin::RemoveArgs),
    /// Remove every factor and counter of a user (root).
    Reset(admin::ResetArgs),
    /// Clear a user's failed-attempt lockout (root).
    Unlock(admin::UserArg),
    /// Rotate the host (fleet) key without re-enrolling anyone (root;
    /// docs/rekey.md): new, switch, convert, status, finish.
    Rekey(rekey::RekeyArgs),
    #[command(about = check::ABOUT, long_about = check::LONG_ABOUT)]
    Check(check::CheckArgs),
    /// The configuration: `config test` is `check`.
    Config(check::ConfigArgs),
    /// Write the man page and shell completions into DIR (packaging).
    #[command(hide = true)]
    GenerateDocs {
        /// Output directory.
        dir: PathBuf,
    },
}

/// An error for the terminal: printed as `2fa-enroll: <msg>`, exit 1.
#[derive(Debug)]
pub struct CliError(pub String);

impl<E: std::fmt::Display> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError(e.to_string())
    }
}

pub type CliResult = Result<(), CliError>;

/// Everything a command needs: config, who runs it, and the syslog handle.
pub struct Ctx {
    pub cfg: Config,
    /// Where `cfg` came from, for messages that tell the admin what to edit.
    pub config_path: PathBuf,
    pub audit: Audit,
    pub invoker: String,
    /// Whose files to believe: [`Trust::ROOT`] (tests aside).
    pub trust: Trust,
}

impl Ctx {
    /// The user a command acts on: `--user`, or the invoking user.
    pub fn target(&self, user: Option<&str>) -> Result<String, CliError> {
        let name = user
            .map(str::to_string)
            .unwrap_or_else(|| self.invoker.clone());
        if !users::valid_name(&name) {
            return Err(CliError(format!("{:?} is not a valid user name", name)));
        }
        // The account's own name (NSS may match case-insensitively), so
        // the store never holds two records for one account.
        users::canonical(&name).ok_or_else(|| CliError(format!("no such user: {name}")))
    }

    /// Opens (or on first use creates) the store. When the host key exists
    /// already, its check value is recorded in the store if that can be
    /// proven ([`p2fa_core::keycheck`]); a mismatch is reported by
    /// [`Ctx::host_key`], which every command that writes with the key
    /// calls, so `status` and the like still work for the admin.
    pub fn open_store(&self) -> Result<Store, CliError> {
        let mut store = p2fa_pg::open(&self.cfg, self.trust, p2fa_pg::Mode::Admin)
            .map_err(|e| CliError(e.to_string()))?;
        if let Ok(key) = HostKey::load(&self.cfg.key_file, self.trust) {
            let key_file = self.cfg.key_file.display().to_string();
            let _ = p2fa_core::keycheck::verify_or_pin(&mut store, &key, &key_file);
        }
        Ok(store)
    }

    /// The store if there is one, for the commands that only read it or
    /// change what is already in it (`status`, `policy check`, `devices`,
    /// `webauthn list`, `remove`, `reset`, `unlock`): `None` when there is
    /// no store yet, and nothing is created (no store, directory or key).
    /// An existing store is opened as the module opens it (an old schema
    /// is migrated), and its key check value is recorded when that can be
    /// proven, as [`Ctx::open_store`] does.
    pub fn existing_store(&self) -> Result<Option<Store>, CliError> {
        match p2fa_pg::open(&self.cfg, self.trust, p2fa_pg::Mode::Login) {
            Ok(mut store) => {
                if let Ok(key) = HostKey::load(&self.cfg.key_file, self.trust) {
                    let key_file = self.cfg.key_file.display().to_string();
                    let _ = p2fa_core::keycheck::verify_or_pin(&mut store, &key, &key_file);
                }
                Ok(Some(store))
            }
            Err(StoreError::Missing(_)) => Ok(None),
            Err(e) => Err(CliError(e.to_string())),
        }
    }

    /// [`Ctx::existing_store`] for commands that have nothing to say
    /// without one: no store is an error ([`Ctx::no_store`]).
    pub fn require_store(&self) -> Result<Store, CliError> {
        self.existing_store()?
            .ok_or_else(|| CliError(self.no_store()))
    }

    /// "no store yet at PATH: run `2fa-enroll init`".
    pub fn no_store(&self) -> String {
        format!(
            "no store yet at {}: run `2fa-enroll init`",
            self.cfg.db.display()
        )
    }

    /// Loads (or on first use creates) the host key and, when there is a
    /// store, checks it against the store, recording its check value when
    /// that can be proven ([`p2fa_core::keycheck`]): nothing is written with a
    /// key the store was not made with. Creates no store.
    pub fn host_key(&mut self) -> Result<HostKey, CliError> {
        let (key, created) = HostKey::load_or_create(&self.cfg.key_file, self.trust)?;
        let key_file = self.cfg.key_file.display().to_string();
        // After `rekey switch` the key that writes may be next_key_file's.
        let mut current = None;
        let checked = if self.cfg.store == p2fa_core::config::StoreKind::Postgres
            || self.cfg.db.exists()
        {
            p2fa_pg::open(&self.cfg, self.trust, p2fa_pg::Mode::Admin)
                .map_err(|e| e.to_string())
                .and_then(|mut store| {
                    if p2fa_core::keycheck::current_gen(&*store)? != 0 {
                        let ring = p2fa_core::keycheck::ring(&self.cfg, self.trust, &mut store)?;
                        current = Some(ring.current().clone());
                        return Ok(p2fa_core::keycheck::KeyCheck::Matches);
                    }
                    p2fa_core::keycheck::verify_or_pin(&mut store, &key, &key_file)
                })
        } else {
            Ok(p2fa_core::keycheck::KeyCheck::Unproven("no store yet"))
        };
        match checked {
            Ok(p2fa_core::keycheck::KeyCheck::Pinned(why)) => self.audit.notice(&format!(
                "host key {key_file}: check value recorded ({why})"
            )),
            Ok(_) => {}
            Err(e) => {
                if created {
                    // A key made just now for a store made with another:
                    // leave the place free for the right one.
                    let _ = std::fs::remove_file(&self.cfg.key_file);
                }
                return Err(CliError(e));
            }
        }
        if created {
            eprintln!("Created host key {key_file}");
            self.audit.notice(&format!("created host key {key_file}"));
        }
        Ok(current.unwrap_or(key))
    }
}

/// Runs one command; `trust` says whose files to believe (the program
/// passes [`Trust::ROOT`]).
pub fn run(mut cli: Cli, trust: Trust) -> CliResult {
    // The config is read with the module's rules (root-owned, absolute
    // path); a relative --config is the invoker's own shell's idea, so
    // resolve it here rather than refuse it.
    cli.config = std::path::absolute(&cli.config)
        .map_err(|e| CliError(format!("--config {}: {e}", cli.config.display())))?;
    let command = cli
        .command
        .unwrap_or_else(|| Command::Menu(menu::MenuArgs::default()));
    if let Command::GenerateDocs { dir } = &command {
        return generate_docs(dir);
    }
    if let Command::Check(a)
    | Command::Config(check::ConfigArgs {
        what: check::ConfigCmd::Test(a),
    }) = &command
    {
        let explicit = cli.config != std::path::Path::new(DEFAULT_CONFIG_PATH);
        return check::run(&cli.config, explicit, trust, a);
    }
    let invoker =
        users::current().ok_or_else(|| CliError("cannot determine who you are".into()))?;
    // Before the config: an admin may keep it root-only, and an ordinary
    // user should get the "ask for sudo" hint, not a permission error.
    if let Command::Web(a) = &command {
        let explicit = cli.config != std::path::Path::new(DEFAULT_CONFIG_PATH);
        let socket = Config::load(&cli.config, explicit, trust)
            .map(|c| c.daemon.socket)
            .unwrap_or_else(|_| Config::default().daemon.socket);
        return web::run(&socket, a);
    }
    if let Command::Webauthn(a) = command {
        let explicit = cli.config != std::path::Path::new(DEFAULT_CONFIG_PATH);
        let loaded = Config::load(&cli.config, explicit, trust);
        let socket = loaded
            .as_ref()
            .map(|c| c.daemon.socket.clone())
            .unwrap_or_else(|_| Config::default().daemon.socket);
        // Root works on the store directly for local keys, list and remove.
        let mut root = match loaded {
            Ok(cfg) if users::is_root() => Some(Ctx {
                audit: Audit::new(&cfg.log_socket, "2fa-enroll", false),
                cfg,
                config_path: cli.config.clone(),
                invoker,
                trust,
            }),
            Err(e) if users::is_root() => {
                eprintln!("2fa-enroll: {e}");
                None
            }
            _ => None,
        };
        return webauthn::run(&socket, users::is_root(), root.as_mut(), a);
    }
    if !users::is_root() {
        // The config may be root-only (secrets): then 2fad's default socket.
        let explicit = cli.config != std::path::Path::new(DEFAULT_CONFIG_PATH);
        let socket = Config::load(&cli.config, explicit, trust)
            .map(|c| c.daemon.socket)
            .unwrap_or_else(|_| Config::default().daemon.socket);
        if let Some(result) = via_daemon::run(&socket, &invoker, &command) {
            return result;
        }
        return Err(CliError(not_root_message(&invoker, &command)));
    }
    let explicit = cli.config != std::path::Path::new(DEFAULT_CONFIG_PATH);
    let cfg = Config::load(&cli.config, explicit, trust)?;
    let audit = Audit::new(&cfg.log_socket, "2fa-enroll", false);
    let mut ctx = Ctx {
        cfg,
        config_path: cli.config.clone(),
        audit,
        invoker,
        trust,
    };
    match command {
        Command::Menu(a) => menu::run(&mut ctx, a),
        Command::Init => admin::init(&mut ctx),
        Command::Migrate(a) if a.to.is_some() => move_in::run(&mut ctx, a),
        Command::Migrate(_) => admin::migrate(&mut ctx),
        Command::Totp(a) => otp::totp(&mut ctx, a),
        Command::Hotp(a) => otp::hotp(&mut ctx, a),
        Command::Backup(a) => backup::run(&mut ctx, a),
        Command::Sms(a) => network::sms(&mut ctx, a),
        Command::Email(a) => network::email(&mut ctx, a),
        Command::Duo(a) => network::duo(&mut ctx, a),
        Command::Import(a) => import::run(&mut ctx, a),
        Command::Webauthn(_) | Command::Web(_) => unreachable!("handled above"),
        Command::Questions(a) => questions::run(&mut ctx, a),
        Command::Default(a) => network::default(&mut ctx, a),
        Command::Policy(a) => policy::policy(&mut ctx, a),
        Command::Devices(a) => policy::devices(&mut ctx, a),
        Command::Status(a) => admin::status(&mut ctx, a),
        Command::Remove(a) => admin::remove(&mut ctx, a),
        Command::Reset(a) => admin::reset(&mut ctx, a),
        Command::Unlock(a) => admin::unlock(&mut ctx, a),
        Command::Rekey(a) => rekey::run(&mut ctx, a),
        Command::Check(_) | Command::Config(_) => unreachable!("handled above"),
        Command::GenerateDocs { .. } => unreachable!("handled above"),
    }
}

/// What an ordinary user is told: the store is root-only by design.
fn not_root_message(invoker: &str, cmd: &Command) -> String {
    let what = match cmd {
        Command::Menu(_) => "menu",
        Command::Init => "init",
        Command::Migrate(a) if a.to.is_some() => "migrate --to postgres",
        Command::Migrate(_) => "migrate",
        Command::Totp(_) => "totp",
        Command::Hotp(_) => "hotp",
        Command::Backup(_) => "backup",
        Command::Sms(_) => "sms --phone ...",
        Command::Email(_) => "email --address ...",
        Command::Duo(_) => "duo",
        Command::Import(a) => match a.what {
            import::ImportWhat::GoogleAuthenticator { .. } => "import google-authenticator",
            import::ImportWhat::Oath { .. } => "import oath FILE",
            import::ImportWhat::PamU2f { .. } => "import pam-u2f",
        },
        Command::Webauthn(_) => "webauthn ...",
        Command::Web(_) => "web",
        Command::Questions(_) => "questions",
        Command::Default(_) => "default ...",
        Command::Policy(_) => "policy check ...",
        Command::Devices(_) => "devices ...",
        Command::Status(_) => "status",
        Command::Remove(_) => "remove ...",
        Command::Reset(_) => "reset",
        Command::Unlock(_) => "unlock",
        Command::Rekey(_) => "rekey ...",
        Command::Check(_) => "check",
        Command::Config(_) => "config test",
        Command::GenerateDocs { .. } => "generate-docs",
    };
    format!(
        "the 2FA store is readable and writable only by root, and this program is not setuid.\n\
         Ask an administrator to run:  sudo 2fa-enroll {what} --user {invoker}\n\
         (or, if you have sudo rights yourself, run that command)."
    )
}

/// `2fa-enroll.8` plus bash/zsh/fish completions, generated from the CLI
/// definition so they never drift from it.
fn generate_docs(dir: &std::path::Path) -> CliResult {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir)?;
    let cmd = Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section("8")
        .render(&mut page)?;
    std::fs::write(dir.join("2fa-enroll.8"), page)?;
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        clap_complete::generate_to(shell, &mut cmd.clone(), "2fa-enroll", dir)?;
    }
    println!("wrote man page and completions to {}", dir.display());
    Ok(())
}
