//! Result payloads, shaped after the recorded real ones (transcripts/*.jsonl and the
//! `manualcell` comparison cell): hello-ok, health, status, agents, models, sessions,
//! channels (Telegram) and skills. The usage payloads are in `usage.rs`.

use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::state::{BUILD_ID, ChannelOverride, Gateway, State, VERSION, now_ms};

static EXTRAS: OnceLock<Value> = OnceLock::new();
static SKILLS: OnceLock<Value> = OnceLock::new();

/// Real hello-ok `features`, widget kinds, link readers, plugin list, heartbeat prompt.
fn extras() -> &'static Value {
    EXTRAS.get_or_init(|| {
        serde_json::from_str(include_str!("fixtures/hello-extras.json")).unwrap_or(Value::Null)
    })
}

/// The 57 skills of the recorded `skills.status`.
fn skills_fixture() -> &'static Value {
    SKILLS.get_or_init(|| {
        serde_json::from_str(include_str!("fixtures/skills.json")).unwrap_or(json!([]))
    })
}

/// What hello-ok says about the caller's auth.
pub struct HelloAuth {
    pub method: &'static str,
    pub role: String,
    pub scopes: Vec<String>,
    /// Present for device connections.
    pub device: Option<HelloDevice>,
}

pub struct HelloDevice {
    pub device_id: String,
    pub token: String,
    pub issued_at_ms: i64,
}

fn state_dir_text(gw: &Gateway) -> String {
    gw.settings().state_dir.as_ref().map_or_else(
        || "/home/node/.openclaw".to_string(),
        |dir| dir.display().to_string(),
    )
}

fn sessions_path(gw: &Gateway) -> String {
    format!(
        "{}/agents/main/agent/openclaw-agent.sqlite",
        state_dir_text(gw)
    )
}

#[must_use]
pub fn event_loop() -> Value {
    json!({"degraded": false, "degradedSinceMs": null, "reasons": [], "intervalMs": 1000,
        "delayP99Ms": 1.0, "delayMaxMs": 1.0, "utilization": 0.01, "cpuCoreRatio": 0.01,
        "cpuBreakdown": {"mainThreadCoreRatio": 0.01, "hostUtilization": 0.01, "hostCpuCount": 2,
            "workerCoreRatio": 0, "otherThreadsCoreRatio": 0}})
}

fn heartbeat(state: &State) -> Value {
    let every_ms = state.knobs.heartbeat_every_ms.unwrap_or(1_800_000);
    let every = format!("{}m", every_ms / 60_000);
    json!({"enabled": every_ms > 0, "every": every, "everyMs": every_ms,
        "prompt": extras()["heartbeatPrompt"], "target": "owner", "ackMaxChars": 300})
}

/// `cron.status`: the scheduler on, and its next wake as programmed.
#[must_use]
pub fn cron_status(state: &State) -> Value {
    let next = state.knobs.cron_next_wake_ms;
    json!({"enabled": true, "storage": "sqlite",
        "jobs": u32::from(next.is_some()), "nextWakeAtMs": next})
}

/// `health` (transcripts/health.jsonl), with the Telegram channel when present.
#[must_use]
pub fn health(gw: &Gateway, state: &State) -> Value {
    let channels = channels_status(gw, state);
    let path = sessions_path(gw);
    json!({
        "ok": true, "ts": now_ms(), "durationMs": 1,
        "plugins": {"loaded": extras()["pluginsLoaded"], "errors": [], "unavailable": []},
        "configReload": {"hotReloadStatus": "active"},
        "channels": channels["channels"],
        "channelOrder": channels["channelOrder"],
        "channelLabels": channels["channelLabels"],
        "heartbeatSeconds": 1800,
        "defaultAgentId": "main",
        "agents": [{"agentId": "main", "isDefault": true, "heartbeat": heartbeat(state),
            "sessions": {"path": path, "count": 0, "recent": []}}],
        "sessions": {"path": path, "count": 0, "recent": []},
        "modelRuntime": {"degraded": false, "pendingAgents": []},
        "eventLoop": event_loop(),
    })
}

fn rss_bytes() -> u64 {
    // /proc/self/statm: size resident ... in pages; 4 KiB pages on x86_64.
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|text| text.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// `status` (transcripts/status.jsonl); `paths` only for admins, as the real one.
#[must_use]
pub fn status(gw: &Gateway, admin: bool) -> Value {
    let path = sessions_path(gw);
    let mut sessions = json!({"count": 0, "defaults": {"model": "claude-opus-4-6", "contextTokens": 200_000},
        "recent": [], "byAgent": [{"agentId": "main", "path": path, "count": 0, "recent": []}]});
    if admin {
        sessions["paths"] = json!([path]);
    }
    let rss = rss_bytes();
    json!({
        "runtimeVersion": VERSION,
        "hostDesktop": {"enabled": false, "state": "disabled", "port": 5900},
        "heartbeat": {"defaultAgentId": "main", "agents": [{"agentId": "main", "enabled": true,
            "every": "30m", "everyMs": 1_800_000, "waitingForRoute": true}]},
        "channelSummary": [],
        "queuedSystemEvents": [],
        "degradedSecretOwners": [],
        "degradedPlugins": [],
        "tasks": {"total": 0, "active": 0, "terminal": 0, "failures": 0,
            "byStatus": {"queued": 0, "running": 0, "succeeded": 0, "failed": 0, "timed_out": 0, "cancelled": 0, "lost": 0},
            "byRuntime": {"subagent": 0, "acp": 0, "cli": 0, "cron": 0}},
        "taskAudit": {"total": 0, "warnings": 0, "errors": 0, "byCode": {"stale_queued": 0, "stale_running": 0,
            "lost": 0, "delivery_failed": 0, "missing_cleanup": 0, "inconsistent_timestamps": 0}},
        "sessions": sessions,
        "modelRuntime": {"degraded": false, "pendingAgents": []},
        "eventLoop": event_loop(),
        "processMemory": {"rssBytes": rss, "heapUsedBytes": 0, "heapTotalBytes": 0, "externalBytes": 0, "arrayBuffersBytes": 0},
        "workerPools": {
            "transcriptReconciliation": {"maxWorkers": 1, "workers": 0, "workersCreated": 0, "activeTasks": 0, "pendingTasks": 0},
            "modelCatalog": {"maxWorkers": 1, "workers": 0, "workersCreated": 0, "activeTasks": 0, "pendingTasks": 0}},
        "pid": std::process::id(),
        "shutdownBudget": {"timeoutMs": 325_000, "reserveMs": 10_000, "nativeStopBudget": false,
            "activeWork": {"rootRequests": 0, "cronRuns": 0, "sessionMutations": 0, "terminalPersistence": 0, "lifecycleWrites": 0},
            "writeCustody": []},
    })
}

fn primary_model(state: &State) -> String {
    state
        .config
        .string_at("agents.defaults.model.primary")
        .unwrap_or_else(|| "anthropic/claude-opus-4-6".to_string())
}

fn thinking() -> (Value, Value) {
    let levels = ["low", "medium", "high", "xhigh", "max", "ultra"];
    let objects: Vec<Value> = levels
        .iter()
        .map(|id| json!({"id": id, "label": id}))
        .collect();
    (json!(objects), json!(levels))
}

/// `agents.list` (transcripts/agents-list.jsonl).
#[must_use]
pub fn agents_list(gw: &Gateway, state: &State) -> Value {
    let (levels, options) = thinking();
    json!({"defaultId": "main", "ownership": "sole", "selectionRequired": false, "mainKey": "main",
        "scope": "per-sender",
        "agents": [{"id": "main", "workspace": format!("{}/workspace", state_dir_text(gw)), "workspaceGit": false,
            "agentRuntime": {"id": "codex", "cloudPlacementSupported": false, "devicePlacementSupported": false, "source": "implicit"},
            "thinkingLevels": levels, "thinkingOptions": options, "thinkingDefault": "medium",
            "model": {"primary": primary_model(state)}, "defaultPermissionMode": "full"}]})
}

/// `models.list`: the configured primary model (the recording had none configured).
#[must_use]
pub fn models_list(state: &State) -> Value {
    let Some(primary) = state.config.string_at("agents.defaults.model.primary") else {
        return json!({"models": []});
    };
    let (provider, id) = primary
        .split_once('/')
        .unwrap_or(("anthropic", primary.as_str()));
    json!({"models": [{"id": id, "name": id, "provider": provider}]})
}

/// `sessions.list` (transcripts/sessions-list.jsonl): no sessions, or one
/// with a run going on when the test says so.
#[must_use]
pub fn sessions_list(state: &State, params: &Value) -> Value {
    let (levels, options) = thinking();
    let limit = params.get("limit").and_then(Value::as_u64).unwrap_or(100);
    json!({"ts": now_ms(), "path": "(multiple)", "count": 0, "totalCount": 0, "limitApplied": limit,
    "nextOffset": null, "hasMore": false, "owners": [],
    "defaults": {"modelProvider": "anthropic", "model": "claude-opus-4-6", "contextTokens": 200_000,
        "agentRuntime": {"id": "codex", "cloudPlacementSupported": false, "devicePlacementSupported": false, "source": "implicit"},
        "thinkingLevels": levels, "thinkingOptions": options, "thinkingDefault": "medium",
        "modelSelectionTarget": "session"},
    "sessions": if state.knobs.active_run {
        json!([{"key": "agent:main:main", "kind": "direct", "updatedAt": now_ms(),
            "hasActiveRun": true, "activeRunIds": ["run-1"]}])
    } else {
        json!([])
    }})
}

/// The Telegram channel state: the programmed override, else derived from config
/// (`channels.telegram` present and not disabled = configured, running, connected).
#[must_use]
pub fn telegram_state(state: &State) -> Option<ChannelOverride> {
    if let Some(programmed) = &state.telegram {
        return Some(programmed.clone());
    }
    let telegram = state.config.parsed().pointer("/channels/telegram")?;
    let enabled = telegram
        .get("enabled")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let token_source = if telegram.get("botToken").is_some() {
        "config"
    } else {
        "env"
    };
    Some(ChannelOverride {
        enabled,
        running: enabled,
        connected: enabled,
        token_source: token_source.to_string(),
        ..ChannelOverride::default()
    })
}

/// `channels.status` (transcripts/channels-status.jsonl; Telegram fields from the
/// Telegram plugin's status adapter).
#[must_use]
pub fn channels_status(_gw: &Gateway, state: &State) -> Value {
    let mut payload = json!({"ts": now_ms(), "channelOrder": [], "channelLabels": {},
        "channelDetailLabels": {}, "channelSystemImages": {}, "channelMeta": [],
        "eventLoop": event_loop(), "channels": {}, "channelAccounts": {},
        "channelDefaultAccountId": {}, "statusIssues": []});
    let Some(telegram) = telegram_state(state) else {
        return payload;
    };
    let running = telegram.running && state.telegram_stopped_at.is_none();
    let connected = telegram.connected && running;
    let last_start = state.telegram_started_at;
    let last_stop = state.telegram_stopped_at;
    payload["channelOrder"] = json!(["telegram"]);
    payload["channelLabels"] = json!({"telegram": "Telegram"});
    payload["channelDetailLabels"] = json!({"telegram": "Telegram Bot"});
    payload["channelSystemImages"] = json!({"telegram": "paperplane"});
    payload["channelMeta"] = json!([{"id": "telegram", "label": "Telegram", "detailLabel": "Telegram Bot", "systemImage": "paperplane"}]);
    payload["channels"] = json!({"telegram": {
        "configured": telegram.configured, "running": running, "lastStartAt": last_start,
        "lastStopAt": last_stop, "lastError": telegram.last_error, "tokenSource": telegram.token_source,
        "lastProbeAt": null, "mode": telegram.mode}});
    payload["channelAccounts"] = json!({"telegram": [{
        "accountId": "default", "enabled": telegram.enabled, "configured": telegram.configured,
        "running": running, "connected": connected, "lastError": telegram.last_error,
        "lastStartAt": last_start, "lastStopAt": last_stop, "mode": telegram.mode,
        "lastInboundAt": state.knobs.last_inbound_at_ms,
        "tokenSource": telegram.token_source, "botTokenSource": telegram.token_source}]});
    payload["channelDefaultAccountId"] = json!({"telegram": "default"});
    payload["statusIssues"] = json!(telegram.status_issues);
    payload
}

/// `skills.status` (transcripts/skills-status.jsonl), `disabled` from
/// `skills.entries.<key>.enabled`.
#[must_use]
pub fn skills_status(gw: &Gateway, state: &State) -> Value {
    let skills: Vec<Value> = skills_fixture()
        .as_array()
        .map(|skills| {
            skills
                .iter()
                .map(|skill| {
                    let mut skill = skill.clone();
                    let key = skill["skillKey"].as_str().unwrap_or("").to_string();
                    let disabled = state
                        .config
                        .bool_at(&format!("skills.entries.{key}.enabled"))
                        == Some(false);
                    if disabled {
                        skill["disabled"] = json!(true);
                        skill["eligible"] = json!(false);
                        skill["modelVisible"] = json!(false);
                        skill["commandVisible"] = json!(false);
                    }
                    skill
                })
                .collect()
        })
        .unwrap_or_default();
    let dir = state_dir_text(gw);
    json!({"workspaceDir": format!("{dir}/workspace"), "managedSkillsDir": format!("{dir}/skills"),
        "agentId": "main", "skills": skills})
}

/// Finds a skill of the fixture by name or key.
#[must_use]
pub fn find_skill(name: &str) -> Option<Value> {
    skills_fixture()
        .as_array()?
        .iter()
        .find(|skill| skill["name"] == name || skill["skillKey"] == name)
        .cloned()
}

/// The hello-ok payload (transcripts/remote-connect-paired.jsonl). Admin-only
/// snapshot parts are left out without `operator.admin`, as the real one does.
#[must_use]
pub fn hello_ok(gw: &Gateway, state: &State, auth: &HelloAuth, conn_id: &str, host: &str) -> Value {
    let admin = auth.scopes.iter().any(|scope| scope == "operator.admin");
    let settings = gw.settings();
    let uptime = u64::try_from(state.booted_at.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut snapshot = json!({
        "suspension": {"phase": "accepting"},
        "presence": [{"host": settings.hostname, "ip": "0.0.0.0", "version": VERSION,
            "platform": "linux", "deviceFamily": "Linux", "mode": "gateway", "reason": "self",
            "instanceId": state.boot_id,
            "text": format!("Gateway: {} · app {VERSION} · mode gateway · reason self", settings.hostname),
            "ts": now_ms()}],
        "health": health(gw, state),
        "stateVersion": {"presence": 1, "health": 1},
        "uptimeMs": uptime,
        "appliedConfigHash": state.config.applied_revision(),
        "sessionDefaults": {"defaultAgentId": "main", "modelConfigured": state.config.string_at("agents.defaults.model.primary").is_some(),
            "ownership": "sole", "selectionRequired": false, "mainKey": "main",
            "mainSessionKey": "agent:main:main", "scope": "per-sender"},
    });
    if admin {
        snapshot["updateSchedule"] = json!({"channel": "stable", "autoEnabled": false});
        snapshot["configPath"] = json!(state.config.path.display().to_string());
        snapshot["stateDir"] = json!(state_dir_text(gw));
        snapshot["authMode"] = json!("token");
    }
    let recovery_seed = match &auth.device {
        Some(device) => format!("device:{}", device.device_id),
        None => "shared".to_string(),
    };
    let mut auth_json = json!({"method": auth.method, "role": auth.role, "scopes": auth.scopes,
        "recoveryScope": crate::config::opaque_hash(recovery_seed.as_bytes())
            .trim_start_matches("hmac-sha256:v1:").to_string()});
    if let Some(device) = &auth.device {
        auth_json["recoveryMigrationAllowed"] = json!(true);
        auth_json["deviceToken"] = json!(device.token);
        auth_json["issuedAtMs"] = json!(device.issued_at_ms);
    }
    json!({
        "type": "hello-ok",
        "protocol": 4,
        "server": {"version": VERSION, "buildId": BUILD_ID, "bootId": state.boot_id,
            "controlUiBuildSource": "bundled", "connId": conn_id},
        "features": extras()["features"],
        "snapshot": snapshot,
        "controlUiWidgetKinds": extras()["controlUiWidgetKinds"],
        "controlUiLinkReaders": extras()["controlUiLinkReaders"],
        "pluginSurfaceUrls": {"canvas": format!("http://{host}/__openclaw__/cap/{}", crate::pairing::random_token())},
        "auth": auth_json,
        "policy": {"maxPayload": 26_214_400, "maxBufferedBytes": 52_428_800,
            "tickIntervalMs": u64::try_from(settings.tick_interval.as_millis()).unwrap_or(u64::MAX),
            "attachments": {"maxBytes": 19_464_192, "maxImageBytes": 6_291_456},
            "allowedSessionVisibilities": ["shared", "read-only", "suggest", "draft"],
            "hasMultipleSessionSharingIdentities": false},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_parse() {
        assert!(extras()["features"]["methods"].as_array().unwrap().len() > 400);
        assert_eq!(skills_fixture().as_array().unwrap().len(), 57);
    }
}
