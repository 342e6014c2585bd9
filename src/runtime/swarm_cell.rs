//! The cell actions of `cell.rs` for a runtime whose engine is Swarm: a cell
//! is the service of `swarm.rs`, its state the named volumes seeded from the
//! dirs the caller prepared (on the admin's disk, the same dirs a single host
//! binds), its secrets Docker secrets. `cell.rs` hands each call here when the
//! engine says so; callers see the same `CellStatus`, `CellInfo` and errors.
//!
//! What needs the cell's own container (exec, memory, freeze) works on a task
//! that runs on this engine's node and says so for one on another node.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::models::TaskState;
use bollard::query_parameters::{InspectServiceOptions, ListContainersOptionsBuilder};

use crate::runtime::{
    CellInfo, CellSpec, CellStatus, Error, Result, Runtime, SeedFile, SwarmCellSpec, VolumeMount,
    is_status,
};
use crate::tenant::{Started, Stopped, TenantId};

/// How long a stop waits for the task to exit: Swarm's grace period and some.
const STOP_WAIT: Duration = Duration::from_secs(45);

/// How long the one-shot job that seeds a volume may take (it pulls nothing).
const SEED_TIMEOUT: Duration = Duration::from_secs(120);

/// The most a volume is seeded with in the job's command (which the kernel
/// caps at 128 KiB per argument; 4 bytes a byte); more goes as an archive.
const SEED_MAX_BYTES: usize = 24 * 1024;

/// Swarm's label on a task's container naming its service.
const SERVICE_LABEL: &str = "com.docker.swarm.service.name";

impl Runtime {
    /// `create_cell` on Swarm: seeds the volumes from the spec's writable
    /// mounts (only a volume not seeded before: a re-created cell keeps its
    /// state), then makes the service with zero replicas.
    pub(super) async fn create_swarm_cell(&self, spec: &CellSpec) -> Result<(String, String)> {
        let Some(image_id) = self.image_id(&spec.image).await? else {
            return Err(Error::NoImage {
                image: spec.image.clone(),
            });
        };
        let node = match &spec.node {
            Some(node) => node.clone(),
            None => self.local_node_id().await?,
        };
        let mut seeds = Vec::new();
        for mount in spec.mounts.iter().filter(|mount| !mount.read_only) {
            let suffix = mount
                .source
                .file_name()
                .and_then(|name| name.to_str())
                .filter(|name| !name.is_empty())
                .ok_or_else(|| Error::Other(format!("{} names no volume", mount.source.display())))?
                .to_string();
            let volume = VolumeMount {
                suffix,
                target: mount.target.clone(),
            };
            seeds.push((volume, files_under(&mount.source)?));
        }
        let total: usize = seeds
            .iter()
            .flat_map(|(_, files)| files.iter().map(|file| file.bytes.len()))
            .sum();
        if total <= SEED_MAX_BYTES {
            for (volume, files) in &seeds {
                self.seed_volume(
                    &spec.tenant,
                    &spec.image,
                    Some(&node),
                    volume,
                    files,
                    SEED_TIMEOUT,
                )
                .await?;
            }
        } else {
            // More than a command carries (a restored cell): as an archive.
            let archive = tar_of(&seeds)?;
            let suffixes: Vec<&str> = seeds.iter().map(|(v, _)| v.suffix.as_str()).collect();
            self.import_volumes(
                &spec.tenant,
                &spec.image,
                Some(&node),
                &suffixes,
                &archive,
                false,
            )
            .await?;
        }
        let volumes = seeds.into_iter().map(|(volume, _)| volume).collect();
        let id = self
            .create_service(&SwarmCellSpec {
                cell: spec.clone(),
                volumes,
                node: Some(node),
            })
            .await?;
        Ok((id, image_id))
    }

    pub(super) async fn start_swarm_cell(&self, tenant: &TenantId) -> Result<Started> {
        Ok(if self.start_service(tenant).await? {
            Started::Started
        } else {
            Started::AlreadyRunning
        })
    }

    /// Zero replicas, then waits until no task of the cell runs: a stopped
    /// cell's files hold still, as after `docker stop`.
    pub(super) async fn stop_swarm_cell(&self, tenant: &TenantId) -> Result<Stopped> {
        let changed = self.stop_service(tenant).await?;
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        loop {
            let tasks = self.service_tasks(&tenant.cell_name()).await?;
            if !tasks.iter().any(is_live) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Other(format!(
                    "the task of {tenant} still runs {} s after it was told to stop",
                    STOP_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(if changed {
            Stopped::Stopped
        } else {
            Stopped::AlreadyStopped
        })
    }

    /// A new task for the cell (one replica), as `docker restart` gives a
    /// container a new process: the state is in the volumes.
    pub(super) async fn restart_swarm_cell(&self, tenant: &TenantId) -> Result<()> {
        let name = self.own_service(tenant).await?;
        // Like `docker restart`, back only once the old process is gone: the
        // next health probe must not meet the old task.
        let old: Vec<String> = self
            .service_tasks(&name)
            .await?
            .into_iter()
            .filter(is_live)
            .filter_map(|task| task.id)
            .collect();
        let current = self
            .docker()
            .inspect_service(&name, None::<InspectServiceOptions>)
            .await?;
        let mut spec = current.spec.unwrap_or_default();
        let mut template = spec.task_template.take().unwrap_or_default();
        template.force_update = Some(template.force_update.unwrap_or(0).wrapping_add(1));
        spec.task_template = Some(template);
        spec.mode = Some(bollard::models::ServiceSpecMode {
            replicated: Some(bollard::models::ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        });
        self.update_spec(&name, current.version, spec).await?;
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        loop {
            let tasks = self.service_tasks(&name).await?;
            let lingering = tasks
                .iter()
                .any(|task| is_live(task) && task.id.as_ref().is_some_and(|id| old.contains(id)));
            if !lingering {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Other(format!(
                    "the old task of {tenant} still runs {} s after the restart",
                    STOP_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The service goes; its network, secrets and volumes stay (an upgrade
    /// makes the service again on them). `remove_network` and
    /// `remove_cell_state` take the rest.
    pub(super) async fn remove_swarm_cell(&self, tenant: &TenantId) -> Result<bool> {
        let name = tenant.cell_name();
        let existed = match self.service_owner(&name).await? {
            None => false,
            Some(Some(owner)) if owner == tenant.as_str() => {
                match self.docker().delete_service(&name).await {
                    Ok(()) => true,
                    Err(err) if is_status(&err, 404) => false,
                    Err(err) => return Err(err.into()),
                }
            }
            Some(_) => return Err(Error::Foreign { name }),
        };
        self.remove_task_containers(&name).await?;
        Ok(existed)
    }

    /// The overlay and the secrets of a tenant whose service is gone.
    pub(super) async fn remove_swarm_network(&self, tenant: &TenantId) -> Result<bool> {
        let existed = self.network_subnets(tenant).await?.is_some();
        if existed {
            self.disconnect_all(tenant).await?;
        }
        self.retry_in_use(|| self.remove_leftovers(tenant, &[]))
            .await?;
        self.overlay_gone(tenant).await?;
        Ok(existed)
    }

    /// Takes every container on this node off the tenant's overlay (the
    /// admin's own joined it), so the network can go.
    pub(super) async fn disconnect_all(&self, tenant: &TenantId) -> Result<()> {
        let name = tenant.cell_name();
        let network = match self
            .docker()
            .inspect_network(
                &name,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
        {
            Ok(network) => network,
            Err(err) if is_status(&err, 404) => return Ok(()),
            Err(err) => return Err(err.into()),
        };
        for container in network.containers.unwrap_or_default().into_keys() {
            // Swarm's own load-balancer endpoint is not a container.
            if container.starts_with("lb-") {
                continue;
            }
            let request = bollard::models::NetworkDisconnectRequest {
                container: Some(container),
                force: Some(true),
            };
            match self.docker().disconnect_network(&name, request).await {
                Ok(()) => {}
                Err(err) if is_status(&err, 404) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    /// The tenant's state volumes on this node, once its service is gone.
    pub(super) async fn remove_swarm_state(&self, tenant: &TenantId) -> Result<()> {
        let volumes: Vec<VolumeMount> = ["state", "auth"]
            .into_iter()
            .map(|suffix| VolumeMount {
                suffix: suffix.to_string(),
                target: String::new(),
            })
            .collect();
        self.retry_in_use(|| self.remove_leftovers(tenant, &volumes))
            .await
    }

    /// What the service says, in the words of a container's inspect.
    pub(super) async fn inspect_swarm_cell(&self, tenant: &TenantId) -> Result<Option<CellStatus>> {
        let Some(cell) = self.inspect_service(tenant).await? else {
            return Ok(None);
        };
        let task_state = cell.task_state.clone().unwrap_or_default();
        let running = cell.replicas > 0 && task_state == "running";
        // One replica asked for and not running: Swarm is (re)starting it.
        let restarting = cell.replicas > 0 && !running;
        let state = if running {
            "running".to_string()
        } else if cell.replicas == 0 {
            "exited".to_string()
        } else if task_state.is_empty() {
            "created".to_string()
        } else {
            task_state
        };
        let image_id = match self.image_id(&cell.image).await? {
            Some(id) => id,
            // Not on this node: the name is what can be compared.
            None => cell.image.clone(),
        };
        Ok(Some(CellStatus {
            container_id: cell.container_id.clone().unwrap_or(cell.service_id),
            image_id,
            running,
            restarting,
            state,
            exit_code: cell.exit_code.unwrap_or(0),
            oom_killed: false,
            restart_count: i64::try_from(cell.failed_tasks).unwrap_or(i64::MAX),
            started_at: running.then_some(cell.since).flatten(),
            generation: cell.generation,
        }))
    }

    /// Every tenant's service, as `list_cells` lists containers.
    pub(super) async fn list_swarm_cells(&self) -> Result<Vec<CellInfo>> {
        let mut res = Vec::new();
        for (tenant, _) in self.list_services().await? {
            let Some(status) = self.inspect_swarm_cell(&tenant).await? else {
                continue;
            };
            res.push(CellInfo {
                tenant,
                container_id: status.container_id,
                generation: status.generation,
                running: status.running,
                state: status.state,
            });
        }
        Ok(res)
    }

    /// The container of the tenant's running task on this engine's node.
    pub(super) async fn local_task_container(&self, tenant: &TenantId) -> Result<String> {
        let name = self.own_service(tenant).await?;
        let label = format!("{SERVICE_LABEL}={name}");
        let filters = HashMap::from([("label", vec![label.as_str()])]);
        let options = ListContainersOptionsBuilder::new()
            .filters(&filters)
            .build();
        let containers = self.docker().list_containers(Some(options)).await?;
        if let Some(id) = containers.into_iter().find_map(|c| c.id) {
            return Ok(id);
        }
        let node = self
            .inspect_service(tenant)
            .await?
            .and_then(|cell| cell.node)
            .unwrap_or_default();
        let here = self.local_node_id().await?;
        if node.is_empty() || node == here {
            Err(Error::Other(format!("the cell of {tenant} is not running")))
        } else {
            Err(Error::Other(format!(
                "the cell of {tenant} runs on node {node}, not on this one; this works only on the node that runs it"
            )))
        }
    }

    /// Runs `step` until Docker stops refusing what a stopping task still
    /// holds, for up to a minute.
    pub(super) async fn retry_in_use<F, Fut>(&self, step: F) -> Result<()>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match step().await {
                Err(Error::Docker(err))
                    if [400, 403, 409, 500]
                        .into_iter()
                        .any(|code| is_status(&err, code))
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                other => return other,
            }
        }
    }
}

/// A task that runs or is on its way to running.
fn is_live(task: &bollard::models::Task) -> bool {
    matches!(
        task.status.as_ref().and_then(|s| s.state),
        Some(
            TaskState::RUNNING
                | TaskState::STARTING
                | TaskState::PREPARING
                | TaskState::ASSIGNED
                | TaskState::ACCEPTED
                | TaskState::READY
                | TaskState::PENDING
                | TaskState::NEW
        )
    )
}

/// The files to seed as one tar archive, each under its volume's suffix,
/// with a directory entry before the first file in it.
fn tar_of(seeds: &[(VolumeMount, Vec<SeedFile>)]) -> Result<Vec<u8>> {
    let broken = |err: std::io::Error| Error::Other(format!("cannot build the archive: {err}"));
    let mut builder = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    for (volume, files) in seeds {
        let mut add_dir = |builder: &mut tar::Builder<Vec<u8>>, dir: String| -> Result<()> {
            if dirs.insert(dir.clone()) {
                let mut header = tar::Header::new_ustar();
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o700);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{dir}/"), std::io::empty())
                    .map_err(broken)?;
            }
            Ok(())
        };
        add_dir(&mut builder, volume.suffix.clone())?;
        for file in files {
            let path = format!("{}/{}", volume.suffix, file.path);
            let mut parent = String::new();
            for part in path.split('/').take(path.split('/').count() - 1) {
                if !parent.is_empty() {
                    parent.push('/');
                }
                parent.push_str(part);
                add_dir(&mut builder, parent.clone())?;
            }
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(file.mode);
            header.set_size(file.bytes.len() as u64);
            builder
                .append_data(&mut header, &path, file.bytes.as_slice())
                .map_err(broken)?;
        }
    }
    builder.into_inner().map_err(broken)
}

/// Every regular file under `dir` as a file to seed, relative to it, with its
/// mode; a symlink or other special file is refused (a cell's dir holds none
/// before its first start).
fn files_under(dir: &Path) -> Result<Vec<SeedFile>> {
    use std::os::unix::fs::PermissionsExt;

    fn walk(root: &Path, dir: &Path, res: &mut Vec<SeedFile>) -> Result<()> {
        let read =
            |err: std::io::Error| Error::Other(format!("cannot read {}: {err}", dir.display()));
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(read)?
            .collect::<std::io::Result<_>>()
            .map_err(read)?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).map_err(read)?;
            if meta.is_dir() {
                walk(root, &path, res)?;
            } else if meta.is_file() {
                let bytes = std::fs::read(&path).map_err(read)?;
                let relative = path.strip_prefix(root).map_err(|_| {
                    Error::Other(format!("{} is outside {}", path.display(), root.display()))
                })?;
                res.push(SeedFile {
                    path: relative.to_string_lossy().into_owned(),
                    bytes,
                    mode: meta.permissions().mode() & 0o777,
                });
            } else {
                return Err(Error::Other(format!(
                    "{} is neither a file nor a directory; a cell's dir to seed holds only those",
                    path.display()
                )));
            }
        }
        Ok(())
    }
    let mut res = Vec::new();
    walk(dir, dir, &mut res)?;
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_of_a_dir_come_with_their_relative_paths_and_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("devices")).unwrap();
        std::fs::write(dir.path().join("openclaw.json"), b"{}").unwrap();
        std::fs::write(dir.path().join("devices/paired.json"), b"[]").unwrap();
        std::fs::set_permissions(
            dir.path().join("devices/paired.json"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let files = files_under(dir.path()).unwrap();
        let got: Vec<(&str, u32)> = files.iter().map(|f| (f.path.as_str(), f.mode)).collect();
        assert_eq!(got[0], ("devices/paired.json", 0o600));
        assert_eq!(got[1].0, "openclaw.json");

        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        let refused = files_under(dir.path()).unwrap_err().to_string();
        assert!(refused.contains("neither a file"), "{refused}");
    }

    #[test]
    fn an_archive_of_the_volumes_holds_each_file_under_its_volume() {
        let seeds = vec![(
            VolumeMount {
                suffix: "state".to_string(),
                target: "/home/node/.openclaw".to_string(),
            },
            vec![SeedFile {
                path: "devices/paired.json".to_string(),
                bytes: b"[]".to_vec(),
                mode: 0o600,
            }],
        )];
        let archive = tar_of(&seeds).unwrap();
        let mut read = tar::Archive::new(archive.as_slice());
        let entries: Vec<(String, u32)> = read
            .entries()
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                (
                    entry.path().unwrap().to_string_lossy().into_owned(),
                    entry.header().mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("state/".to_string(), 0o700),
                ("state/devices/".to_string(), 0o700),
                ("state/devices/paired.json".to_string(), 0o600),
            ]
        );
    }
}
