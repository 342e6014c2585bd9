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

fn entry(at: i64, actor: &str, action: &str, tenant: Option<&str>) -> AuditEntry {
    AuditEntry {
        at,
        actor: actor.into(),
        action: action.into(),
        tenant: tenant.map(str::to_string),
        outcome: Outcome::Ok,
        step: None,
        error: None,
    }
}

// See: issue 10 (the digest read the newest 10 000 audit rows; a flood of refusals hid the day's restarts).
/// The digest's tally counts the day's restarts and alerts however many other
/// entries came after them, and nothing older than the day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digest_tally_counts_the_whole_day_whatever_else_filled_the_log() {
    let env = TestEnv::new("digest_tally_counts_the_day", 20480, "3s");
    let app = env.app().await;
    let now = mtp::fleet::now();
    let day_ago = now - 86_400;
    let store = env.store();
    for (at, action, tenant) in [
        (day_ago - 3_600, "restart", "acme"),
        (day_ago - 3_600, "alert: acme container down", "acme"),
        (now - 600, "restart", "acme"),
        (now - 500, "heal: start", "beta"),
        (now - 400, "start", "acme"),
        (now - 300, "alert: acme container down", "acme"),
        (now - 200, "stop", "acme"),
    ] {
        store
            .audit(&entry(at, "system:test", action, Some(tenant)))
            .unwrap();
    }
    // Refusals after them. The digest used to read the newest 10 000 rows, so
    // 10 000 of these hid everything above (run once with 10 050: it passes, and
    // takes five minutes of fsyncs; a hundred keep the test quick).
    for n in 0..100 {
        store
            .audit(&entry(
                now - 100,
                &format!("tg:{n}"),
                "bot: not an operator",
                None,
            ))
            .unwrap();
    }
    let tally = mtp::fleet::audit_tally(&app, day_ago).unwrap();
    assert_eq!(
        tally,
        mtp::fleet::AuditTally {
            restarts: vec![("acme".to_string(), 2), ("beta".to_string(), 1)],
            alerts: 1,
        }
    );
}

// See: issue 10 (the audit log grew without end).
/// Retention removes, in one go, what is older than `audit.keepDays` and the
/// oldest beyond `audit.maxRows`, and keeps the rest in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_keeps_the_configured_days_and_rows() {
    let env = TestEnv::new("audit_retention_days_and_rows", 20500, "3s");
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    let end = config.rfind('}').unwrap();
    std::fs::write(
        &env.config_path,
        format!(
            "{}  audit: {{ keepDays: 7, maxRows: 20 }},\n}}\n",
            &config[..end]
        ),
    )
    .unwrap();
    let app = env.app().await;
    let store = env.store();
    let now = mtp::fleet::now();
    for n in 0..5 {
        store
            .audit(&entry(now - 8 * 86_400, "test", &format!("old {n}"), None))
            .unwrap();
    }
    for n in 0..30 {
        store
            .audit(&entry(now - 86_400, "test", &format!("recent {n}"), None))
            .unwrap();
    }
    assert_eq!(mtp::fleet::prune_audit(&app).unwrap(), 15);
    let kept: Vec<String> = store
        .audit_log(None, 1000)
        .unwrap()
        .into_iter()
        .map(|entry| entry.action)
        .collect();
    let expected: Vec<String> = (10..30).map(|n| format!("recent {n}")).collect();
    assert_eq!(kept, expected);
    assert_eq!(
        mtp::fleet::prune_audit(&app).unwrap(),
        0,
        "nothing more to prune"
    );
}

// See: issue 14 (a budget check is one store transaction).
/// Two processes checking the same tenant's budget at once (two store handles,
/// as two processes hold them, on two threads) hand each threshold out once
/// and record one suspension: the check reads and marks in one transaction.
#[test]
fn two_budget_checks_at_once_notify_and_suspend_once() {
    use mtp::store::{BudgetMarks, Suspension, UsageFigures};
    use mtp::tenant::{BudgetAction, Usd};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mtp.redb");
    let day = |text: &str| chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();
    let spend = UsageFigures {
        input: 1,
        output: 1,
        cache_read: 0,
        cache_write: 0,
        cost: Usd::cents(1200),
    };
    let tenants: Vec<TenantId> = (0..10).map(|n| format!("t{n}").parse().unwrap()).collect();
    for tenant in &tenants {
        Store::open(&path)
            .unwrap()
            .ratchet_usage(tenant, &[(day("2026-11-02"), spend)], &[], 1)
            .unwrap();
    }
    let month = "2026-11";
    // The month's spend past 100% of $10: every threshold, and a suspension.
    let check = |store: &Store, tenant: &TenantId| {
        store
            .check_budget(
                tenant,
                month,
                day("2026-11-01"),
                day("2026-11-30"),
                |facts| {
                    assert_eq!(facts.spend, Usd::cents(1200));
                    BudgetMarks {
                        notify: [50, 80, 100]
                            .into_iter()
                            .filter(|t| !facts.notified.contains(t))
                            .collect(),
                        suspend: facts.record.suspended.is_none().then(|| Suspension {
                            since: 1,
                            how: BudgetAction::StopCell,
                            month: month.to_string(),
                        }),
                    }
                },
            )
            .unwrap()
            .1
    };
    for (round, tenant) in tenants.iter().enumerate() {
        let barrier = std::sync::Barrier::new(2);
        let (first, second) = std::thread::scope(|scope| {
            let both = [(); 2].map(|()| {
                scope.spawn(|| {
                    let store = Store::open(&path).unwrap();
                    barrier.wait();
                    check(&store, tenant)
                })
            });
            let [a, b] = both.map(|handle| handle.join().unwrap());
            (a, b)
        });
        let mut notified = [first.notify.clone(), second.notify.clone()].concat();
        notified.sort_unstable();
        assert_eq!(
            notified,
            vec![50, 80, 100],
            "round {round}: {first:?} {second:?}"
        );
        assert!(
            first.notify.is_empty() || second.notify.is_empty(),
            "one check notifies: {first:?} {second:?}"
        );
        assert_eq!(
            usize::from(first.suspend.is_some()) + usize::from(second.suspend.is_some()),
            1,
            "one suspension: {first:?} {second:?}"
        );
    }
}
