//! A Swarm cell's volumes read and written whole, on whichever node holds
//! them, by one-shot jobs of the cell's image: how a backup reads a cell's
//! state, a restore gives a new cell its state, and a move carries a tenant's
//! state to another node, with no exec and no bind mount reaching a node.
//!
//! - Out (`export_volumes`): the job tars the volumes and prints the archive
//!   sealed (ChaCha20-Poly1305, by the image's own Node) with a key made for
//!   this export alone, which reaches the job as a Docker secret and is
//!   removed after; the admin reads it back from the job's log (the engine's
//!   `/services/{id}/logs`, which reaches every node) and opens it, which
//!   also checks it. The log on the node holds nothing readable.
//! - In (`import_volumes`): the archive travels as Docker secrets of at most
//!   400 KiB (Swarm's limit is 500 KiB), mounted into the job, which joins
//!   them, checks the SHA-256, empties the volumes and unpacks. The secrets
//!   are removed after the job, whatever it did.
//!
//! The image needs a POSIX shell with `tar`, `sha256sum`, `cat`, `rm`,
//! `mkdir`, `chmod` and `chown` (any Debian-based image has them), and
//! `node` on its path (a cell's image runs the gateway with it).

use base64::Engine as _;
use bollard::models::{SecretSpec, TaskSpecContainerSpecFile, TaskSpecContainerSpecSecrets};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
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

/// The line before the sealed archive in an export's output.
const BEGIN: &str = "MTP-EXPORT sealed";
/// The line after it.
const END: &str = "MTP-END";

/// Where an export's job finds the key it seals with.
const KEY_FILE: &str = "/run/secrets/export-key";

/// Nonce and tag around a sealed archive (ChaCha20-Poly1305).
const NONCE_BYTES: usize = 12;

/// How the job seals the tar (`$1`) with the key (`$2`) and prints it in
/// base64 lines: nonce, then ciphertext and tag. Node's own crypto, as the
/// busybox of a small image has no cipher.
const SEAL_JS: &str = "const c=require(\"crypto\"),f=require(\"fs\");\
const k=f.readFileSync(process.argv[2]);if(k.length!==32)throw new Error(\"the key is not 32 bytes\");\
const n=c.randomBytes(12);const x=c.createCipheriv(\"chacha20-poly1305\",k,n,{authTagLength:16});\
const b=Buffer.concat([n,x.update(f.readFileSync(process.argv[1])),x.final(),x.getAuthTag()]).toString(\"base64\");\
process.stdout.write(b.replace(/.{1,76}/g,\"$&\\n\"));";

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
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let mut id = [0u8; 6];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let name = format!("mtp-{}-export-{}", tenant.as_str(), hex::encode(id));
        let secret = self
            .job_secret(tenant, name, "export", &key, "export-key")
            .await?;
        let secret_id = secret.secret_id.clone().unwrap_or_default();
        let lines = self
            .run_volume_job(&VolumeJob {
                tenant,
                image,
                node,
                volumes: &volumes,
                script: &script,
                secrets: vec![secret],
                timeout: JOB_TIMEOUT,
            })
            .await;
        self.remove_job_secrets(tenant, &[secret_id]).await;
        decode_export(
            lines?.iter().filter(|l| !l.stderr).map(|l| l.text.as_str()),
            &key,
        )
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
                let secret = self
                    .job_secret(tenant, name, "import", part, &format!("part-{index:04}"))
                    .await?;
                made.extend(secret.secret_id.clone());
                secrets.push(secret);
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
        self.remove_job_secrets(tenant, &made).await;
        result
    }

    /// A Docker secret of `bytes` for one volume job of `tenant` (labelled
    /// `mtp.<kind>`), mounted in the job as `/run/secrets/<file>`, root's, 0400.
    async fn job_secret(
        &self,
        tenant: &TenantId,
        name: String,
        kind: &str,
        bytes: &[u8],
        file: &str,
    ) -> Result<TaskSpecContainerSpecSecrets> {
        let mut secret_labels = labels(tenant, 0);
        secret_labels.insert(format!("mtp.{kind}"), "true".to_string());
        let created = self
            .docker()
            .create_secret(SecretSpec {
                name: Some(name.clone()),
                labels: Some(secret_labels),
                data: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
                ..Default::default()
            })
            .await?;
        Ok(TaskSpecContainerSpecSecrets {
            file: Some(TaskSpecContainerSpecFile {
                name: Some(file.to_string()),
                uid: Some("0".to_string()),
                gid: Some("0".to_string()),
                mode: Some(0o400),
            }),
            secret_id: Some(created.id),
            secret_name: Some(name),
        })
    }

    /// Removes the secrets a job had (an import's parts, an export's key),
    /// whatever the job did; a failure is logged, the secret left.
    async fn remove_job_secrets(&self, tenant: &TenantId, ids: &[String]) {
        for id in ids {
            match self.docker().delete_secret(id).await {
                Ok(()) => {}
                Err(err) if is_status(&err, 404) => {}
                Err(err) => {
                    tracing::warn!(cause = %err, tenant = %tenant, "cannot remove a secret of a volume job");
                }
            }
        }
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
        "set -e; cd {JOB_ROOT}; {gather}tar -c -f /tmp/mtp-export.tar \"$@\"; echo '{BEGIN}'; node -e '{SEAL_JS}' /tmp/mtp-export.tar {KEY_FILE}; rm -f /tmp/mtp-export.tar; echo {END}"
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

/// The archive between `BEGIN` and `END` in an export's output, opened with
/// `key` (which checks it whole).
fn decode_export<'a>(
    lines: impl Iterator<Item = &'a str>,
    key: &[u8; 32],
) -> std::result::Result<Vec<u8>, String> {
    let mut lines = lines.map(str::trim);
    lines
        .by_ref()
        .find(|line| *line == BEGIN)
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
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .map_err(|err| format!("is not base64: {err}"))?;
    if sealed.len() < NONCE_BYTES {
        return Err("was cut short".to_string());
    }
    let (nonce, body) = sealed.split_at(NONCE_BYTES);
    ChaCha20Poly1305::new(Key::from_slice(key))
        .decrypt(Nonce::from_slice(nonce), body)
        .map_err(|_| "arrived damaged (it does not open with its key)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the job prints for `archive`, sealed as `SEAL_JS` seals it.
    fn printed(archive: &[u8], key: &[u8; 32]) -> Vec<String> {
        let nonce = [7u8; NONCE_BYTES];
        let mut sealed = nonce.to_vec();
        sealed.extend(
            ChaCha20Poly1305::new(Key::from_slice(key))
                .encrypt(Nonce::from_slice(&nonce), archive)
                .unwrap(),
        );
        let mut lines = vec!["tar: removing leading '/'".to_string(), BEGIN.to_string()];
        let encoded = base64::engine::general_purpose::STANDARD.encode(sealed);
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
        let key = [3u8; 32];
        let archive: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let lines = printed(&archive, &key);
        let got = decode_export(lines.iter().map(String::as_str), &key).unwrap();
        assert_eq!(got, archive);
        let text = lines.join("\n");
        assert!(
            !text.contains(&base64::engine::general_purpose::STANDARD.encode(&archive[..48])),
            "the log holds nothing readable"
        );

        let mut cut = lines.clone();
        cut.pop();
        assert_eq!(
            decode_export(cut.iter().map(String::as_str), &key).unwrap_err(),
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
            decode_export(damaged.iter().map(String::as_str), &key).unwrap_err(),
            "arrived damaged (it does not open with its key)"
        );
        assert_eq!(
            decode_export(lines.iter().map(String::as_str), &[4u8; 32]).unwrap_err(),
            "arrived damaged (it does not open with its key)"
        );
        assert_eq!(
            decode_export(["nothing"].into_iter(), &key).unwrap_err(),
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
        // Sealed by this machine's Node, as the job's seals with the image's.
        let key = [9u8; 32];
        let key_file = root.path().join("key");
        std::fs::write(&key_file, key).unwrap();
        let script = script.replace(KEY_FILE, &key_file.display().to_string());
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
        assert!(!text.contains("with space"), "{text}");
        let archive = decode_export(text.lines(), &key).unwrap();
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
