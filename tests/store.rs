//! The store: typed records survive a reopen, a file from a newer binary is
//! refused with a clear message, and many processes share one store file.

mod common;

use std::process::Stdio;

use common::{TestEnv, assert_ok, json, stderr};
use mtp::store::{AuditEntry, Outcome, Store};
use mtp::tenant::{Secret, SecretKind, TenantId};

/// A store file from a newer schema is refused, naming what to do.
#[test]
fn a_store_from_a_newer_binary_is_refused() {
    let env = TestEnv::new("a_store_from_a_newer_binary_is_refused", 19400, "3s");
    assert_ok(&env.mtp(&["tenant", "list"]));
    mtp::store::force_schema_version(
        &env.data_dir().join("mtp.redb"),
        mtp::store::SCHEMA_VERSION + 1,
    )
    .unwrap();
    let output = env.mtp(&["tenant", "list"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("written by a newer MTP Admin") && err.contains("upgrade mtp"),
        "{err}"
    );
}

/// Secrets round-trip and go with their tenant; the audit log is append-only
/// and ordered.
#[test]
fn secrets_and_audit_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mtp.redb");
    let store = Store::open(&path).unwrap();
    let acme: TenantId = "acme".parse().unwrap();
    store
        .put_secret(&acme, SecretKind::GatewayToken, &Secret::new("gw".into()))
        .unwrap();
    store
        .put_secret(&acme, SecretKind::BotToken, &Secret::new("bot".into()))
        .unwrap();
    let reopened = Store::open(&path).unwrap();
    let secrets = reopened.secrets(&acme).unwrap();
    assert_eq!(
        secrets
            .iter()
            .map(|(kind, value)| (*kind, value.expose().as_str()))
            .collect::<Vec<_>>(),
        vec![
            (SecretKind::GatewayToken, "gw"),
            (SecretKind::BotToken, "bot")
        ]
    );
    assert!(
        !reopened.remove_tenant(&acme, false).unwrap(),
        "no record to remove"
    );
    assert_eq!(
        reopened.secrets(&acme).unwrap().len(),
        0,
        "secrets go with the tenant"
    );

    for action in ["create", "stop", "start"] {
        reopened
            .audit(&AuditEntry {
                at: 1,
                actor: "cli:test".into(),
                action: action.into(),
                tenant: Some("acme".into()),
                outcome: Outcome::Ok,
                step: None,
                error: None,
            })
            .unwrap();
    }
    let log = reopened.audit_log(Some(&acme), 2).unwrap();
    assert_eq!(
        log.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["stop", "start"]
    );
}

/// Eight `mtp` processes and this one use the same store at the same time;
/// none fails on the file lock, and every audit entry lands.
#[test]
fn many_processes_share_one_store() {
    let env = TestEnv::new("many_processes_share_one_store", 19420, "3s");
    assert_ok(&env.mtp(&["tenant", "list"]));
    let children: Vec<_> = (0..8)
        .map(|i| {
            let command = if i % 2 == 0 {
                vec!["tenant", "reconcile", "--json"]
            } else {
                vec!["tenant", "list", "--json"]
            };
            env.mtp_command(&command)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let store = Store::open(&env.data_dir().join("mtp.redb")).unwrap();
    for n in 0..50 {
        store
            .audit(&AuditEntry {
                at: n,
                actor: "test".into(),
                action: format!("poke {n}"),
                tenant: None,
                outcome: Outcome::Ok,
                step: None,
                error: None,
            })
            .unwrap();
    }
    for child in children {
        let output = child.wait_with_output().unwrap();
        json(&output);
    }
    let pokes = store
        .audit_log(None, 1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.action.starts_with("poke"))
        .count();
    assert_eq!(pokes, 50);
}
