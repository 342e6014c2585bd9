//! Fleet operations against real Docker: staged upgrades (a real OpenClaw
//! canary that fails halts the rollout with the others untouched; waves,
//! pins, a halt, and runners killed mid-rollout on fake-gateway fleets).

mod common;

use std::time::{Duration, Instant};

use common::serving::create_cell;
use common::{CRASH_IMAGE, FAKE_IMAGE, OPENCLAW_IMAGE, TestEnv, assert_fails_with, assert_ok};
use mtp::fleet::rollout::{self, Adopted, RolloutState, TenantStep};
use mtp::fleet::{self, Actor, App};
use mtp::tenant::TenantId;

/// A distinct, well-formed bot token per tenant (one bot per cell).
fn token(n: usize) -> String {
    format!("72000000{n:02}:AAFleetRolloutTestTokenNumber_{n:05}")
}

fn image_of(app: &App, id: &TenantId) -> String {
    fleet::record(app, id).unwrap().image
}

/// Successful upgrades of `id` in the audit log.
fn upgrades_of(app: &App, id: &TenantId) -> usize {
    fleet::audit_log(app, Some(id), 200)
        .unwrap()
        .iter()
        .filter(|entry| entry.action == "upgrade" && entry.outcome == fleet::Outcome::Ok)
        .count()
}

fn stored(app: &App) -> rollout::Rollout {
    rollout::rollout(app).unwrap().expect("a rollout is stored")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_canary_halts_the_rollout_and_waves_finish_across_dead_runners() {
    let env = TestEnv::with_ports("fleet-rollout", 21820, 20, "150s");
    let app = env.app().await;
    let next = format!("mtp-test/fake-gateway:{}-2", env.prefix);
    common::docker_ok(&["tag", FAKE_IMAGE, &next]);

    // One real OpenClaw cell and a fleet of fake ones.
    let real = create_cell(&app, &env.tenant("real"), OPENCLAW_IMAGE, &token(0)).await;
    let mut fakes = Vec::new();
    for n in 1..=12 {
        let id = env.tenant(&format!("f{n:02}"));
        fakes.push(create_cell(&app, &id, FAKE_IMAGE, &token(n)).await);
    }
    let generation = |id: &TenantId| fleet::record(&app, id).unwrap().generation;
    let before: Vec<u64> = fakes.iter().map(generation).collect();

    // The real cell as the canary of an image that cannot run: it fails, is
    // rolled back, and the rollout halts with every other tenant untouched.
    let out = env.mtp(&[
        "fleet",
        "upgrade",
        "--image",
        CRASH_IMAGE,
        "--canary",
        real.as_str(),
        "--pause",
        "0s",
        "--json",
    ]);
    assert_fails_with(&out, 1, "the rollout halted");
    let halted: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(halted["state"], "halted");
    assert_eq!(halted["tenants"][real.as_str()]["state"], "failed");
    assert_eq!(halted["tenants"][real.as_str()]["rolled_back"], true);
    assert_eq!(halted["tenants"][fakes[0].as_str()]["state"], "pending");
    assert_eq!(image_of(&app, &real), OPENCLAW_IMAGE);
    fleet::rpc(&app, &real, "health", serde_json::json!({}))
        .await
        .expect("the canary runs its old image again");
    for (id, generation_before) in fakes.iter().zip(&before) {
        assert_eq!(image_of(&app, id), FAKE_IMAGE, "{id} untouched");
        assert_eq!(generation(id), *generation_before, "{id} untouched");
        assert_eq!(common::cell_running(id.as_str()), Some(true));
    }
    // A new rollout waits for the halted one.
    let out = env.mtp(&["fleet", "upgrade", "--image", &next]);
    assert_fails_with(&out, 2, "resume it");
    assert_ok(&env.mtp(&["fleet", "abandon"]));

    // Resized in place: new limits on the same container, not restarted,
    // and the gateway answers on.
    let facts = |id: &TenantId, format: &str| {
        let out = common::docker(&["inspect", "-f", format, &format!("mtp-cell-{id}")]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let same = "{{.Id}} {{.State.StartedAt}} {{.RestartCount}}";
    let before_resize = facts(&real, same);
    let out = env.mtp(&[
        "tenant",
        "resize",
        real.as_str(),
        "--memory",
        "1536m",
        "--cpus",
        "1",
        "--json",
    ]);
    assert_ok(&out);
    let resized: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(resized["memory_bytes"], 1536 * 1024 * 1024);
    assert_eq!(resized["cpus"], 1.0);
    assert_eq!(
        facts(
            &real,
            "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}}"
        ),
        "1610612736 1610612736 1000000000"
    );
    assert_eq!(
        facts(&real, same),
        before_resize,
        "same container, not restarted"
    );
    assert_eq!(
        fleet::record(&app, &real).unwrap().limits.memory_bytes,
        1536 * 1024 * 1024
    );
    fleet::rpc(&app, &real, "health", serde_json::json!({}))
        .await
        .expect("the resized gateway answers");
    // Refusals say why and change nothing.
    for (args, why) in [
        (&["--memory", "900g"][..], "cannot hold"),
        (&["--memory", "100m"][..], "too little memory"),
        (&["--cpus", "999"][..], "out of range"),
        (&[][..], "name a new memory or CPU limit"),
    ] {
        let mut all = vec!["tenant", "resize", real.as_str()];
        all.extend_from_slice(args);
        assert_fails_with(&env.mtp(&all), 2, why);
    }
    assert_eq!(facts(&real, "{{.HostConfig.Memory}}"), "1610612736");
    // Config with a preview: a hot key applies without a restart ...
    let every = "agents.defaults.heartbeat.every";
    let out = env.mtp(&[
        "config",
        "set",
        real.as_str(),
        every,
        "\"45m\"",
        "--dry-run",
        "--json",
    ]);
    assert_ok(&out);
    let preview: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(preview[0]["outcome"], "previewed", "{preview}");
    assert_eq!(preview[0]["applies"], "hot", "{preview}");
    assert_eq!(preview[0]["after"], "45m");
    let get = |path: &str| {
        let out = env.mtp(&["config", "get", real.as_str(), path, "--json"]);
        assert_ok(&out);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_ne!(get(every), "45m", "a dry run changes nothing");
    let out = env.mtp(&["config", "set", real.as_str(), every, "\"45m\"", "--json"]);
    assert_ok(&out);
    let set: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(set[0]["outcome"], "applied", "{set}");
    assert_eq!(get(every), "45m");
    assert_eq!(
        facts(&real, same),
        before_resize,
        "a hot key restarts nothing"
    );
    // ... a restart-requiring one is running when the command returns.
    let out = env.mtp(&[
        "config",
        "set",
        real.as_str(),
        "gateway.controlUi.basePath",
        "/mtp-ui",
        "--json",
    ]);
    assert_ok(&out);
    let set: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(set[0]["applies"], "restart", "{set}");
    assert_eq!(set[0]["outcome"], "restarted", "{set}");
    assert_eq!(get("gateway.controlUi.basePath"), "/mtp-ui");
    let out = env.mtp(&["config", "get", real.as_str()]);
    assert_ok(&out);
    assert!(!common::stdout(&out).contains("restart is pending"));
    fleet::rpc(&app, &real, "health", serde_json::json!({}))
        .await
        .expect("the gateway runs after the restart-requiring change");
    // MTP's own keys and secrets are refused or never shown.
    let out = env.mtp(&["config", "set", real.as_str(), "gateway.auth.token", "x"]);
    assert_fails_with(&out, 2, "managed by MTP");
    let out = env.mtp(&[
        "config",
        "set",
        real.as_str(),
        "models.providers.anthropic.apiKey",
        "sk-ant-typed-here",
    ]);
    assert_fails_with(&out, 2, "holds a secret");
    let out = env.mtp(&["config", "get", real.as_str(), "--json"]);
    assert_ok(&out);
    for (kind, secret) in common::store_of(&app).secrets(&real).unwrap() {
        assert!(
            !common::stdout(&out).contains(secret.expose()),
            "{kind:?} in config get"
        );
    }

    // Skills after onboarding: on and off through the config, read at next use.
    let skills = |args: &[&str]| {
        let mut all = vec!["tenant", "skills", real.as_str()];
        all.extend_from_slice(args);
        all.push("--json");
        let out = env.mtp(&all);
        assert_ok(&out);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_eq!(
        skills(&[]),
        serde_json::Value::Null,
        "OpenClaw's default at first"
    );
    assert_eq!(
        skills(&["--enable", "summarize,weather"]),
        serde_json::json!(["weather", "summarize"])
    );
    assert_eq!(
        get("skills.allowBundled"),
        serde_json::json!(["weather", "summarize"])
    );
    assert_eq!(
        skills(&["--disable", "weather"]),
        serde_json::json!(["summarize"])
    );
    let out = env.mtp(&[
        "tenant",
        "skills",
        real.as_str(),
        "--enable",
        "no-such-skill",
    ]);
    assert_fails_with(&out, 2, "no skill");
    assert_eq!(
        facts(&real, "{{.Id}}"),
        before_resize.split(' ').next().unwrap()
    );

    // Its history: created, the failed canary upgrade, the resize, the config changes.
    let out = env.mtp(&["tenant", "events", real.as_str(), "--json"]);
    assert_ok(&out);
    let events: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let has = |kind: &str, outcome: &str| {
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == kind && e["outcome"] == outcome)
    };
    assert!(
        has("created", "ok") && has("upgraded", "failed") && has("changed", "ok"),
        "{events}"
    );
    let out = env.mtp(&["tenant", "events", real.as_str(), "--since", "soon"]);
    assert_fails_with(&out, 2, "not a duration");
    let out = env.mtp(&["tenant", "events", "no-such-tenant"]);
    assert_fails_with(&out, 1, "no tenant no-such-tenant");

    // A fake resized now keeps its limits through its upgrade below.
    assert_ok(&env.mtp(&["tenant", "resize", fakes[1].as_str(), "--memory", "768m"]));

    // Pins keep tenants out: the real one, and one fake.
    assert_ok(&env.mtp(&["tenant", "pin", real.as_str(), OPENCLAW_IMAGE]));
    assert_ok(&env.mtp(&["tenant", "pin", fakes[11].as_str(), FAKE_IMAGE]));
    let out = env.mtp(&[
        "tenant",
        "pin",
        fakes[10].as_str(),
        "mtp-test/fake-gateway:latest",
    ]);
    assert_fails_with(&out, 2, "latest");
    let out = env.mtp(&["tenant", "upgrade", fakes[11].as_str(), "--image", &next]);
    assert_fails_with(&out, 2, "pinned to");

    // The plan: canary first, waves of 4, the pinned passed by; nothing changes.
    let out = env.mtp(&[
        "fleet",
        "upgrade",
        "--image",
        &next,
        "--canary-count",
        "1",
        "--wave-size",
        "4",
        "--dry-run",
        "--json",
    ]);
    assert_ok(&out);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let waves: Vec<Vec<String>> = serde_json::from_value(plan["waves"].clone()).unwrap();
    assert_eq!(waves.iter().map(Vec::len).collect::<Vec<_>>(), [1, 4, 4, 2]);
    assert_eq!(waves[0], [fakes[0].to_string()]);
    assert!(
        plan["passed_by"][real.as_str()]
            .as_str()
            .unwrap()
            .contains("pinned")
    );
    assert!(
        plan["passed_by"][fakes[11].as_str()]
            .as_str()
            .unwrap()
            .contains("pinned")
    );
    assert_eq!(
        rollout::rollout(&app).unwrap().unwrap().state,
        RolloutState::Abandoned
    );

    // A runner killed as it begins the canary: the admin's start finds the
    // tenant mid-upgrade and halts the rollout for the operator.
    let args = [
        "fleet",
        "upgrade",
        "--image",
        &next,
        "--canary-count",
        "1",
        "--wave-size",
        "4",
        "--pause",
        "1s",
    ];
    let out = env
        .mtp_command(&args)
        .env("MTP_TEST_KILL_AT", "rollout:upgrading")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(matches!(
        stored(&app).tenants[fakes[0].as_str()],
        TenantStep::Upgrading { .. }
    ));
    let system = Actor::System("test");
    match rollout::adopt(&app, &system, &mut |_| {}).await.unwrap() {
        Adopted::Halted(halted) => {
            let because = halted.halted_because.unwrap();
            assert!(because.contains(fakes[0].as_str()), "{because}");
        }
        other => panic!("not halted: {other:?}"),
    }
    // Resumed, and killed again between two tenants: continued by the admin.
    let out = env
        .mtp_command(&["fleet", "upgrade", "--resume"])
        .env("MTP_TEST_KILL_AT", "rollout:between")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let cut = stored(&app);
    assert_eq!(cut.state, RolloutState::Running);
    assert!(matches!(
        cut.tenants[fakes[0].as_str()],
        TenantStep::Upgraded { .. }
    ));
    let mut events = 0;
    let adopted = rollout::adopt(&app, &system, &mut |_| events += 1)
        .await
        .unwrap();
    let Adopted::Continued(done) = adopted else {
        panic!("not continued: {adopted:?}");
    };
    assert!(events > 0, "progress reported");
    assert_eq!(done.state, RolloutState::Done, "{done:#?}");
    for id in &fakes[..11] {
        assert_eq!(image_of(&app, id), next, "{id}");
        assert_eq!(upgrades_of(&app, id), 1, "{id} upgraded exactly once");
        assert_eq!(common::cell_running(id.as_str()), Some(true));
    }
    assert_eq!(image_of(&app, &fakes[11]), FAKE_IMAGE, "pinned");
    assert_eq!(
        facts(&fakes[1], "{{.HostConfig.Memory}}"),
        "805306368",
        "resize kept"
    );
    assert_eq!(image_of(&app, &real), OPENCLAW_IMAGE, "pinned");
    let status = env.mtp(&["fleet", "status"]);
    assert_ok(&status);
    assert!(
        common::stdout(&status).contains("done (11/11 done)"),
        "{}",
        common::stdout(&status)
    );

    // The brake: a rollout pausing after its canary halts at once.
    let back = format!("mtp-test/fake-gateway:{}-3", env.prefix);
    common::docker_ok(&["tag", FAKE_IMAGE, &back]);
    let mut runner = tokio::process::Command::from(env.mtp_command(&[
        "fleet",
        "upgrade",
        "--image",
        &back,
        "--canary-count",
        "1",
        "--pause",
        "10m",
    ]))
    .kill_on_drop(true)
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while rollout::rollout(&app)
        .unwrap()
        .is_none_or(|now| now.image != back || now.next_wave_at.is_none())
    {
        assert!(Instant::now() < deadline, "the canary never finished");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_ok(&env.mtp(&["fleet", "halt"]));
    let ended = tokio::time::timeout(Duration::from_secs(30), runner.wait())
        .await
        .expect("the runner halts within seconds")
        .unwrap();
    assert_eq!(ended.code(), Some(1));
    let halted = stored(&app);
    assert_eq!(halted.state, RolloutState::Halted);
    assert_eq!(halted.done_count().0, 1, "only the canary moved");
    assert_ok(&env.mtp(&["fleet", "abandon"]));
}
