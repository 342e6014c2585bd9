//! `mtp doctor` and the containers' egress rule (`iptables -C DOCKER-USER -o
//! <uplink> -j DROP`): removed, it is found as a critical finding whose fix
//! re-adds it; `mtp doctor --fix` re-adds it. One test, sequential steps, and
//! no cell at all: the rule is removed only while no container runs on this
//! host, and a guard puts it back however the test ends. No packet is sent.

mod common;

use std::process::Command;

use common::{TestEnv, docker, stdout};

/// Puts the egress rule back when dropped, if it is missing, so a failing or
/// panicking test never leaves containers free to reach the outside.
struct RestoreRule {
    uplink: String,
}

impl RestoreRule {
    fn rule(&self) -> [&str; 5] {
        ["DOCKER-USER", "-o", &self.uplink, "-j", "DROP"]
    }

    fn present(&self) -> bool {
        iptables("-C", &self.rule())
    }
}

impl Drop for RestoreRule {
    fn drop(&mut self) {
        if !self.present() {
            let added = iptables("-I", &self.rule());
            assert!(
                added || std::thread::panicking(),
                "could not put the egress rule back: run iptables -I DOCKER-USER -o {} -j DROP",
                self.uplink
            );
        }
    }
}

/// The JSON `mtp doctor --json` printed, whatever its exit code.
fn report(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("{err}: not JSON:\n{}", stdout(output)))
}

fn iptables(op: &str, rule: &[&str]) -> bool {
    Command::new("iptables")
        .arg(op)
        .args(rule)
        // `-C` says "Bad rule" on stderr when the rule is missing: an answer, not noise.
        .stderr(std::process::Stdio::null())
        .status()
        .expect("iptables runs")
        .success()
}

fn uplink() -> String {
    let output = Command::new("ip")
        .args(["route", "show", "default"])
        .output()
        .expect("ip route");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let words: Vec<&str> = text.split_whitespace().collect();
    let at = words
        .iter()
        .position(|word| *word == "dev")
        .unwrap_or_else(|| panic!("no default route: {text:?}"));
    words[at + 1].to_string()
}

/// The egress rule removed (with no container running) is a critical host
/// finding saying cells can reach the outside, fixed by `iptables -I …`;
/// `mtp doctor --fix` re-adds it and reports it fixed; then `iptables -C`
/// finds it and doctor has nothing to say about egress.
#[test]
fn a_missing_egress_rule_is_found_and_put_back() {
    let env = TestEnv::new("doctor_egress_rule", 21960, "3s");
    let running = docker(&["ps", "-q"]);
    let running = stdout(&running);
    assert!(
        running.trim().is_empty(),
        "refusing to remove the egress rule while containers run on this host: {running}"
    );
    let guard = RestoreRule { uplink: uplink() };
    let rule = guard.rule();
    assert!(
        guard.present(),
        "the egress rule is not in place before the test; run scripts/docker-up.sh"
    );
    // Every copy of it goes, so the check cannot pass on a duplicate.
    while guard.present() {
        assert!(iptables("-D", &rule), "cannot remove the egress rule");
    }

    let found = env.mtp(&["doctor", "--json"]);
    assert_eq!(found.status.code(), Some(1), "{}", stdout(&found));
    let found = report(&found);
    let egress: Vec<&serde_json::Value> = found["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "egress")
        .collect();
    assert_eq!(egress.len(), 1, "{found}");
    let insert = format!("iptables -I DOCKER-USER -o {} -j DROP", guard.uplink);
    assert_eq!(
        (
            &egress[0]["subject"],
            &egress[0]["severity"],
            &egress[0]["fixable"],
            &egress[0]["fix"]
        ),
        (
            &serde_json::json!("host"),
            &serde_json::json!("critical"),
            &serde_json::json!(true),
            &serde_json::json!(insert)
        ),
        "{found}"
    );
    let problem = egress[0]["problem"].as_str().unwrap();
    assert!(problem.contains("the egress rule is missing"), "{problem}");

    let fixed = env.mtp(&["doctor", "--fix"]);
    let text = stdout(&fixed);
    assert!(
        text.lines()
            .any(|line| line.starts_with("fixed") && line.contains("egress")),
        "{text}"
    );
    assert!(
        guard.present(),
        "doctor --fix did not re-add the rule:\n{text}"
    );
    let after = report(&env.mtp(&["doctor", "--json"]));
    assert!(
        after["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["check"] != "egress"),
        "{after}"
    );
}
