//! The files the fake keeps in its state dir (the config, the pairing store, the
//! port for `devices approve`), each replaced atomically so a reader never sees half.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` through a temp file beside it (mode 0600, `tempfile`'s
/// default) and a rename; a failed write leaves no temp file behind.
///
/// # Errors
/// Any I/O error.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|err| err.error)?;
    Ok(())
}
