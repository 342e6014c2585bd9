//! The backup archive: one file that holds a tenant (or the admin's own store)
//! whole, encrypted at rest.
//!
//! On disk an archive is `age(gzip(tar))`, written with the `age` format to
//! one or more X25519 recipients. The tar's first entry is `manifest.json`
//! (format, version, what it holds, when, which MTP and OpenClaw, and the size
//! and SHA-256 of every other entry); the other entries follow in the
//! manifest's order. `age` authenticates every 64 KiB chunk and the end of the
//! stream, so a flipped bit or a cut-off file fails to decrypt; the checksums
//! catch an archive assembled from the wrong parts.
//!
//! An archive is written to a hidden temporary name beside its final one, made
//! durable, and only then renamed: a crash never leaves a half archive under a
//! name that looks whole. Readers hand each entry to a sink and say whether
//! the whole archive checked out; they act on nothing themselves, so a caller
//! that stages what it reads and commits only after `read` returns `Ok`
//! changes nothing for a bad archive.
//!
//! This module knows files, keys and the format, nothing of tenants or Docker.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `format` every manifest carries.
pub const FORMAT: &str = "mtp-backup";
/// The newest format version this binary writes and reads.
pub const VERSION: u32 = 1;
/// The file name extension of a finished archive.
pub const EXTENSION: &str = "mtpbak";
/// What a partial archive's name ends with while it is written.
pub const PARTIAL: &str = ".partial";

const MANIFEST: &str = "manifest.json";

/// What an archive holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// One tenant: its record, secrets, state and auth dirs.
    Tenant,
    /// The admin's own store and device key.
    Admin,
}

/// The first entry of every archive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub kind: Kind,
    /// The backup id: the archive's file name without its extension.
    pub id: String,
    /// The tenant's id, for a tenant archive.
    pub tenant: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub mtp_version: String,
    /// The OpenClaw image the tenant ran, and its id.
    pub openclaw_image: Option<String>,
    pub openclaw_image_id: Option<String>,
    /// Every entry after the manifest, in order.
    pub entries: Vec<EntrySum>,
}

/// One entry's name, size and checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntrySum {
    pub name: String,
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the entry's bytes.
    pub sha256: String,
}

/// Where an entry's bytes come from when writing.
pub enum Source {
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// Why an archive cannot be read; each leaves everything as it was.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path} cannot be read: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "{path} cannot be decrypted with the keys given: it is damaged, cut short, or encrypted for another key"
    )]
    Decrypt { path: PathBuf },
    #[error("{path} is not an MTP backup archive or is damaged: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("{path} fails its checksum: entry {entry} does not match its manifest")]
    Checksum { path: PathBuf, entry: String },
    #[error(
        "{path} is a backup of format version {found}; this MTP reads up to {VERSION}: upgrade mtp"
    )]
    TooNew { path: PathBuf, found: u32 },
    /// The sink refused what it was given.
    #[error(transparent)]
    Sink(anyhow::Error),
}

/// The keys archives are written to and read with.
pub struct Keys {
    recipients: Vec<Box<dyn age::Recipient + Send + Sync>>,
    identities: Vec<Box<dyn age::Identity + Send + Sync>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("recipients", &self.recipients.len())
            .field("identities", &"[redacted]")
            .finish()
    }
}

impl Keys {
    /// The host's key at `key_file` (made, 0600, at first use) as the identity,
    /// and as the recipient unless `recipients` names others: then only they
    /// can read what is written, not this host alone.
    ///
    /// # Errors
    ///
    /// The key file cannot be read or made, or a recipient is not an `age1…` key.
    pub fn load(key_file: &Path, recipients: &[String]) -> anyhow::Result<Keys> {
        let host = load_or_create_identity(key_file)?;
        let mut keys = Keys {
            recipients: Vec::new(),
            identities: Vec::new(),
        };
        if recipients.is_empty() {
            keys.recipients.push(Box::new(host.to_public()));
        }
        for recipient in recipients {
            let parsed: age::x25519::Recipient = recipient.trim().parse().map_err(|err| {
                anyhow::anyhow!("{recipient:?} is not an age recipient (age1…): {err}")
            })?;
            keys.recipients.push(Box::new(parsed));
        }
        keys.identities.push(Box::new(host));
        Ok(keys)
    }

    /// Adds the X25519 identities of an `age` identity file (the
    /// `AGE-SECRET-KEY-1…` lines `age-keygen` writes; comments are skipped).
    ///
    /// # Errors
    ///
    /// The file cannot be read, a key line does not parse, or it holds none.
    pub fn add_identity_file(&mut self, path: &Path) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the identity file {}", path.display()))?;
        let mut found = 0;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let identity: age::x25519::Identity = line.parse().map_err(|err| {
                anyhow::anyhow!(
                    "{} holds a line that is not an age X25519 identity (AGE-SECRET-KEY-1…): {err}",
                    path.display()
                )
            })?;
            self.identities.push(Box::new(identity));
            found += 1;
        }
        if found == 0 {
            bail!("{} holds no age identity", path.display());
        }
        Ok(())
    }
}

fn load_or_create_identity(path: &Path) -> anyhow::Result<age::x25519::Identity> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let line = text
                .lines()
                .map(str::trim)
                .find(|line| line.starts_with("AGE-SECRET-KEY-"))
                .with_context(|| format!("{} holds no age secret key", path.display()))?;
            line.parse()
                .map_err(|err| anyhow::anyhow!("{} holds a bad age key: {err}", path.display()))
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let identity = age::x25519::Identity::generate();
            let text = format!(
                "# MTP Admin backup key: keep a copy off this host; without it no archive can be read.\n# public key: {}\n{}\n",
                identity.to_public(),
                identity.to_string().expose_secret()
            );
            let tmp = temp_name(path);
            write_new_private(&tmp, text.as_bytes())?;
            // Another process may have made it first: theirs wins, ours goes.
            match std::fs::hard_link(&tmp, path) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&tmp);
                    Ok(identity)
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    let _ = std::fs::remove_file(&tmp);
                    load_or_create_identity(path)
                }
                Err(err) => {
                    let _ = std::fs::remove_file(&tmp);
                    Err(err).with_context(|| format!("cannot make {}", path.display()))
                }
            }
        }
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn write_new_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(
        ".{name}.{}.{}{PARTIAL}",
        std::process::id(),
        rand::random::<u32>()
    ))
}

/// Writes the archive `path` (mode 0600): the manifest `base` with its entry
/// sums filled in, then `entries`. Returns the manifest written and the
/// archive's size in bytes.
///
/// # Errors
///
/// `path` exists already, or a source or the target cannot be read or written;
/// nothing is left under `path` then.
pub fn write(
    path: &Path,
    keys: &Keys,
    base: Manifest,
    entries: Vec<(String, Source)>,
) -> anyhow::Result<(Manifest, u64)> {
    let mut manifest = base;
    manifest.format = FORMAT.to_string();
    manifest.version = VERSION;
    manifest.entries = Vec::new();
    for (name, source) in &entries {
        let (bytes, sha256) = match source {
            Source::Bytes(data) => (data.len() as u64, hex::encode(Sha256::digest(data))),
            Source::File(file) => sum_file(file)?,
        };
        manifest.entries.push(EntrySum {
            name: name.clone(),
            bytes,
            sha256,
        });
    }
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)?;
    if path.exists() {
        bail!("{} exists already", path.display());
    }
    let tmp = temp_name(path);
    let written = write_to(&tmp, keys, &manifest_bytes, &entries);
    let finished = written.and_then(|()| {
        // Not `rename`: a link fails rather than replace an archive of the same name.
        std::fs::hard_link(&tmp, path)
            .with_context(|| format!("cannot name the archive {}", path.display()))?;
        sync_dir(path);
        Ok(())
    });
    let _ = std::fs::remove_file(&tmp);
    finished?;
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    Ok((manifest, size))
}

fn write_to(
    tmp: &Path,
    keys: &Keys,
    manifest: &[u8],
    entries: &[(String, Source)],
) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    let recipients = keys
        .recipients
        .iter()
        .map(|recipient| recipient.as_ref() as &dyn age::Recipient);
    let encryptor = age::Encryptor::with_recipients(recipients)
        .map_err(|err| anyhow::anyhow!("cannot encrypt: {err}"))?;
    let encrypted = encryptor
        .wrap_output(BufWriter::new(file))
        .context("cannot start the encrypted stream")?;
    let gzip = flate2::write::GzEncoder::new(encrypted, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gzip);
    append(&mut tar, MANIFEST, manifest.len() as u64, manifest)?;
    for (name, source) in entries {
        match source {
            Source::Bytes(data) => append(&mut tar, name, data.len() as u64, &data[..])?,
            Source::File(path) => {
                let file =
                    File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
                let len = file.metadata()?.len();
                append(&mut tar, name, len, BufReader::new(file))?;
            }
        }
    }
    let gzip = tar.into_inner().context("cannot finish the archive")?;
    let encrypted = gzip.finish().context("cannot finish the archive")?;
    let buffered = encrypted.finish().context("cannot finish the archive")?;
    let file = buffered
        .into_inner()
        .map_err(|err| anyhow::anyhow!("cannot write the archive: {}", err.error()))?;
    file.sync_all().context("cannot make the archive durable")?;
    Ok(())
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    len: u64,
    data: impl Read,
) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(len);
    header.set_mode(0o600);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append_data(&mut header, name, data)
        .with_context(|| format!("cannot write {name} into the archive"))
}

fn sum_file(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let bytes = io::copy(&mut file, &mut hasher)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok((bytes, hex::encode(hasher.finalize())))
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(dir) = File::open(dir)
    {
        let _ = dir.sync_all();
    }
}

/// Reads the archive at `path`: decrypts it, checks its manifest, hands every
/// entry to `sink` (`sink(manifest, name, reader)`), and checks each entry's
/// size and checksum and the end of the stream. Returns the manifest once
/// everything checked out; until then, what the sink did must stay staged.
///
/// # Errors
///
/// See `ReadError`: nothing the sink staged may be used then.
pub fn read(
    path: &Path,
    keys: &Keys,
    mut sink: impl FnMut(&Manifest, &str, &mut dyn Read) -> anyhow::Result<()>,
) -> Result<Manifest, ReadError> {
    let malformed = |reason: String| ReadError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let decrypt_failed = || ReadError::Decrypt {
        path: path.to_path_buf(),
    };
    let decryptor =
        age::Decryptor::new_buffered(BufReader::new(file)).map_err(|err| match err {
            age::DecryptError::Io(source) => ReadError::Io {
                path: path.to_path_buf(),
                source,
            },
            _ => malformed(format!("not an age-encrypted file ({err})")),
        })?;
    let identities = keys
        .identities
        .iter()
        .map(|identity| identity.as_ref() as &dyn age::Identity);
    let decrypted = decryptor
        .decrypt(identities)
        .map_err(|_| decrypt_failed())?;
    // Errors below the tar reader surface as io::Error; tell a failed MAC
    // (damage, truncation) from bad gzip or tar framing by where it came from.
    let mut stream = Tracked::new(decrypted);
    let result = read_entries(path, &mut stream, &mut sink);
    match result {
        Err(_) if stream.failed => Err(decrypt_failed()),
        other => other,
    }
}

fn read_entries(
    path: &Path,
    stream: &mut Tracked<impl Read>,
    sink: &mut impl FnMut(&Manifest, &str, &mut dyn Read) -> anyhow::Result<()>,
) -> Result<Manifest, ReadError> {
    let malformed = |reason: String| ReadError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let io_err = |err: io::Error| malformed(err.to_string());
    let gzip = flate2::read::GzDecoder::new(&mut *stream);
    let mut tar = tar::Archive::new(gzip);
    let mut entries = tar.entries().map_err(io_err)?;
    let mut first = entries
        .next()
        .ok_or_else(|| malformed("it is empty".to_string()))?
        .map_err(io_err)?;
    if first.path_bytes().as_ref() != MANIFEST.as_bytes() {
        return Err(malformed("its first entry is not a manifest".to_string()));
    }
    let mut text = Vec::new();
    first
        .by_ref()
        .take(1 << 20)
        .read_to_end(&mut text)
        .map_err(io_err)?;
    drop(first);
    let probe: serde_json::Value =
        serde_json::from_slice(&text).map_err(|err| malformed(format!("its manifest: {err}")))?;
    if probe.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(malformed("its manifest names another format".to_string()));
    }
    let version = probe
        .get("version")
        .and_then(serde_json::Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| malformed("its manifest has no version".to_string()))?;
    if version > VERSION {
        return Err(ReadError::TooNew {
            path: path.to_path_buf(),
            found: version,
        });
    }
    let manifest: Manifest =
        serde_json::from_value(probe).map_err(|err| malformed(format!("its manifest: {err}")))?;

    let mut expected = manifest.entries.iter();
    for entry in entries {
        let mut entry = entry.map_err(io_err)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(sum) = expected.next() else {
            return Err(malformed(format!("entry {name} is not in its manifest")));
        };
        if sum.name != name {
            return Err(ReadError::Checksum {
                path: path.to_path_buf(),
                entry: name,
            });
        }
        let mut hashing = Hashing::new(&mut entry);
        sink(&manifest, &name, &mut hashing).map_err(|err| {
            if hashing.failed.is_some() {
                malformed(format!("{err:#}"))
            } else {
                ReadError::Sink(err)
            }
        })?;
        // What the sink left unread still counts.
        io::copy(&mut hashing, &mut io::sink()).map_err(io_err)?;
        let (bytes, sha256) = hashing.finish();
        if bytes != sum.bytes || sha256 != sum.sha256 {
            return Err(ReadError::Checksum {
                path: path.to_path_buf(),
                entry: name,
            });
        }
    }
    if let Some(missing) = expected.next() {
        return Err(malformed(format!("entry {} is missing", missing.name)));
    }
    drop(tar);
    // The stream's end carries the last authentication tag: read up to it.
    io::copy(stream, &mut io::sink()).map_err(io_err)?;
    Ok(manifest)
}

/// Remembers whether the stream below (the decryption) failed.
struct Tracked<R> {
    inner: R,
    failed: bool,
}

impl<R> Tracked<R> {
    fn new(inner: R) -> Self {
        Tracked {
            inner,
            failed: false,
        }
    }
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| self.failed = true)
    }
}

/// Counts and hashes what is read through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    failed: Option<io::ErrorKind>,
}

impl<R> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
            failed: None,
        }
    }

    fn finish(self) -> (u64, String) {
        (self.bytes, hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.bytes += n as u64;
                Ok(n)
            }
            Err(err) => {
                self.failed = Some(err.kind());
                Err(err)
            }
        }
    }
}

/// Reads only the manifest of the archive at `path` (decrypting its start).
///
/// # Errors
///
/// As `read`, for what the first entry shows.
pub fn peek(path: &Path, keys: &Keys) -> Result<Manifest, ReadError> {
    let mut seen = None;
    let result = read(path, keys, |manifest, _, _| {
        seen = Some(manifest.clone());
        Err(anyhow::anyhow!("peeked"))
    });
    match (result, seen) {
        (Ok(manifest), _) | (Err(ReadError::Sink(_)), Some(manifest)) => Ok(manifest),
        (Err(err), _) => Err(err),
    }
}

/// Writes `dir` as a new gzip tar at `target` (0600) under the root name
/// `root`, leaving out top-level entries named in `skip`, and anywhere
/// sockets, FIFOs, lock and key files (`*.lock`, `*.key`, `*.pem`) and SQLite
/// databases (`*.sqlite*`, `*.db`); then `extra` files (`(path under root,
/// bytes)`). For people, not for restore: owners are not kept. Returns the
/// bytes written.
///
/// # Errors
///
/// `target` exists or cannot be written; a file cannot be read.
pub fn export_tree(
    dir: &Path,
    root: &str,
    skip: &[&str],
    extra: &[(String, Vec<u8>)],
    target: &Path,
) -> anyhow::Result<u64> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(target)
        .with_context(|| format!("cannot create {}", target.display()))?;
    let result = (|| {
        let gzip =
            flate2::write::GzEncoder::new(BufWriter::new(file), flate2::Compression::default());
        let mut tar = tar::Builder::new(gzip);
        tar.mode(tar::HeaderMode::Deterministic);
        tar.follow_symlinks(false);
        export_children(&mut tar, dir, Path::new(root), skip, true)?;
        for (name, bytes) in extra {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_cksum();
            tar.append_data(&mut header, Path::new(root).join(name), &bytes[..])?;
        }
        let gzip = tar.into_inner()?;
        let buffered = gzip.finish()?;
        let file = buffered
            .into_inner()
            .map_err(|err| anyhow::anyhow!("cannot write the export: {}", err.error()))?;
        file.sync_all()?;
        anyhow::Ok(file.metadata()?.len())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(target);
    }
    result.with_context(|| format!("cannot write {}", target.display()))
}

fn export_children<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: &Path,
    name: &Path,
    skip: &[&str],
    top: bool,
) -> anyhow::Result<()> {
    let mut children: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    children.sort_by_key(std::fs::DirEntry::file_name);
    for child in children {
        let file_name = child.file_name();
        let text = file_name.to_string_lossy();
        let machinery = [".lock", ".key", ".pem", ".db"]
            .iter()
            .any(|end| text.ends_with(end))
            || text.contains(".sqlite");
        if (top && skip.iter().any(|s| *s == text)) || machinery {
            continue;
        }
        let kind = child.file_type()?;
        let child_name = name.join(&file_name);
        if kind.is_dir() {
            tar.append_dir(&child_name, child.path())?;
            export_children(tar, &child.path(), &child_name, skip, false)?;
        } else if kind.is_file() {
            tar.append_path_with_name(child.path(), &child_name)?;
        }
    }
    Ok(())
}

/// Writes a plain tar of `dirs` (`(name in the tar, dir on disk)`) to `out`,
/// keeping owners and modes, skipping the paths `skip` names (relative to the
/// tar's root, e.g. `state/cache`). Returns the bytes written. Made to be fast:
/// no compression, no hashing, because a paused cell waits for it.
///
/// # Errors
///
/// A file cannot be read or `out` cannot be written.
pub fn snapshot_dirs(dirs: &[(&str, &Path)], skip: &[&str], out: &Path) -> anyhow::Result<u64> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("cannot create {}", out.display()))?;
    let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 20, file));
    tar.mode(tar::HeaderMode::Complete);
    tar.follow_symlinks(false);
    for (name, dir) in dirs {
        add_tree(&mut tar, dir, Path::new(name), skip)?;
    }
    let buffered = tar.into_inner().context("cannot finish the snapshot")?;
    let file = buffered
        .into_inner()
        .map_err(|err| anyhow::anyhow!("cannot write the snapshot: {}", err.error()))?;
    Ok(file.metadata()?.len())
}

fn add_tree<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: &Path,
    name: &Path,
    skip: &[&str],
) -> anyhow::Result<()> {
    if skip.iter().any(|s| Path::new(s) == name) {
        return Ok(());
    }
    tar.append_path_with_name(dir, name)
        .with_context(|| format!("cannot copy {}", dir.display()))?;
    let mut children: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot read {}", dir.display()))?;
    children.sort_by_key(std::fs::DirEntry::file_name);
    for child in children {
        let path = child.path();
        let child_name = name.join(child.file_name());
        let kind = child
            .file_type()
            .with_context(|| format!("cannot read {}", path.display()))?;
        if kind.is_dir() {
            add_tree(tar, &path, &child_name, skip)?;
        } else if kind.is_file() || kind.is_symlink() {
            if skip.iter().any(|s| Path::new(s) == child_name) {
                continue;
            }
            match tar.append_path_with_name(&path, &child_name) {
                Ok(()) => {}
                // Gone since the listing (a stopped cell's lock file): fine.
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(err).with_context(|| format!("cannot copy {}", path.display()));
                }
            }
        }
        // Sockets and FIFOs are runtime artefacts, not data.
    }
    Ok(())
}

/// Unpacks a tar written by `snapshot_dirs` from `reader` into `dir`, keeping
/// owners and modes. Paths that would leave `dir` are refused.
///
/// # Errors
///
/// The tar is malformed, escapes `dir`, or a file cannot be written.
pub fn unpack(reader: &mut dyn Read, dir: &Path) -> anyhow::Result<()> {
    let mut tar = tar::Archive::new(reader);
    tar.set_preserve_ownerships(true);
    tar.set_preserve_permissions(true);
    tar.set_overwrite(false);
    for entry in tar.entries().context("cannot read the data")? {
        let mut entry = entry.context("cannot read the data")?;
        let path = entry.path().context("cannot read the data")?.into_owned();
        if !entry.unpack_in(dir).context("cannot unpack the data")? {
            bail!("the data names a path outside its root: {}", path.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(dir: &Path) -> Keys {
        Keys::load(&dir.join("backup.key"), &[]).unwrap()
    }

    fn base(id: &str) -> Manifest {
        Manifest {
            format: String::new(),
            version: 0,
            kind: Kind::Tenant,
            id: id.to_string(),
            tenant: Some("acme".to_string()),
            created_at: 1,
            mtp_version: "test".to_string(),
            openclaw_image: None,
            openclaw_image_id: None,
            entries: Vec::new(),
        }
    }

    fn collect(path: &Path, keys: &Keys) -> Result<Vec<(String, Vec<u8>)>, ReadError> {
        let mut got = Vec::new();
        read(path, keys, |_, name, reader| {
            let mut data = Vec::new();
            reader.read_to_end(&mut data)?;
            got.push((name.to_string(), data));
            Ok(())
        })?;
        Ok(got)
    }

    #[test]
    fn an_archive_reads_back_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let keys = keys(dir.path());
        let big = dir.path().join("big");
        let data: Vec<u8> = (0..200_000u32).flat_map(u32::to_le_bytes).collect();
        std::fs::write(&big, &data).unwrap();
        let path = dir.path().join("a.mtpbak");
        let entries = vec![
            ("tenant.json".to_string(), Source::Bytes(b"{}".to_vec())),
            ("data.tar".to_string(), Source::File(big)),
        ];
        let (manifest, bytes) = write(&path, &keys, base("a"), entries).unwrap();
        assert_eq!(manifest.entries.len(), 2);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), bytes);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let got = collect(&path, &keys).unwrap();
        assert_eq!(got[0], ("tenant.json".to_string(), b"{}".to_vec()));
        assert_eq!(got[1].1, data);
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.iter().any(|n| n.ends_with(PARTIAL)), "{names:?}");
        // The same name is never overwritten.
        assert!(write(&path, &keys, base("a"), Vec::new()).is_err());
    }

    #[test]
    fn damaged_cut_and_foreign_archives_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys = keys(dir.path());
        let path = dir.path().join("a.mtpbak");
        let data: Vec<u8> = (0..100_000u32).flat_map(u32::to_le_bytes).collect();
        let entries = vec![("tenant.json".to_string(), Source::Bytes(data))];
        write(&path, &keys, base("a"), entries).unwrap();
        let whole = std::fs::read(&path).unwrap();

        let cut = dir.path().join("cut.mtpbak");
        std::fs::write(&cut, &whole[..whole.len() - 100]).unwrap();
        assert!(
            matches!(collect(&cut, &keys), Err(ReadError::Decrypt { .. })),
            "{:?}",
            collect(&cut, &keys).err()
        );

        let mut flipped = whole.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 0x40;
        let bad = dir.path().join("bad.mtpbak");
        std::fs::write(&bad, &flipped).unwrap();
        assert!(matches!(
            collect(&bad, &keys),
            Err(ReadError::Decrypt { .. })
        ));

        let other = tempfile::tempdir().unwrap();
        let stranger = Keys::load(&other.path().join("k"), &[]).unwrap();
        assert!(matches!(
            collect(&path, &stranger),
            Err(ReadError::Decrypt { .. })
        ));

        let plain = dir.path().join("plain.mtpbak");
        std::fs::write(&plain, b"not an archive").unwrap();
        assert!(matches!(
            collect(&plain, &keys),
            Err(ReadError::Malformed { .. })
        ));
    }

    #[test]
    fn an_archive_for_another_recipient_is_not_readable_by_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let operator = age::x25519::Identity::generate();
        let recipient = operator.to_public().to_string();
        let keys = Keys::load(&dir.path().join("backup.key"), &[recipient]).unwrap();
        let path = dir.path().join("a.mtpbak");
        write(&path, &keys, base("a"), Vec::new()).unwrap();
        assert!(matches!(
            collect(&path, &keys),
            Err(ReadError::Decrypt { .. })
        ));
        let identity_file = dir.path().join("operator.key");
        std::fs::write(
            &identity_file,
            format!("{}\n", operator.to_string().expose_secret()),
        )
        .unwrap();
        let mut keys = keys;
        keys.add_identity_file(&identity_file).unwrap();
        assert!(collect(&path, &keys).unwrap().is_empty());
    }

    #[test]
    fn the_host_key_is_made_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("backup.key");
        let path = dir.path().join("a.mtpbak");
        write(
            &path,
            &Keys::load(&key, &[]).unwrap(),
            base("a"),
            Vec::new(),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Loaded again, the same key reads the archive.
        assert!(collect(&path, &Keys::load(&key, &[]).unwrap()).is_ok());
        assert!(Keys::load(&key, &["not-a-key".to_string()]).is_err());
    }

    #[test]
    fn a_snapshot_keeps_the_tree_and_skips_what_it_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(state.join("workspace/deep")).unwrap();
        std::fs::create_dir_all(state.join("cache/x")).unwrap();
        std::fs::write(state.join("workspace/deep/note.md"), "hello").unwrap();
        std::fs::write(state.join("cache/x/blob"), "regenerable").unwrap();
        let out = dir.path().join("snap.tar");
        snapshot_dirs(&[("state", &state)], &["state/cache"], &out).unwrap();
        let into = dir.path().join("into");
        std::fs::create_dir(&into).unwrap();
        unpack(&mut File::open(&out).unwrap(), &into).unwrap();
        assert_eq!(
            std::fs::read_to_string(into.join("state/workspace/deep/note.md")).unwrap(),
            "hello"
        );
        assert!(!into.join("state/cache").exists());
    }
}
