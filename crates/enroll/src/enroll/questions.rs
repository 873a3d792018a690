//! `2fa-enroll questions`: pick and answer security questions.

use super::output::{now, read_line};
use super::{CliError, CliResult, Ctx};
use clap::Args;
use p2fa_core::factor::questions;
use zeroize::Zeroizing;

/// Invalid entries tolerated per step before giving up.
const TRIES: usize = 5;

#[derive(Args, Debug)]
pub struct QuestionsArgs {
    /// Set them for this user instead of yourself (root).
    #[arg(long)]
    pub user: Option<String>,
}

fn ask(prompt: &str) -> Result<String, CliError> {
    read_line(prompt)?.ok_or_else(|| CliError("input ended; nothing was saved".into()))
}

pub fn run(ctx: &mut Ctx, a: QuestionsArgs) -> CliResult {
    let q = ctx.cfg.questions.clone();
    if !q.enabled {
        return Err(CliError(format!(
            "security questions are not enabled: set `enabled = true` in the [questions] section of {}",
            ctx.config_path.display()
        )));
    }
    let user = ctx.target(a.user.as_deref())?;
    let key = ctx.host_key()?;
    let mut store = ctx.open_store()?;
    println!(
        "Choose {} security questions for {user}; {} of them will be asked at login.",
        q.count, q.ask
    );
    println!("Note: answers others can find out (social media, public records) protect little.");
    for (i, text) in q.list.iter().enumerate() {
        println!("  {}. {text}", i + 1);
    }
    if q.allow_custom {
        println!("  c. write your own question");
    }
    let mut chosen: Vec<(String, String)> = Vec::new();
    let mut custom = 0;
    while chosen.len() < q.count as usize {
        let n = chosen.len() + 1;
        let mut question = None;
        for _ in 0..TRIES {
            let pick = ask(&format!("Question {n} of {}: ", q.count))?;
            let pick = pick.trim();
            let text = if q.allow_custom && pick.eq_ignore_ascii_case("c") {
                ask("Your question: ")?
            } else {
                match pick
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| q.list.get(i.wrapping_sub(1)))
                {
                    Some(t) => t.clone(),
                    None => {
                        eprintln!(
                            "Type a number from the list{}.",
                            if q.allow_custom { " or c" } else { "" }
                        );
                        continue;
                    }
                }
            };
            // The same rules 2fad applies to the profile page's form.
            match questions::choose(&q, chosen.iter().map(|(c, _)| c.as_str()), &text) {
                Ok(c) => {
                    custom += usize::from(c.custom);
                    question = Some(c.text);
                    break;
                }
                Err(why) => eprintln!("Not accepted: {why}."),
            }
        }
        let Some(question) = question else {
            return Err(CliError(
                "too many invalid choices; nothing was saved".into(),
            ));
        };
        let mut answer = None;
        for _ in 0..TRIES {
            let first = Zeroizing::new(ask(&format!("Answer to \"{question}\": "))?);
            let norm = match questions::valid(&first) {
                Ok(n) => Zeroizing::new(n),
                Err(why) => {
                    eprintln!("That answer is {why}.");
                    continue;
                }
            };
            let again = Zeroizing::new(ask("Repeat the answer: ")?);
            if questions::normalize(&again) != *norm {
                eprintln!("The answers differ; try again.");
                continue;
            }
            answer = Some(norm);
            break;
        }
        let Some(answer) = answer else {
            return Err(CliError("no usable answer; nothing was saved".into()));
        };
        let h = questions::hash(&key, &user, &question, &answer)?;
        chosen.push((question, h));
    }
    let tx = store.write()?;
    tx.set_questions(&user, &chosen, now(), key.key_gen())?;
    tx.commit()?;
    ctx.audit.notice(&format!(
        "enrolled questions user={user} count={} custom={custom} by={}",
        chosen.len(),
        ctx.invoker
    ));
    println!("Saved {} security questions for {user}.", chosen.len());
    Ok(())
}
