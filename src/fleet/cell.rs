//! One cell on disk and in Docker, the pieces every action on cells shares:
//! its container made from the record (`make_container`), the wait for a
//! healthy gateway, the undo of a create and the deletion of a tenant's dirs.
//! `create`, `lifecycle`, `reconcile` and `upgrade` use these; this module uses
//! none of them.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use crate::backoff::{Attempt, Backoff, GaveUp};
use crate::fleet::App;
use crate::runtime::{CellSpec, Mount};
use crate::tenant::{CreateProgress, Secret, SecretKind, TenantId, TenantRecord};

/// Where the cell's dirs are mounted inside the container.
const STATE_MOUNT: &str = "/home/node/.openclaw";
const AUTH_MOUNT: &str = "/home/node/.config/openclaw";

/// The tenant's dir of secret files (one per variable, 0400, uid 1000), bound
/// read-only at `runtime::SECRETS_DIR`. Not in backups: the store holds the
/// secrets and every container made writes them again.
pub(crate) const SECRETS_SUBDIR: &str = "secrets";

/// How often create polls `/healthz` while the gateway boots (about 18 s).
const HEALTH_POLL: Duration = Duration::from_millis(250);

/// Creates `record`'s container running `image` and records the image id used.
pub(crate) async fn make_container(
    app: &App,
    record: &mut TenantRecord,
    image: &str,
    secrets: &[(SecretKind, Secret<String>)],
) -> anyhow::Result<()> {
    let cell = cell_spec(app, record, image, secrets);
    write_secret_files(
        &app.tenant_dir(&record.id).join(SECRETS_SUBDIR),
        &cell.secret_env,
    )?;
    let (_, image_id) = app.runtime.create_cell(&cell).await?;
    record.image_id = Some(image_id.clone());
    let (generation, image) = (record.generation, record.image.clone());
    app.store.update_tenant(&record.id, |record| {
        record.image_id = Some(image_id);
        record.image = image;
        record.generation = generation;
        Ok(())
    })?;
    Ok(())
}

/// The container of `record`'s cell running `image`: the cell profile of
/// ARCHITECTURE.md, its two mounts, the pinned environment and the secrets
/// (gateway token, bot token, the provider key under its provider's variable).
pub(crate) fn cell_spec(
    app: &App,
    record: &TenantRecord,
    image: &str,
    secrets: &[(SecretKind, Secret<String>)],
) -> CellSpec {
    let tenant_dir = app.tenant_dir(&record.id);
    let state_dir = tenant_dir.join("state");
    let auth_dir = tenant_dir.join("auth");
    let provider_env = record
        .model
        .split_once('/')
        .and_then(|(provider, _)| provider_key_env(provider));
    let mut env: Vec<(String, String)> = [
        ("HOME", "/home/node"),
        ("OPENCLAW_HOME", "/home/node"),
        ("OPENCLAW_STATE_DIR", STATE_MOUNT),
        ("OPENCLAW_CONFIG_PATH", "/home/node/.openclaw/openclaw.json"),
        ("OPENCLAW_WORKSPACE_DIR", "/home/node/.openclaw/workspace"),
        ("XDG_CACHE_HOME", "/home/node/.openclaw/cache"),
        // Node's compiled-module cache, in the state dir so it outlives the
        // container: every start after the first skips compiling OpenClaw's
        // modules (a wake is such a start). Regenerable; backups leave it out.
        (
            "NODE_COMPILE_CACHE",
            "/home/node/.openclaw/cache/node-compile",
        ),
        ("OPENCLAW_NO_AUTO_UPDATE", "1"),
        ("OPENCLAW_DISABLE_BONJOUR", "1"),
        ("DO_NOT_TRACK", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(
        app.config
            .cell
            .extra_env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    let mut secret_env = Vec::new();
    for (kind, value) in secrets {
        let name = match kind {
            SecretKind::GatewayToken => "OPENCLAW_GATEWAY_TOKEN",
            SecretKind::BotToken => "TELEGRAM_BOT_TOKEN",
            SecretKind::ProviderKey => match provider_env {
                Some(name) => name,
                None => continue,
            },
            SecretKind::HooksToken => "OPENCLAW_HOOKS_TOKEN",
            SecretKind::DeviceToken => continue,
        };
        secret_env.push((name.to_string(), value.clone()));
    }
    CellSpec {
        tenant: record.id.clone(),
        generation: record.generation,
        image: image.to_string(),
        port: record.port,
        subnet: record.subnet.clone(),
        limits: record.limits.clone(),
        mounts: vec![
            Mount {
                source: state_dir.clone(),
                target: STATE_MOUNT.to_string(),
                read_only: false,
            },
            Mount {
                source: auth_dir.clone(),
                target: AUTH_MOUNT.to_string(),
                read_only: false,
            },
            Mount {
                source: tenant_dir.join(SECRETS_SUBDIR),
                target: crate::runtime::SECRETS_DIR.to_string(),
                read_only: true,
            },
        ],
        env,
        secret_env,
        secrets_as_files: true,
        command: [
            "node",
            "dist/index.js",
            "gateway",
            "--bind",
            "lan",
            "--port",
            "18789",
        ]
        .map(String::from)
        .to_vec(),
        log_max_bytes: app.config.cell.log_max_bytes,
        log_max_files: app.config.cell.log_max_files,
        node: record.node.clone(),
    }
}

/// Writes each secret as the file of its variable in `dir` (made 0700 for
/// uid 1000 when missing), 0400 and uid 1000, each through a new file renamed
/// over the old one; files of variables no longer given go.
fn write_secret_files(dir: &Path, secrets: &[(String, Secret<String>)]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

    use crate::fleet::create::CELL_UID;
    let owned = |path: &Path| {
        std::os::unix::fs::lchown(path, Some(CELL_UID), Some(CELL_UID)).with_context(|| {
            format!(
                "cannot give {} to the cells' uid {CELL_UID}; run the admin as root or as uid {CELL_UID}",
                path.display()
            )
        })
    };
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_dir() => {}
        Ok(_) => bail!("{} is not a directory; remove it", dir.display()),
        Err(_) => {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    owned(dir)?;
    let names: Vec<&str> = secrets.iter().map(|(name, _)| name.as_str()).collect();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if !names.iter().any(|wanted| name.to_str() == Some(wanted)) {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove {}", entry.path().display()))?;
        }
    }
    for (name, value) in secrets {
        let path = dir.join(name);
        let partial = dir.join(format!(".{name}.partial"));
        let _ = std::fs::remove_file(&partial);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&partial)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        file.write_all(value.expose().as_bytes())?;
        file.sync_all()?;
        owned(&partial)?;
        std::fs::rename(&partial, &path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The volumes a Swarm cell's state lives in, by suffix.
pub(crate) const VOLUMES: [&str; 2] = ["state", "auth"];

/// What a cell makes again by itself, left out of backups and moves.
pub(crate) const REGENERABLE: [&str; 2] = ["state/cache", "state/tmp"];

/// How long a job reading or writing a Swarm cell's volumes may take.
pub(crate) const VOLUME_JOB_TIMEOUT: Duration = Duration::from_secs(600);

/// On Swarm, brings the cell's state from its volumes (read by a job on its
/// node) into its dirs on the admin's disk, replacing what they held: what
/// backups and a client's export read. Nothing on a single host, whose cells
/// write those dirs themselves.
pub(crate) async fn pull_state(app: &App, record: &TenantRecord) -> anyhow::Result<()> {
    if app.runtime.engine() != crate::tenant::Engine::Swarm {
        return Ok(());
    }
    let archive = app
        .runtime
        .export_volumes(
            &record.id,
            &record.image,
            record.node.as_deref(),
            &VOLUMES,
            &REGENERABLE,
        )
        .await
        .with_context(|| format!("cannot read {}'s volumes on its node", record.id))?;
    let dir = app.tenant_dir(&record.id);
    tokio::task::spawn_blocking(move || unpack_over(&dir, &archive))
        .await
        .map_err(|err| anyhow!("the unpacking stopped: {err}"))?
}

/// Unpacks `archive` (entries under `state/` and `auth/`) beside the dirs in
/// `dir` and swaps each in for the old one.
fn unpack_over(dir: &Path, archive: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

    let partial = dir.join(".pulled.partial");
    if partial.exists() {
        remove_tree(&partial)?;
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let mut unpacking = tar::Archive::new(archive);
    unpacking.set_preserve_permissions(true);
    unpacking.set_preserve_ownerships(true);
    unpacking
        .unpack(&partial)
        .with_context(|| format!("cannot unpack the volumes into {}", partial.display()))?;
    for leaf in VOLUMES {
        let fresh = partial.join(leaf);
        if !fresh.is_dir() {
            bail!("the volumes' archive holds no {leaf}/");
        }
        let current = dir.join(leaf);
        let old = dir.join(format!(".{leaf}.old"));
        if old.exists() {
            remove_tree(&old)?;
        }
        if current.exists() {
            std::fs::rename(&current, &old)
                .with_context(|| format!("cannot move {} aside", current.display()))?;
        }
        // The archive may not hold the dir itself (its entries were chosen).
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o700))?;
        let uid = crate::fleet::create::CELL_UID;
        std::os::unix::fs::lchown(&fresh, Some(uid), Some(uid))
            .with_context(|| format!("cannot give {} to uid {uid}", fresh.display()))?;
        std::fs::rename(&fresh, &current)
            .with_context(|| format!("cannot put {} in place", current.display()))?;
        if old.exists() {
            remove_tree(&old)?;
        }
    }
    remove_tree(&partial)
}

/// Waits until `/healthz` answers 200, the cell dies, or the timeout passes.
pub(crate) async fn wait_healthy(
    app: &App,
    record: &TenantRecord,
    timeout: Duration,
) -> anyhow::Result<()> {
    let tenant = &record.id;
    let polling = Backoff::polling(HEALTH_POLL, timeout);
    let waited = polling
        .retry(|| async {
            if crate::fleet::inventory::probe_healthz(app, record).await {
                return Attempt::Done(());
            }
            match app.runtime.inspect(tenant).await {
                Err(err) => Attempt::Fail(anyhow!(err)),
                Ok(None) => Attempt::Fail(anyhow!("the container disappeared while booting")),
                Ok(Some(status))
                    if status.restart_count > 0 || (!status.running && !status.restarting) =>
                {
                    let lines = app
                        .runtime
                        .logs(tenant, Some(8), None)
                        .await
                        .unwrap_or_default();
                    let tail: Vec<String> = lines.into_iter().map(|line| line.text).collect();
                    Attempt::Fail(anyhow!(
                        "the gateway exited (code {}, {} restarts) instead of becoming healthy; last log lines: {}",
                        status.exit_code,
                        status.restart_count,
                        if tail.is_empty() {
                            "(none)".to_string()
                        } else {
                            tail.join(" | ")
                        }
                    ))
                }
                Ok(Some(_)) => Attempt::Retry(anyhow!(
                    "the gateway did not answer /healthz within {}s",
                    timeout.as_secs()
                )),
            }
        })
        .await;
    waited.map_err(GaveUp::into_inner)
}

/// Removes what a failed or abandoned create made, in reverse order, then the
/// record and its secrets. Nothing the marks do not name is touched.
pub(crate) async fn undo(app: &App, tenant: &TenantId, made: &CreateProgress) {
    if made.container
        && let Err(err) = app.runtime.remove_cell(tenant).await
    {
        tracing::warn!(cause = %err, tenant = %tenant, "undo: cannot remove container");
    }
    if made.network
        && let Err(err) = app.runtime.remove_network(tenant).await
    {
        tracing::warn!(cause = %err, tenant = %tenant, "undo: cannot remove network");
    }
    if made.dirs
        && let Err(err) = app.runtime.remove_cell_state(tenant).await
    {
        tracing::warn!(cause = %err, tenant = %tenant, "undo: cannot remove the cell's volumes");
    }
    if made.dirs
        && let Err(err) = purge_dirs(app, tenant)
    {
        tracing::warn!(cause = %err, tenant = %tenant, "undo: cannot remove dirs");
    }
    if let Err(err) = app.store.remove_tenant(tenant, false) {
        tracing::warn!(cause = %err, tenant = %tenant, "undo: cannot remove record");
    }
}

/// Refuses an image that is not a well-formed, pinned reference.
pub(crate) fn check_pinned(image: &str) -> anyhow::Result<()> {
    Ok(crate::tenant::check_pinned_image(image)?)
}

/// Model providers and the environment variable OpenClaw reads their key from.
pub(crate) const PROVIDER_KEYS: [(&str, &str); 8] = [
    ("anthropic", "ANTHROPIC_API_KEY"),
    ("openai", "OPENAI_API_KEY"),
    ("google", "GEMINI_API_KEY"),
    ("openrouter", "OPENROUTER_API_KEY"),
    ("mistral", "MISTRAL_API_KEY"),
    ("groq", "GROQ_API_KEY"),
    ("xai", "XAI_API_KEY"),
    ("deepseek", "DEEPSEEK_API_KEY"),
];

pub(crate) fn provider_key_env(provider: &str) -> Option<&'static str> {
    PROVIDER_KEYS
        .iter()
        .find(|(p, _)| *p == provider)
        .map(|(_, env)| *env)
}

/// Deletes `<data>/tenants/<id>` after checking it is exactly that leaf and no
/// symlink, so a bad record can never delete anything else.
pub(crate) fn purge_dirs(app: &App, tenant: &TenantId) -> anyhow::Result<()> {
    let tenants_dir = app.config.tenants_dir();
    let dir = app.tenant_dir(tenant);
    let meta = match std::fs::symlink_metadata(&dir) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("cannot stat {}", dir.display())),
    };
    if meta.file_type().is_symlink() || !meta.is_dir() {
        bail!(
            "{} is not a plain directory (a symlink?); refusing to delete it, remove it by hand",
            dir.display()
        );
    }
    let canonical_parent = tenants_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", tenants_dir.display()))?;
    let canonical = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    if canonical.parent() != Some(canonical_parent.as_path())
        || canonical.file_name() != Some(tenant.as_str().as_ref())
    {
        bail!(
            "{} does not resolve to a tenant dir inside {}; refusing to delete it",
            dir.display(),
            tenants_dir.display()
        );
    }
    for leaf in ["state", "auth"] {
        let path = dir.join(leaf);
        if let Ok(meta) = std::fs::symlink_metadata(&path)
            && meta.file_type().is_symlink()
        {
            bail!(
                "{} is a symlink; refusing to delete it, remove it by hand",
                path.display()
            );
        }
    }
    remove_tree(&canonical)
}

fn remove_tree(path: &Path) -> anyhow::Result<()> {
    std::fs::remove_dir_all(path).with_context(|| format!("cannot delete {}", path.display()))
}
