//! Every text the operator reads, from `dialogues/` (compiled in), checked at
//! start: each key the code uses exists in its file with exactly the
//! placeholders the code fills, and no file holds a key nobody uses. Values
//! are HTML-escaped when filled in.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};

const FILES: [(&str, &str); 7] = [
    ("common", include_str!("../../dialogues/common.json5")),
    ("newclient", include_str!("../../dialogues/newclient.json5")),
    ("clients", include_str!("../../dialogues/clients.json5")),
    ("monitor", include_str!("../../dialogues/monitor.json5")),
    ("usage", include_str!("../../dialogues/usage.json5")),
    ("backups", include_str!("../../dialogues/backups.json5")),
    ("rollout", include_str!("../../dialogues/rollout.json5")),
];

/// (file, key, placeholders) of every text the code uses.
const KEYS: &[(&str, &str, &[&str])] = &[
    ("common", "help", &["commands"]),
    ("common", "refused", &[]),
    ("common", "cancelled", &[]),
    ("common", "nothing_to_cancel", &[]),
    ("common", "expired", &["idle"]),
    ("common", "reset", &[]),
    ("common", "usage", &["usage"]),
    ("common", "unknown_tenant", &["id"]),
    ("common", "unknown_tenant_similar", &["id", "similar"]),
    ("common", "similar_separator", &[]),
    ("common", "bad_id", &["input", "reason"]),
    ("common", "not_a_period", &["reason", "period_error"]),
    ("common", "stale_button", &[]),
    ("common", "bad_button", &[]),
    ("common", "token_deleted", &[]),
    ("common", "token_not_deleted", &[]),
    ("common", "busy", &[]),
    ("common", "error", &["what", "reason"]),
    ("common", "hint_docker", &[]),
    ("common", "hint_image", &["image"]),
    ("common", "hint_not_paired", &["id"]),
    ("common", "hint_asleep", &["id"]),
    ("common", "hint_cell_user", &["uid"]),
    ("common", "not_a_command", &[]),
    ("newclient", "ask_id", &[]),
    ("newclient", "checking_id", &[]),
    ("newclient", "id_taken", &["id"]),
    ("usage", "chart_title", &["id", "period", "zone"]),
    ("newclient", "private_only", &[]),
    ("newclient", "id_leftover", &["id"]),
    ("newclient", "id_suggest", &["id"]),
    ("newclient", "ask_name", &["id"]),
    ("newclient", "skip", &[]),
    ("newclient", "name_too_long", &[]),
    ("newclient", "ask_token", &[]),
    ("newclient", "token_deleted", &[]),
    ("newclient", "token_bad_format", &["reason"]),
    ("newclient", "token_refused", &["reason"]),
    ("newclient", "token_ok", &["username"]),
    ("newclient", "ask_model", &[]),
    ("newclient", "ask_key", &["provider"]),
    ("newclient", "ask_key_no_shared", &["provider"]),
    ("newclient", "use_shared_key", &[]),
    ("newclient", "key_deleted", &[]),
    ("newclient", "key_bad", &[]),
    ("newclient", "ask_skills", &[]),
    ("newclient", "done", &[]),
    ("newclient", "ask_access", &[]),
    ("newclient", "access_pairing", &[]),
    ("newclient", "access_allowlist", &[]),
    ("newclient", "ask_allowlist", &[]),
    ("newclient", "allowlist_bad", &["input"]),
    (
        "newclient",
        "summary",
        &[
            "id", "name", "username", "token", "model", "key", "skills", "access",
        ],
    ),
    ("newclient", "key_own", &[]),
    ("newclient", "key_shared", &[]),
    ("newclient", "key_none", &[]),
    ("newclient", "skills_none", &[]),
    ("newclient", "access_pairing_summary", &[]),
    ("newclient", "access_allowlist_summary", &["ids"]),
    ("newclient", "confirm", &[]),
    ("newclient", "cancel", &[]),
    ("newclient", "back", &[]),
    ("newclient", "progress", &["id", "steps"]),
    ("newclient", "step_config", &[]),
    ("newclient", "step_container", &[]),
    ("newclient", "step_start", &[]),
    ("newclient", "step_health", &[]),
    ("newclient", "step_pair", &[]),
    ("newclient", "step_done", &["step"]),
    ("newclient", "step_running", &["step"]),
    ("newclient", "step_pending", &["step"]),
    (
        "newclient",
        "created",
        &["id", "username", "state", "health", "port"],
    ),
    ("newclient", "failed", &["id", "step", "reason", "cleanup"]),
    ("newclient", "exists", &["id"]),
    ("newclient", "failed_cleaned", &[]),
    ("newclient", "failed_kept", &[]),
    ("clients", "list_header", &["count"]),
    (
        "clients",
        "list_line",
        &["emoji", "id", "port", "tag", "uptime"],
    ),
    ("clients", "list_empty", &[]),
    (
        "clients",
        "details",
        &[
            "emoji", "id", "name", "state", "health", "bot", "model", "image", "port", "paired",
            "uptime",
        ],
    ),
    ("clients", "btn_restart", &[]),
    ("clients", "btn_stop", &[]),
    ("clients", "btn_start", &[]),
    ("clients", "btn_logs", &[]),
    ("clients", "btn_remove", &[]),
    ("clients", "working", &["action", "id"]),
    ("clients", "restarted", &["id"]),
    ("clients", "started", &["id"]),
    ("clients", "already_running", &["id"]),
    ("clients", "stopped", &["id"]),
    ("clients", "already_stopped", &["id"]),
    ("clients", "slept", &["id"]),
    (
        "clients",
        "capacity_host",
        &[
            "host", "reserve", "in_use", "free", "running", "sleeping", "stopped",
        ],
    ),
    (
        "clients",
        "capacity_cells",
        &[
            "idle",
            "active",
            "samples",
            "cells",
            "more_running",
            "more_mix",
        ],
    ),
    ("clients", "capacity_all_awake", &["short"]),
    ("clients", "capacity_unmeasured", &[]),
    ("clients", "already_asleep", &["id"]),
    ("clients", "woken", &["id"]),
    ("clients", "already_awake", &["id"]),
    ("clients", "logs_empty", &["id"]),
    ("clients", "logs_caption", &["n", "id"]),
    ("clients", "remove_ask", &["id"]),
    ("clients", "remove_keep", &[]),
    ("clients", "upgrade_progress", &["id", "image", "steps"]),
    ("clients", "upgrade_step_check", &[]),
    ("clients", "upgrade_step_container", &[]),
    ("clients", "upgrade_step_health", &[]),
    ("clients", "upgrade_step_gateway", &[]),
    ("clients", "move_progress", &["id", "node", "steps"]),
    ("clients", "move_step_stop", &[]),
    ("clients", "move_step_copy", &[]),
    ("clients", "move_step_cell", &[]),
    ("clients", "move_step_health", &[]),
    ("clients", "moved", &["id", "from", "to", "kib", "down"]),
    ("clients", "moved_left", &["reason"]),
    ("clients", "move_refused", &["id", "reason"]),
    ("clients", "move_failed", &["id", "reason"]),
    ("clients", "upgraded", &["id", "from", "to", "generation"]),
    (
        "clients",
        "upgraded_stopped",
        &["id", "from", "to", "generation"],
    ),
    ("clients", "upgrade_refused", &["id", "reason"]),
    ("clients", "btn_history", &[]),
    ("clients", "recent", &[]),
    ("clients", "event_line", &["when", "what"]),
    ("clients", "event_line_failed", &["when", "what"]),
    ("clients", "history", &["id", "lines"]),
    ("clients", "history_empty", &["id"]),
    (
        "clients",
        "config_value",
        &["id", "path", "value", "pending"],
    ),
    ("clients", "config_unset", &[]),
    ("clients", "config_pending", &[]),
    ("clients", "config_hot", &[]),
    ("clients", "config_restart", &[]),
    ("clients", "config_none", &[]),
    (
        "clients",
        "config_preview",
        &["id", "path", "before", "after", "applies", "command"],
    ),
    (
        "clients",
        "config_unchanged",
        &["id", "path", "before", "after"],
    ),
    (
        "clients",
        "config_applied",
        &["id", "path", "before", "after", "how"],
    ),
    ("clients", "config_applied_hot", &[]),
    ("clients", "config_restarted", &[]),
    ("clients", "config_restarted_container", &[]),
    ("clients", "config_failed", &["id", "reason"]),
    ("clients", "config_refused", &["id", "reason"]),
    ("clients", "config_what", &["id"]),
    ("clients", "skills", &["id", "state"]),
    ("clients", "skills_default", &[]),
    ("clients", "skills_count", &["count"]),
    ("clients", "skill_on", &["skill"]),
    ("clients", "skill_off", &["skill"]),
    ("clients", "skill_failed", &["skill", "reason"]),
    ("clients", "skills_what", &["id"]),
    (
        "clients",
        "resized",
        &["id", "memory_before", "memory", "cpus_before", "cpus"],
    ),
    ("clients", "resize_refused", &["id", "reason"]),
    ("clients", "resize_failed", &["id", "reason"]),
    (
        "clients",
        "upgrade_failed",
        &["id", "step", "reason", "outcome"],
    ),
    ("clients", "upgrade_rolled_back", &["from"]),
    (
        "clients",
        "upgrade_rollback_failed",
        &["id", "from", "step", "reason"],
    ),
    ("clients", "remove_purge", &[]),
    ("clients", "purge_ask", &["id"]),
    ("clients", "purge_mismatch", &["id"]),
    ("clients", "purge_not_yours", &[]),
    ("clients", "replaced_button", &["id"]),
    ("clients", "removed_kept", &["id"]),
    ("clients", "removed_purged", &["id"]),
    ("monitor", "alert_down", &["id", "check", "since", "error"]),
    ("monitor", "alert_recovered", &["id", "check", "duration"]),
    ("monitor", "alert_memory", &["id", "since", "error"]),
    ("monitor", "alert_memory_ok", &["id", "duration"]),
    (
        "monitor",
        "alert_flapping",
        &["id", "check", "count", "error"],
    ),
    ("monitor", "alert_stable", &["id", "check"]),
    ("monitor", "health_stopped", &[]),
    ("monitor", "health_sleeping", &[]),
    ("monitor", "health_creating", &[]),
    ("monitor", "health_failed", &[]),
    ("monitor", "health_removing", &[]),
    ("monitor", "health_container_down", &[]),
    ("monitor", "health_probe", &["check", "error"]),
    ("monitor", "health_telegram", &["error"]),
    ("monitor", "health_memory", &["used", "limit"]),
    ("monitor", "health_ok", &["latency"]),
    ("monitor", "health_ok_memory", &["latency", "memory"]),
    ("monitor", "health_separator", &[]),
    ("clients", "uptime_down", &[]),
    ("clients", "uptime_unknown", &[]),
    ("clients", "uptime_seconds", &["n"]),
    ("clients", "uptime_minutes", &["n"]),
    ("clients", "uptime_hours", &["n"]),
    ("clients", "uptime_days", &["n"]),
    ("monitor", "alert_crashed", &["id", "code", "oom", "log"]),
    (
        "monitor",
        "alert_crash_loop",
        &["id", "crashes", "window", "code", "oom", "log"],
    ),
    ("monitor", "alert_back", &["id", "duration"]),
    ("monitor", "oom_note", &[]),
    ("monitor", "no_log", &[]),
    ("monitor", "alert_oom", &["id", "error"]),
    ("monitor", "alert_healed", &["id"]),
    ("monitor", "alert_heal_failed", &["id", "error"]),
    ("monitor", "alert_missing_made_again", &["id"]),
    ("monitor", "alert_missing_failed", &["id", "error"]),
    ("monitor", "btn_mute", &[]),
    ("monitor", "backup_failed", &["count", "lines"]),
    ("monitor", "backup_failed_line", &["who", "error"]),
    ("monitor", "backup_admin_store", &[]),
    ("monitor", "backup_stale", &["id", "backup", "age"]),
    ("monitor", "backup_none", &["id", "age"]),
    ("backups", "progress", &["id", "step"]),
    ("backups", "step_start", &[]),
    ("backups", "step_freeze", &[]),
    ("backups", "step_copy", &[]),
    ("backups", "step_thaw", &[]),
    ("backups", "step_encrypt", &[]),
    ("backups", "step_after_command", &[]),
    ("backups", "step_done", &[]),
    (
        "backups",
        "done",
        &["id", "backup", "size", "paused", "path"],
    ),
    ("backups", "after_failed", &["error"]),
    ("backups", "none", &["id"]),
    ("backups", "header", &["id", "count"]),
    ("backups", "line", &["backup", "size", "age"]),
    ("backups", "unknown", &["id", "backup"]),
    ("backups", "restore_ask", &["id", "backup"]),
    ("backups", "restore_ask_replace", &["id", "backup"]),
    ("backups", "restore_mismatch", &["id"]),
    ("backups", "restoring", &["id", "step"]),
    ("backups", "step_read", &[]),
    ("backups", "step_safety", &[]),
    ("backups", "step_replace", &[]),
    ("backups", "step_cell", &["step", "n", "of"]),
    ("backups", "restored", &["id", "backup", "port"]),
    ("backups", "restore_failed", &["id", "error"]),
    ("backups", "offboarded", &["backup", "export"]),
    ("backups", "client_last", &["backup", "age", "size"]),
    ("backups", "client_none", &[]),
    ("backups", "age_minutes", &["n"]),
    ("backups", "age_hours", &["n"]),
    ("backups", "age_days", &["n"]),
    ("rollout", "usage", &[]),
    ("rollout", "plan", &["image", "count", "waves", "passed"]),
    ("rollout", "wave_line", &["name", "ids"]),
    ("rollout", "canary", &[]),
    ("rollout", "wave", &["n"]),
    ("rollout", "passed", &["list"]),
    ("rollout", "refused", &["reason"]),
    ("rollout", "progress", &["image", "done", "total", "now"]),
    ("rollout", "now_upgrading", &["wave", "id", "step"]),
    ("rollout", "now_pausing", &["at"]),
    ("rollout", "now_starting", &[]),
    ("rollout", "done", &["image", "done", "total", "passed"]),
    (
        "rollout",
        "halted",
        &["image", "reason", "upgraded", "pending"],
    ),
    ("rollout", "nobody", &[]),
    ("rollout", "halt_asked", &["image"]),
    ("rollout", "abandoned", &["image"]),
    ("rollout", "none", &[]),
    ("rollout", "adopted", &["image"]),
    ("monitor", "summary", &["count", "lines"]),
    ("monitor", "summary_line", &["what", "ids"]),
    ("monitor", "health_header", &["at", "age", "took"]),
    ("monitor", "health_line", &["emoji", "id", "summary"]),
    ("monitor", "health_none", &["interval"]),
    ("monitor", "health_off", &[]),
    ("monitor", "muted", &["id", "until"]),
    ("monitor", "unmuted", &["id"]),
    (
        "monitor",
        "digest",
        &[
            "tenants",
            "up",
            "down",
            "stopped",
            "down_list",
            "restarts",
            "alerts",
            "cost_day",
            "fleet_cost",
            "costs",
        ],
    ),
    ("monitor", "digest_cost_line", &["id", "cost"]),
    ("monitor", "digest_no_costs", &[]),
    ("monitor", "doctor_clean", &["tenants"]),
    (
        "monitor",
        "doctor_header",
        &["count", "critical", "warning", "tenants"],
    ),
    (
        "monitor",
        "doctor_line",
        &["emoji", "subject", "check", "problem", "fix", "fixable"],
    ),
    ("monitor", "doctor_fixable", &[]),
    ("monitor", "doctor_new", &["count", "lines"]),
    ("monitor", "doctor_fix_on_host", &["command"]),
    ("monitor", "doctor_fix_docker_iptables", &["command"]),
    ("monitor", "doctor_fix_recreate", &["container"]),
    ("monitor", "doctor_fix_recreate_rotate", &["container"]),
    ("monitor", "doctor_fix_reconcile", &[]),
    ("monitor", "doctor_fix_foreign", &["name"]),
    ("monitor", "doctor_fix_restore", &["id"]),
    ("monitor", "doctor_fix_upgrade", &["id"]),
    ("monitor", "doctor_fix_pin_image", &[]),
    ("monitor", "doctor_fix_make_dir", &["path"]),
    ("monitor", "doctor_fix_unplain", &["path"]),
    ("monitor", "doctor_fix_match_store", &[]),
    ("monitor", "doctor_fix_prune_audit", &[]),
    ("monitor", "doctor_fix_free_disk", &["path"]),
    ("monitor", "doctor_fix_memory", &[]),
    ("usage", "tenant_header", &["id", "period", "zone"]),
    (
        "usage",
        "tokens",
        &["input", "output", "cache_read", "cache_write"],
    ),
    ("usage", "cost", &["cost"]),
    ("usage", "models_header", &[]),
    ("usage", "model_line", &["model", "cost", "share"]),
    ("usage", "no_usage", &[]),
    ("usage", "billable", &["total", "usage", "markup", "fee"]),
    (
        "usage",
        "budget_line",
        &["spend", "budget", "month", "percent"],
    ),
    ("usage", "suspended_line", &["since", "how", "id"]),
    ("usage", "as_of", &["as_of"]),
    ("usage", "never_read", &["interval"]),
    ("usage", "chart_caption", &["id", "period"]),
    ("usage", "csv_caption", &["id", "period"]),
    ("usage", "fleet_header", &["period", "zone"]),
    ("usage", "fleet_line", &["rank", "id", "cost", "billable"]),
    ("usage", "fleet_total", &["cost", "billable"]),
    ("usage", "fleet_empty", &[]),
    ("usage", "bad_period", &["reason"]),
    (
        "usage",
        "budget_status",
        &[
            "id", "amount", "source", "action", "month", "spend", "percent", "notified",
        ],
    ),
    ("usage", "budget_none", &["id"]),
    ("usage", "notified_none", &[]),
    ("usage", "notified_threshold", &["threshold"]),
    ("usage", "notified_separator", &[]),
    ("usage", "source_operator", &[]),
    ("usage", "source_config", &[]),
    ("usage", "bad_amount", &["input"]),
    ("usage", "bad_action", &["input"]),
    ("usage", "action_notify", &[]),
    ("usage", "action_stop_channel", &[]),
    ("usage", "action_stop_cell", &[]),
    (
        "usage",
        "alert",
        &["id", "spend", "budget", "month", "percent", "threshold"],
    ),
    ("usage", "alert_suspended", &["how", "id"]),
    ("usage", "alert_suspend_failed", &["how", "error"]),
    ("usage", "resumed_channel", &["id"]),
    ("usage", "resumed_cell", &["id"]),
    ("usage", "not_suspended", &["id"]),
    ("usage", "suspended_mark", &[]),
];

/// The loaded, checked texts.
#[derive(Debug, Clone)]
pub struct Texts {
    texts: BTreeMap<String, String>,
}

impl Texts {
    /// Loads and checks every dialogue file.
    ///
    /// # Errors
    ///
    /// A file that does not parse, a missing or unused key, a placeholder the
    /// code does not fill or a placeholder missing from the text.
    pub fn load() -> anyhow::Result<Texts> {
        let mut texts = BTreeMap::new();
        for (file, source) in FILES {
            let map: BTreeMap<String, String> = json5::from_str(source).with_context(|| {
                format!("dialogues/{file}.json5 is not a JSON5 object of strings")
            })?;
            for (key, text) in map {
                if !KEYS.iter().any(|(f, k, _)| *f == file && *k == key) {
                    bail!(
                        "dialogues/{file}.json5: key {key:?} is not used by the code; remove it or fix its name"
                    );
                }
                texts.insert(format!("{file}.{key}"), text);
            }
        }
        for (file, key, placeholders) in KEYS {
            let Some(text) = texts.get(&format!("{file}.{key}")) else {
                bail!("dialogues/{file}.json5 has no key {key:?}");
            };
            let found = placeholders_of(text);
            let expected: BTreeSet<String> = placeholders.iter().map(|p| p.to_string()).collect();
            if found != expected {
                bail!(
                    "dialogues/{file}.json5, key {key:?}: placeholders {found:?}, but the code fills {expected:?}"
                );
            }
        }
        Ok(Texts { texts })
    }

    /// The text `file.key` with its placeholders filled by HTML-escaped values.
    /// An unknown key gives the key itself (cannot happen after `load`'s check,
    /// which a unit test also runs).
    #[must_use]
    pub fn get(&self, key: &str, values: &[(&str, &str)]) -> String {
        let Some(text) = self.texts.get(key) else {
            return key.to_string();
        };
        let mut res = text.clone();
        for (name, value) in values {
            res = res.replace(&format!("{{{name}}}"), &escape(value));
        }
        res
    }

    /// A text whose values are already HTML (for nesting rendered texts).
    #[must_use]
    pub fn get_html(&self, key: &str, values: &[(&str, &str)]) -> String {
        let Some(text) = self.texts.get(key) else {
            return key.to_string();
        };
        let mut res = text.clone();
        for (name, value) in values {
            res = res.replace(&format!("{{{name}}}"), value);
        }
        res
    }

    /// A text with no placeholders.
    #[must_use]
    pub fn plain(&self, key: &str) -> String {
        self.get(key, &[])
    }
}

fn placeholders_of(text: &str) -> BTreeSet<String> {
    let mut res = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end)
                if after[..end]
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_')
                    && end > 0 =>
            {
                res.insert(after[..end].to_string());
                rest = &after[end + 1..];
            }
            _ => rest = after,
        }
    }
    res
}

/// Escapes text for Telegram's HTML parse mode (`&`, `<`, `>`).
pub use teloxide::utils::html::escape;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dialogue_file_matches_the_code() {
        let texts = Texts::load().unwrap();
        assert!(
            texts
                .get("common.bad_id", &[("input", "<b>"), ("reason", "x & y")])
                .contains("&lt;b&gt;")
        );
    }

    #[test]
    fn placeholders_are_found() {
        let found = placeholders_of("a {id} b {step} {not valid} {}");
        assert_eq!(
            found,
            ["id", "step"].iter().map(|s| s.to_string()).collect()
        );
    }
}
