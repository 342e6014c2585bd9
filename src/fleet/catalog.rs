//! The model and skill catalogs from `templates/`, compiled into the binary and
//! checked when first read (a broken catalog is a startup error, via `check`).

use std::sync::OnceLock;

use anyhow::{Context, bail};
use serde::Deserialize;

/// A model the operator can pick.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// `provider/model`, as OpenClaw names it.
    pub id: String,
    pub label: String,
}

/// A bundled skill the operator can turn on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skill {
    /// The skill key in OpenClaw.
    pub id: String,
    pub label: String,
    pub emoji: String,
}

const MODELS: &str = include_str!("../../templates/models.json5");
const SKILLS: &str = include_str!("../../templates/skills.json5");

/// Parses and checks both catalogs.
///
/// # Errors
///
/// A catalog that does not parse, has duplicates, or a bad id.
pub fn check() -> anyhow::Result<()> {
    parse_models()?;
    parse_skills()?;
    Ok(())
}

/// The model catalog.
#[must_use]
pub fn models() -> &'static [Model] {
    static CELL: OnceLock<Vec<Model>> = OnceLock::new();
    // `check` runs at start and in tests, so a parse failure here cannot happen
    // in a binary that started; fall back to an empty list rather than panic.
    CELL.get_or_init(|| parse_models().unwrap_or_default())
}

/// The skill catalog.
#[must_use]
pub fn skills() -> &'static [Skill] {
    static CELL: OnceLock<Vec<Skill>> = OnceLock::new();
    CELL.get_or_init(|| parse_skills().unwrap_or_default())
}

fn parse_models() -> anyhow::Result<Vec<Model>> {
    let models: Vec<Model> = json5::from_str(MODELS).context("templates/models.json5")?;
    if models.is_empty() {
        bail!("templates/models.json5 lists no model");
    }
    for (i, model) in models.iter().enumerate() {
        if !model.id.contains('/') || model.id.len() > 48 {
            bail!(
                "templates/models.json5: {:?} must be provider/model, at most 48 bytes",
                model.id
            );
        }
        if models[..i].iter().any(|m| m.id == model.id) {
            bail!("templates/models.json5 lists {:?} twice", model.id);
        }
    }
    Ok(models)
}

fn parse_skills() -> anyhow::Result<Vec<Skill>> {
    let skills: Vec<Skill> = json5::from_str(SKILLS).context("templates/skills.json5")?;
    for (i, skill) in skills.iter().enumerate() {
        if skill.id.is_empty()
            || skill.id.len() > 40
            || !skill
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            bail!("templates/skills.json5: {:?} is not a skill key", skill.id);
        }
        if skills[..i].iter().any(|s| s.id == skill.id) {
            bail!("templates/skills.json5 lists {:?} twice", skill.id);
        }
    }
    Ok(skills)
}

#[cfg(test)]
mod tests {
    #[test]
    fn catalogs_parse() {
        super::check().unwrap();
        assert!(!super::models().is_empty());
        assert!(super::skills().iter().any(|s| s.id == "weather"));
    }
}
