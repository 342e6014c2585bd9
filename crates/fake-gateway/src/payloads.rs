//! Result payloads, shaped after the recorded real ones (transcripts/*.jsonl and the
//! `manualcell` comparison cell): hello-ok, health, status, agents, models, sessions,
//! usage (per day, per model), channels (Telegram) and skills.

use std::sync::OnceLock;

use chrono::{Duration as ChronoDuration, NaiveDate};
use serde_json::{Value, json};

use crate::state::{BUILD_ID, ChannelOverride, Gateway, State, UsageEntry, VERSION, now_ms};

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

fn heartbeat() -> Value {
    json!({"enabled": true, "every": "30m", "everyMs": 1_800_000,
        "prompt": extras()["heartbeatPrompt"], "target": "owner", "ackMaxChars": 300})
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
        "agents": [{"agentId": "main", "isDefault": true, "heartbeat": heartbeat(),
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

/// `sessions.list` (transcripts/sessions-list.jsonl): no sessions.
#[must_use]
pub fn sessions_list(params: &Value) -> Value {
    let (levels, options) = thinking();
    let limit = params.get("limit").and_then(Value::as_u64).unwrap_or(100);
    json!({"ts": now_ms(), "path": "(multiple)", "count": 0, "totalCount": 0, "limitApplied": limit,
        "nextOffset": null, "hasMore": false, "owners": [],
        "defaults": {"modelProvider": "anthropic", "model": "claude-opus-4-6", "contextTokens": 200_000,
            "agentRuntime": {"id": "codex", "cloudPlacementSupported": false, "devicePlacementSupported": false, "source": "implicit"},
            "thinkingLevels": levels, "thinkingOptions": options, "thinkingDefault": "medium",
            "modelSelectionTarget": "session"},
        "sessions": []})
}

/// The days a usage query covers, oldest first.
pub struct DateRange {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl DateRange {
    fn days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.start.iter_days().take_while(|day| *day <= self.end)
    }

    fn len(&self) -> i64 {
        (self.end - self.start).num_days() + 1
    }
}

/// Reads `startDate`/`endDate`, else `range`, else `days` (default 30 ending today),
/// as `usage.cost` does (PROTOCOL.md §3.8). Time zones are treated as UTC.
///
/// # Errors
/// The message of the `INVALID_REQUEST`.
pub fn date_range(
    params: &Value,
    today: NaiveDate,
    earliest: Option<NaiveDate>,
) -> Result<DateRange, String> {
    let start = params.get("startDate").and_then(Value::as_str);
    let end = params.get("endDate").and_then(Value::as_str);
    match (start, end) {
        (Some(start), Some(end)) => {
            let parse = |text: &str| NaiveDate::parse_from_str(text, "%Y-%m-%d");
            let (Ok(start), Ok(end)) = (parse(start), parse(end)) else {
                return Err("startDate and endDate must be YYYY-MM-DD".to_string());
            };
            if end < start {
                return Err("endDate must not be before startDate".to_string());
            }
            if (end - start).num_days() >= 36_600 {
                return Err("date range too large".to_string());
            }
            return Ok(DateRange { start, end });
        }
        (None, None) => {}
        _ => return Err("startDate and endDate must be provided together".to_string()),
    }
    let days = match params.get("range").and_then(Value::as_str) {
        Some("7d") => 7,
        Some("30d") => 30,
        Some("90d") => 90,
        Some("1y") => 365,
        Some("all") => earliest.map_or(1, |first| (today - first).num_days().max(0) + 1),
        _ => match params.get("days") {
            Some(Value::Number(number)) => number.as_f64().unwrap_or(30.0).floor() as i64,
            Some(Value::String(text)) => text.trim().parse::<i64>().unwrap_or(30),
            _ => 30,
        },
    };
    let days = days.clamp(1, 36_600);
    Ok(DateRange {
        start: today - ChronoDuration::days(days - 1),
        end: today,
    })
}

#[derive(Default, Clone, Copy)]
struct Totals {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    input_cost: f64,
    output_cost: f64,
    cache_read_cost: f64,
    cache_write_cost: f64,
    total_cost: f64,
}

impl Totals {
    fn add(&mut self, entry: &UsageEntry) {
        self.input += entry.input;
        self.output += entry.output;
        self.cache_read += entry.cache_read;
        self.cache_write += entry.cache_write;
        self.input_cost += entry.input_cost;
        self.output_cost += entry.output_cost;
        self.cache_read_cost += entry.cache_read_cost;
        self.cache_write_cost += entry.cache_write_cost;
        self.total_cost += entry.total_cost.unwrap_or(
            entry.input_cost + entry.output_cost + entry.cache_read_cost + entry.cache_write_cost,
        );
    }

    fn tokens(&self) -> u64 {
        self.input + self.output + self.cache_read + self.cache_write
    }

    fn json(&self) -> Value {
        json!({"input": self.input, "output": self.output, "cacheRead": self.cache_read,
            "cacheWrite": self.cache_write, "totalTokens": self.tokens(), "totalCost": self.total_cost,
            "inputCost": self.input_cost, "outputCost": self.output_cost,
            "cacheReadCost": self.cache_read_cost, "cacheWriteCost": self.cache_write_cost,
            "missingCostEntries": 0})
    }
}

fn entries_in<'a>(
    usage: &'a [UsageEntry],
    range: &DateRange,
) -> impl Iterator<Item = &'a UsageEntry> {
    let (start, end) = (range.start, range.end);
    usage
        .iter()
        .filter(move |entry| entry.date >= start && entry.date <= end)
}

/// `usage.cost`: per-day totals, zero-filled (transcripts/usage-cost.jsonl).
#[must_use]
pub fn usage_cost(usage: &[UsageEntry], range: &DateRange) -> Value {
    let mut totals = Totals::default();
    let daily: Vec<Value> = range
        .days()
        .map(|day| {
            let mut day_totals = Totals::default();
            for entry in usage.iter().filter(|entry| entry.date == day) {
                day_totals.add(entry);
            }
            let mut value = day_totals.json();
            value["date"] = json!(day.format("%Y-%m-%d").to_string());
            value
        })
        .collect();
    for entry in entries_in(usage, range) {
        totals.add(entry);
    }
    json!({"updatedAt": now_ms(), "days": range.len(), "daily": daily, "totals": totals.json(),
        "cacheStatus": {"status": "fresh", "cachedFiles": 0, "pendingFiles": 0, "staleFiles": 0}})
}

/// `sessions.usage`: the aggregates a biller needs (`byModel`, `modelDaily`,
/// `costDaily`, `daily`, `byAgent`), shaped like `src/shared/usage-aggregates.ts`.
#[must_use]
pub fn sessions_usage(usage: &[UsageEntry], range: &DateRange) -> Value {
    use std::collections::BTreeMap;
    let mut totals = Totals::default();
    let mut by_model: BTreeMap<(String, String), (Totals, u64)> = BTreeMap::new();
    let mut by_provider: BTreeMap<String, (Totals, u64)> = BTreeMap::new();
    let mut by_agent: BTreeMap<String, Totals> = BTreeMap::new();
    let mut by_day: BTreeMap<NaiveDate, (Totals, u64)> = BTreeMap::new();
    let mut model_daily: BTreeMap<(NaiveDate, String, String), (Totals, u64)> = BTreeMap::new();
    let mut messages = 0;
    for entry in entries_in(usage, range) {
        totals.add(entry);
        messages += entry.count;
        let model = by_model
            .entry((entry.provider.clone(), entry.model.clone()))
            .or_default();
        model.0.add(entry);
        model.1 += entry.count;
        let provider = by_provider.entry(entry.provider.clone()).or_default();
        provider.0.add(entry);
        provider.1 += entry.count;
        by_agent
            .entry(entry.agent_id.clone())
            .or_default()
            .add(entry);
        let day = by_day.entry(entry.date).or_default();
        day.0.add(entry);
        day.1 += entry.count;
        let model_day = model_daily
            .entry((entry.date, entry.provider.clone(), entry.model.clone()))
            .or_default();
        model_day.0.add(entry);
        model_day.1 += entry.count;
    }
    let by_cost = |a: &Value, b: &Value| {
        let cost = |v: &Value| v["totals"]["totalCost"].as_f64().unwrap_or(0.0);
        cost(b).total_cmp(&cost(a))
    };
    let mut by_model_json: Vec<Value> = by_model
        .iter()
        .map(|((provider, model), (t, count))| {
            json!({"provider": provider, "model": model, "count": count, "totals": t.json()})
        })
        .collect();
    by_model_json.sort_by(by_cost);
    let mut by_provider_json: Vec<Value> = by_provider
        .iter()
        .map(|(provider, (t, count))| json!({"provider": provider, "count": count, "totals": t.json()}))
        .collect();
    by_provider_json.sort_by(by_cost);
    let by_agent_json: Vec<Value> = by_agent
        .iter()
        .map(|(agent, t)| json!({"agentId": agent, "totals": t.json()}))
        .collect();
    let date = |day: &NaiveDate| day.format("%Y-%m-%d").to_string();
    let cost_daily: Vec<Value> = by_day
        .iter()
        .map(|(day, (t, _))| {
            let mut value = t.json();
            value["date"] = json!(date(day));
            value
        })
        .collect();
    let daily: Vec<Value> = by_day
        .iter()
        .map(|(day, (t, count))| {
            json!({"date": date(day), "tokens": t.tokens(), "cost": t.total_cost, "messages": count,
                "toolCalls": 0, "errors": 0})
        })
        .collect();
    let model_daily_json: Vec<Value> = model_daily
        .iter()
        .map(|((day, provider, model), (t, count))| {
            json!({"date": date(day), "provider": provider, "model": model, "tokens": t.tokens(),
                "cost": t.total_cost, "count": count})
        })
        .collect();
    let session_count = u64::from(messages > 0);
    json!({
        "updatedAt": now_ms(),
        "startDate": date(&range.start),
        "endDate": date(&range.end),
        "sessions": [],
        "totals": totals.json(),
        "aggregates": {
            "sessionCount": session_count,
            "messages": {"total": messages * 2, "user": messages, "assistant": messages,
                "toolCalls": 0, "toolResults": 0, "errors": 0},
            "tools": {"totalCalls": 0, "uniqueTools": 0, "tools": []},
            "byModel": by_model_json,
            "byProvider": by_provider_json,
            "byAgent": by_agent_json,
            "byChannel": [],
            "byCreator": [],
            "costDaily": cost_daily,
            "dailyLatency": [],
            "modelDaily": model_daily_json,
            "daily": daily,
        },
        "creatorOptions": [],
        "cacheStatus": {"status": "fresh", "cachedFiles": 0, "pendingFiles": 0, "staleFiles": 0, "refreshedAt": now_ms()},
    })
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
        "recoveryScope": crate::config_doc::opaque_hash(recovery_seed.as_bytes())
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

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn entry(date: &str, model: &str, input: u64, cost: f64) -> UsageEntry {
        serde_json::from_value(
            json!({"date": date, "model": model, "input": input, "output": 10,
            "inputCost": cost}),
        )
        .unwrap()
    }

    #[test]
    fn fixtures_parse() {
        assert!(extras()["features"]["methods"].as_array().unwrap().len() > 400);
        assert_eq!(skills_fixture().as_array().unwrap().len(), 57);
    }

    /// Default 30 days ending today; `days` as number or string; both dates or none.
    #[test]
    fn date_ranges_follow_usage_cost() {
        let today = day("2026-11-25");
        let range = date_range(&json!({}), today, None).unwrap();
        assert_eq!((range.start, range.len()), (day("2026-10-27"), 30));
        let range = date_range(&json!({"days": "7"}), today, None).unwrap();
        assert_eq!(range.start, day("2026-11-19"));
        let range = date_range(
            &json!({"startDate": "2026-11-20", "endDate": "2026-11-21"}),
            today,
            None,
        )
        .unwrap();
        assert_eq!(range.len(), 2);
        assert_eq!(
            date_range(&json!({"startDate": "2026-11-01"}), today, None)
                .err()
                .as_deref(),
            Some("startDate and endDate must be provided together")
        );
    }

    /// Programmed figures appear per day in usage.cost and per model in sessions.usage.
    #[test]
    fn usage_figures_add_up() {
        let usage = vec![
            entry("2026-11-20", "claude-opus-4-6", 100, 1.0),
            entry("2026-11-20", "claude-haiku-4-5", 50, 0.25),
            entry("2026-11-21", "claude-opus-4-6", 10, 0.5),
            entry("2026-10-01", "claude-opus-4-6", 999, 9.0),
        ];
        let range = DateRange {
            start: day("2026-11-19"),
            end: day("2026-11-21"),
        };
        let cost = usage_cost(&usage, &range);
        assert_eq!(cost["days"], json!(3));
        assert_eq!(cost["daily"][0]["totalTokens"], json!(0));
        assert_eq!(cost["daily"][1]["input"], json!(150));
        assert_eq!(cost["daily"][1]["totalCost"], json!(1.25));
        assert_eq!(cost["totals"]["totalCost"], json!(1.75));
        let sessions = sessions_usage(&usage, &range);
        let by_model = sessions["aggregates"]["byModel"].as_array().unwrap();
        assert_eq!(by_model[0]["model"], json!("claude-opus-4-6"));
        assert_eq!(by_model[0]["totals"]["input"], json!(110));
        assert_eq!(
            sessions["aggregates"]["modelDaily"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert_eq!(sessions["startDate"], json!("2026-11-19"));
    }
}
