//! `2fa-enroll`: thin main; the commands live in `p2fa_enroll::enroll`.

use clap::Parser;

fn main() {
    let cli = p2fa_enroll::enroll::Cli::parse();
    // Only root's files are believed (config, key, store, secrets).
    if let Err(e) = p2fa_enroll::enroll::run(cli, p2fa_core::secure_fs::Trust::ROOT) {
        eprintln!("2fa-enroll: {}", e.0);
        std::process::exit(1);
    }
}
