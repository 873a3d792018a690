//! `2fa-enroll`: thin main; the commands live in `pam_2fa::enroll`.

use clap::Parser;

fn main() {
    let cli = pam_2fa::enroll::Cli::parse();
    if let Err(e) = pam_2fa::enroll::run(cli) {
        eprintln!("2fa-enroll: {}", e.0);
        std::process::exit(1);
    }
}
