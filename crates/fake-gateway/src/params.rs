//! The schemas of the frames and of the method params the fake checks, copied from
//! the gateway-protocol TypeBox schemas, and the client ids and modes they allow.

use crate::validate::{
    Schema, array, bounded, closed, date, int, literals, non_empty, one_of, opt, req, string,
};

pub const CLIENT_IDS: &[&str] = &[
    "webchat-ui",
    "openclaw-control-ui",
    "openclaw-browser-copilot",
    "openclaw-tui",
    "webchat",
    "cli",
    "gateway-client",
    "openclaw-macos",
    "openclaw-linux",
    "openclaw-ios",
    "openclaw-watchos",
    "openclaw-android",
    "node-host",
    "openclaw-worker",
    "test",
    "fingerprint",
    "openclaw-probe",
];

pub const CLIENT_MODES: &[&str] = &[
    "webchat", "cli", "ui", "backend", "node", "worker", "probe", "test",
];

/// `RequestFrameSchema`.
pub fn request_frame() -> Schema {
    closed(vec![
        req("type", Schema::Const("req")),
        req("id", non_empty()),
        req("method", non_empty()),
        opt("params", Schema::Any),
        opt("traceparent", bounded(0, 128)),
        opt("expectedProfileId", bounded(1, 128)),
    ])
}

/// `ConnectParamsSchema`.
pub fn connect_params() -> Schema {
    closed(vec![
        req("minProtocol", int(Some(1))),
        req("maxProtocol", int(Some(1))),
        req(
            "client",
            closed(vec![
                req("id", one_of(CLIENT_IDS)),
                opt("displayName", non_empty()),
                req("version", non_empty()),
                opt("buildId", bounded(1, 96)),
                req("platform", non_empty()),
                opt("deviceFamily", non_empty()),
                opt("modelIdentifier", non_empty()),
                opt("timeZone", bounded(1, 64)),
                req("mode", one_of(CLIENT_MODES)),
                opt("instanceId", non_empty()),
            ]),
        ),
        opt("caps", array(non_empty())),
        opt("commands", array(non_empty())),
        opt("computerUse", Schema::Any),
        opt("workerRuns", Schema::Any),
        opt("permissions", Schema::Record(Box::new(Schema::Bool))),
        opt("pathEnv", string()),
        opt("role", non_empty()),
        opt("scopes", array(non_empty())),
        opt("modelCatalog", Schema::Any),
        opt(
            "device",
            closed(vec![
                req("id", non_empty()),
                req("publicKey", non_empty()),
                req("signature", non_empty()),
                req("signedAt", int(Some(0))),
                req("nonce", non_empty()),
            ]),
        ),
        opt(
            "auth",
            closed(vec![
                opt("token", string()),
                opt("bootstrapToken", string()),
                opt("deviceToken", string()),
                opt("password", string()),
                opt("approvalRuntimeToken", string()),
                opt("agentRuntimeIdentityToken", string()),
            ]),
        ),
        opt("locale", string()),
        opt("userAgent", string()),
    ])
}

/// The param schema of a method the fake validates; `None` = not schema-checked.
#[must_use]
pub fn method_params(method: &str) -> Option<Schema> {
    let schema = match method {
        "config.get" | "agents.list" | "device.pair.list" => closed(vec![]),
        "config.patch" => closed(vec![
            req("raw", non_empty()),
            opt("baseHash", non_empty()),
            opt("sessionKey", string()),
            opt("deliveryContext", Schema::Any),
            opt("note", string()),
            opt("restartDelayMs", int(Some(0))),
            opt("replacePaths", array(non_empty())),
        ]),
        "device.pair.approve" => closed(vec![req("requestId", non_empty())]),
        "cron.status" => closed(vec![]),
        "channels.status" => closed(vec![
            opt("probe", Schema::Bool),
            opt("timeoutMs", int(Some(0))),
            opt("channel", non_empty()),
        ]),
        "channels.start" | "channels.stop" => closed(vec![
            req("channel", non_empty()),
            opt("accountId", string()),
        ]),
        "skills.status" => closed(vec![
            opt("agentId", non_empty()),
            opt("sessionKey", non_empty()),
        ]),
        "skills.install" => Schema::AnyOf(vec![
            closed(vec![
                opt("agentId", non_empty()),
                req("name", non_empty()),
                req("installId", non_empty()),
                opt("dangerouslyForceUnsafeInstall", Schema::Bool),
                opt("timeoutMs", int(Some(1000))),
            ]),
            closed(vec![
                opt("agentId", non_empty()),
                req("source", Schema::Const("clawhub")),
                req("slug", non_empty()),
                opt("version", non_empty()),
                opt("force", Schema::Bool),
                opt("timeoutMs", int(Some(1000))),
            ]),
            closed(vec![
                opt("agentId", non_empty()),
                req("source", Schema::Const("upload")),
                req("uploadId", non_empty()),
                req("slug", non_empty()),
                opt("force", Schema::Bool),
                opt("sha256", non_empty()),
                opt("timeoutMs", int(Some(1000))),
            ]),
        ]),
        "skills.update" => Schema::AnyOf(vec![
            closed(vec![
                req("skillKey", non_empty()),
                opt("enabled", Schema::Bool),
                opt("apiKey", string()),
                opt("env", Schema::Record(Box::new(string()))),
            ]),
            closed(vec![
                opt("agentId", non_empty()),
                req("source", Schema::Const("clawhub")),
                opt("slug", non_empty()),
                opt("all", Schema::Bool),
                opt("force", Schema::Bool),
            ]),
        ]),
        "models.list" => closed(vec![
            opt("agentId", non_empty()),
            opt("sessionKey", non_empty()),
            opt("authProfileId", non_empty()),
            opt("provider", non_empty()),
            opt("includeDetails", Schema::Bool),
            opt("includeProviderCapabilities", Schema::Bool),
            opt("includeDefaultModels", Schema::Bool),
            opt("preparedOnly", Schema::Bool),
            opt("refresh", Schema::Bool),
            opt(
                "view",
                literals(&["default", "configured", "provider-config", "all"]),
            ),
        ]),
        "sessions.list" => closed(vec![
            opt("limit", int(Some(1))),
            opt("offset", int(Some(0))),
            opt("activeMinutes", int(Some(1))),
            opt("activeOnly", Schema::Bool),
            opt("requireLastInteraction", Schema::Bool),
            opt(
                "sortBy",
                literals(&["updatedAt", "lastInteractionAt", "activity"]),
            ),
            opt("includeGlobal", Schema::Bool),
            opt("includeUnknown", Schema::Bool),
            opt("excludeSubagents", Schema::Bool),
            opt("excludeCron", Schema::Bool),
            opt("excludeSystem", Schema::Bool),
            opt("configuredAgentsOnly", Schema::Bool),
            opt("includeDerivedTitles", Schema::Bool),
            opt("includeLastMessage", Schema::Bool),
            opt("includeActivitySummary", Schema::Bool),
            opt("label", string()),
            opt("projectId", non_empty()),
            opt("workspaceDir", non_empty()),
            opt("group", string()),
            opt("pinned", Schema::Bool),
            opt("boardFace", literals(&["chat", "dashboard"])),
            opt("hasBoard", Schema::Bool),
            opt("creatorId", non_empty()),
            opt("ownerId", non_empty()),
            opt("ownerFirst", Schema::Bool),
            opt("involvingMe", Schema::Bool),
            opt("profileRelation", Schema::Any),
            opt("involvingProfileId", non_empty()),
            opt("includePeople", Schema::Bool),
            opt("spawnedBy", non_empty()),
            opt("agentId", non_empty()),
            opt("search", string()),
            opt("archived", Schema::Any),
        ]),
        "sessions.usage" => closed(vec![
            opt("key", non_empty()),
            opt("agentId", non_empty()),
            opt("agentScope", Schema::Const("all")),
            opt("creatorKey", non_empty()),
            opt("startDate", date()),
            opt("endDate", date()),
            opt("mode", literals(&["utc", "gateway", "specific"])),
            opt("range", literals(&["7d", "30d", "90d", "1y", "all"])),
            opt("groupBy", literals(&["instance", "family"])),
            opt("includeHistorical", Schema::Bool),
            opt("utcOffset", string()),
            opt("timeZone", non_empty()),
            opt("limit", int(Some(1))),
            opt("includeContextWeight", Schema::Bool),
        ]),
        "send" => closed(vec![
            req("to", non_empty()),
            opt("message", string()),
            opt("mediaUrl", string()),
            opt("mediaUrls", array(string())),
            opt("buffer", string()),
            opt("filename", string()),
            opt("contentType", string()),
            opt("asVoice", Schema::Bool),
            opt("gifPlayback", Schema::Bool),
            opt("channel", string()),
            opt("accountId", string()),
            opt("agentId", string()),
            opt("replyToId", string()),
            opt("threadId", string()),
            opt("forceDocument", Schema::Bool),
            opt("silent", Schema::Bool),
            opt("parseMode", Schema::Const("HTML")),
            opt("sessionKey", string()),
            req("idempotencyKey", non_empty()),
        ]),
        "agent" => agent_params(),
        _ => return None,
    };
    Some(schema)
}

/// `AgentParamsSchema`: `message` and `idempotencyKey` required; the rest typed
/// loosely where the fake does not use them.
fn agent_params() -> Schema {
    const LOOSE: &[&str] = &[
        "provider",
        "model",
        "to",
        "replyTo",
        "sessionId",
        "sessionKey",
        "expectedExistingSessionId",
        "thinking",
        "attachments",
        "channel",
        "replyChannel",
        "accountId",
        "replyAccountId",
        "threadId",
        "groupId",
        "groupChannel",
        "groupSpace",
        "bestEffortDeliver",
        "lane",
        "cwd",
        "cleanupBundleMcpOnRunEnd",
        "modelRun",
        "promptMode",
        "extraSystemPrompt",
        "bootstrapContextMode",
        "bootstrapContextRunKind",
        "acpTurnSource",
        "internalRuntimeHandoffId",
        "internalExecutionIdentityRetry",
        "internalExecutionIdentityRecoveryAttempt",
        "execApprovalFollowupExpectedSessionId",
        "internalEvents",
        "inputProvenance",
        "suppressPromptPersistence",
        "sessionEffects",
        "sourceReplyDeliveryMode",
        "disableMessageTool",
        "swarmCollector",
        "swarmOutputSchema",
        "forceRestartSafeTools",
        "forceCodeModeTools",
        "voiceWakeTrigger",
        "label",
    ];
    let mut props = vec![
        req("message", non_empty()),
        opt("agentId", non_empty()),
        opt("deliver", Schema::Bool),
        opt("timeout", int(Some(0))),
    ];
    props.extend(LOOSE.iter().map(|name| opt(name, Schema::Any)));
    props.push(req("idempotencyKey", non_empty()));
    closed(props)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::validate::check;

    fn connect(params: Value) -> Option<String> {
        check(&connect_params(), &params)
    }

    fn good_params() -> Value {
        json!({"minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "gateway-client", "version": "0.1.0", "platform": "linux", "mode": "backend"},
            "role": "operator", "scopes": ["operator.admin"], "auth": {"token": "x"}})
    }

    #[test]
    fn accepts_the_recorded_connect_params() {
        assert_eq!(connect(good_params()), None);
    }

    /// Messages exactly as in transcripts/connect-unknown-param, -bad-client-id, -bad-mode.
    #[test]
    fn words_connect_errors_like_the_gateway() {
        let mut params = good_params();
        params["foo"] = json!(1);
        assert_eq!(
            connect(params).as_deref(),
            Some("at root: unexpected property 'foo'")
        );
        let mut params = good_params();
        params["client"]["id"] = json!("my-rust-client");
        assert_eq!(
            connect(params).as_deref(),
            Some("at /client/id: must be equal to one of the allowed values")
        );
        let mut params = good_params();
        params["client"]["mode"] = json!("operator");
        assert_eq!(
            connect(params).as_deref(),
            Some("at /client/mode: must be equal to one of the allowed values")
        );
        let mut params = good_params();
        params["client"].as_object_mut().unwrap().remove("version");
        assert_eq!(
            connect(params).as_deref(),
            Some("at /client: must have required property 'version'")
        );
        let mut params = good_params();
        params["auth"]["extra"] = json!("x");
        assert_eq!(
            connect(params).as_deref(),
            Some("at /auth: unexpected property 'extra'")
        );
        assert_eq!(connect(json!(null)).as_deref(), Some("must be object"));
    }

    /// Messages as recorded from the real cell for method params.
    #[test]
    fn words_method_param_errors_like_the_gateway() {
        let check_method =
            |method: &str, params: Value| check(&method_params(method).unwrap(), &params);
        assert_eq!(
            check_method("sessions.list", json!({"limit": "many"})).as_deref(),
            Some("at /limit: must be integer")
        );
        assert_eq!(
            check_method("send", json!({})).as_deref(),
            Some("must have required property 'to'")
        );
        assert_eq!(
            check_method("agent", json!({})).as_deref(),
            Some("must have required property 'message'")
        );
        assert_eq!(
            check_method("skills.install", json!({})).as_deref(),
            Some(
                "must have required property 'name'; must have required property 'source'; must match a schema in anyOf"
            )
        );
        assert_eq!(
            check_method("skills.update", json!({})).as_deref(),
            Some(
                "must have required property 'skillKey'; must have required property 'source'; must match a schema in anyOf"
            )
        );
        assert_eq!(
            check_method("config.get", json!({"x": 1})).as_deref(),
            Some("at root: unexpected property 'x'")
        );
        assert_eq!(
            check_method("sessions.usage", json!({"days": 1})).as_deref(),
            Some("at root: unexpected property 'days'")
        );
        assert_eq!(
            check_method("channels.stop", json!({})).as_deref(),
            Some("must have required property 'channel'")
        );
        assert_eq!(
            check_method("config.patch", json!({})).as_deref(),
            Some("must have required property 'raw'")
        );
    }
}
