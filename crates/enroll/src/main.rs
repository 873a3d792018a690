//! `2fa-enroll`: thin main; the commands live in `p2fa_enroll::enroll`.

use clap::Parser;

fn main() {
    let cli = p2fa_enroll::enroll::Cli::parse();
    if let Err(e) = p2fa_enroll::enroll::run(cli) {
        eprintln!("2fa-enroll: {}", e.0);
        std::process::exit(1);
    }
}
