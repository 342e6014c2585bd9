//! `mtp serve`: the long-running admin (`crate::serve`) until SIGTERM or
//! Ctrl-C; in-flight work finishes before the process exits.

use crate::config::AdminConfig;
use crate::fleet::App;

pub(crate) async fn run(config: AdminConfig) -> anyhow::Result<()> {
    config.telegram.require()?;
    let app = App::open(config).await?;
    crate::serve::run(app, shutdown_signal()).await
}

/// `mtp relay` (started by an admin Swarm service beside itself) until
/// SIGTERM or Ctrl-C.
pub(crate) async fn relay(
    listen: std::net::SocketAddr,
    allow: Vec<std::net::IpAddr>,
) -> anyhow::Result<()> {
    crate::serve::relay(listen, allow, shutdown_signal()).await
}

/// Resolves at SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::error!(cause = %err, "cannot watch SIGTERM; only Ctrl-C stops the bot");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: finishing in-flight work");
}
