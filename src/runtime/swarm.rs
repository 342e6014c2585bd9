//! Cells as Docker Swarm services, for a fleet on more than one host: a tenant
//! is the service `mtp-cell-<id>` with one replica, on its own attachable
//! overlay network `mtp-cell-<id>` (no port published on any node: the admin
//! joins the overlay and names the service), its state in named volumes on the
//! node the service is placed on, and its secrets as Docker secrets mounted as
//! files, never as environment visible through `docker service inspect`.
//!
//! What the single-host cell profile has and Swarm can say is said the same
//! way: labels, memory and CPU limits (the memory reservation equal to the
//! limit, so the scheduler packs nodes by memory), the pids limit, `--init`,
//! every capability dropped, a read-only root filesystem with `/tmp` as tmpfs,
//! rotated logs, uid 1000. `no-new-privileges` needs Engine API 1.46: the spec
//! carries it and `SwarmCell::no_new_privileges` tells whether the engine kept it.
//!
//! The gateway reads secrets from its environment (`${VAR}` in its config), so
//! a small shell step in the cell exports each file under `/run/secrets/` as
//! the variable of its name before it execs the gateway: the values live only
//! in the gateway's own process.

use std::collections::HashMap;

use base64::Engine as _;
use bollard::models::{
    EndpointSpec, EndpointSpecModeEnum, Limit, MountTmpfsOptions, MountTypeEnum,
    MountVolumeOptions, NetworkAttachmentConfig, NetworkCreateRequest, ResourceObject, SecretSpec,
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecModeReplicatedJob,
    TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecFile, TaskSpecContainerSpecPrivileges,
    TaskSpecContainerSpecSecrets, TaskSpecLogDriver, TaskSpecPlacement, TaskSpecResources,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{
    InspectServiceOptions, ListNodesOptions, ListSecretsOptionsBuilder, ListServicesOptionsBuilder,
    ListTasksOptionsBuilder, UpdateServiceOptionsBuilder,
};
use sha2::{Digest, Sha256};

use crate::runtime::{
    CellSpec, Error, LABEL_GENERATION, LABEL_TENANT, Result, Runtime, is_status, labels,
};
use crate::tenant::{Secret, TenantId};

/// Nanoseconds Swarm gives the gateway to drain on stop before SIGKILL.
const STOP_GRACE_NANOS: i64 = 30_000_000_000;

/// `/tmp` in the cell: the same tmpfs as on a single host (128 MiB, 1777).
const TMPFS_BYTES: i64 = 128 * 1024 * 1024;

/// The id of the container this process runs in, from the mounts Docker
/// gives every container (`/etc/hostname` comes from
/// `…/containers/<id>/hostname`); `None` outside a container.
#[must_use]
pub fn own_container_id() -> Option<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    container_id_in(&mountinfo)
}

fn container_id_in(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let (_, after) = line.split_once("/containers/")?;
        let (id, rest) = after.split_once('/')?;
        let is_id = id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit());
        (is_id && rest.starts_with("hostname ")).then(|| id.to_string())
    })
}

/// Where a seeding job mounts the volume it prepares.
const SEED_TARGET: &str = "/seed";

/// The dir a seeded volume holds, so it is seeded only once.
pub const SEEDED_MARK: &str = ".mtp-seeded";

/// A file written into a volume before the cell's first start.
#[derive(Clone, PartialEq)]
pub struct SeedFile {
    /// Relative to the volume's root: letters, digits, `.`, `_`, `-` and `/`.
    pub path: String,
    pub bytes: Vec<u8>,
    pub mode: u32,
}

impl std::fmt::Debug for SeedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedFile")
            .field("path", &self.path)
            .field("bytes", &self.bytes.len())
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

/// The shell script that writes `files` under `/seed` and gives it all to
/// uid 1000: only `printf` (a builtin, every byte an octal escape), `mkdir`,
/// `chmod` and `chown`, so any image with a POSIX shell runs it.
fn seed_script(files: &[SeedFile]) -> Result<String> {
    // Once per volume: a cell made again (an upgrade) keeps the state its
    // gateway wrote. The mark is a dir, so `cd` (a builtin) tells.
    let mut script = format!(
        "set -e; umask 077; if (cd {SEED_TARGET}/{SEEDED_MARK}) 2>/dev/null; then exit 0; fi; "
    );
    for file in files {
        let plain = !file.path.is_empty()
            && !file.path.starts_with('/')
            && file
                .path
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != "..")
            && file
                .path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
        if !plain {
            return Err(Error::Other(format!(
                "cannot seed {:?}: not a plain relative path",
                file.path
            )));
        }
        let target = format!("{SEED_TARGET}/{}", file.path);
        if let Some((dir, _)) = target.rsplit_once('/') {
            script.push_str(&format!("mkdir -p '{dir}'; "));
        }
        let mut escaped = String::with_capacity(file.bytes.len() * 4);
        for byte in &file.bytes {
            escaped.push_str(&format!("\\{byte:03o}"));
        }
        script.push_str(&format!(
            "printf '{escaped}' > '{target}'; chmod {:o} '{target}'; ",
            file.mode
        ));
    }
    script.push_str(&format!(
        "mkdir {SEED_TARGET}/{SEEDED_MARK}; chown -R 1000:1000 {SEED_TARGET}; chmod 700 {SEED_TARGET}"
    ));
    Ok(script)
}

/// A one-shot job on a cell's volumes (`run_volume_job`).
pub(crate) struct VolumeJob<'a> {
    pub tenant: &'a TenantId,
    pub image: &'a str,
    pub node: Option<&'a str>,
    pub volumes: &'a [VolumeMount],
    pub script: &'a str,
    pub secrets: Vec<TaskSpecContainerSpecSecrets>,
    pub timeout: std::time::Duration,
}

/// One named volume of a cell, on the node that runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeMount {
    /// `mtp-cell-<id>-<suffix>`.
    pub suffix: String,
    pub target: String,
}

impl VolumeMount {
    /// The volume's name for `tenant`.
    #[must_use]
    pub fn volume_name(&self, tenant: &TenantId) -> String {
        format!("{}-{}", tenant.cell_name(), self.suffix)
    }
}

/// What a tenant's service is made from: the engine-neutral cell (its port and
/// host mounts unused) plus where its state lives and which node runs it.
#[derive(Debug, Clone)]
pub struct SwarmCellSpec {
    pub cell: CellSpec,
    pub volumes: Vec<VolumeMount>,
    /// Node id the service is pinned to (its volumes are there); `None` lets
    /// the scheduler choose (a fresh tenant with nothing on disk yet).
    pub node: Option<String>,
}

/// What Swarm says of a tenant's service.
#[derive(Debug, Clone, PartialEq)]
pub struct SwarmCell {
    pub service_id: String,
    pub generation: u64,
    /// Replicas asked for: 1 running, 0 stopped.
    pub replicas: u64,
    /// State of the newest task (`running`, `starting`, `failed`, `shutdown`, …).
    pub task_state: Option<String>,
    /// Its message or error as Swarm words it.
    pub task_message: Option<String>,
    /// Node of the newest task.
    pub node: Option<String>,
    /// Container of the newest task, on its node.
    pub container_id: Option<String>,
    /// Whether the engine kept `no-new-privileges` in the spec (API ≥ 1.46).
    pub no_new_privileges: bool,
    /// Published ports, which MTP never asks for (a check for tests and doctor).
    pub published_ports: Vec<u16>,
    /// Environment of the spec: names only, never values.
    pub env_names: Vec<String>,
    /// The image the spec names.
    pub image: String,
    /// Exit code of the newest task's container, once it has exited.
    pub exit_code: Option<i64>,
    /// When the newest task last changed state (RFC 3339).
    pub since: Option<String>,
    /// Tasks of the service that failed (Swarm keeps the last few).
    pub failed_tasks: u64,
}

/// One node of the swarm (or the single engine, as one node).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    pub id: String,
    pub hostname: String,
    /// `manager` or `worker`; `engine` for a single host outside any swarm.
    pub role: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// `ready`, `down`, …
    pub state: String,
    pub leader: bool,
    pub labels: HashMap<String, String>,
    pub memory_bytes: u64,
    pub nano_cpus: i64,
}

/// Where this engine stands in a swarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwarmRole {
    /// Not part of a swarm.
    None,
    /// A worker: it runs tasks but cannot manage services.
    Worker,
    /// A manager: services, secrets and overlay networks are made here.
    Manager,
}

impl Runtime {
    /// Where this engine stands in a swarm.
    ///
    /// # Errors
    ///
    /// Docker cannot be asked.
    pub async fn swarm_role(&self) -> Result<SwarmRole> {
        let info = self.docker().info().await?;
        let Some(swarm) = info.swarm else {
            return Ok(SwarmRole::None);
        };
        let active = swarm
            .local_node_state
            .is_some_and(|state| state.to_string() == "active");
        Ok(match (active, swarm.control_available.unwrap_or(false)) {
            (false, _) => SwarmRole::None,
            (true, false) => SwarmRole::Worker,
            (true, true) => SwarmRole::Manager,
        })
    }

    /// This engine's node: its swarm node id, or its engine id outside a swarm
    /// (the id `nodes` gives it then).
    ///
    /// # Errors
    ///
    /// Docker cannot be asked.
    pub async fn local_node_id(&self) -> Result<String> {
        let info = self.docker().info().await?;
        let swarm_node = info
            .swarm
            .and_then(|swarm| swarm.node_id)
            .filter(|id| !id.is_empty());
        Ok(swarm_node.or(info.id).unwrap_or_default())
    }

    /// The swarm's nodes, or this engine as the one node when it is in no swarm.
    ///
    /// # Errors
    ///
    /// Docker cannot be asked; a worker cannot list nodes.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        match self.swarm_role().await? {
            SwarmRole::None => {
                let info = self.docker().info().await?;
                Ok(vec![NodeInfo {
                    id: info.id.unwrap_or_default(),
                    hostname: info.name.unwrap_or_default(),
                    role: "engine".to_string(),
                    availability: "active".to_string(),
                    state: "ready".to_string(),
                    leader: false,
                    labels: HashMap::new(),
                    memory_bytes: u64::try_from(info.mem_total.unwrap_or_default())
                        .unwrap_or_default(),
                    nano_cpus: info.ncpu.unwrap_or_default() * 1_000_000_000,
                }])
            }
            SwarmRole::Worker => Err(Error::Other(
                "this Docker engine is a swarm worker; run MTP against a manager".to_string(),
            )),
            SwarmRole::Manager => {
                let nodes = self.docker().list_nodes(None::<ListNodesOptions>).await?;
                Ok(nodes
                    .into_iter()
                    .map(|node| {
                        let spec = node.spec.unwrap_or_default();
                        let description = node.description.unwrap_or_default();
                        let resources = description.resources.unwrap_or_default();
                        NodeInfo {
                            id: node.id.unwrap_or_default(),
                            hostname: description.hostname.unwrap_or_default(),
                            role: spec.role.map(|r| r.to_string()).unwrap_or_default(),
                            availability: spec
                                .availability
                                .map(|a| a.to_string())
                                .unwrap_or_default(),
                            state: node
                                .status
                                .and_then(|s| s.state)
                                .map(|s| s.to_string())
                                .unwrap_or_default(),
                            leader: node.manager_status.and_then(|m| m.leader).unwrap_or(false),
                            labels: spec.labels.unwrap_or_default(),
                            memory_bytes: u64::try_from(resources.memory_bytes.unwrap_or(0))
                                .unwrap_or_default(),
                            nano_cpus: resources.nano_cpus.unwrap_or(0),
                        }
                    })
                    .collect())
            }
        }
    }

    /// Makes (not starts: zero replicas) the tenant's service with its secrets
    /// and overlay network. A service of ours from an earlier attempt is
    /// replaced; its volumes (the tenant's state) are kept.
    ///
    /// # Errors
    ///
    /// `NoImage` when this engine lacks the image (a multi-node swarm pulls it
    /// from a registry; this one checks what it can), `Foreign` when a service
    /// or network of that name is not ours, `Docker` otherwise.
    pub async fn create_service(&self, spec: &SwarmCellSpec) -> Result<String> {
        let cell = &spec.cell;
        let name = cell.tenant.cell_name();
        if self.image_id(&cell.image).await?.is_none() {
            return Err(Error::NoImage {
                image: cell.image.clone(),
            });
        }
        if let Some(owner) = self.service_owner(&name).await? {
            if owner.as_deref() != Some(cell.tenant.as_str()) {
                return Err(Error::Foreign { name });
            }
            self.docker().delete_service(&name).await?;
        }
        self.create_overlay(&cell.tenant, cell.generation, &cell.subnet)
            .await?;
        let mut secrets = Vec::new();
        for (variable, value) in &cell.secret_env {
            let (id, secret_name) = self
                .put_secret(&cell.tenant, cell.generation, variable, value)
                .await?;
            secrets.push(TaskSpecContainerSpecSecrets {
                file: Some(TaskSpecContainerSpecFile {
                    name: Some(variable.clone()),
                    uid: Some("1000".to_string()),
                    gid: Some("1000".to_string()),
                    mode: Some(0o400),
                }),
                secret_id: Some(id),
                secret_name: Some(secret_name),
            });
        }
        let service = service_spec(spec, secrets);
        let created = self.docker().create_service(service, None).await?;
        Ok(created.id.unwrap_or_default())
    }

    /// Runs the tenant's service (one replica).
    ///
    /// # Errors
    ///
    /// `NotFound`, `Foreign`, or Docker's refusal.
    pub async fn start_service(&self, tenant: &TenantId) -> Result<bool> {
        self.scale(tenant, 1).await
    }

    /// Stops the tenant's service (zero replicas; the task gets SIGTERM and
    /// the grace period).
    ///
    /// # Errors
    ///
    /// `NotFound`, `Foreign`, or Docker's refusal.
    pub async fn stop_service(&self, tenant: &TenantId) -> Result<bool> {
        self.scale(tenant, 0).await
    }

    /// Sets the replica count; `Ok(false)` when it already was `replicas`.
    async fn scale(&self, tenant: &TenantId, replicas: i64) -> Result<bool> {
        let name = self.own_service(tenant).await?;
        let current = self
            .docker()
            .inspect_service(&name, None::<InspectServiceOptions>)
            .await?;
        let mut spec = current.spec.unwrap_or_default();
        let now = spec
            .mode
            .as_ref()
            .and_then(|mode| mode.replicated.as_ref())
            .and_then(|r| r.replicas)
            .unwrap_or(0);
        if now == replicas {
            return Ok(false);
        }
        spec.mode = Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(replicas),
            }),
            ..Default::default()
        });
        self.update_spec(&name, current.version, spec).await?;
        Ok(true)
    }

    /// Replaces the spec of the service `name`, which was at `version`.
    pub(super) async fn update_spec(
        &self,
        name: &str,
        version: Option<bollard::models::ObjectVersion>,
        spec: ServiceSpec,
    ) -> Result<()> {
        let version = version
            .and_then(|v| v.index)
            .ok_or_else(|| Error::Other(format!("service {name} has no version")))?;
        let options = UpdateServiceOptionsBuilder::new()
            .version(i32::try_from(version).unwrap_or(i32::MAX))
            .build();
        self.docker()
            .update_service(name, spec, options, None)
            .await?;
        Ok(())
    }

    /// Removes the tenant's service, its secrets and its network; the
    /// volumes too when given (they are the tenant's state; a volume is
    /// removed from this engine's node). `Ok(false)` when there was no service.
    /// What a stopping task still holds is retried until it lets go.
    ///
    /// # Errors
    ///
    /// `Foreign` when the service is not ours; `Docker` otherwise, or
    /// something still in use after a minute.
    pub async fn remove_service(&self, tenant: &TenantId, volumes: &[VolumeMount]) -> Result<bool> {
        let existed = self.remove_swarm_cell(tenant).await?;
        self.disconnect_all(tenant).await?;
        self.retry_in_use(|| self.remove_leftovers(tenant, volumes))
            .await?;
        self.overlay_gone(tenant).await?;
        Ok(existed)
    }

    /// Waits (up to 30 s) until the tenant's overlay, removed, is gone from
    /// this node too: Swarm takes it away from the manager at once and from
    /// the node a moment later, and a cell made again meanwhile would meet it.
    pub(super) async fn overlay_gone(&self, tenant: &TenantId) -> Result<()> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.network_of(&tenant.cell_name()).await?.is_some() {
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Other(format!(
                    "the overlay of {tenant} was removed but is still on this node after 30 s; remove it by hand (docker network rm {})",
                    tenant.cell_name()
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        Ok(())
    }

    /// The secrets, network and `volumes` of a tenant whose service is gone.
    pub(super) async fn remove_leftovers(
        &self,
        tenant: &TenantId,
        volumes: &[VolumeMount],
    ) -> Result<()> {
        // Swarm reaps the containers of a removed service's tasks in its own
        // time (an exited one lingered for over a minute here) and they hold
        // the volumes: the ones on this node go now, the cell's and its jobs'.
        let cell = tenant.cell_name();
        self.remove_task_containers(&cell).await?;
        self.remove_task_containers(&format!("{cell}-job")).await?;
        for (id, _) in self.tenant_secrets(tenant).await? {
            match self.docker().delete_secret(&id).await {
                Ok(()) => {}
                Err(err) if is_status(&err, 404) => {}
                Err(err) => return Err(err.into()),
            }
        }
        self.remove_own_network(tenant).await?;
        self.remove_volumes(tenant, volumes).await
    }

    /// Removes `volumes` of `tenant` from this engine's node; gone already is fine.
    pub(super) async fn remove_volumes(
        &self,
        tenant: &TenantId,
        volumes: &[VolumeMount],
    ) -> Result<()> {
        for volume in volumes {
            match self
                .docker()
                .remove_volume(
                    &volume.volume_name(tenant),
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await
            {
                Ok(()) => {}
                Err(err) if is_status(&err, 404) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    /// What Swarm says of the tenant's service; `Ok(None)` when there is none.
    ///
    /// # Errors
    ///
    /// `Foreign` for a service of that name without our label; `Docker`.
    pub async fn inspect_service(&self, tenant: &TenantId) -> Result<Option<SwarmCell>> {
        let name = tenant.cell_name();
        let service = match self
            .docker()
            .inspect_service(&name, None::<InspectServiceOptions>)
            .await
        {
            Ok(service) => service,
            Err(err) if is_status(&err, 404) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let spec = service.spec.clone().unwrap_or_default();
        if spec.name.as_deref() != Some(name.as_str()) {
            return Ok(None);
        }
        let labels = spec.labels.clone().unwrap_or_default();
        if labels.get(LABEL_TENANT).map(String::as_str) != Some(tenant.as_str()) {
            return Err(Error::Foreign { name });
        }
        let container = spec
            .task_template
            .as_ref()
            .and_then(|t| t.container_spec.clone())
            .unwrap_or_default();
        let tasks = self.service_tasks(&name).await?;
        // Failures since the service last changed (a start, stop, restart or
        // its making): as a container's restart count, which a new start
        // leaves behind. Swarm keeps older failed tasks for a while; counting
        // them would fail every later health wait after one crash.
        let since = service
            .updated_at
            .as_deref()
            .or(service.created_at.as_deref())
            .and_then(instant);
        let failed_tasks = tasks
            .iter()
            .filter(|task| task.status.as_ref().and_then(|s| s.state) == Some(TaskState::FAILED))
            .filter(|task| {
                let created = task.created_at.as_deref().and_then(instant);
                matches!((created, since), (Some(created), Some(since)) if created >= since)
            })
            .count() as u64;
        let newest = tasks
            .into_iter()
            .max_by_key(|task| task.created_at.as_deref().and_then(instant));
        let status = newest.as_ref().and_then(|task| task.status.clone());
        Ok(Some(SwarmCell {
            service_id: service.id.unwrap_or_default(),
            generation: labels
                .get(LABEL_GENERATION)
                .and_then(|g| g.parse().ok())
                .unwrap_or(0),
            replicas: spec
                .mode
                .and_then(|mode| mode.replicated)
                .and_then(|r| r.replicas)
                .and_then(|r| u64::try_from(r).ok())
                .unwrap_or(0),
            task_state: status.as_ref().and_then(|s| s.state).map(|s| s.to_string()),
            task_message: status
                .as_ref()
                .and_then(|s| s.err.clone().or_else(|| s.message.clone())),
            node: newest.as_ref().and_then(|task| task.node_id.clone()),
            container_id: status
                .as_ref()
                .and_then(|s| s.container_status.as_ref())
                .and_then(|c| c.container_id.clone()),
            exit_code: status
                .as_ref()
                .and_then(|s| s.container_status.as_ref())
                .and_then(|c| c.exit_code),
            since: status.as_ref().and_then(|s| s.timestamp.clone()),
            failed_tasks,
            image: container.image.clone().unwrap_or_default(),
            no_new_privileges: container
                .privileges
                .and_then(|p| p.no_new_privileges)
                .unwrap_or(false),
            published_ports: service
                .endpoint
                .and_then(|e| e.ports)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| p.published_port.and_then(|p| u16::try_from(p).ok()))
                .collect(),
            env_names: container
                .env
                .unwrap_or_default()
                .into_iter()
                .map(|pair| {
                    pair.split_once('=')
                        .map_or(pair.clone(), |(k, _)| k.to_string())
                })
                .collect(),
        }))
    }

    /// The last `tail` lines (all with `None`) of the tenant's service's log,
    /// from every node its tasks ran on, as Swarm gathers them
    /// (`/services/{id}/logs`).
    ///
    /// # Errors
    ///
    /// `NotFound`, `Foreign`, or the engine refusing.
    pub async fn service_logs(
        &self,
        tenant: &TenantId,
        tail: Option<usize>,
        since: Option<i64>,
    ) -> Result<Vec<super::LogLine>> {
        let name = self.own_service(tenant).await?;
        let tail = tail.map_or_else(|| "all".to_string(), |n| n.to_string());
        let since = since.map_or_else(String::new, |since| format!("&since={since}"));
        match self
            .logs_of_service(&name, &format!("stdout=1&stderr=1&tail={tail}{since}"))
            .await?
        {
            Some(lines) => Ok(lines),
            None => Err(Error::NotFound(tenant.clone())),
        }
    }

    /// The log lines of the service `name` for the query `query`; `None`
    /// when there is no such service.
    pub(super) async fn logs_of_service(
        &self,
        name: &str,
        query: &str,
    ) -> Result<Option<Vec<super::LogLine>>> {
        use futures_util::StreamExt as _;

        let (status, body) = self
            .raw_get(&format!("/services/{name}/logs?{query}"))
            .await?;
        match status {
            200 => {}
            404 => return Ok(None),
            _ => {
                let message = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["message"].as_str().map(str::to_string))
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
                return Err(Error::Other(format!(
                    "the engine refused the logs of {name} ({status}): {message}"
                )));
            }
        }
        let frames = super::raw::demultiplex(&body);
        let mut lines =
            super::cell::split_lines(futures_util::stream::iter(frames.into_iter().map(Ok)))
                .boxed();
        let mut res = Vec::new();
        while let Some(line) = lines.next().await {
            res.push(line?);
        }
        Ok(Some(res))
    }

    /// Tenants that have a service, with the node of its newest task.
    ///
    /// # Errors
    ///
    /// `Docker` when the engine cannot be reached.
    pub async fn list_services(&self) -> Result<Vec<(TenantId, Option<String>)>> {
        let filters = HashMap::from([("label", vec!["mtp.managed=true"])]);
        let options = ListServicesOptionsBuilder::new().filters(&filters).build();
        let services = self.docker().list_services(Some(options)).await?;
        let mut res = Vec::new();
        for service in services {
            let Some(tenant) = service.spec.and_then(|s| s.labels).and_then(|l| {
                l.get(LABEL_TENANT)
                    .and_then(|id| id.parse::<TenantId>().ok())
            }) else {
                continue;
            };
            let node = self
                .service_tasks(&tenant.cell_name())
                .await?
                .into_iter()
                .filter(|task| task.desired_state == Some(TaskState::RUNNING))
                .find_map(|task| task.node_id);
            res.push((tenant, node));
        }
        Ok(res)
    }

    /// Makes `volume` of `tenant` the gateway's (uid 1000, mode 0700) and
    /// writes `files` into it, unless it was seeded before (`SEEDED_MARK`), from a one-shot job of `image` on `node`: how
    /// a volume is given its first files on whichever node holds it, without
    /// exec or bind mounts. The files travel in the job's command, which
    /// Swarm shows to anyone who can inspect services: nothing secret may be
    /// written this way (secrets are Docker secrets). The image needs a POSIX
    /// shell with `mkdir`, `chmod` and `chown`.
    ///
    /// # Errors
    ///
    /// A path that is not plain, the job failing (its message), Docker
    /// refusing, or `timeout` passing.
    pub async fn seed_volume(
        &self,
        tenant: &TenantId,
        image: &str,
        node: Option<&str>,
        volume: &VolumeMount,
        files: &[SeedFile],
        timeout: std::time::Duration,
    ) -> Result<()> {
        let script = seed_script(files)?;
        let mount = VolumeMount {
            suffix: volume.suffix.clone(),
            target: SEED_TARGET.to_string(),
        };
        self.run_volume_job(&VolumeJob {
            tenant,
            image,
            node,
            volumes: &[mount],
            script: &script,
            secrets: Vec::new(),
            timeout,
        })
        .await
        .map(drop)
    }

    /// Runs the job's script once with `sh -c` as root in its image on its
    /// node with its volumes and secrets mounted, waits for it to finish and
    /// returns what it wrote to stdout.
    pub(super) async fn run_volume_job(&self, job: &VolumeJob<'_>) -> Result<Vec<super::LogLine>> {
        let VolumeJob {
            tenant,
            image,
            node,
            volumes,
            script,
            timeout,
            ..
        } = *job;
        let name = format!("{}-job", tenant.cell_name());
        if self.service_owner(&name).await?.is_some() {
            self.docker().delete_service(&name).await?;
        }
        let mut job_labels = labels(tenant, 0);
        job_labels.insert("mtp.job".to_string(), "volume".to_string());
        let spec = ServiceSpec {
            name: Some(name.clone()),
            labels: Some(job_labels.clone()),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(image.to_string()),
                    labels: Some(job_labels),
                    command: Some(vec![
                        "/bin/sh".to_string(),
                        "-c".to_string(),
                        script.to_string(),
                    ]),
                    user: Some("0:0".to_string()),
                    mounts: Some(volume_mounts(tenant, volumes)),
                    secrets: Some(job.secrets.clone()),
                    init: Some(true),
                    // Only what preparing files takes.
                    capability_drop: Some(vec!["ALL".to_string()]),
                    capability_add: Some(vec![
                        "CAP_CHOWN".to_string(),
                        "CAP_DAC_OVERRIDE".to_string(),
                        "CAP_FOWNER".to_string(),
                    ]),
                    ..Default::default()
                }),
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                    ..Default::default()
                }),
                // What the job prints is read back whole (an export): a log
                // the engine rotated away would lose it.
                log_driver: Some(TaskSpecLogDriver {
                    name: Some("json-file".to_string()),
                    options: Some(HashMap::from([("max-size".to_string(), "4g".to_string())])),
                }),
                placement: node.map(|node| TaskSpecPlacement {
                    constraints: Some(vec![format!("node.id=={node}")]),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: Some(ServiceSpecMode {
                replicated_job: Some(ServiceSpecModeReplicatedJob {
                    max_concurrent: Some(1),
                    total_completions: Some(1),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.docker().create_service(spec, None).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        let outcome = loop {
            let tasks = self.service_tasks(&name).await?;
            let status = tasks
                .into_iter()
                .filter_map(|t| t.status)
                .find(|s| s.state.is_some());
            match status.as_ref().and_then(|s| s.state) {
                Some(TaskState::COMPLETE) => {
                    break self
                        .logs_of_service(&name, "stdout=1&tail=all")
                        .await
                        .map(Option::unwrap_or_default);
                }
                Some(TaskState::FAILED | TaskState::REJECTED | TaskState::ORPHANED) => {
                    let status = status.unwrap_or_default();
                    let exit = status
                        .container_status
                        .and_then(|c| c.exit_code)
                        .map(|c| format!(" (exit {c})"))
                        .unwrap_or_default();
                    break Err(Error::Other(format!(
                        "the volume job of {tenant} failed{exit}: {}",
                        status.err.or(status.message).unwrap_or_default()
                    )));
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                break Err(Error::Other(format!(
                    "the volume job of {tenant} did not finish within {} s",
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        };
        match self.docker().delete_service(&name).await {
            Ok(()) => {}
            Err(err) if is_status(&err, 404) => {}
            Err(err) => return Err(err.into()),
        }
        // Its finished container would hold the volume until Swarm reaps it.
        self.remove_task_containers(&name).await?;
        outcome
    }

    /// Removes the containers on this node of the tasks of the service `name`
    /// (which is gone or going).
    pub(super) async fn remove_task_containers(&self, name: &str) -> Result<()> {
        let service = format!("com.docker.swarm.service.name={name}");
        let filters = HashMap::from([("label", vec![service.as_str()])]);
        let options = bollard::query_parameters::ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        for container in self.docker().list_containers(Some(options)).await? {
            let Some(id) = container.id else { continue };
            let options = bollard::query_parameters::RemoveContainerOptionsBuilder::new()
                .force(true)
                .build();
            match self.docker().remove_container(&id, Some(options)).await {
                Ok(()) => {}
                // Gone already, or being removed by Swarm itself.
                Err(err) if is_status(&err, 404) || is_status(&err, 409) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    /// The tasks of a service by name.
    pub(super) async fn service_tasks(&self, name: &str) -> Result<Vec<bollard::models::Task>> {
        let filters = HashMap::from([("service", vec![name])]);
        let options = ListTasksOptionsBuilder::new().filters(&filters).build();
        Ok(self.docker().list_tasks(Some(options)).await?)
    }

    /// Attaches `container` (the admin's own, see `own_container_id`) to the
    /// tenant's overlay, so it reaches the gateway at `mtp-cell-<id>:18789`;
    /// `Ok(false)` when it already was.
    ///
    /// # Errors
    ///
    /// `NotFound` when the tenant has no network, `Foreign` when it is not
    /// ours, `Docker` otherwise.
    pub async fn join_cell_network(&self, tenant: &TenantId, container: &str) -> Result<bool> {
        if self.network_subnets(tenant).await?.is_none() {
            return Err(Error::NotFound(tenant.clone()));
        }
        self.attach(&tenant.cell_name(), container).await
    }

    /// Puts `container` on `network`; `Ok(false)` when it already was.
    pub(super) async fn attach(&self, network: &str, container: &str) -> Result<bool> {
        let request = bollard::models::NetworkConnectRequest {
            container: Some(container.to_string()),
            ..Default::default()
        };
        match self.docker().connect_network(network, request).await {
            Ok(()) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                if message.contains("already attached") || message.contains("already exists") =>
            {
                Ok(false)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The tenant's overlay network, attachable (the admin joins it), on the
    /// subnet MTP handed out.
    pub(super) async fn create_overlay(
        &self,
        tenant: &TenantId,
        generation: u64,
        subnet: &str,
    ) -> Result<()> {
        let name = tenant.cell_name();
        if let Some(subnets) = self.network_subnets(tenant).await? {
            if subnets.iter().any(|s| s == subnet) {
                return Ok(());
            }
            self.docker().remove_network(&name).await?;
        }
        let request = NetworkCreateRequest {
            name,
            driver: Some("overlay".to_string()),
            attachable: Some(true),
            internal: Some(false),
            ipam: Some(super::network::ipam(subnet)),
            labels: Some(labels(tenant, generation)),
            ..Default::default()
        };
        self.docker().create_network(request).await?;
        Ok(())
    }

    /// Creates (or finds, by the hash of its value) the secret holding
    /// `variable` for `tenant`; returns its id and name. The name carries a
    /// hash of the value, never the value.
    async fn put_secret(
        &self,
        tenant: &TenantId,
        generation: u64,
        variable: &str,
        value: &Secret<String>,
    ) -> Result<(String, String)> {
        // The tenant in the hash too: one value given to two tenants is two
        // secrets, and a name says nothing across tenants.
        let digest = Sha256::digest(
            format!("{}\0{variable}\0{}", tenant.as_str(), value.expose()).as_bytes(),
        );
        let name = format!("mtp-{}-{}", tenant.as_str(), &hex::encode(digest)[..16]);
        if let Some((id, _)) = self
            .tenant_secrets(tenant)
            .await?
            .into_iter()
            .find(|(_, n)| *n == name)
        {
            return Ok((id, name));
        }
        let mut secret_labels = labels(tenant, generation);
        secret_labels.insert("mtp.variable".to_string(), variable.to_string());
        let spec = SecretSpec {
            name: Some(name.clone()),
            labels: Some(secret_labels),
            data: Some(base64::engine::general_purpose::STANDARD.encode(value.expose())),
            ..Default::default()
        };
        let created = self.docker().create_secret(spec).await?;
        Ok((created.id, name))
    }

    /// The tenant's secrets in Swarm: (id, name).
    async fn tenant_secrets(&self, tenant: &TenantId) -> Result<Vec<(String, String)>> {
        let label = format!("{LABEL_TENANT}={}", tenant.as_str());
        let filters = HashMap::from([("label", vec![label.as_str()])]);
        let options = ListSecretsOptionsBuilder::new().filters(&filters).build();
        Ok(self
            .docker()
            .list_secrets(Some(options))
            .await?
            .into_iter()
            .filter_map(|secret| Some((secret.id?, secret.spec?.name?)))
            .collect())
    }

    /// The name of the tenant's service, after checking it is ours.
    pub(super) async fn own_service(&self, tenant: &TenantId) -> Result<String> {
        let name = tenant.cell_name();
        match self.service_owner(&name).await? {
            None => Err(Error::NotFound(tenant.clone())),
            Some(Some(owner)) if owner == tenant.as_str() => Ok(name),
            Some(_) => Err(Error::Foreign { name }),
        }
    }

    /// `None`: no such service; `Some(label)`: it exists, with its tenant label.
    pub(super) async fn service_owner(&self, name: &str) -> Result<Option<Option<String>>> {
        match self
            .docker()
            .inspect_service(name, None::<InspectServiceOptions>)
            .await
        {
            Ok(service) => {
                let spec = service.spec.unwrap_or_default();
                if spec.name.as_deref() != Some(name) {
                    return Ok(None);
                }
                Ok(Some(
                    spec.labels
                        .and_then(|labels| labels.get(LABEL_TENANT).cloned()),
                ))
            }
            Err(err) if is_status(&err, 404) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }
}

/// An engine timestamp (RFC 3339 with nanoseconds, trailing zeros trimmed,
/// so text order is not time order).
fn instant(text: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(text).ok()
}

/// The named volumes of a cell as service mounts.
fn volume_mounts(tenant: &TenantId, volumes: &[VolumeMount]) -> Vec<bollard::models::Mount> {
    volumes
        .iter()
        .map(|volume| bollard::models::Mount {
            target: Some(volume.target.clone()),
            source: Some(volume.volume_name(tenant)),
            typ: Some(MountTypeEnum::VOLUME),
            read_only: Some(false),
            volume_options: Some(MountVolumeOptions {
                // An empty volume over a path of the image stays empty.
                no_copy: Some(true),
                labels: Some(labels(tenant, 0)),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect()
}

/// The service of a cell: the cell profile as Swarm words it, zero replicas.
fn service_spec(spec: &SwarmCellSpec, secrets: Vec<TaskSpecContainerSpecSecrets>) -> ServiceSpec {
    let cell = &spec.cell;
    let name = cell.tenant.cell_name();
    let command = super::with_secrets_exported(&cell.command);
    let mut mounts = volume_mounts(&cell.tenant, &spec.volumes);
    mounts.push(bollard::models::Mount {
        target: Some("/tmp".to_string()),
        typ: Some(MountTypeEnum::TMPFS),
        tmpfs_options: Some(MountTmpfsOptions {
            size_bytes: Some(TMPFS_BYTES),
            mode: Some(0o1777),
            ..Default::default()
        }),
        ..Default::default()
    });
    let cell_labels = labels(&cell.tenant, cell.generation);
    ServiceSpec {
        name: Some(name.clone()),
        labels: Some(cell_labels.clone()),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(cell.image.clone()),
                labels: Some(cell_labels),
                command: Some(command),
                hostname: Some(name.clone()),
                env: Some(cell.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
                user: Some("1000:1000".to_string()),
                privileges: Some(TaskSpecContainerSpecPrivileges {
                    no_new_privileges: Some(true),
                    ..Default::default()
                }),
                read_only: Some(true),
                mounts: Some(mounts),
                stop_grace_period: Some(STOP_GRACE_NANOS),
                secrets: Some(secrets),
                init: Some(true),
                capability_drop: Some(vec!["ALL".to_string()]),
                ..Default::default()
            }),
            resources: Some(TaskSpecResources {
                limits: Some(Limit {
                    nano_cpus: Some(cell.limits.nano_cpus),
                    memory_bytes: Some(cell.limits.memory_bytes),
                    pids: Some(cell.limits.pids),
                }),
                // Reserved as much as allowed: the scheduler packs by memory.
                reservations: Some(ResourceObject {
                    memory_bytes: Some(cell.limits.memory_bytes),
                    ..Default::default()
                }),
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                delay: Some(5_000_000_000),
                ..Default::default()
            }),
            placement: spec.node.as_ref().map(|node| TaskSpecPlacement {
                constraints: Some(vec![format!("node.id=={node}")]),
                ..Default::default()
            }),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some(name.clone()),
                aliases: Some(vec![name]),
                ..Default::default()
            }]),
            log_driver: Some(TaskSpecLogDriver {
                name: Some("json-file".to_string()),
                options: Some(HashMap::from([
                    ("max-size".to_string(), cell.log_max_bytes.to_string()),
                    ("max-file".to_string(), cell.log_max_files.to_string()),
                ])),
            }),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(0) }),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec {
            // The name resolves to the task itself: no virtual IP, whose
            // load-balancer rules reach a container joined later only after a
            // while (seen: "No route to host" for a minute).
            mode: Some(EndpointSpecModeEnum::DNSRR),
            ports: Some(Vec::new()),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::LABEL_MANAGED;
    use crate::tenant::Limits;

    fn spec() -> SwarmCellSpec {
        SwarmCellSpec {
            cell: CellSpec {
                tenant: "acme".parse().unwrap(),
                generation: 3,
                image: "mtp-test/openclaw:2026.9.6".to_string(),
                port: 0,
                subnet: "10.220.0.0/28".to_string(),
                limits: Limits {
                    memory_bytes: 2 << 30,
                    nano_cpus: 1_500_000_000,
                    pids: 512,
                },
                mounts: Vec::new(),
                env: vec![("HOME".to_string(), "/home/node".to_string())],
                secret_env: vec![(
                    "TELEGRAM_BOT_TOKEN".to_string(),
                    Secret::new("123:secret".to_string()),
                )],
                secrets_as_files: true,
                command: vec!["node".to_string(), "dist/index.js".to_string()],
                log_max_bytes: 10 << 20,
                log_max_files: 3,
                node: None,
            },
            volumes: vec![VolumeMount {
                suffix: "state".to_string(),
                target: "/home/node/.openclaw".to_string(),
            }],
            node: Some("n1".to_string()),
        }
    }

    #[test]
    fn the_service_holds_the_profile_and_no_secret() {
        let service = service_spec(&spec(), Vec::new());
        let text = serde_json::to_string(&service).unwrap();
        assert!(!text.contains("123:secret"), "{text}");
        let task = service.task_template.unwrap();
        let container = task.container_spec.unwrap();
        assert_eq!(container.capability_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(container.init, Some(true));
        assert_eq!(container.read_only, Some(true));
        assert_eq!(container.user.as_deref(), Some("1000:1000"));
        let command = container.command.unwrap();
        assert_eq!(&command[..2], ["/bin/sh", "-c"]);
        assert_eq!(&command[4..], ["node", "dist/index.js"]);
        let resources = task.resources.unwrap();
        let limits = resources.limits.unwrap();
        assert_eq!(limits.pids, Some(512));
        assert_eq!(
            resources.reservations.unwrap().memory_bytes,
            limits.memory_bytes
        );
        assert_eq!(
            task.placement.unwrap().constraints,
            Some(vec!["node.id==n1".to_string()])
        );
        assert_eq!(service.endpoint_spec.unwrap().ports, Some(Vec::new()));
        assert_eq!(
            service
                .labels
                .unwrap()
                .get(LABEL_MANAGED)
                .map(String::as_str),
            Some("true")
        );
    }

    #[test]
    fn the_own_container_is_found_in_mountinfo() {
        let id = "5f0c2b1e9d8a7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b";
        let inside = format!(
            "612 593 0:52 / / rw,relatime - overlay overlay rw\n\
             631 612 254:1 /var/lib/docker/containers/{id}/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda rw\n\
             632 612 254:1 /var/lib/docker/containers/{id}/hostname /etc/hostname rw - ext4 /dev/vda rw\n"
        );
        assert_eq!(container_id_in(&inside).as_deref(), Some(id));
        let outside = "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n";
        assert_eq!(container_id_in(outside), None);
    }

    #[test]
    fn the_seed_script_writes_every_byte_and_refuses_odd_paths() {
        let bytes: Vec<u8> = (0..=255).chain(*b"%d %s '\"\\n").collect();
        let files = [
            SeedFile {
                path: "openclaw.json".to_string(),
                bytes: br#"{ gateway: { mode: "local" } }"#.to_vec(),
                mode: 0o600,
            },
            SeedFile {
                path: "devices/paired.json".to_string(),
                bytes: bytes.clone(),
                mode: 0o644,
            },
        ];
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("seed");
        std::fs::create_dir(&root).unwrap();
        let script = seed_script(&files)
            .unwrap()
            .replace(SEED_TARGET, root.to_str().unwrap())
            // Owners are not this test's business (it may not run as root).
            .replace("chown -R 1000:1000", "true");
        let status = std::process::Command::new("sh")
            .args(["-c", &script])
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            std::fs::read(root.join("devices/paired.json")).unwrap(),
            bytes
        );
        assert_eq!(
            std::fs::read_to_string(root.join("openclaw.json")).unwrap(),
            r#"{ gateway: { mode: "local" } }"#
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| {
            std::fs::metadata(root.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("openclaw.json"), 0o600);
        assert_eq!(mode("devices/paired.json"), 0o644);
        assert_eq!(mode(""), 0o700);

        for path in ["", "/etc/passwd", "../x", "a/../b", "a//b", "it's", "a b"] {
            let file = SeedFile {
                path: path.to_string(),
                bytes: Vec::new(),
                mode: 0o600,
            };
            assert!(seed_script(&[file]).is_err(), "{path:?} was accepted");
        }
    }
}
