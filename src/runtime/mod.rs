//! The container runtime: cells on Docker through bollard. On one host a cell
//! is one container and one bridge network, both named `mtp-cell-<tenant>` and
//! labelled `mtp.managed=true`, `mtp.tenant=<id>`, `mtp.generation=<n>`; with
//! the Swarm engine (`with_engine`) it is a service of that name on an overlay
//! of that name (`swarm.rs`), and the same calls work on it (`swarm_cell.rs`).
//!
//! Architecture invariant: `runtime/` knows nothing of the store, the gateway or
//! the config file; it gets a `CellSpec` and reports what Docker says.

mod cell;
mod events;
mod network;
mod ports;
mod profile;
mod raw;
mod swarm;
mod swarm_cell;
mod swarm_relay;
mod swarm_volumes;

use std::collections::HashMap;

use bollard::Docker;

pub use cell::{CellInfo, CellSpec, CellStatus, ExecOutput, GATEWAY_PORT, LogLine, Mount};
pub use events::{CellEvent, CellEventKind};
pub use ports::port_is_free;
pub use profile::CellProfile;
pub use swarm::{
    NodeInfo, SeedFile, SwarmCell, SwarmCellSpec, SwarmRole, VolumeMount, own_container_id,
};
pub use swarm_relay::RELAY;

use crate::tenant::{Engine, TenantId};

/// Label on every container and network MTP manages.
pub const LABEL_MANAGED: &str = "mtp.managed";
pub const LABEL_TENANT: &str = "mtp.tenant";
pub const LABEL_GENERATION: &str = "mtp.generation";

/// Failures a caller branches on. Docker's own failures keep their status and message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the Docker engine ({cause})")]
    Unreachable { cause: String },
    #[error("no cell for tenant {0} exists in Docker")]
    NotFound(TenantId),
    #[error(
        "a container or network named {name} exists but was not made by MTP (no mtp.tenant label); rename or remove it by hand"
    )]
    Foreign { name: String },
    #[error("the image {image} is not on this Docker host")]
    NoImage { image: String },
    #[error("docker: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// A connection to one Docker engine; cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    docker: Docker,
    /// Where the engine listens, for the few calls bollard lacks (`raw.rs`).
    address: raw::Address,
    /// What a cell is here: a container on this host, or a Swarm service.
    engine: Engine,
    /// On Swarm, for an admin that runs as a service: the loopback forwards
    /// through its relay (`swarm_relay.rs`); `None` where the admin's own
    /// container joins the overlays.
    relay: Option<std::sync::Arc<crate::relay::Forwards>>,
}

impl Runtime {
    /// Connects to `docker_host` (a `unix://` path or a 127.0.0.1 address) or the
    /// local default socket, negotiates the API version and pings the engine.
    ///
    /// # Errors
    ///
    /// `Unreachable` when there is no engine.
    pub async fn connect(docker_host: Option<&str>) -> Result<Runtime> {
        let unreachable = |err: bollard::errors::Error| Error::Unreachable {
            cause: err.to_string(),
        };
        let docker = match docker_host {
            Some(host) if host.starts_with("unix://") => {
                Docker::connect_with_unix(host, 120, bollard::API_DEFAULT_VERSION)
                    .map_err(unreachable)?
            }
            Some(host) => Docker::connect_with_http(host, 120, bollard::API_DEFAULT_VERSION)
                .map_err(unreachable)?,
            None => Docker::connect_with_local_defaults().map_err(unreachable)?,
        };
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        docker.ping().await.map_err(unreachable)?;
        let address = raw::Address::of(docker_host);
        Ok(Runtime {
            docker,
            address,
            engine: Engine::Docker,
            relay: None,
        })
    }

    /// The same engine, running cells as `engine` says: every cell action
    /// (create, start, stop, restart, remove, inspect, list, logs, exec)
    /// then works on containers of this host or on Swarm services.
    #[must_use]
    pub fn with_engine(mut self, engine: Engine) -> Runtime {
        self.engine = engine;
        self
    }

    /// The same runtime, reaching Swarm cells through the relay at `relay`
    /// (see `relay_for`).
    #[must_use]
    pub fn with_relay(mut self, relay: std::net::SocketAddr) -> Runtime {
        self.relay = Some(std::sync::Arc::new(crate::relay::Forwards::new(relay)));
        self
    }

    /// The relay this runtime reaches Swarm cells through, if any.
    #[must_use]
    pub fn relay(&self) -> Option<std::net::SocketAddr> {
        self.relay.as_ref().map(|forwards| forwards.relay())
    }

    /// What cells are on this runtime.
    #[must_use]
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Where the admin reaches a cell's gateway: `127.0.0.1` and the port the
    /// cell publishes on this host's loopback, or on Swarm the service's name
    /// on its overlay (which the admin joins) and the gateway's own port, or,
    /// through a relay, this process's loopback forward to that name and port.
    #[must_use]
    pub fn gateway_at(&self, tenant: &TenantId, published_port: u16) -> (String, u16) {
        match self.engine {
            Engine::Docker => ("127.0.0.1".to_string(), published_port),
            Engine::Swarm => {
                let service = tenant.cell_name();
                match self
                    .relay
                    .as_ref()
                    .map(|relay| relay.local_port(&service, GATEWAY_PORT))
                {
                    None => (service, GATEWAY_PORT),
                    Some(Ok(port)) => ("127.0.0.1".to_string(), port),
                    Some(Err(err)) => {
                        tracing::error!(cause = %err, tenant = %tenant, "no loopback port for the relay's forward");
                        (service, GATEWAY_PORT)
                    }
                }
            }
        }
    }

    /// A handle that has not reached any engine (a closed loopback port; bollard
    /// connects on the first call, which then fails). For unit tests.
    #[cfg(test)]
    pub(crate) fn unconnected() -> Runtime {
        let docker =
            Docker::connect_with_http("http://127.0.0.1:9", 1, bollard::API_DEFAULT_VERSION)
                .expect("an http address is accepted without connecting");
        Runtime {
            docker,
            address: raw::Address::of(Some("http://127.0.0.1:9")),
            engine: Engine::Docker,
            relay: None,
        }
    }

    /// The engine host's total memory in bytes, as Docker reports it.
    ///
    /// # Errors
    ///
    /// Docker cannot be asked.
    pub async fn host_memory(&self) -> Result<u64> {
        let info = self.docker.info().await?;
        let total = info.mem_total.unwrap_or_default();
        u64::try_from(total)
            .map_err(|_| Error::Other(format!("Docker reports {total} bytes of memory")))
    }

    /// The engine host's CPU count, as Docker reports it.
    ///
    /// # Errors
    ///
    /// Docker cannot be asked.
    pub async fn host_cpus(&self) -> Result<u32> {
        let info = self.docker.info().await?;
        let cpus = info.ncpu.unwrap_or_default();
        u32::try_from(cpus).map_err(|_| Error::Other(format!("Docker reports {cpus} CPUs")))
    }

    pub(crate) fn docker(&self) -> &Docker {
        &self.docker
    }
}

/// Where a cell's secrets are mounted, one file per variable.
pub const SECRETS_DIR: &str = "/run/secrets";

/// Exports every file in `/run/secrets` as the variable of its name, then runs
/// the command that follows (`$@`). Any POSIX shell (busybox `sh` with `cat`).
const EXPORT_SECRETS: &str = r#"for f in /run/secrets/*; do [ -f "$f" ] || continue; n=${f##*/}; v=$(cat "$f") || exit 1; export "$n=$v"; done; exec "$@""#;

/// `command` run after the cell's secret files are exported as variables: how
/// the gateway, which reads its credentials from its environment (`${VAR}` in
/// its config), gets them without any in the container's environment. Also
/// for a command run in the cell beside the gateway (`devices approve`).
#[must_use]
pub fn with_secrets_exported<S: AsRef<str>>(command: &[S]) -> Vec<String> {
    let mut res = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        EXPORT_SECRETS.to_string(),
        "mtp-cell".to_string(),
    ];
    res.extend(command.iter().map(|part| part.as_ref().to_string()));
    res
}

/// Labels for a tenant's container and network.
fn labels(tenant: &TenantId, generation: u64) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_TENANT.to_string(), tenant.as_str().to_string()),
        (LABEL_GENERATION.to_string(), generation.to_string()),
    ])
}

fn is_status(err: &bollard::errors::Error, code: u16) -> bool {
    matches!(err, bollard::errors::Error::DockerResponseServerError { status_code, .. } if *status_code == code)
}
