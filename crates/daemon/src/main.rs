//! `2fad`: the pam-2fa helper daemon. Runs in the foreground (systemd or a
//! terminal); with systemd socket activation it uses the passed socket.
//! With WebAuthn enabled it also serves the approval page; SIGHUP then
//! rereads that server's certificate and key (crates/daemon/src/web.rs).

use clap::Parser;
use p2fa_core::config::{Config, DEFAULT_CONFIG_PATH};
use p2fa_core::secure_fs::Trust;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "2fad",
    version,
    about = "pam-2fa helper daemon (enrollment broker)",
    after_help = "With [webauthn] enabled, 2fad also serves the approval page; SIGHUP rereads its cert_file and key_file (so do changes to the files)."
)]
struct Args {
    /// Configuration file.
    #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Socket path (overrides daemon.socket).
    #[arg(long)]
    socket: Option<PathBuf>,
}

fn main() {
    let a = Args::parse();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("2fad: must run as root (it owns the 2FA store)");
        std::process::exit(1);
    }
    let explicit = a.config != std::path::Path::new(DEFAULT_CONFIG_PATH);
    // Only root's files are believed: config, key, store, secrets.
    let mut cfg = match Config::load(&a.config, explicit, Trust::ROOT) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("2fad: {e}");
            std::process::exit(1);
        }
    };
    if let Some(s) = a.socket {
        cfg.daemon.socket = s;
    }
    let listener = match p2fa_daemon::server::listener(&cfg.daemon.socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "2fad: cannot listen on {}: {e}",
                cfg.daemon.socket.display()
            );
            std::process::exit(1);
        }
    };
    eprintln!("2fad: listening on {}", cfg.daemon.socket.display());
    if let Err(e) = p2fa_daemon::server::serve(Arc::new(cfg), Trust::ROOT, listener) {
        eprintln!("2fad: {e}");
        std::process::exit(1);
    }
}
