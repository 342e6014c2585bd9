//! The admin's own store and device key: backed up under the store's lock, put back into an empty data dir.

use super::*;

/// Backs up the admin's own store and device key, consistent under the same
/// store lock every call uses.
///
/// # Errors
///
/// The store is held too long by another process, or the archive cannot be written.
pub async fn backup_admin(app: &App, actor: &Actor) -> anyhow::Result<Backup> {
    let result = backup_admin_inner(app).await;
    match &result {
        Ok(_) => audit(app, actor, "backup admin", None, Ok(())),
        Err(err) => audit(
            app,
            actor,
            "backup admin",
            None,
            Err(("backup", &format!("{err:#}"))),
        ),
    }
    result
}

async fn backup_admin_inner(app: &App) -> anyhow::Result<Backup> {
    let config = app.config();
    let dir = config.backup.dir.join(ADMIN_DIR);
    ensure_private_dir(&config.backup.dir)?;
    ensure_private_dir(&dir)?;
    let keys = keys(config, None)?;
    let at = now();
    let (id, path) = next_path(&dir, "admin", at);
    let staging = dir.join(format!(".{id}.store{}", archive::PARTIAL));
    let result = async {
        let store_copy = {
            let store = app.store.clone();
            let staging = staging.clone();
            tokio::task::spawn_blocking(move || store.copy_to(&staging))
                .await
                .map_err(|err| anyhow!("the copy stopped: {err}"))?
        };
        store_copy?;
        fault_point("backup-admin:copied");
        let device_key = std::fs::read(config.data_dir.join("device.key"))
            .context("cannot read the admin's device key")?;
        let manifest = Manifest {
            format: String::new(),
            version: 0,
            kind: Kind::Admin,
            id: id.clone(),
            tenant: None,
            created_at: at,
            mtp_version: env!("CARGO_PKG_VERSION").to_string(),
            openclaw_image: None,
            openclaw_image_id: None,
            entries: Vec::new(),
        };
        let entries = vec![
            ("mtp.redb".to_string(), Source::File(staging.clone())),
            ("device.key".to_string(), Source::Bytes(device_key)),
        ];
        let path = path.clone();
        tokio::task::spawn_blocking(move || archive::write(&path, &keys, manifest, entries))
            .await
            .map_err(|err| anyhow!("the archive writer stopped: {err}"))?
    }
    .await;
    let _ = std::fs::remove_file(&staging);
    let (_, bytes) = result?;
    Ok(Backup {
        id,
        tenant: None,
        path,
        bytes,
        created_at: at,
    })
}

/// Puts an admin archive back into a data dir that has no store yet: the
/// store and the device key. Runs without an `App` (there is no store to open).
///
/// # Errors
///
/// The data dir has a store already, or the archive is refused; nothing
/// changed then.
pub fn restore_admin(
    config: &AdminConfig,
    archive_path: &Path,
    identity: Option<&Path>,
) -> Result<AdminRestored, RestoreError> {
    let store_path = config.store_path();
    if store_path.exists() {
        return Err(RestoreError::Refused(format!(
            "{} exists; restore-admin only fills an empty data dir, so move that store away first",
            store_path.display()
        )));
    }
    if !archive_path.is_file() {
        return Err(RestoreError::Refused(format!(
            "{} is not a file",
            archive_path.display()
        )));
    }
    ensure_private_dir(&config.data_dir)?;
    let keys = keys(config, identity)?;
    let staged_store = config
        .data_dir
        .join(format!(".mtp.redb.restore{}", archive::PARTIAL));
    let staged_key = config
        .data_dir
        .join(format!(".device.key.restore{}", archive::PARTIAL));
    for stale in [&staged_store, &staged_key] {
        let _ = std::fs::remove_file(stale);
    }
    let result = (|| {
        let manifest = archive::read(archive_path, &keys, |manifest, name, reader| {
            if manifest.kind != Kind::Admin {
                bail!("it is a tenant's backup, not the admin's; restore it with backup restore");
            }
            let target = match name {
                "mtp.redb" => &staged_store,
                "device.key" => &staged_key,
                other => bail!("it holds an entry MTP does not know: {other}"),
            };
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(target)
                .with_context(|| format!("cannot create {}", target.display()))?;
            std::io::copy(reader, &mut file)?;
            file.sync_all()?;
            Ok(())
        })?;
        if !staged_store.is_file() {
            return Err(RestoreError::Refused(
                "the archive holds no store".to_string(),
            ));
        }
        let store_bytes = std::fs::metadata(&staged_store)
            .map(|m| m.len())
            .unwrap_or(0);
        let device_key = config.data_dir.join("device.key");
        if staged_key.is_file() {
            std::fs::rename(&staged_key, &device_key)
                .with_context(|| format!("cannot write {}", device_key.display()))?;
        }
        // Last: the store's presence says the restore is complete.
        std::fs::hard_link(&staged_store, &store_path)
            .with_context(|| format!("cannot write {}", store_path.display()))?;
        std::fs::set_permissions(&store_path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot set mode 0600 on {}", store_path.display()))?;
        Ok(AdminRestored {
            backup_id: manifest.id,
            store_bytes,
        })
    })();
    for staged in [&staged_store, &staged_key] {
        let _ = std::fs::remove_file(staged);
    }
    result
}
