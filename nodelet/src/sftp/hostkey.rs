//! The node's SSH host key: an ed25519 key made once and kept (OpenSSH format, mode 0600)
//! under the nodelet's data directory, so clients that trusted the node keep trusting it
//! across restarts.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, HashAlg, PrivateKey};

use super::error::SftpError;

/// The host key at `path`, made (ed25519) when there is none. A key file that others may read
/// gets mode 0600 back; a symbolic link, an encrypted key or one that does not parse is an
/// error (the node would otherwise change identity silently).
pub fn load_or_create(path: &Path) -> Result<PrivateKey, SftpError> {
    let err = |message: String| SftpError::HostKey {
        path: path.to_owned(),
        message,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            if !meta.file_type().is_file() {
                return Err(err("not a regular file".into()));
            }
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "the SFTP host key was readable by others; mode set to 0600");
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| err(e.to_string()))?;
            }
            let pem = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
            let key = PrivateKey::from_openssh(pem).map_err(|e| err(e.to_string()))?;
            if key.is_encrypted() {
                return Err(err("the key is encrypted".into()));
            }
            if key.algorithm() != Algorithm::Ed25519 {
                tracing::warn!(path = %path.display(), algorithm = %key.algorithm(), "the SFTP host key is not ed25519");
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(e) => Err(err(e.to_string())),
    }
}

/// Makes a new ed25519 key and writes it to `path` (mode 0600, through a temporary file that
/// is renamed into place, so a crash leaves no half key).
fn create(path: &Path) -> Result<PrivateKey, SftpError> {
    let err = |message: String| SftpError::HostKey {
        path: path.to_owned(),
        message,
    };
    let dir = path
        .parent()
        .ok_or_else(|| err("no parent directory".into()))?;
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| err(e.to_string()))?;
    let mut seed = Seed([0; 32]);
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed.0)
        .map_err(|_| err("no randomness from the system".into()))?;
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed.0));
    let pem = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| err(e.to_string()))?;
    let tmp = dir.join(format!(".host_key.{}", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(pem.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e.to_string()));
    }
    tracing::info!(path = %path.display(), fingerprint = fingerprint(&key), "SFTP host key made");
    Ok(key)
}

/// The key's seed, overwritten when dropped (best effort; the key itself zeroizes).
struct Seed([u8; 32]);

impl Drop for Seed {
    fn drop(&mut self) {
        self.0 = [0; 32];
    }
}

/// The key's SHA256 fingerprint as OpenSSH prints it: `SHA256:` and unpadded base64.
pub fn fingerprint(key: &PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}

/// The public half in OpenSSH's one-line format (`ssh-ed25519 AAAA…`), e.g. for a
/// `known_hosts` line.
pub fn public_line(key: &PrivateKey) -> String {
    key.public_key().to_openssh().unwrap_or_default()
}
