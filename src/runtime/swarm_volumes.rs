//! A Swarm cell's volumes read and written whole, on whichever node holds
//! them, by one-shot jobs of the cell's image: how a backup reads a cell's
//! state, a restore gives a new cell its state, and a move carries a tenant's
//! state to another node, with no exec and no bind mount reaching a node.
//!
//! - Out (`export_volumes`): the job tars the volumes and prints the archive
//!   in base64 after its SHA-256; the admin reads it back from the job's log
//!   (the engine's `/services/{id}/logs`, which reaches every node) and
//!   checks it.
//! - In (`import_volumes`): the archive travels as Docker secrets of at most
//!   400 KiB (Swarm's limit is 500 KiB), mounted into the job, which joins
//!   them, checks the SHA-256, empties the volumes and unpacks. The secrets
//!   are removed after the job, whatever it did.
//!
//! The image needs a POSIX shell with `tar`, `base64`, `sha256sum`, `cat`,
//! `rm`, `mkdir`, `chmod` and `chown` (any Debian-based image has them).

use base64::Engine as _;
use bollard::models::{SecretSpec, TaskSpecContainerSpecFile, TaskSpecContainerSpecSecrets};
use sha2::{Digest, Sha256};

use crate::runtime::swarm::{SEEDED_MARK, VolumeJob};
use crate::runtime::{Error, Result, Runtime, VolumeMount, is_status, labels};
use crate::tenant::TenantId;

/// Where a job mounts the volumes: `<root>/<suffix>`.
const JOB_ROOT: &str = "/mtp-volumes";

/// How long a job reading or writing volumes may take.
const JOB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// The largest piece of an archive in one secret.
const PART_BYTES: usize = 400 * 1024;

/// The line before the archive in an export's output, followed by its SHA-256.
const BEGIN: &str = "MTP-EXPORT";
/// The line after it.
const END: &str = "MTP-END";

/// Volumes of `tenant` named by their suffixes, mounted under `JOB_ROOT`.
fn mounts(suffixes: &[&str]) -> Result<Vec<VolumeMount>> {
    suffixes
        .iter()
        .map(|suffix| {
            if suffix.is_empty()
                || !suffix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(Error::Other(format!("{suffix:?} is not a volume's suffix")));
            }
            Ok(VolumeMount {
                suffix: (*suffix).to_string(),
                target: format!("{JOB_ROOT}/{suffix}"),
            })
        })
        .collect()
}

impl Runtime {
    /// The tenant's volumes `suffixes` on `node` as one tar archive whose
    /// entries begin with each suffix (`state/…`, `auth/…`), without the
    /// paths of `skip` (`state/cache`: what the gateway makes again). The cell should
    /// not be writing meanwhile (stopped, or paused on its node) for a
    /// consistent copy.
    ///
    /// # Errors
    ///
    /// The job failing or not finishing within `timeout`, its output damaged
    /// (a wrong SHA-256), Docker refusing; ten minutes pass.
    pub async fn export_volumes(
        &self,
        tenant: &TenantId,
        image: &str,
        node: Option<&str>,
        suffixes: &[&str],
        skip: &[&str],
    ) -> Result<Vec<u8>> {
        let volumes = mounts(suffixes)?;
        let script = export_script(suffixes, skip)?;
        let lines = self
            .run_volume_job(&VolumeJob {
                tenant,
                image,
                node,
                volumes: &volumes,
                script: &script,
                secrets: Vec::new(),
                timeout: JOB_TIMEOUT,
            })
            .await?;
        decode_export(lines.iter().filter(|l| !l.stderr).map(|l| l.text.as_str()))
            .map_err(|why| Error::Other(format!("the export of {tenant}'s volumes {why}")))
    }

    /// Replaces what the tenant's volumes `suffixes` on `node` hold with
    /// `archive` (as `export_volumes` makes it), gives them to uid 1000 (0700)
    /// and marks them seeded, so a cell made on them keeps it. Unless
    /// `replace`, volumes seeded before are left as they are.
    ///
    /// # Errors
    ///
    /// The archive damaged on its way (the job checks its SHA-256), the job
    /// failing or not finishing within `timeout`, Docker refusing.
    pub async fn import_volumes(
        &self,
        tenant: &TenantId,
        image: &str,
        node: Option<&str>,
        suffixes: &[&str],
        archive: &[u8],
        replace: bool,
    ) -> Result<()> {
        let volumes = mounts(suffixes)?;
        let sum = hex::encode(Sha256::digest(archive));
        let nonce = &sum[..12];
        let mut made = Vec::new();
        let result = async {
            let mut secrets = Vec::new();
            for (index, part) in archive.chunks(PART_BYTES).enumerate() {
                let name = format!("mtp-{}-import-{nonce}-{index:04}", tenant.as_str());
                let mut part_labels = labels(tenant, 0);
                part_labels.insert("mtp.import".to_string(), "true".to_string());
                let created = self
                    .docker()
                    .create_secret(SecretSpec {
                        name: Some(name.clone()),
                        labels: Some(part_labels),
                        data: Some(base64::engine::general_purpose::STANDARD.encode(part)),
                        ..Default::default()
                    })
                    .await?;
                made.push(created.id.clone());
                secrets.push(TaskSpecContainerSpecSecrets {
                    file: Some(TaskSpecContainerSpecFile {
                        name: Some(format!("part-{index:04}")),
                        uid: Some("0".to_string()),
                        gid: Some("0".to_string()),
                        mode: Some(0o400),
                    }),
                    secret_id: Some(created.id),
                    secret_name: Some(name),
                });
            }
            let script = import_script(suffixes, &sum, replace);
            self.run_volume_job(&VolumeJob {
                tenant,
                image,
                node,
                volumes: &volumes,
                script: &script,
                secrets,
                timeout: JOB_TIMEOUT,
            })
            .await
            .map(drop)
        }
        .await;
        for id in made {
            match self.docker().delete_secret(&id).await {
                Ok(()) => {}
                Err(err) if is_status(&err, 404) => {}
                Err(err) => {
                    tracing::warn!(cause = %err, tenant = %tenant, "cannot remove a secret of an import");
                }
            }
        }
        result
    }

    /// Empties the tenant's volumes `suffixes` on `node` (a job there), and
    /// removes them when that node is this engine's: what a move leaves on
    /// the node it left.
    ///
    /// # Errors
    ///
    /// The job failing, Docker refusing.
    pub async fn clear_volumes(
        &self,
        tenant: &TenantId,
        image: &str,
        node: &str,
        suffixes: &[&str],
    ) -> Result<()> {
        let volumes = mounts(suffixes)?;
        let names = suffixes.join(" ");
        let script =
            format!("set -e; for v in {names}; do cd {JOB_ROOT}/$v; rm -rf -- * .[!.]* ..?*; done");
        self.run_volume_job(&VolumeJob {
            tenant,
            image,
            node: Some(node),
            volumes: &volumes,
            script: &script,
            secrets: Vec::new(),
            timeout: JOB_TIMEOUT,
        })
        .await?;
        if self.local_node_id().await? == node {
            self.remove_volumes(tenant, &volumes).await?;
        }
        Ok(())
    }
}

/// The job that tars the volumes `suffixes` (under `JOB_ROOT`) without the
/// paths of `skip` and prints the archive. Busybox's `tar` has no exclude
/// option: a volume with paths to skip goes in as its entries, each but
/// those, gathered in the positional parameters (any name survives).
fn export_script(suffixes: &[&str], skip: &[&str]) -> Result<String> {
    let mut gather = String::from("set --; ");
    for suffix in suffixes {
        let skipped: Vec<&str> = skip
            .iter()
            .copied()
            .filter(|path| path.starts_with(&format!("{suffix}/")))
            .collect();
        for path in &skipped {
            let plain = path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
            if !plain || path.ends_with('/') {
                return Err(Error::Other(format!(
                    "{path:?} is not a plain path to leave out"
                )));
            }
        }
        if skipped.is_empty() {
            gather.push_str(&format!("set -- \"$@\" {suffix}; "));
        } else {
            gather.push_str(&format!(
                "for p in {suffix}/* {suffix}/.[!.]* {suffix}/..?*; do if [ -e \"$p\" ] || [ -L \"$p\" ]; then case \"$p\" in {}) ;; *) set -- \"$@\" \"$p\";; esac; fi; done; ",
                skipped.join("|")
            ));
        }
    }
    Ok(format!(
        "set -e; cd {JOB_ROOT}; {gather}tar -c -f /tmp/mtp-export.tar \"$@\"; sum=$(sha256sum /tmp/mtp-export.tar); echo \"{BEGIN} ${{sum%% *}}\"; base64 /tmp/mtp-export.tar; rm -f /tmp/mtp-export.tar; echo {END}"
    ))
}

/// The job that joins the parts, checks them, empties the volumes and unpacks.
fn import_script(suffixes: &[&str], sum: &str, replace: bool) -> String {
    let names = suffixes.join(" ");
    let first = suffixes.first().copied().unwrap_or_default();
    let once = if replace {
        String::new()
    } else {
        format!("if (cd {JOB_ROOT}/{first}/{SEEDED_MARK}) 2>/dev/null; then exit 0; fi; ")
    };
    format!(
        "set -e; {once}cat /run/secrets/part-* > /tmp/mtp-import.tar; got=$(sha256sum /tmp/mtp-import.tar); \
         case \"${{got%% *}}\" in {sum}) ;; *) echo 'the archive arrived damaged' >&2; exit 1;; esac; \
         for v in {names}; do cd {JOB_ROOT}/$v; rm -rf -- * .[!.]* ..?*; done; \
         cd {JOB_ROOT}; tar -x -f /tmp/mtp-import.tar; \
         for v in {names}; do mkdir -p {JOB_ROOT}/$v/{SEEDED_MARK}; chown -R 1000:1000 {JOB_ROOT}/$v; chmod 700 {JOB_ROOT}/$v; done; \
         rm -f /tmp/mtp-import.tar"
    )
}

/// The archive between `BEGIN <sha256>` and `END` in an export's output,
/// checked against its SHA-256.
fn decode_export<'a>(lines: impl Iterator<Item = &'a str>) -> std::result::Result<Vec<u8>, String> {
    let mut lines = lines.map(str::trim);
    let sum = lines
        .by_ref()
        .find_map(|line| line.strip_prefix(BEGIN).map(|rest| rest.trim().to_string()))
        .ok_or("printed no archive")?;
    let mut text = String::new();
    let mut ended = false;
    for line in lines {
        if line == END {
            ended = true;
            break;
        }
        text.push_str(line);
    }
    if !ended {
        return Err("was cut short".to_string());
    }
    let archive = base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .map_err(|err| format!("is not base64: {err}"))?;
    if hex::encode(Sha256::digest(&archive)) != sum {
        return Err("arrived damaged (its SHA-256 differs)".to_string());
    }
    Ok(archive)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(archive: &[u8]) -> Vec<String> {
        let mut lines = vec![
            "tar: removing leading '/'".to_string(),
            format!("{BEGIN} {}", hex::encode(Sha256::digest(archive))),
        ];
        let encoded = base64::engine::general_purpose::STANDARD.encode(archive);
        lines.extend(
            encoded
                .as_bytes()
                .chunks(76)
                .map(|c| String::from_utf8(c.to_vec()).unwrap()),
        );
        lines.push(END.to_string());
        lines
    }

    #[test]
    fn an_export_is_read_back_whole_and_checked() {
        let archive: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let lines = printed(&archive);
        let got = decode_export(lines.iter().map(String::as_str)).unwrap();
        assert_eq!(got, archive);

        let mut cut = lines.clone();
        cut.pop();
        assert_eq!(
            decode_export(cut.iter().map(String::as_str)).unwrap_err(),
            "was cut short"
        );
        let mut damaged = lines.clone();
        let first = if damaged[3].starts_with('A') {
            "B"
        } else {
            "A"
        };
        damaged[3].replace_range(0..1, first);
        assert_eq!(
            decode_export(damaged.iter().map(String::as_str)).unwrap_err(),
            "arrived damaged (its SHA-256 differs)"
        );
        assert_eq!(
            decode_export(["nothing"].into_iter()).unwrap_err(),
            "printed no archive"
        );
    }

    #[test]
    fn an_export_leaves_out_what_it_is_told_to() {
        let script = export_script(&["state", "auth"], &["state/cache", "state/tmp"]).unwrap();
        assert!(script.contains("state/cache|state/tmp) ;;"), "{script}");
        assert!(script.contains("set -- \"$@\" auth;"), "{script}");
        assert!(export_script(&["state"], &["state/$(reboot)"]).is_err());
        // Run for real with the machine's shell and tar on a made-up volume.
        let root = tempfile::tempdir().unwrap();
        for dir in ["state/cache/x", "state/keep", "state/.hidden", "auth"] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        std::fs::write(root.path().join("state/cache/x/f"), "c").unwrap();
        std::fs::write(root.path().join("state/keep/with space"), "k").unwrap();
        std::fs::write(root.path().join("auth/a"), "a").unwrap();
        let script = script.replace(JOB_ROOT, &root.path().display().to_string());
        let script = script.replace(
            "/tmp/mtp-export.tar",
            &root.path().join("out.tar").display().to_string(),
        );
        let output = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).unwrap();
        let archive = decode_export(text.lines()).unwrap();
        let mut names: Vec<String> = tar::Archive::new(archive.as_slice())
            .entries()
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .path()
                    .unwrap()
                    .to_string_lossy()
                    .trim_end_matches('/')
                    .to_string()
            })
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "auth",
                "auth/a",
                "state/.hidden",
                "state/keep",
                "state/keep/with space"
            ]
        );
    }

    #[test]
    fn an_import_checks_its_sum_before_it_empties_a_volume() {
        let script = import_script(&["state", "auth"], "ab12", true);
        assert!(import_script(&["state"], "ab12", false).contains(SEEDED_MARK));
        let check = script.find("case").unwrap();
        let empty = script.find("rm -rf").unwrap();
        assert!(check < empty, "{script}");
        assert!(script.contains("ab12) ;;"), "{script}");
        assert!(mounts(&["../etc"]).is_err());
    }
}
