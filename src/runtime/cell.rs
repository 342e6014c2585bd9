//! One tenant's container: create with the hardened cell profile, start, stop,
//! restart, remove, inspect, list, logs and exec. Every call checks the
//! `mtp.tenant` label first, so a same-named container MTP did not make is
//! never touched.

use std::collections::HashMap;
use std::path::PathBuf;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, HostConfigLogConfig, MountTypeEnum,
    NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RestartContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;

use crate::runtime::{Error, LABEL_GENERATION, LABEL_TENANT, Result, Runtime, is_status, labels};
use crate::tenant::{Engine, Limits, Secret, Started, Stopped, TenantId};

/// The port the gateway listens on inside every cell.
pub const GATEWAY_PORT: u16 = 18789;

/// The only writable places of a cell besides its state and auth dirs: the
/// root filesystem is read-only, and OpenClaw keeps its log file, state locks
/// and terminal staging under /tmp. A tmpfs counts against the cell's memory
/// limit; the size caps what a runaway log can take.
const TMPFS: [(&str, &str); 1] = [("/tmp", "rw,noexec,nosuid,nodev,size=128m,mode=1777")];

/// Seconds Docker gives the gateway to drain on stop before SIGKILL; OpenClaw
/// drains active work on SIGTERM, and an idle gateway stops in a few seconds.
const STOP_GRACE_SECS: i32 = 30;

/// Everything the runtime needs to make one cell.
#[derive(Debug, Clone)]
pub struct CellSpec {
    pub tenant: TenantId,
    pub generation: u64,
    pub image: String,
    /// Host port on 127.0.0.1 that publishes the gateway.
    pub port: u16,
    /// The /28 of the cell's own network.
    pub subnet: String,
    pub limits: Limits,
    pub mounts: Vec<Mount>,
    /// Plain environment, `NAME=value`.
    pub env: Vec<(String, String)>,
    /// Secret environment (tokens, keys); never logged.
    pub secret_env: Vec<(String, Secret<String>)>,
    /// The secrets reach the cell as files, one per variable, in a mount at
    /// `SECRETS_DIR` (written by the caller; one of `mounts`), exported by the
    /// cell's command (`with_secrets_exported`): none is in the container's
    /// environment, so `docker inspect` shows none.
    pub secrets_as_files: bool,
    pub command: Vec<String>,
    /// Docker's `json-file` log of the cell is rotated at this size and at
    /// most `log_max_files` files are kept.
    pub log_max_bytes: u64,
    pub log_max_files: u32,
    /// On Swarm, the node to run the cell on (its volumes are made there);
    /// `None`: this engine's node. A single host ignores it.
    pub node: Option<String>,
}

/// A host directory bound into the cell.
#[derive(Debug, Clone)]
pub struct Mount {
    pub source: PathBuf,
    pub target: String,
    /// The cell only reads it (its secrets).
    pub read_only: bool,
}

/// A labelled cell as listed by Docker.
#[derive(Debug, Clone, PartialEq)]
pub struct CellInfo {
    pub tenant: TenantId,
    pub container_id: String,
    pub generation: u64,
    pub running: bool,
    /// Docker's state word: created, running, exited, restarting, …
    pub state: String,
}

/// What inspect says of a cell.
#[derive(Debug, Clone, PartialEq)]
pub struct CellStatus {
    pub container_id: String,
    pub image_id: String,
    pub running: bool,
    pub restarting: bool,
    pub state: String,
    pub exit_code: i64,
    pub oom_killed: bool,
    pub restart_count: i64,
    /// RFC 3339, as Docker reports it.
    pub started_at: Option<String>,
    pub generation: u64,
}

/// Output of a command run in a cell.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub output: String,
}

/// One line of a cell's log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub stderr: bool,
    pub text: String,
}

impl Runtime {
    /// The id of a local image, `None` when Docker does not have it (nothing is pulled).
    ///
    /// # Errors
    ///
    /// Docker unreachable.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>> {
        match self.docker().inspect_image(image).await {
            Ok(found) => Ok(Some(found.id.unwrap_or_default())),
            Err(err) if is_status(&err, 404) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// Creates (not starts) the cell container with the hardened profile and
    /// returns its container id and the image id actually used.
    ///
    /// # Errors
    ///
    /// `NoImage` when the image is missing, `Foreign` when a container of that
    /// name exists without our label, `Docker` for anything else.
    pub async fn create_cell(&self, spec: &CellSpec) -> Result<(String, String)> {
        if self.engine == Engine::Swarm {
            return self.create_swarm_cell(spec).await;
        }
        let name = spec.tenant.cell_name();
        let image = match self.docker().inspect_image(&spec.image).await {
            Ok(image) => image,
            Err(err) if is_status(&err, 404) => {
                return Err(Error::NoImage {
                    image: spec.image.clone(),
                });
            }
            Err(err) => return Err(err.into()),
        };
        let image_id = image.id.unwrap_or_default();
        if let Some(owner) = self.container_owner(&name).await? {
            if owner.as_deref() != Some(spec.tenant.as_str()) {
                return Err(Error::Foreign { name });
            }
            // Our own leftover from an earlier attempt: replace it.
            self.force_remove(&name).await?;
        }

        let port_key = format!("{GATEWAY_PORT}/tcp");
        let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let command = if spec.secrets_as_files {
            super::with_secrets_exported(&spec.command)
        } else {
            env.extend(
                spec.secret_env
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.expose())),
            );
            spec.command.clone()
        };
        let host_config = HostConfig {
            cap_drop: Some(vec!["ALL".to_string()]),
            security_opt: Some(vec!["no-new-privileges:true".to_string()]),
            init: Some(true),
            pids_limit: Some(spec.limits.pids),
            memory: Some(spec.limits.memory_bytes),
            // Same as memory: no swap on top of the limit.
            memory_swap: Some(spec.limits.memory_bytes),
            nano_cpus: Some(spec.limits.nano_cpus),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            privileged: Some(false),
            port_bindings: Some(HashMap::from([(
                port_key.clone(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".to_string()),
                    host_port: Some(spec.port.to_string()),
                }]),
            )])),
            mounts: Some(
                spec.mounts
                    .iter()
                    .map(|mount| bollard::models::Mount {
                        target: Some(mount.target.clone()),
                        source: Some(mount.source.display().to_string()),
                        typ: Some(MountTypeEnum::BIND),
                        read_only: Some(mount.read_only),
                        ..Default::default()
                    })
                    .collect(),
            ),
            network_mode: Some(name.clone()),
            readonly_rootfs: Some(true),
            tmpfs: Some(
                TMPFS
                    .iter()
                    .map(|(path, options)| (path.to_string(), options.to_string()))
                    .collect(),
            ),
            // Rotated: a chatty or crash-looping cell cannot fill the disk.
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".to_string()),
                config: Some(HashMap::from([
                    ("max-size".to_string(), spec.log_max_bytes.to_string()),
                    ("max-file".to_string(), spec.log_max_files.to_string()),
                ])),
            }),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            // A stable hostname across generations: the gateway's owner lease in
            // its state dir names the host, and only a lease of this host whose
            // process is gone is reclaimed at start. With Docker's per-container
            // hostname, a cell made anew (upgrade, repair) was refused for up to
            // five minutes ("Another Gateway owner lease is still active").
            hostname: Some(name.clone()),
            image: Some(spec.image.clone()),
            cmd: Some(command),
            env: Some(env),
            user: Some("1000:1000".to_string()),
            labels: Some(labels(&spec.tenant, spec.generation)),
            exposed_ports: Some(HashMap::from([(port_key, HashMap::new())])),
            host_config: Some(host_config),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    name.clone(),
                    EndpointSettings::default(),
                )])),
            }),
            stop_timeout: Some(i64::from(STOP_GRACE_SECS)),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let created = self.docker().create_container(Some(options), body).await?;
        Ok((created.id, image_id))
    }

    /// Starts the tenant's cell.
    ///
    /// # Errors
    ///
    /// `NotFound`, `Foreign`, or Docker's refusal (for example the port is taken).
    pub async fn start(&self, tenant: &TenantId) -> Result<Started> {
        if self.engine == Engine::Swarm {
            return self.start_swarm_cell(tenant).await;
        }
        let name = self.own_container(tenant).await?;
        match self
            .docker()
            .start_container(
                &name,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
        {
            Ok(()) => Ok(Started::Started),
            Err(err) if is_status(&err, 304) => Ok(Started::AlreadyRunning),
            Err(err) => Err(err.into()),
        }
    }

    /// Stops the tenant's cell (SIGTERM, then SIGKILL after the grace period).
    ///
    /// # Errors
    ///
    /// `NotFound` when the tenant has no cell, `Foreign` when the container is not ours,
    /// `Docker` when the engine refuses or cannot be reached.
    pub async fn stop(&self, tenant: &TenantId) -> Result<Stopped> {
        if self.engine == Engine::Swarm {
            return self.stop_swarm_cell(tenant).await;
        }
        let name = self.own_container(tenant).await?;
        let options = StopContainerOptionsBuilder::new()
            .t(STOP_GRACE_SECS)
            .build();
        match self.docker().stop_container(&name, Some(options)).await {
            Ok(()) => Ok(Stopped::Stopped),
            Err(err) if is_status(&err, 304) => Ok(Stopped::AlreadyStopped),
            Err(err) => Err(err.into()),
        }
    }

    /// Restarts the tenant's cell (SIGTERM, then SIGKILL after the grace period).
    ///
    /// # Errors
    ///
    /// `NotFound` when the tenant has no cell, `Foreign` when the container is not ours,
    /// `Docker` when the engine refuses or cannot be reached.
    pub async fn restart(&self, tenant: &TenantId) -> Result<()> {
        if self.engine == Engine::Swarm {
            return self.restart_swarm_cell(tenant).await;
        }
        let name = self.own_container(tenant).await?;
        let options = RestartContainerOptionsBuilder::new()
            .t(STOP_GRACE_SECS)
            .build();
        self.docker()
            .restart_container(&name, Some(options))
            .await?;
        Ok(())
    }

    /// Freezes every process of the tenant's cell (the cgroup freezer), so its
    /// files hold still for a copy; `thaw` lets it run on. Connections stay
    /// open; the client only waits.
    ///
    /// # Errors
    ///
    /// `NotFound` when the tenant has no cell, `Foreign` when the container is not ours,
    /// `Docker` when the engine refuses (the cell is not running) or cannot be reached.
    pub async fn freeze(&self, tenant: &TenantId) -> Result<()> {
        let name = self.own_container(tenant).await?;
        self.docker().pause_container(&name).await?;
        Ok(())
    }

    /// Lets a frozen cell run on; `Ok(false)` when it was not frozen.
    ///
    /// # Errors
    ///
    /// `NotFound` when the tenant has no cell, `Foreign` when the container is not ours,
    /// `Docker` when the engine refuses or cannot be reached.
    pub async fn thaw(&self, tenant: &TenantId) -> Result<bool> {
        let name = self.own_container(tenant).await?;
        match self.docker().unpause_container(&name).await {
            Ok(()) => Ok(true),
            Err(err) if is_status(&err, 409) || is_status(&err, 500) => {
                // Docker answers "is not paused" with a conflict (older engines: 500).
                match self.inspect(tenant).await? {
                    Some(status) if status.state == "paused" => Err(err.into()),
                    _ => Ok(false),
                }
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Removes the tenant's container (running or not); `Ok(false)` when there was none.
    ///
    /// # Errors
    ///
    /// `Foreign` when a container of that name is not ours; `Docker` when the engine
    /// refuses or cannot be reached.
    pub async fn remove_cell(&self, tenant: &TenantId) -> Result<bool> {
        if self.engine == Engine::Swarm {
            return self.remove_swarm_cell(tenant).await;
        }
        let name = tenant.cell_name();
        match self.container_owner(&name).await? {
            None => Ok(false),
            Some(Some(owner)) if owner == tenant.as_str() => {
                self.force_remove(&name).await?;
                Ok(true)
            }
            Some(_) => Err(Error::Foreign { name }),
        }
    }

    /// Removes what holds the tenant's state besides its dirs on the admin's
    /// disk: on Swarm its volumes (on this node), which stay when only the
    /// cell goes; nothing on a single host, whose cells bind those dirs.
    ///
    /// # Errors
    ///
    /// Docker refusing, or a volume still in use after a minute.
    pub async fn remove_cell_state(&self, tenant: &TenantId) -> Result<()> {
        match self.engine {
            Engine::Docker => Ok(()),
            Engine::Swarm => self.remove_swarm_state(tenant).await,
        }
    }

    /// Inspects the tenant's cell; `Ok(None)` when it does not exist.
    ///
    /// # Errors
    ///
    /// `Docker` when the engine cannot be reached or answers with an error other
    /// than "no such container".
    pub async fn inspect(&self, tenant: &TenantId) -> Result<Option<CellStatus>> {
        if self.engine == Engine::Swarm {
            return self.inspect_swarm_cell(tenant).await;
        }
        let Some(info) = self.inspect_container(tenant).await? else {
            return Ok(None);
        };
        let labels = info
            .config
            .as_ref()
            .and_then(|config| config.labels.clone())
            .unwrap_or_default();
        if labels.get(LABEL_TENANT).map(String::as_str) != Some(tenant.as_str()) {
            return Err(Error::Foreign {
                name: tenant.cell_name(),
            });
        }
        let state = info.state.unwrap_or_default();
        Ok(Some(CellStatus {
            container_id: info.id.unwrap_or_default(),
            image_id: info.image.unwrap_or_default(),
            running: state.running.unwrap_or(false),
            restarting: state.restarting.unwrap_or(false),
            state: state.status.map(|s| s.to_string()).unwrap_or_default(),
            exit_code: state.exit_code.unwrap_or(0),
            oom_killed: state.oom_killed.unwrap_or(false),
            restart_count: info.restart_count.unwrap_or(0),
            started_at: state.started_at,
            generation: labels
                .get(LABEL_GENERATION)
                .and_then(|g| g.parse().ok())
                .unwrap_or(0),
        }))
    }

    /// Every container carrying `mtp.managed=true`, running or not.
    ///
    /// # Errors
    ///
    /// `Docker` when the engine cannot be reached.
    pub async fn list_cells(&self) -> Result<Vec<CellInfo>> {
        if self.engine == Engine::Swarm {
            return self.list_swarm_cells().await;
        }
        let filters = HashMap::from([("label", vec!["mtp.managed=true"])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self.docker().list_containers(Some(options)).await?;
        let mut res = Vec::new();
        for container in containers {
            let labels = container.labels.unwrap_or_default();
            let Some(tenant) = labels
                .get(LABEL_TENANT)
                .and_then(|id| id.parse::<TenantId>().ok())
            else {
                continue;
            };
            let state = container.state.map(|s| s.to_string()).unwrap_or_default();
            res.push(CellInfo {
                tenant,
                container_id: container.id.unwrap_or_default(),
                generation: labels
                    .get(LABEL_GENERATION)
                    .and_then(|g| g.parse().ok())
                    .unwrap_or(0),
                running: state == "running",
                state,
            });
        }
        Ok(res)
    }

    /// The last `tail` lines of the cell's log (all with `None`), optionally only
    /// those since a unix time.
    ///
    /// # Errors
    ///
    /// `NotFound` when the tenant has no cell, `Foreign` when the container is not ours,
    /// `Docker` when the engine cannot be reached. Errors while reading come as
    /// items of the stream.
    pub async fn logs(
        &self,
        tenant: &TenantId,
        tail: Option<usize>,
        since: Option<i64>,
    ) -> Result<Vec<LogLine>> {
        if self.engine == Engine::Swarm {
            return self.service_logs(tenant, tail, since).await;
        }
        let mut lines = self.log_lines(tenant, tail, since, false).await?;
        let mut res = Vec::new();
        while let Some(line) = lines.next().await {
            res.push(line?);
        }
        Ok(res)
    }

    /// The cell's log lines as they come: the last `tail` (or all) newer than
    /// `since`, then each new one until the container stops or the stream is
    /// dropped.
    ///
    /// # Errors
    ///
    /// `NotFound`, `Foreign`; a Docker failure midway ends the stream with it.
    pub async fn follow_logs(
        &self,
        tenant: &TenantId,
        tail: Option<usize>,
        since: Option<i64>,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<LogLine>>> {
        if self.engine == Engine::Swarm {
            return Err(Error::Other(format!(
                "following the log of a Swarm cell ({tenant}) is not supported; ask for its last lines"
            )));
        }
        self.log_lines(tenant, tail, since, true).await
    }

    async fn log_lines(
        &self,
        tenant: &TenantId,
        tail: Option<usize>,
        since: Option<i64>,
        follow: bool,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<LogLine>>> {
        let name = self.own_container(tenant).await?;
        let mut options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(follow);
        options = match tail {
            Some(n) => options.tail(&n.to_string()),
            None => options.tail("all"),
        };
        if let Some(since) = since {
            options = options.since(i32::try_from(since).unwrap_or(i32::MAX));
        }
        let chunks = self.docker().logs(&name, Some(options.build()));
        Ok(split_lines(chunks).boxed())
    }

    /// Runs `command` in the running cell as its own user and collects the output.
    ///
    /// # Errors
    ///
    /// `NotFound`/`Foreign` as for `stop`; `Docker` when the exec cannot be created,
    /// started or inspected (a stopped container, say).
    pub async fn exec(&self, tenant: &TenantId, command: &[&str]) -> Result<ExecOutput> {
        let name = self.own_container(tenant).await?;
        let config = bollard::exec::CreateExecOptions {
            cmd: Some(
                command
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<String>>(),
            ),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = self.docker().create_exec(&name, config).await?;
        let mut output = String::new();
        match self.docker().start_exec(&exec.id, None).await? {
            bollard::exec::StartExecResults::Attached {
                output: mut stream, ..
            } => {
                while let Some(chunk) = stream.next().await {
                    output.push_str(&chunk?.to_string());
                }
            }
            bollard::exec::StartExecResults::Detached => {}
        }
        let inspect = self.docker().inspect_exec(&exec.id).await?;
        Ok(ExecOutput {
            exit_code: inspect.exit_code.unwrap_or(-1),
            output,
        })
    }

    /// Memory in use and its limit, in bytes (one sample, no waiting), as
    /// `docker stats` counts it: usage minus the page cache.
    ///
    /// # Errors
    ///
    /// `NotFound`/`Foreign` as for `stop`; `Docker` when the engine cannot be reached.
    pub async fn memory(&self, tenant: &TenantId) -> Result<Option<(u64, u64)>> {
        let name = self.own_container(tenant).await?;
        let options = bollard::query_parameters::StatsOptionsBuilder::new()
            .stream(false)
            .one_shot(true)
            .build();
        let mut stream = self.docker().stats(&name, Some(options));
        let Some(stats) = stream.next().await else {
            return Ok(None);
        };
        let memory = stats?.memory_stats.unwrap_or_default();
        let (Some(usage), Some(limit)) = (memory.usage, memory.limit) else {
            return Ok(None);
        };
        let cache = memory
            .stats
            .as_ref()
            .and_then(|s| {
                s.get("total_inactive_file")
                    .or_else(|| s.get("inactive_file"))
                    .copied()
            })
            .unwrap_or(0);
        Ok(Some((usage.saturating_sub(cache), limit)))
    }

    /// Docker's whole inspect of the tenant's container; `None` when it does
    /// not exist (the caller checks the label).
    pub(super) async fn inspect_container(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<bollard::models::ContainerInspectResponse>> {
        let inspected = self
            .docker()
            .inspect_container(
                &tenant.cell_name(),
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await;
        match inspected {
            Ok(info) => Ok(Some(info)),
            Err(err) if is_status(&err, 404) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// The name of the tenant's container, after checking it is ours.
    pub(crate) async fn own_container(&self, tenant: &TenantId) -> Result<String> {
        if self.engine == Engine::Swarm {
            return self.local_task_container(tenant).await;
        }
        let name = tenant.cell_name();
        match self.container_owner(&name).await? {
            None => Err(Error::NotFound(tenant.clone())),
            Some(Some(owner)) if owner == tenant.as_str() => Ok(name),
            Some(_) => Err(Error::Foreign { name }),
        }
    }

    /// `None`: no such container; `Some(label)`: it exists, with its tenant label if any.
    async fn container_owner(&self, name: &str) -> Result<Option<Option<String>>> {
        match self
            .docker()
            .inspect_container(
                name,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(info) => {
                // Inspect also matches id prefixes; insist on the exact name.
                if info.name.as_deref().map(|n| n.trim_start_matches('/')) != Some(name) {
                    return Ok(None);
                }
                Ok(Some(
                    info.config
                        .and_then(|config| config.labels)
                        .and_then(|labels| labels.get(LABEL_TENANT).cloned()),
                ))
            }
            Err(err) if is_status(&err, 404) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    async fn force_remove(&self, name: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(false)
            .build();
        match self.docker().remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(err) if is_status(&err, 404) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}

/// Docker's log chunks as whole lines, per stream (a line may span chunks); the
/// unfinished rest of each stream comes last.
pub(super) fn split_lines(
    chunks: impl futures_util::Stream<
        Item = std::result::Result<bollard::container::LogOutput, bollard::errors::Error>,
    > + Send
    + 'static,
) -> impl futures_util::Stream<Item = Result<LogLine>> + Send + 'static {
    struct Split<S> {
        chunks: S,
        pending: HashMap<bool, String>,
        ready: std::collections::VecDeque<Result<LogLine>>,
        done: bool,
    }
    let state = Split {
        chunks: Box::pin(chunks),
        pending: HashMap::new(),
        ready: std::collections::VecDeque::new(),
        done: false,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(line) = state.ready.pop_front() {
                return Some((line, state));
            }
            if state.done {
                return None;
            }
            let (stderr, bytes) = match state.chunks.next().await {
                Some(Ok(bollard::container::LogOutput::StdErr { message })) => (true, message),
                Some(Ok(
                    bollard::container::LogOutput::StdOut { message }
                    | bollard::container::LogOutput::Console { message },
                )) => (false, message),
                Some(Ok(bollard::container::LogOutput::StdIn { .. })) => continue,
                Some(Err(err)) => {
                    state.done = true;
                    state.ready.push_back(Err(err.into()));
                    continue;
                }
                None => {
                    state.done = true;
                    for (stderr, rest) in state.pending.drain() {
                        if !rest.is_empty() {
                            state.ready.push_back(Ok(LogLine { stderr, text: rest }));
                        }
                    }
                    continue;
                }
            };
            let buffer = state.pending.entry(stderr).or_default();
            buffer.push_str(&String::from_utf8_lossy(&bytes));
            while let Some(at) = buffer.find('\n') {
                let line: String = buffer.drain(..=at).collect();
                state.ready.push_back(Ok(LogLine {
                    stderr,
                    text: line.trim_end_matches(['\n', '\r']).to_string(),
                }));
            }
        }
    })
}
