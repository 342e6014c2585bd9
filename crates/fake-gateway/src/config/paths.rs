//! `changedPaths` and which changes need a restart: the leaf paths of a patch,
//! the paths in which two configs differ (named the way a real 2026.9.6 cell names
//! them), and the `gateway.*` paths that hot-apply.

use serde_json::{Map, Value};

/// Objects the real gateway's normalized config always holds, even when the file
/// leaves them out. `changedPaths` descends into objects present on both sides and
/// names any other added or removed object by its own path, so keys added under these
/// are listed one by one, while a new object elsewhere is one path. Measured against
/// OpenClaw 2026.9.6 (a file without `hooks`, `session`, `logging`, `tools`):
/// `hooks.enabled`, `session.dmScope`, `gateway.controlUi.basePath`,
/// `channels.telegram.accounts.second`, but `logging`, `tools`, `skills.entries` (when
/// absent), `skills.entries.summarize` (when `entries` exists), `skills.install`,
/// `channels.telegram.groups`, `agents.defaults.heartbeat`.
const IMPLICIT_OBJECTS: &[&str] = &[
    "commands",
    "gateway.controlUi",
    "hooks",
    "messages",
    "session",
    "skills",
];

/// Whether `path` is an object the normalized config always holds (see
/// `IMPLICIT_OBJECTS`; also every `channels.<id>.accounts`).
fn is_implicit_object(path: &str) -> bool {
    let channel_accounts = path
        .strip_prefix("channels.")
        .and_then(|rest| rest.strip_suffix(".accounts"))
        .is_some_and(|channel| !channel.is_empty() && !channel.contains('.'));
    channel_accounts || IMPLICIT_OBJECTS.contains(&path)
}

/// `gateway.*` paths that hot-apply; every other `gateway.*` change needs a restart
/// (PROTOCOL.md §5.1).
const HOT_GATEWAY_PATHS: &[&str] = &[
    "gateway.auth.token",
    "gateway.auth.password",
    "gateway.http",
    "gateway.reload",
    "gateway.remote",
];

/// The dotted paths of `value`'s leaves (an empty object is a leaf).
pub fn leaves(value: &Value) -> Vec<String> {
    let mut res = Vec::new();
    leaf_paths(value, "", &mut res);
    res
}

/// The dotted paths where `old` and `new` differ: objects present on both sides are
/// descended into, any other added or removed object is named by its own path.
pub fn changed(old: &Value, new: &Value) -> Vec<String> {
    let mut res = Vec::new();
    changed_paths(old, new, "", &mut res);
    res
}

fn join(prefix: &str, key: &str) -> String {
    match prefix {
        "" => key.to_string(),
        _ => format!("{prefix}.{key}"),
    }
}

fn leaf_paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                leaf_paths(child, &join(prefix, key), out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

fn changed_paths(old: &Value, new: &Value, prefix: &str, out: &mut Vec<String>) {
    if old == new {
        return;
    }
    let (old_map, new_map) = match (old, new) {
        (Value::Object(old_map), Value::Object(new_map)) => (Some(old_map), Some(new_map)),
        (Value::Null, Value::Object(new_map)) if is_implicit_object(prefix) => {
            (None, Some(new_map))
        }
        (Value::Object(old_map), Value::Null) if is_implicit_object(prefix) => {
            (Some(old_map), None)
        }
        _ => {
            out.push(prefix.to_string());
            return;
        }
    };
    let empty = Map::new();
    let old_map = old_map.unwrap_or(&empty);
    let new_map = new_map.unwrap_or(&empty);
    for (key, child) in new_map {
        let before = old_map.get(key).unwrap_or(&Value::Null);
        changed_paths(before, child, &join(prefix, key), out);
    }
    for (key, child) in old_map {
        if !new_map.contains_key(key) {
            changed_paths(child, &Value::Null, &join(prefix, key), out);
        }
    }
}

/// Whether a change at `changed_path` needs a restart (PROTOCOL.md §5.1).
pub fn needs_restart(changed_path: &str) -> bool {
    if !(changed_path == "gateway" || changed_path.starts_with("gateway.")) {
        return false;
    }
    !HOT_GATEWAY_PATHS
        .iter()
        .any(|hot| changed_path == *hot || changed_path.starts_with(&format!("{hot}.")))
}
