//! Restores from an archive alone, and restore drills into a scratch cell.

use super::*;

/// The archive a restore or verify names: a path, or a backup id in `backup.dir`.
fn resolve(app: &App, source: &str) -> Result<PathBuf, RestoreError> {
    let as_path = Path::new(source);
    if source.contains('/') || source.ends_with(&format!(".{}", archive::EXTENSION)) {
        if !as_path.is_file() {
            return Err(RestoreError::Refused(format!(
                "{source} is not a file; name an archive or a backup id"
            )));
        }
        return Ok(as_path.to_path_buf());
    }
    let valid = !source.is_empty()
        && source.len() <= 80
        && source
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(RestoreError::Refused(format!(
            "{source:?} is neither an archive path nor a backup id such as acme-20261203-150600"
        )));
    }
    let dir = &app.config().backup.dir;
    let candidates = if source.starts_with("admin-") {
        vec![dir.join(ADMIN_DIR)]
    } else {
        // The tenant is what precedes the 15-character time stamp.
        source
            .match_indices('-')
            .map(|(at, _)| &source[..at])
            .filter(|prefix| created_of(source, prefix).is_some())
            .map(|prefix| dir.join(prefix))
            .collect::<Vec<_>>()
    };
    for candidate in candidates {
        let path = candidate.join(format!("{source}.{}", archive::EXTENSION));
        if path.is_file() {
            return Ok(path);
        }
    }
    Err(RestoreError::Refused(format!(
        "no backup {source} in {}; list them with the backup list command",
        dir.display()
    )))
}

/// Reads a tenant archive into `staging` (made new): its payload and its
/// dirs. Nothing outside `staging` changes.
fn stage(
    path: &Path,
    keys: &Keys,
    staging: &Path,
) -> Result<(Manifest, TenantPayload), RestoreError> {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    let mut payload = None;
    let manifest = archive::read(path, keys, |manifest, name, reader| {
        if manifest.kind != Kind::Tenant {
            bail!(
                "it is a backup of the admin's store, not of a tenant; restore it with restore-admin"
            );
        }
        match name {
            "tenant.json" => {
                let mut text = Vec::new();
                reader.take(16 << 20).read_to_end(&mut text)?;
                let parsed: TenantPayload =
                    serde_json::from_slice(&text).context("its tenant record does not read")?;
                payload = Some(parsed);
            }
            "data.tar" => archive::unpack(reader, staging)?,
            other => bail!("it holds an entry MTP does not know: {other}"),
        }
        Ok(())
    })?;
    let payload = payload.ok_or_else(|| {
        RestoreError::Refused(format!("{} holds no tenant record", path.display()))
    })?;
    if !staging.join("state").is_dir() {
        return Err(RestoreError::Refused(format!(
            "{} holds no state dir",
            path.display()
        )));
    }
    crate::fleet::cell_db::forget_dead_leases(&staging.join("state"))
        .context("cannot clear the restored state's leases")?;
    Ok((manifest, payload))
}

/// `stage` into a fresh `staging` (what a dead restore left there goes first:
/// the caller holds the lock), off the async workers: decrypting is CPU work.
async fn stage_off_thread(
    app: &App,
    identity: Option<&Path>,
    path: &Path,
    staging: &Path,
) -> Result<(Manifest, TenantPayload), RestoreError> {
    remove_staging(staging)?;
    ensure_private_dir(&app.config().tenants_dir())?;
    let keys = keys(app.config(), identity)?;
    let (path, staging) = (path.to_path_buf(), staging.to_path_buf());
    tokio::task::spawn_blocking(move || stage(&path, &keys, &staging))
        .await
        .map_err(|err| anyhow!("the reader stopped: {err}"))?
}

/// A tenant made from another's archive gets gateway and hooks tokens of its own.
fn fresh_tokens(secrets: &mut Vec<(SecretKind, Secret<String>)>) {
    secrets.retain(|(kind, _)| !matches!(kind, SecretKind::GatewayToken | SecretKind::HooksToken));
    secrets.push((SecretKind::GatewayToken, Secret::new(random_token())));
    secrets.push((SecretKind::HooksToken, Secret::new(random_token())));
}

fn secrets_of(payload: &TenantPayload) -> Vec<(SecretKind, Secret<String>)> {
    SecretKind::ALL
        .into_iter()
        .filter_map(|kind| {
            payload
                .secrets
                .get(kind.as_str())
                .map(|value| (kind, Secret::new(value.clone())))
        })
        .collect()
}

/// Restores a tenant from an archive: running, healthy and paired when it
/// returns, with its files as they were. The usage ledger is not touched.
///
/// # Errors
///
/// See `RestoreError`; the fleet is as it was after any of them, except that
/// a replaced tenant's safety backup stays.
pub async fn restore(
    app: &App,
    actor: &Actor,
    request: RestoreRequest,
    progress: &mut (dyn FnMut(RestoreStep) + Send),
) -> Result<TenantView, RestoreError> {
    let path = resolve(app, &request.source)?;
    let keys = keys(app.config(), request.identity.as_deref())?;
    let peeked = archive::peek(&path, &keys)?;
    if peeked.kind != Kind::Tenant {
        return Err(RestoreError::Refused(format!(
            "{} is a backup of the admin's store; restore it with restore-admin",
            path.display()
        )));
    }
    let original: TenantId = peeked
        .tenant
        .as_deref()
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| RestoreError::Refused("its manifest names no valid tenant".to_string()))?;
    let target = request.as_id.clone().unwrap_or_else(|| original.clone());
    if target != original && request.bot_token.is_none() {
        return Err(RestoreError::Refused(format!(
            "restoring {original} as {target} needs another bot token: one bot polls from one place only, and two cells on one token both fail"
        )));
    }
    let _guard = match lock::acquire(app, &target, Op::Restore, actor) {
        Ok(guard) => guard,
        Err(err) => match lock::busy(&err) {
            Some(busy) => return Err(RestoreError::Busy(busy.clone())),
            None => return Err(RestoreError::Other(err)),
        },
    };
    let result = restore_locked(app, actor, &request, &path, &target, progress).await;
    if let Err(err) = &result
        && !matches!(err, RestoreError::Create(_))
    {
        audit(
            app,
            actor,
            "restore",
            Some(&target),
            Err(("validate", &format!("{err:#}"))),
        );
    }
    result
}

async fn restore_locked(
    app: &App,
    actor: &Actor,
    request: &RestoreRequest,
    path: &Path,
    target: &TenantId,
    progress: &mut (dyn FnMut(RestoreStep) + Send),
) -> Result<TenantView, RestoreError> {
    let existing = app.store.tenant(target).map_err(anyhow::Error::from)?;
    if existing.is_some() && !request.replace {
        return Err(RestoreError::Exists(target.clone()));
    }
    if existing.is_none() && app.tenant_dir(target).exists() {
        return Err(RestoreError::Refused(format!(
            "{} holds data of a tenant removed without purging it; purge it first or move it away",
            app.tenant_dir(target).display()
        )));
    }
    progress(RestoreStep::Read);
    let staging = staging_dir(app, target);
    let staged = stage_off_thread(app, request.identity.as_deref(), path, &staging).await;
    let result = async {
        let (_manifest, payload) = staged?;
        fault_point("restore:staged");
        check_pinned(&payload.image).map_err(|err| RestoreError::Refused(format!("{err:#}")))?;
        let image_known = app
            .runtime
            .image_id(&payload.image)
            .await
            .context("cannot ask Docker for the image")?;
        if image_known.is_none() {
            return Err(RestoreError::Refused(format!(
                "Docker has no image {}; build or load it on this host first (MTP never pulls)",
                payload.image
            )));
        }
        let mut secrets = secrets_of(&payload);
        if !secrets
            .iter()
            .any(|(kind, _)| *kind == SecretKind::GatewayToken)
        {
            return Err(RestoreError::Refused(
                "the archive holds no gateway token".to_string(),
            ));
        }
        let mut bot_id = payload.bot_id;
        let mut bot_username = payload.bot_username.clone();
        if let Some(token) = &request.bot_token {
            secrets.retain(|(kind, _)| *kind != SecretKind::BotToken);
            secrets.push((SecretKind::BotToken, token.secret().clone()));
            if token.bot_id() != bot_id {
                bot_username = None;
            }
            bot_id = token.bot_id();
        }
        if target.as_str() != payload.id {
            fresh_tokens(&mut secrets);
        }
        let mut replaced = None;
        if existing.is_some() {
            progress(RestoreStep::SafetyBackup);
            let mut quiet = |_| {};
            let safety = backup_locked(app, target, &mut quiet).await;
            audit_result(
                app,
                actor,
                "backup (before restore)",
                target,
                "backup",
                &safety,
            );
            let safety = safety.context(
                "the current state could not be backed up first, so nothing was replaced",
            )?;
            progress(RestoreStep::Replace);
            remove_locked(app, actor, target, true).await?;
            replaced = Some(safety.backup.id);
        }
        let cell = NewCell {
            id: target.clone(),
            display_name: payload.display_name.clone(),
            image: payload.image.clone(),
            model: payload.model.clone(),
            limits: payload.limits(),
            bot_id,
            bot_username,
            generation: payload.generation,
            created_at: payload.created_at,
            secrets,
            keep_failed: false,
            quiet_until: None,
        };
        let mut cell_progress = |step| progress(RestoreStep::Cell(step));
        provision(
            app,
            actor,
            "restore",
            cell,
            Contents::Restored { staging: &staging },
            &mut cell_progress,
        )
        .await
        .map_err(|source| match replaced {
            // The tenant it replaced is gone: say where its state is.
            Some(safety) => RestoreError::ReplacedThenFailed {
                tenant: target.clone(),
                safety,
                source: Box::new(source),
            },
            None => RestoreError::Create(source),
        })
    }
    .await;
    let _ = remove_staging(&staging);
    result
}

fn staging_dir(app: &App, tenant: &TenantId) -> PathBuf {
    app.config()
        .tenants_dir()
        .join(format!("{RESTORE_STAGING}{tenant}"))
}

pub(super) fn remove_staging(staging: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(staging) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("cannot remove {}", staging.display())),
    }
}

/// A restore drill: restores the archive into a scratch cell that cannot
/// reach Telegram (its Bot API root points nowhere), waits for it to be
/// healthy and paired, counts what came back, and removes it again.
///
/// # Errors
///
/// The archive is refused, or the scratch cell does not come up; the scratch
/// cell is removed either way.
pub async fn verify(
    app: &App,
    actor: &Actor,
    source: &str,
    identity: Option<&Path>,
    progress: &mut (dyn FnMut(RestoreStep) + Send),
) -> Result<Verified, RestoreError> {
    let path = resolve(app, source)?;
    let scratch: TenantId = format!("drill-{:08x}", rand::random::<u32>())
        .parse()
        .map_err(|err| anyhow!("{err}"))?;
    let _guard = lock::acquire(app, &scratch, Op::Restore, actor)?;
    progress(RestoreStep::Read);
    let staging = staging_dir(app, &scratch);
    let staged = stage_off_thread(app, identity, &path, &staging).await;
    let result = async {
        let (manifest, payload) = staged?;
        let (files, data_bytes) = count_tree(&staging)?;
        isolate_from_telegram(&staging.join("state").join("openclaw.json"))?;
        let mut secrets = secrets_of(&payload);
        fresh_tokens(&mut secrets);
        let cell = NewCell {
            id: scratch.clone(),
            display_name: Some(format!("restore drill of {}", manifest.id)),
            image: payload.image.clone(),
            model: payload.model.clone(),
            limits: payload.limits(),
            bot_id: 0,
            bot_username: None,
            generation: 1,
            created_at: now(),
            secrets,
            keep_failed: false,
            quiet_until: Some(now() + 3600),
        };
        let started = Instant::now();
        let mut cell_progress = |step| progress(RestoreStep::Cell(step));
        provision(
            app,
            actor,
            "verify",
            cell,
            Contents::Restored { staging: &staging },
            &mut cell_progress,
        )
        .await
        .map_err(RestoreError::Create)?;
        let boot = started.elapsed();
        let removed = remove_locked(app, actor, &scratch, true).await;
        removed.context("the drill passed, but its scratch cell could not be removed")?;
        Ok(Verified {
            backup_id: manifest.id,
            tenant: manifest.tenant.as_deref().and_then(|id| id.parse().ok()),
            files,
            data_bytes,
            boot,
        })
    }
    .await;
    let _ = remove_staging(&staging);
    if result.is_err() && app.store.tenant(&scratch).ok().flatten().is_some() {
        let _ = remove_locked(app, actor, &scratch, true).await;
    }
    result
}

fn count_tree(dir: &Path) -> anyhow::Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            let (f, b) = count_tree(&entry.path())?;
            files += f;
            bytes += b;
        } else if kind.is_file() {
            files += 1;
            bytes += entry.metadata()?.len();
        }
    }
    Ok((files, bytes))
}

/// Points a restored config's Telegram channel at a closed port inside the
/// cell, so a drill can never poll the client's bot.
fn isolate_from_telegram(config: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read {}", config.display()))?;
    let mut value: serde_json::Value =
        json5::from_str(&text).with_context(|| format!("{} is not JSON5", config.display()))?;
    if let Some(telegram) = value
        .get_mut("channels")
        .and_then(|channels| channels.get_mut("telegram"))
        .and_then(serde_json::Value::as_object_mut)
    {
        telegram.insert(
            "apiRoot".to_string(),
            serde_json::Value::String("http://127.0.0.1:9".to_string()),
        );
    }
    let meta = std::fs::metadata(config)?;
    std::fs::write(config, serde_json::to_vec_pretty(&value)?)
        .with_context(|| format!("cannot write {}", config.display()))?;
    std::fs::set_permissions(config, meta.permissions())?;
    Ok(())
}
