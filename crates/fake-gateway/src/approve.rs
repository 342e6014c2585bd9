//! `devices approve <requestId>` and `devices list`: talk to the running fake over
//! loopback (control API, gateway token) and print what the real CLI prints
//! ("Approved <deviceId> (<requestId>)"; on an unknown id the real error text on
//! stderr and exit 1).

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Value, json};

/// Where the running gateway listens and how to authenticate to it.
pub struct Target {
    pub port: Option<u16>,
    pub token: Option<String>,
    pub state_dir: Option<PathBuf>,
}

impl Target {
    fn port(&self) -> u16 {
        if let Some(port) = self.port {
            return port;
        }
        if let Some(port) = std::env::var("OPENCLAW_GATEWAY_PORT")
            .ok()
            .and_then(|port| port.parse().ok())
        {
            return port;
        }
        self.state_dir
            .as_ref()
            .and_then(|dir| std::fs::read_to_string(dir.join(crate::serve::PORT_FILE)).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(18789)
    }

    fn token(&self) -> String {
        self.token
            .clone()
            .or_else(|| std::env::var("OPENCLAW_GATEWAY_TOKEN").ok())
            .unwrap_or_default()
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let url = format!("http://127.0.0.1:{}/__fake/{path}", self.port());
        let client = reqwest::Client::new();
        let mut request = client.request(method, &url).bearer_auth(self.token());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let value = response.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, value))
    }
}

pub async fn approve(target: &Target, request_id: &str, json_output: bool) -> ExitCode {
    let outcome = target
        .call(
            reqwest::Method::POST,
            "approve",
            Some(json!({"requestId": request_id})),
        )
        .await;
    match outcome {
        Ok((200, body)) => {
            if json_output {
                println!("{body}");
            } else {
                let device_id = body["deviceId"].as_str().unwrap_or("");
                println!("Approved {device_id} ({request_id})");
            }
            ExitCode::SUCCESS
        }
        Ok((404, _)) => {
            eprintln!(
                "No pending device request matches {request_id}. Run openclaw devices list and retry with the current request ID."
            );
            ExitCode::FAILURE
        }
        Ok((status, body)) => {
            eprintln!("gateway refused the approval (HTTP {status}): {body}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("gateway connect failed: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Prints pending and paired devices as JSON (the fake's own format).
pub async fn list(target: &Target) -> ExitCode {
    match target.call(reqwest::Method::GET, "pairing", None).await {
        Ok((200, body)) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&body).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!("gateway refused the listing (HTTP {status}): {body}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("gateway connect failed: {err}");
            ExitCode::FAILURE
        }
    }
}
