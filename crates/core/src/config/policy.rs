//! Policy settings: enforcement per service, exemptions, methods allowed
//! per group, inline enrollment, remembered devices, security questions.

use super::{ConfigError, Unenrolled};
use crate::factor::FactorId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every method the policy understands (`webauthn` is accepted for
/// configs written ahead of the FIDO factor).
pub const METHODS: &[FactorId] = &FactorId::METHODS;

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupPolicy {
    /// Methods members of this group may use.
    pub methods: Vec<String>,
}

/// Per-service overrides, `[policy.services.sshd]`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServicePolicy {
    pub unenrolled: Option<Unenrolled>,
    pub inline_enrollment: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Days a new user may log in without a factor under `unenrolled = "grace"`,
    /// counted from their first login attempt.
    pub grace_days: u32,
    /// Offer TOTP setup inside the login to users without a factor.
    pub inline_enrollment: bool,
    /// Never asked for a second factor (break-glass accounts); logged.
    pub exempt_users: Vec<String>,
    pub exempt_groups: Vec<String>,
    /// Methods allowed to users in none of `groups`; empty means all.
    pub methods: Vec<String>,
    /// Methods per group; a user in several listed groups may use only
    /// the methods every one of them allows (the strictest wins).
    pub groups: BTreeMap<String, GroupPolicy>,
    pub services: BTreeMap<String, ServicePolicy>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            grace_days: 7,
            inline_enrollment: false,
            exempt_users: Vec::new(),
            exempt_groups: Vec::new(),
            methods: Vec::new(),
            groups: BTreeMap::new(),
            services: BTreeMap::new(),
        }
    }
}

/// Remembered devices: skip the second factor for the same user, service
/// and source for a while after a success.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RememberConfig {
    pub enabled: bool,
    pub hours: u32,
    /// Services it applies to; empty means every service except sudo.
    pub services: Vec<String>,
    /// Also remember for sudo (services named `sudo*`): off unless the
    /// admin turns it on explicitly.
    pub sudo: bool,
}

impl Default for RememberConfig {
    fn default() -> Self {
        RememberConfig {
            enabled: false,
            hours: 12,
            services: Vec::new(),
            sudo: false,
        }
    }
}

/// Security questions: weaker than the other factors (answers can often be
/// found or guessed), so off by default.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuestionsConfig {
    pub enabled: bool,
    /// Questions users pick from.
    pub list: Vec<String>,
    /// Let users write their own questions.
    pub allow_custom: bool,
    /// Questions each user answers at enrollment.
    pub count: u32,
    /// Questions asked at login (a random subset).
    pub ask: u32,
}

impl Default for QuestionsConfig {
    fn default() -> Self {
        QuestionsConfig {
            enabled: false,
            list: [
                "What was the name of your first school?",
                "In which city did your parents meet?",
                "What was the make of your first car?",
                "What is the name of the street you grew up on?",
                "What was your childhood nickname?",
                "What is the middle name of your oldest sibling?",
            ]
            .map(String::from)
            .to_vec(),
            allow_custom: false,
            count: 3,
            ask: 2,
        }
    }
}

fn check_methods(name: &str, list: &[String]) -> Result<(), ConfigError> {
    for m in list {
        if FactorId::from_method(m).is_none() {
            return Err(ConfigError(format!(
                "{name}: unknown method {m:?} (known: {})",
                FactorId::METHODS.map(FactorId::as_str).join(", ")
            )));
        }
    }
    Ok(())
}

impl super::Config {
    pub(super) fn validate_policy(&self) -> Result<(), ConfigError> {
        let p = &self.policy;
        if !(1..=365).contains(&p.grace_days) {
            return Err(ConfigError("policy.grace_days must be 1..=365".into()));
        }
        check_methods("policy.methods", &p.methods)?;
        for (g, gp) in &p.groups {
            check_methods(&format!("policy.groups.{g}.methods"), &gp.methods)?;
            if gp.methods.is_empty() {
                return Err(ConfigError(format!(
                    "policy.groups.{g}.methods is empty: members could never log in"
                )));
            }
        }
        if !(1..=24 * 90).contains(&self.remember.hours) {
            return Err(ConfigError("remember.hours must be 1..=2160".into()));
        }
        let q = &self.questions;
        if !(1..=10).contains(&q.count) || !(1..=q.count).contains(&q.ask) {
            return Err(ConfigError(
                "questions.count must be 1..=10 and questions.ask 1..=count".into(),
            ));
        }
        if q.enabled && !q.allow_custom && (q.list.len() as u32) < q.count {
            return Err(ConfigError(format!(
                "questions.list has {} questions but users must answer {}",
                q.list.len(),
                q.count
            )));
        }
        if q.list
            .iter()
            .any(|s| s.trim().is_empty() || s.len() > 200 || s.chars().any(char::is_control))
        {
            return Err(ConfigError(
                "questions.list entries must be 1..200 printable characters".into(),
            ));
        }
        Ok(())
    }

    /// `unenrolled` for `service`: `[policy.services.NAME]` wins.
    pub fn unenrolled_for(&self, service: &str) -> Unenrolled {
        self.policy
            .services
            .get(service)
            .and_then(|s| s.unenrolled)
            .unwrap_or(self.unenrolled)
    }

    pub fn inline_enrollment_for(&self, service: &str) -> bool {
        self.policy
            .services
            .get(service)
            .and_then(|s| s.inline_enrollment)
            .unwrap_or(self.policy.inline_enrollment)
    }

    /// Whether a success on `service` may be remembered.
    pub fn remembers(&self, service: &str) -> bool {
        let r = &self.remember;
        if !r.enabled {
            return false;
        }
        if service.starts_with("sudo") && !r.sudo {
            return false;
        }
        r.services.is_empty() || r.services.iter().any(|s| s == service)
    }
}
