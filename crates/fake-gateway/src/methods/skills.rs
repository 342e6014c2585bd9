//! `skills.install` (from the recorded skill list, or the programmed failure) and
//! `skills.update` (config mode: `skills.entries.<skillKey>`).

use serde_json::{Value, json};

use crate::methods::{Out, Reply, invalid, ok};
use crate::payloads;
use crate::state::{Audience, Gateway, now_ms};

pub fn install(gw: &Gateway, id: &str, params: &Value) -> Reply {
    if params.get("source").is_some() {
        let slug = params.get("slug").and_then(Value::as_str).unwrap_or("");
        let failure = json!({"ok": false, "message": format!("ClawHub is unreachable: cannot install {slug}"),
            "stdout": "", "stderr": "", "code": null});
        return Reply::one(Out::Res(
            json!({"type": "res", "id": id, "ok": false, "payload": failure,
            "error": {"code": "UNAVAILABLE", "message": failure["message"]}}),
        ));
    }
    let name = params.get("name").and_then(Value::as_str).unwrap_or("");
    let install_id = params
        .get("installId")
        .and_then(Value::as_str)
        .unwrap_or("");
    let fail = |message: String| {
        let payload =
            json!({"ok": false, "message": message, "stdout": "", "stderr": "", "code": null});
        Reply::one(Out::Res(
            json!({"type": "res", "id": id, "ok": false, "payload": payload,
            "error": {"code": "UNAVAILABLE", "message": message}}),
        ))
    };
    let Some(skill) = payloads::find_skill(name) else {
        return fail(format!("Skill not found: {name}"));
    };
    let declared = skill["install"]
        .as_array()
        .is_some_and(|options| options.iter().any(|option| option["id"] == install_id));
    if !declared {
        return fail(format!("Installer not found: {install_id}"));
    }
    let programmed = gw.state().knobs.skills_install.clone();
    match programmed {
        Some(outcome) if outcome.get("ok") == Some(&json!(false)) => {
            let message = outcome["message"]
                .as_str()
                .unwrap_or("install failed")
                .to_string();
            let payload = json!({"ok": false, "message": message,
                "stdout": outcome.get("stdout").cloned().unwrap_or(json!("")),
                "stderr": outcome.get("stderr").cloned().unwrap_or(json!("")),
                "code": outcome.get("code").cloned().unwrap_or(json!(1))});
            Reply::one(Out::Res(
                json!({"type": "res", "id": id, "ok": false, "payload": payload,
                "error": {"code": "UNAVAILABLE", "message": message}}),
            ))
        }
        _ => Reply::one(Out::Res(ok(
            id,
            json!({"ok": true, "message": format!("Installed {name} ({install_id})"), "stdout": "", "stderr": "", "code": 0}),
        ))),
    }
}

pub fn update(gw: &Gateway, id: &str, params: &Value) -> Reply {
    if params.get("source").is_some() {
        let slug = params.get("slug").and_then(Value::as_str);
        let all = params.get("all").and_then(Value::as_bool).unwrap_or(false);
        return match (slug, all) {
            (None, false) => Reply::one(Out::Res(invalid(
                id,
                "clawhub skills.update requires \"slug\" or \"all\"",
            ))),
            (Some(_), true) => Reply::one(Out::Res(invalid(
                id,
                "clawhub skills.update accepts either \"slug\" or \"all\", not both",
            ))),
            _ => Reply::one(Out::Res(ok(
                id,
                json!({"ok": true, "skillKey": slug.unwrap_or("*"), "config": {"source": "clawhub", "results": []}}),
            ))),
        };
    }
    let skill_key = params.get("skillKey").and_then(Value::as_str).unwrap_or("");
    let (entry, hash, path) = {
        let mut state = gw.state();
        let entry = state.config.update_skill_entry(skill_key, params);
        (
            entry,
            state.config.hash(),
            state.config.path.display().to_string(),
        )
    };
    gw.broadcast(
        "config.changed",
        json!({"path": path, "hash": hash, "ts": now_ms()}),
        Audience::Read,
    );
    gw.broadcast(
        "skills.changed",
        json!({"reason": "config"}),
        Audience::Read,
    );
    Reply::one(Out::Res(ok(
        id,
        json!({"ok": true, "skillKey": skill_key, "config": entry}),
    )))
}
