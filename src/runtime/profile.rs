//! What Docker says of a cell's hardening (capabilities, privileges, limits,
//! published ports, network, log rotation, mounts, environment), for `doctor`
//! to hold against the profile MTP would create; and the one repair it may do
//! in place, putting the limits back with `docker update`.

use std::collections::BTreeMap;

use bollard::models::ContainerUpdateBody;

use crate::runtime::{Error, LABEL_TENANT, Result, Runtime};
use crate::tenant::{Limits, Secret, TenantId};

/// A cell's container as Docker inspect reports it, the parts that make it hard.
#[derive(Debug, Clone)]
pub struct CellProfile {
    /// The image reference the container was created from.
    pub image: String,
    pub user: String,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    pub privileged: bool,
    pub readonly_rootfs: bool,
    pub init: bool,
    /// Bytes; 0 means no limit.
    pub memory_bytes: i64,
    pub memory_swap_bytes: i64,
    /// 0 means no limit.
    pub nano_cpus: i64,
    /// 0 or negative means no limit.
    pub pids_limit: i64,
    pub network_mode: String,
    /// Networks the container is attached to, by name.
    pub networks: Vec<String>,
    /// Every published port: (container port, host address, host port).
    pub published: Vec<(String, String, String)>,
    pub log_driver: String,
    pub log_options: BTreeMap<String, String>,
    /// Bind and volume mounts: (source on the host, target in the cell).
    pub mounts: Vec<(String, String)>,
    /// The container's environment; values are secrets until shown otherwise.
    pub env: Vec<(String, Secret<String>)>,
    pub running: bool,
}

impl Runtime {
    /// The hardening-relevant parts of the tenant's cell; `Ok(None)` when it
    /// does not exist.
    ///
    /// # Errors
    ///
    /// `Foreign` when the container is not ours, `Docker` when the engine
    /// cannot be reached.
    pub async fn profile(&self, tenant: &TenantId) -> Result<Option<CellProfile>> {
        let name = tenant.cell_name();
        let Some(info) = self.inspect_container(tenant).await? else {
            return Ok(None);
        };
        let config = info.config.unwrap_or_default();
        let labels = config.labels.clone().unwrap_or_default();
        if labels.get(LABEL_TENANT).map(String::as_str) != Some(tenant.as_str()) {
            return Err(Error::Foreign { name });
        }
        let host = info.host_config.unwrap_or_default();
        let mut published = Vec::new();
        for (port, bindings) in host.port_bindings.unwrap_or_default() {
            for binding in bindings.unwrap_or_default() {
                published.push((
                    port.clone(),
                    binding.host_ip.unwrap_or_default(),
                    binding.host_port.unwrap_or_default(),
                ));
            }
        }
        published.sort();
        let log = host.log_config.unwrap_or_default();
        let mut mounts: Vec<(String, String)> = info
            .mounts
            .unwrap_or_default()
            .into_iter()
            .map(|mount| {
                (
                    mount.source.unwrap_or_default(),
                    mount.destination.unwrap_or_default(),
                )
            })
            .collect();
        mounts.sort();
        let mut networks: Vec<String> = info
            .network_settings
            .and_then(|settings| settings.networks)
            .unwrap_or_default()
            .into_keys()
            .collect();
        networks.sort();
        let env = config
            .env
            .unwrap_or_default()
            .into_iter()
            .map(|pair| match pair.split_once('=') {
                Some((key, value)) => (key.to_string(), Secret::new(value.to_string())),
                None => (pair, Secret::new(String::new())),
            })
            .collect();
        Ok(Some(CellProfile {
            image: config.image.unwrap_or_default(),
            user: config.user.unwrap_or_default(),
            cap_add: host.cap_add.unwrap_or_default(),
            cap_drop: host.cap_drop.unwrap_or_default(),
            security_opt: host.security_opt.unwrap_or_default(),
            privileged: host.privileged.unwrap_or(false),
            readonly_rootfs: host.readonly_rootfs.unwrap_or(false),
            init: host.init.unwrap_or(false),
            memory_bytes: host.memory.unwrap_or(0),
            memory_swap_bytes: host.memory_swap.unwrap_or(0),
            nano_cpus: host.nano_cpus.unwrap_or(0),
            pids_limit: host.pids_limit.unwrap_or(0),
            network_mode: host.network_mode.unwrap_or_default(),
            networks,
            published,
            log_driver: log.typ.unwrap_or_default(),
            log_options: log.config.unwrap_or_default().into_iter().collect(),
            mounts,
            env,
            running: info.state.and_then(|state| state.running).unwrap_or(false),
        }))
    }

    /// Sets the cell's memory (and swap to the same, so no swap on top), CPU
    /// and pids limits in place, as `docker update` does; the cell keeps running.
    ///
    /// # Errors
    ///
    /// `NotFound`, `Foreign`, or Docker's refusal.
    pub async fn update_limits(&self, tenant: &TenantId, limits: &Limits) -> Result<()> {
        if self.engine == crate::tenant::Engine::Swarm {
            return Err(Error::Other(format!(
                "the limits of a Swarm cell ({tenant}) are its service's, which Swarm applies by replacing its task; changing them in place is not supported"
            )));
        }
        let name = self.own_container(tenant).await?;
        let body = ContainerUpdateBody {
            memory: Some(limits.memory_bytes),
            memory_swap: Some(limits.memory_bytes),
            nano_cpus: Some(limits.nano_cpus),
            pids_limit: Some(limits.pids),
            ..Default::default()
        };
        self.docker().update_container(&name, body).await?;
        Ok(())
    }
}
