//! `2fa-enroll` without a command: an interactive menu of the user's
//! factors with add, replace, remove and regenerate, like the profile page
//! of a web 2FA product.

use super::admin::{self, RemoveArgs};
use super::factor_args::{DefaultArg, Removable};
use super::network::{self, DefaultArgs, DuoArgs, EmailArgs, SmsArgs};
use super::output::read_line;
use super::{CliError, CliResult, Ctx, backup, otp, questions};
use clap::{Args, ValueEnum};

#[derive(Args, Debug, Default)]
pub struct MenuArgs {
    /// Manage this user instead of yourself (root).
    #[arg(long)]
    pub user: Option<String>,
}

const HELP: &str = "Actions:
  add totp | add sms | add email | add duo | add questions | backup
  replace totp | replace sms | replace email | replace questions
  regenerate backup
  remove totp | remove backup | remove sms | remove email | remove duo | remove questions
  default push | default sms | default email | default phone | default questions | default none
  web (a link to manage everything in the browser)
  status | help | quit";

pub fn run(ctx: &mut Ctx, a: MenuArgs) -> CliResult {
    let user = ctx.target(a.user.as_deref())?;
    println!("Two-factor authentication for {user}.");
    show(ctx, &user)?;
    println!("{HELP}");
    loop {
        let Some(line) = read_line("\n2fa> ")? else {
            return Ok(());
        };
        let words: Vec<String> = line
            .split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let result = match words.as_slice() {
            [] => continue,
            ["quit" | "q" | "exit"] => return Ok(()),
            ["help" | "?"] => {
                println!("{HELP}");
                Ok(())
            }
            ["status"] => show(ctx, &user),
            ["web"] => super::web::run(
                &ctx.cfg.daemon.socket,
                &super::web::WebArgs {
                    user: Some(user.clone()),
                    quiet: false,
                },
            ),
            ["add" | "replace", "totp"] => otp::totp(ctx, otp::TotpArgs::for_user(&user)),
            ["add" | "replace", "sms"] => {
                ask("Phone number with country code: ").and_then(|phone| {
                    network::sms(
                        ctx,
                        SmsArgs {
                            phone,
                            user: Some(user.clone()),
                            no_verify: false,
                        },
                    )
                })
            }
            ["add" | "replace", "email"] => ask("E-mail address: ").and_then(|address| {
                network::email(
                    ctx,
                    EmailArgs {
                        address,
                        user: Some(user.clone()),
                        no_verify: false,
                    },
                )
            }),
            ["add" | "replace", "duo"] => network::duo(
                ctx,
                DuoArgs {
                    user: Some(user.clone()),
                    no_check: false,
                },
            ),
            ["add" | "replace", "questions"] => questions::run(
                ctx,
                questions::QuestionsArgs {
                    user: Some(user.clone()),
                },
            ),
            ["backup"] | ["add" | "regenerate", "backup"] => backup::run(
                ctx,
                backup::BackupArgs {
                    user: Some(user.clone()),
                    count: None,
                    output: None,
                },
            ),
            ["remove", what] => match Removable::from_str(what, false).ok() {
                Some(what) => confirm(&format!("Remove {} from {user}? [y/N]: ", words[1]))
                    .and_then(|yes| {
                        if yes {
                            admin::remove(
                                ctx,
                                RemoveArgs {
                                    what,
                                    user: Some(user.clone()),
                                },
                            )
                        } else {
                            Ok(())
                        }
                    }),
                None => Err(CliError(format!("unknown factor {what:?}"))),
            },
            ["default", f] => match DefaultArg::from_str(f, false).ok() {
                Some(factor) => network::default(
                    ctx,
                    DefaultArgs {
                        factor,
                        user: Some(user.clone()),
                    },
                ),
                None => Err(CliError(format!("unknown factor {f:?}"))),
            },
            _ => Err(CliError("unknown action; type help".into())),
        };
        if let Err(e) = result {
            eprintln!("2fa-enroll: {}", e.0);
        }
    }
}

fn show(ctx: &mut Ctx, user: &str) -> CliResult {
    let Some(mut store) = ctx.existing_store()? else {
        println!(
            "{user}:\n  no second factor enrolled (no store yet at {}; the first factor added creates it)",
            ctx.cfg.db.display()
        );
        return Ok(());
    };
    admin::print_status(&store.status(user)?, admin::duo_by_all(&ctx.cfg));
    Ok(())
}

fn ask(prompt: &str) -> Result<String, CliError> {
    read_line(prompt)?
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| CliError("nothing entered".into()))
}

fn confirm(prompt: &str) -> Result<bool, CliError> {
    Ok(matches!(
        read_line(prompt)?
            .map(|s| s.trim().to_ascii_lowercase())
            .as_deref(),
        Some("y" | "yes")
    ))
}
