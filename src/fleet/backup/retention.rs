//! Retention: which archives `backup.keep` keeps.

use super::*;

/// Applies `backup.keep` to every tenant's archives and the admin's; with
/// `dry_run`, only says what it would delete.
///
/// # Errors
///
/// `backup.dir` cannot be read; an archive that cannot be deleted.
pub fn prune(app: &App, actor: &Actor, dry_run: bool) -> anyhow::Result<Pruned> {
    let config = app.config();
    let zone = config.usage.time_zone;
    let mut groups: Vec<Vec<Backup>> = Vec::new();
    let all = list(app, None)?;
    let mut tenants: Vec<Option<TenantId>> = all.iter().map(|b| b.tenant.clone()).collect();
    tenants.dedup();
    tenants.sort();
    tenants.dedup();
    for tenant in tenants {
        groups.push(all.iter().filter(|b| b.tenant == tenant).cloned().collect());
    }
    groups.push(list_admin(app)?);
    let mut pruned = Pruned::default();
    for group in groups {
        let (kept, deleted) = retention(group, config.backup.keep, zone);
        pruned.kept.extend(kept);
        pruned.deleted.extend(deleted);
    }
    if !dry_run {
        for backup in &pruned.deleted {
            std::fs::remove_file(&backup.path)
                .with_context(|| format!("cannot delete {}", backup.path.display()))?;
        }
        if !pruned.deleted.is_empty() {
            audit(
                app,
                actor,
                &format!("backup prune: {} deleted", pruned.deleted.len()),
                None,
                Ok(()),
            );
        }
    }
    Ok(pruned)
}

/// Splits one tenant's backups (any order) into kept and deleted: the newest
/// of each of the `keep.daily` most recent days that have one, and of each of
/// the `keep.weekly` most recent ISO weeks, in `zone`.
fn retention(
    mut backups: Vec<Backup>,
    keep: Keep,
    zone: chrono_tz::Tz,
) -> (Vec<Backup>, Vec<Backup>) {
    backups.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let mut days = Vec::new();
    let mut weeks = Vec::new();
    let mut kept = Vec::new();
    let mut deleted = Vec::new();
    for backup in backups {
        let local = zone
            .timestamp_opt(backup.created_at, 0)
            .single()
            .unwrap_or_else(|| zone.timestamp_opt(0, 0).unwrap());
        let day = local.date_naive();
        let week = local.iso_week();
        let mut keep_it = false;
        if !days.contains(&day) && days.len() < keep.daily as usize {
            days.push(day);
            keep_it = true;
        }
        if !weeks.contains(&week) && weeks.len() < keep.weekly as usize {
            weeks.push(week);
            keep_it = true;
        }
        if keep_it {
            kept.push(backup);
        } else {
            deleted.push(backup);
        }
    }
    (kept, deleted)
}
