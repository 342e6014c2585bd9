//! A tenant's bundled skills after onboarding: which of the catalog's are
//! on (`skills.allowBundled` in its config), and turning them on or off
//! through the config change with a preview (`config_edit`).

use anyhow::bail;
use serde_json::Value;

use crate::fleet::catalog;
use crate::fleet::config_edit::{self, ConfigChange, ConfigRefused};
use crate::fleet::{Actor, App};
use crate::tenant::TenantId;

const PATH: &str = "skills.allowBundled";

/// The tenant's bundled skills now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skills {
    /// `None`: the cell never chose (OpenClaw's default set).
    pub allowed: Option<Vec<String>>,
}

impl Skills {
    /// Whether `skill` is on (with OpenClaw's default, no catalog skill is
    /// counted on: the cell never chose any).
    #[must_use]
    pub fn has(&self, skill: &str) -> bool {
        self.allowed
            .as_ref()
            .is_some_and(|allowed| allowed.iter().any(|s| s == skill))
    }
}

/// Reads which bundled skills the tenant's cell allows.
///
/// # Errors
///
/// An unknown or asleep tenant, a gateway that does not answer.
pub async fn skills(app: &App, tenant: &TenantId) -> anyhow::Result<Skills> {
    let read = config_edit::config_get(app, tenant, Some(PATH)).await?;
    let allowed = match read.value {
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_string))
                .collect(),
        ),
        _ => None,
    };
    Ok(Skills { allowed })
}

/// Turns catalog skills on and off; returns the config change (unchanged
/// when they were so already).
///
/// # Errors
///
/// `ConfigRefused` for a skill not in the catalog, one both enabled and
/// disabled, or nothing asked; else as `config_edit::config_set`.
pub async fn set_skills(
    app: &App,
    actor: &Actor,
    tenant: &TenantId,
    enable: &[String],
    disable: &[String],
) -> anyhow::Result<ConfigChange> {
    if enable.is_empty() && disable.is_empty() {
        bail!(ConfigRefused("name skills to enable or disable".into()));
    }
    for skill in enable.iter().chain(disable) {
        if !catalog::skills().iter().any(|known| known.id == *skill) {
            let known: Vec<&str> = catalog::skills().iter().map(|s| s.id.as_str()).collect();
            bail!(ConfigRefused(format!(
                "no skill {skill:?} in the catalog; known: {}",
                known.join(", ")
            )));
        }
        if enable.contains(skill) && disable.contains(skill) {
            bail!(ConfigRefused(format!(
                "{skill} is both enabled and disabled"
            )));
        }
    }
    let now = skills(app, tenant).await?;
    let mut allowed = now.allowed.unwrap_or_default();
    allowed.retain(|skill| !disable.contains(skill));
    for skill in enable {
        if !allowed.contains(skill) {
            allowed.push(skill.clone());
        }
    }
    // Catalog order, so the same choice reads the same everywhere.
    let order = |skill: &String| {
        catalog::skills()
            .iter()
            .position(|known| known.id == *skill)
            .unwrap_or(usize::MAX)
    };
    allowed.sort_by_key(order);
    let value = Value::Array(allowed.into_iter().map(Value::String).collect());
    let mut changes = config_edit::config_set(
        app,
        actor,
        std::slice::from_ref(tenant),
        PATH,
        &value,
        false,
        None,
    )
    .await?;
    changes
        .pop()
        .ok_or_else(|| anyhow::anyhow!("the config change reported nothing"))
}
