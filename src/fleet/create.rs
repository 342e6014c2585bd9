//! `create`: one tenant from nothing to a running, healthy cell, all or nothing.
//!
//! Steps: validate → record `creating` (port and subnet reserved in the same
//! transaction) → dirs → config → network → container → start → `/healthz` →
//! record `running`. Each step that makes something is undone on failure, in
//! reverse, unless the operator asked to keep it.
//!
//! An operator's create reconciles the fleet first (`reconcile::reconcile_first`).
//!
//! The create holds the tenant's operation lock (`fleet::lock`) from before the
//! record exists until it is `running`, and marks each step that leaves
//! something behind in the record before taking it. A crash leaves a
//! `creating` record whose lock is free; `reconcile` undoes exactly what the
//! marks name.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

use anyhow::{Context, anyhow, bail};
use rand::RngCore;

use crate::fleet::cell::{
    PROVIDER_KEYS, check_pinned, make_container, provider_key_env, undo, wait_healthy,
};
use crate::fleet::lock::{self, Op};
use crate::fleet::obstacle::CellUser;
use crate::fleet::template::{self, TemplateInput};
use crate::fleet::{Actor, App, TenantView, audit, ensure_private_dir, fault_point, now, redact};
use crate::runtime;
use crate::store;
use crate::tenant::{
    CellState, CreateProgress, Limits, Secret, SecretKind, TenantId, TenantRecord, TenantSpec,
};

/// The steps of a create, reported to the progress callback as they begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateStep {
    Validate,
    Record,
    Dirs,
    Config,
    Network,
    Container,
    Start,
    Health,
    Pair,
    Done,
}

impl CreateStep {
    pub const ALL: [CreateStep; 10] = [
        CreateStep::Validate,
        CreateStep::Record,
        CreateStep::Dirs,
        CreateStep::Config,
        CreateStep::Network,
        CreateStep::Container,
        CreateStep::Start,
        CreateStep::Health,
        CreateStep::Pair,
        CreateStep::Done,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CreateStep::Validate => "validate",
            CreateStep::Record => "record",
            CreateStep::Dirs => "dirs",
            CreateStep::Config => "config",
            CreateStep::Network => "network",
            CreateStep::Container => "container",
            CreateStep::Start => "start",
            CreateStep::Health => "health",
            CreateStep::Pair => "pair",
            CreateStep::Done => "done",
        }
    }
}

/// Why a create did not happen. `Refused` changed nothing; `Failed` undid what
/// it made (or kept it, when asked).
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("tenant {0} already exists")]
    Exists(TenantId),
    /// Another action holds the tenant's lock (a create of the same id, a removal).
    #[error(transparent)]
    Busy(lock::Busy),
    #[error("{0}")]
    Refused(String),
    #[error("{}", failed_message(.tenant, *.step, .reason, *.kept))]
    Failed {
        tenant: TenantId,
        step: CreateStep,
        /// Why, with secrets redacted.
        reason: String,
        /// What was made is kept for inspection (`keep_failed`), not undone.
        kept: bool,
        /// A cause the operator can remove, when fleet knows it.
        obstacle: Option<crate::fleet::Obstacle>,
    },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

fn failed_message(tenant: &TenantId, step: CreateStep, reason: &str, kept: bool) -> String {
    let after = if kept {
        "its container, network and dirs were kept for inspection".to_string()
    } else {
        "everything it made was removed".to_string()
    };
    format!(
        "creating {tenant} failed at step {}: {reason}; {after}",
        step.as_str()
    )
}

/// The uid/gid the gateway runs as in the image.
pub(crate) const CELL_UID: u32 = 1000;

/// Creates the tenant's cell and returns it once `/healthz` answers.
///
/// # Errors
///
/// `Exists` for a taken id, `Refused` for bad input (nothing changed), `Failed`
/// naming the step that failed (what was made is undone unless `keep_failed`).
pub async fn create(
    app: &App,
    actor: &Actor,
    spec: TenantSpec,
    progress: &mut (dyn FnMut(CreateStep) + Send),
) -> Result<TenantView, CreateError> {
    crate::fleet::reconcile::reconcile_first(app, actor)
        .await
        .map_err(CreateError::Other)?;
    // A refusal is audited at the step that refused; nothing was made yet.
    let refuse = |step: &str, err: &dyn std::fmt::Display| {
        let reason = format!("{err:#}");
        audit(app, actor, "create", Some(&spec.id), Err((step, &reason)));
        CreateError::Refused(reason)
    };
    progress(CreateStep::Validate);
    let (image, limits, config_text) = match validate(app, &spec) {
        Ok(ok) => ok,
        Err(err) => return Err(refuse("validate", &err)),
    };
    let _lock = match lock::acquire(app, &spec.id, Op::Create, actor) {
        Ok(guard) => guard,
        Err(err) => match lock::busy(&err) {
            Some(busy) => return Err(CreateError::Busy(busy.clone())),
            None => return Err(CreateError::Other(err)),
        },
    };
    let mut secrets = vec![
        (SecretKind::GatewayToken, Secret::new(random_token())),
        (SecretKind::BotToken, spec.bot_token.secret().clone()),
        (SecretKind::HooksToken, Secret::new(random_token())),
    ];
    if let Some(key) = &spec.provider_key {
        secrets.push((SecretKind::ProviderKey, key.clone()));
    }
    let cell = NewCell {
        id: spec.id.clone(),
        display_name: spec.display_name.clone(),
        image,
        model: spec.model.clone(),
        limits,
        bot_id: spec.bot_token.bot_id(),
        bot_username: spec.bot_username.clone(),
        generation: 1,
        created_at: now(),
        secrets,
        keep_failed: spec.keep_failed,
        quiet_until: None,
    };
    provision(
        app,
        actor,
        "create",
        cell,
        Contents::Fresh {
            config_text: &config_text,
        },
        progress,
    )
    .await
}

/// A cell about to be made: what its record starts from, and its secrets.
pub(crate) struct NewCell {
    pub id: TenantId,
    pub display_name: Option<String>,
    pub image: String,
    pub model: String,
    pub limits: Limits,
    /// 0 for a cell without a bot of its own (a restore drill).
    pub bot_id: u64,
    pub bot_username: Option<String>,
    pub generation: u64,
    pub created_at: i64,
    pub secrets: Vec<(SecretKind, Secret<String>)>,
    pub keep_failed: bool,
    /// The monitor keeps quiet about it until then (a restore drill's scratch cell).
    pub quiet_until: Option<i64>,
}

/// What goes into a new cell's dirs.
pub(crate) enum Contents<'a> {
    /// Empty dirs and a config rendered from the template.
    Fresh { config_text: &'a str },
    /// A staged `state/` and `auth/` (a restore), moved into place whole.
    Restored { staging: &'a std::path::Path },
}

/// Makes `cell` from nothing to running, healthy and paired, all or nothing:
/// the record (`creating`, with its port and subnet) first, then each step.
/// The caller holds the tenant's lock and has validated the input; `action`
/// names it in the audit log.
pub(crate) async fn provision(
    app: &App,
    actor: &Actor,
    action: &str,
    cell: NewCell,
    contents: Contents<'_>,
    progress: &mut (dyn FnMut(CreateStep) + Send),
) -> Result<TenantView, CreateError> {
    let refuse = |step: &str, err: &dyn std::fmt::Display| {
        let reason = format!("{err:#}");
        audit(app, actor, action, Some(&cell.id), Err((step, &reason)));
        CreateError::Refused(reason)
    };
    let used_subnets = app
        .runtime
        .used_subnets()
        .await
        .context("cannot list Docker networks")?;

    progress(CreateStep::Record);
    fault_point("create:record");
    let record = app.store.insert_tenant(&cell.id, |existing| {
        if cell.bot_id != 0
            && let Some(owner) = existing.iter().find(|record| record.bot_id == cell.bot_id)
        {
            bail!(
                "this bot (id {}) already belongs to tenant {}; every client needs its own bot",
                owner.bot_id,
                owner.id
            );
        }
        let port = allocate_port(app, existing)?;
        let subnet = allocate_subnet(app, existing, &used_subnets, &[])?;
        Ok(TenantRecord {
            id: cell.id.clone(),
            display_name: cell.display_name.clone(),
            state: CellState::Creating,
            port,
            subnet,
            image: cell.image.clone(),
            image_id: None,
            model: cell.model.clone(),
            limits: cell.limits.clone(),
            bot_id: cell.bot_id,
            bot_username: cell.bot_username.clone(),
            generation: cell.generation,
            created_at: cell.created_at,
            updated_at: now(),
            last_error: None,
            paired: false,
            create_progress: CreateProgress::default(),
            purge_on_remove: false,
            muted_until: None,
            maintenance_until: cell.quiet_until,
            slept_at: None,
            wake_at: None,
            pinned_image: None,
            node: None,
        })
    });
    let mut record = match record {
        Ok(record) => record,
        Err(store::Error::Exists(id)) => {
            audit(
                app,
                actor,
                action,
                Some(&cell.id),
                Err(("validate", "the id is taken")),
            );
            return Err(CreateError::Exists(id));
        }
        Err(err) => return Err(refuse("record", &err)),
    };

    let secrets = &cell.secrets;
    let mut made = CreateProgress::default();
    let steps = async {
        for (kind, value) in secrets {
            app.store
                .put_secret(&cell.id, *kind, value)
                .map_err(|err| (CreateStep::Record, anyhow!(err)))?;
        }
        run_steps(
            app,
            &mut record,
            &contents,
            secrets,
            &used_subnets,
            &mut made,
            progress,
        )
        .await
    };
    match steps.await {
        Ok(()) => {}
        Err((step, err)) => {
            let secret_values: Vec<Secret<String>> =
                secrets.iter().map(|(_, v)| v.clone()).collect();
            let reason = redact(&format!("{err:#}"), &secret_values);
            let obstacle = crate::fleet::obstacle(&err);
            audit(
                app,
                actor,
                action,
                Some(&cell.id),
                Err((step.as_str(), &reason)),
            );
            if cell.keep_failed {
                if made.container {
                    // Keep it for inspection, but not restarting in a loop.
                    let _ = app.runtime.stop(&cell.id).await;
                }
                let failed = app.store.update_tenant(&cell.id, |record| {
                    record.state = CellState::Failed;
                    record.last_error = Some(reason.clone());
                    record.create_progress = CreateProgress::default();
                    record.updated_at = now();
                    Ok(())
                });
                if let Err(err) = failed {
                    tracing::warn!(cause = %err, tenant = %cell.id, "cannot record the failed create");
                }
            } else {
                undo(app, &cell.id, &made).await;
            }
            return Err(CreateError::Failed {
                tenant: cell.id.clone(),
                step,
                reason,
                kept: cell.keep_failed,
                obstacle,
            });
        }
    }

    fault_point("create:running");
    app.store
        .update_tenant(&cell.id, |record| {
            record.state = CellState::Running;
            record.paired = true;
            record.create_progress = CreateProgress::default();
            record.updated_at = now();
            Ok(())
        })
        .context("cannot record the tenant as running")?;
    fault_point("create:done");
    audit(app, actor, action, Some(&cell.id), Ok(()));
    progress(CreateStep::Done);
    let view = crate::fleet::show(app, &cell.id).await?;
    Ok(view)
}

async fn run_steps(
    app: &App,
    record: &mut TenantRecord,
    contents: &Contents<'_>,
    secrets: &[(SecretKind, Secret<String>)],
    used_subnets: &[String],
    made: &mut CreateProgress,
    progress: &mut (dyn FnMut(CreateStep) + Send),
) -> Result<(), (CreateStep, anyhow::Error)> {
    let tenant = record.id.clone();
    let image = record.image.clone();
    let tenant_dir = app.tenant_dir(&tenant);
    let state_dir = tenant_dir.join("state");
    let auth_dir = tenant_dir.join("auth");

    progress(CreateStep::Dirs);
    fault_point("create:dirs");
    let step = CreateStep::Dirs;
    if tenant_dir.exists() {
        return Err((
            step,
            anyhow!(
                "{} already exists (data of an earlier tenant with this id?); move it away or purge it first",
                tenant_dir.display()
            ),
        ));
    }
    mark_progress(app, record, made, |made| made.dirs = true).map_err(|err| (step, err))?;
    (|| -> anyhow::Result<()> {
        ensure_private_dir(&app.config.tenants_dir())?;
        if let Contents::Restored { staging } = contents {
            // The staged dirs sit beside it, on the same disk: one rename.
            // Fails rather than replace a dir that appeared meanwhile.
            std::fs::rename(staging, &tenant_dir).with_context(|| {
                format!(
                    "cannot move the restored dirs into {}",
                    tenant_dir.display()
                )
            })?;
            std::fs::set_permissions(&tenant_dir, std::fs::Permissions::from_mode(0o700))?;
            return Ok(());
        }
        // Not recursive: fails rather than adopt a dir that appeared meanwhile.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&tenant_dir)
            .with_context(|| format!("cannot create {}", tenant_dir.display()))?;
        for dir in [&state_dir, &auth_dir] {
            ensure_private_dir(dir)?;
            give_to_cell(dir)?;
        }
        Ok(())
    })()
    .map_err(|err| (step, err))?;

    progress(CreateStep::Config);
    fault_point("create:config");
    let step = CreateStep::Config;
    let config_text = match contents {
        Contents::Fresh { config_text } => Some(*config_text),
        Contents::Restored { .. } => None,
    };
    (|| -> anyhow::Result<()> {
        let Some(config_text) = config_text else {
            return Ok(());
        };
        let path = state_dir.join("openclaw.json");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        std::io::Write::write_all(&mut file, config_text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        give_to_cell(&path)?;
        if app.config.cell.preapprove_pairing {
            preapprove_admin(app, &state_dir)?;
        }
        Ok(())
    })()
    .map_err(|err| (step, err))?;

    progress(CreateStep::Network);
    fault_point("create:network");
    let step = CreateStep::Network;
    if app.runtime.engine() == crate::tenant::Engine::Swarm && record.node.is_none() {
        let node = crate::fleet::nodes::choose(app, record.limits.memory_bytes)
            .await
            .map_err(|err| (step, err))?;
        record.node = Some(node.clone());
        app.store
            .update_tenant(&tenant, |record| {
                record.node = Some(node);
                Ok(())
            })
            .map_err(|err| (step, anyhow!(err)))?;
    }
    mark_progress(app, record, made, |made| made.network = true).map_err(|err| (step, err))?;
    let mut tried = Vec::new();
    loop {
        let created = app
            .runtime
            .create_network(&tenant, record.generation, &record.subnet)
            .await
            .map_err(|err| (step, anyhow!(err)))?;
        if created {
            break;
        }
        // Someone took the subnet since we looked: reserve the next one.
        tried.push(record.subnet.clone());
        let existing = app.store.tenants().map_err(|err| (step, anyhow!(err)))?;
        record.subnet =
            allocate_subnet(app, &existing, used_subnets, &tried).map_err(|err| (step, err))?;
        let subnet = record.subnet.clone();
        app.store
            .update_tenant(&tenant, |record| {
                record.subnet = subnet;
                Ok(())
            })
            .map_err(|err| (step, anyhow!(err)))?;
    }

    crate::fleet::nodes::reach(app, &tenant)
        .await
        .map_err(|err| (step, err))?;

    progress(CreateStep::Container);
    fault_point("create:container");
    let step = CreateStep::Container;
    mark_progress(app, record, made, |made| made.container = true).map_err(|err| (step, err))?;
    make_container(app, record, &image, secrets)
        .await
        .map_err(|err| (step, err))?;

    progress(CreateStep::Start);
    fault_point("create:start");
    let step = CreateStep::Start;
    app.runtime
        .start(&tenant)
        .await
        .map_err(|err| (step, anyhow!(err)))?;

    progress(CreateStep::Health);
    fault_point("create:health");
    wait_healthy(app, record, app.config.cell.health_timeout)
        .await
        .map_err(|err| (CreateStep::Health, err))?;

    progress(CreateStep::Pair);
    fault_point("create:pair");
    crate::fleet::cell_gateway::pair_cell(app, record, app.config.cell.health_timeout)
        .await
        .map_err(|err| (CreateStep::Pair, err))?;
    record.paired = true;
    Ok(())
}

/// Approves the admin's device before the cell's first start: its record, with
/// a fresh device token, in `devices/paired.json`, which the gateway imports
/// at its first boot. Written whole under a temporary name and renamed (a
/// file the gateway cannot parse or read stops it from starting), owned by
/// the cell's user. Should an OpenClaw version ignore it, pairing falls back
/// to `devices approve`.
fn preapprove_admin(app: &App, state_dir: &std::path::Path) -> anyhow::Result<()> {
    let devices = state_dir.join("devices");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&devices)
        .with_context(|| format!("cannot create {}", devices.display()))?;
    give_to_cell(&devices)?;
    let mut token = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut token);
    let token = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, token);
    let text = template::paired_devices(
        app.identity.device_id(),
        app.identity.public_key(),
        &crate::gateway::SCOPES,
        &token,
        now() * 1000,
    )?;
    let partial = devices.join(".paired.json.partial");
    let path = devices.join("paired.json");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .with_context(|| format!("cannot write {}", partial.display()))?;
    file.sync_all()?;
    give_to_cell(&partial)?;
    std::fs::rename(&partial, &path)
        .with_context(|| format!("cannot move {} into place", path.display()))?;
    Ok(())
}

/// Marks a create step in the record before it is taken, so an undo knows it.
fn mark_progress(
    app: &App,
    record: &TenantRecord,
    made: &mut CreateProgress,
    mark: impl Fn(&mut CreateProgress),
) -> anyhow::Result<()> {
    mark(made);
    app.store.update_tenant(&record.id, |record| {
        mark(&mut record.create_progress);
        Ok(())
    })?;
    Ok(())
}

type Validated = (String, Limits, String);

fn validate(app: &App, spec: &TenantSpec) -> anyhow::Result<Validated> {
    let image = spec
        .image
        .clone()
        .unwrap_or_else(|| app.config.cell.image.clone());
    check_pinned(&image)?;
    let limits = spec
        .limits
        .clone()
        .unwrap_or_else(|| app.config.cell.limits(None, None));
    let Some((provider, model_name)) = spec.model.split_once('/') else {
        bail!(
            "model {:?} must look like provider/model, e.g. anthropic/claude-opus-4-6",
            spec.model
        );
    };
    if provider.is_empty() || model_name.is_empty() || spec.model.contains(char::is_whitespace) {
        bail!(
            "model {:?} must look like provider/model, e.g. anthropic/claude-opus-4-6",
            spec.model
        );
    }
    let provider_env = provider_key_env(provider);
    if spec.provider_key.is_some() && provider_env.is_none() {
        bail!(
            "MTP does not know which environment variable carries a key for provider {provider:?}; known providers: {}",
            PROVIDER_KEYS
                .iter()
                .map(|(p, _)| *p)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(key) = &spec.provider_key
        && (key.expose().trim().is_empty() || key.expose().contains(char::is_whitespace))
    {
        bail!("the provider key is empty or contains whitespace; paste the key alone");
    }
    if let Some(skills) = &spec.skills {
        for skill in skills {
            let valid = !skill.is_empty()
                && skill.len() <= 64
                && skill
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                bail!("skill {skill:?} is not a skill key (lowercase letters, digits and '-')");
            }
        }
    }
    let config_text = template::render(&TemplateInput {
        model: &spec.model,
        dm_policy: &spec.dm_policy,
        telegram_api_root: app.config.cell.telegram_api_root.as_deref(),
        skills: spec.skills.as_deref(),
    })?;
    Ok((image, limits, config_text))
}

fn allocate_port(app: &App, existing: &[TenantRecord]) -> anyhow::Result<u16> {
    let cell = &app.config.cell;
    for port in cell.port_start..=cell.port_end {
        if existing.iter().any(|record| record.port == port) {
            continue;
        }
        if runtime::port_is_free(port) {
            return Ok(port);
        }
    }
    bail!(
        "no free port in {}..={}; widen cell.portEnd in the config",
        cell.port_start,
        cell.port_end
    )
}

fn allocate_subnet(
    app: &App,
    existing: &[TenantRecord],
    used: &[String],
    tried: &[String],
) -> anyhow::Result<String> {
    let pool = app.config.cell.subnet_pool;
    for index in 0..pool.len() {
        let subnet = pool.subnet(index);
        let taken = existing.iter().any(|record| record.subnet == subnet)
            || used.contains(&subnet)
            || tried.contains(&subnet);
        if !taken {
            return Ok(subnet);
        }
    }
    bail!(
        "the subnet pool {}/{} is exhausted; give cell.subnetPool a larger range",
        pool.base,
        pool.prefix
    )
}

/// 32 random bytes from the OS CSPRNG, hex encoded.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Hands a path to the cell's user (uid/gid 1000).
fn give_to_cell(path: &std::path::Path) -> anyhow::Result<()> {
    std::os::unix::fs::chown(path, Some(CELL_UID), Some(CELL_UID)).with_context(|| CellUser {
        path: path.to_path_buf(),
        uid: CELL_UID,
    })?;
    if path.is_dir() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}
