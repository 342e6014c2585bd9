//! `mtp rpc`: one gateway method of a tenant's cell, its result printed as
//! JSON as the gateway sent it.

use anyhow::bail;
use clap::Args;
use serde_json::Value;

use crate::cli::{BadInput, parse_id, render};
use crate::config::AdminConfig;
use crate::fleet::{self, App};

/// The longest method name accepted; the gateway's are far shorter.
const MAX_METHOD: usize = 128;

#[derive(Args)]
pub(crate) struct RpcArgs {
    id: String,
    /// e.g. health, status, channels.status, usage.cost, config.get.
    method: String,
    /// Params as a JSON object (default {}).
    params: Option<String>,
}

pub(crate) async fn run(config: AdminConfig, args: RpcArgs) -> anyhow::Result<()> {
    let id = parse_id(&args.id)?;
    let params: Value = match args.params.as_deref() {
        None => Value::Object(serde_json::Map::new()),
        Some(text) => serde_json::from_str(text).map_err(|err| {
            BadInput(format!(
                "params must be a JSON object, e.g. '{{\"days\":7}}': {err}"
            ))
        })?,
    };
    if !params.is_object() {
        bail!(BadInput(
            "params must be a JSON object, e.g. '{\"days\":7}'".into()
        ));
    }
    let method = args.method;
    if method.is_empty()
        || method.len() > MAX_METHOD
        || !method
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        bail!(BadInput(format!(
            "{method:?} is not a gateway method name (e.g. health, usage.cost)"
        )));
    }
    let app = App::open(config).await?;
    let result = fleet::rpc(&app, &id, &method, params).await?;
    render::print_json(&result)
}
