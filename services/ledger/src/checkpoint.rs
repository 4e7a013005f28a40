//! Signed checkpoints: `(tree size, Merkle root, head hash, time)` signed with the ledger's
//! ed25519 key.
//!
//! Owns: the signed byte format (also documented in `ledger.proto`), the stored form (signed bytes
//! followed by the 64-byte signature; opaque to the store), the key file (created in the data dir
//! on first start with mode 0600, or given by path), and the conversion to the wire message.
//!
//! Must not: decide when a checkpoint is cut (the writer does) or read the store.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use wfl_proto::pb;
use wfl_store::Hash;

use crate::Error;

/// Domain separation prefix of the signed bytes.
pub const DOMAIN: &[u8] = b"wfl.checkpoint.v1\0";
/// Length of the signed bytes: prefix, size, root, head hash, time.
pub const SIGNED_LEN: usize = DOMAIN.len() + 8 + 32 + 32 + 8;
/// Length of an ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// File name of the signing key inside the data dir.
pub const KEY_FILE: &str = "ledger-signing.key";

/// The key file of a data dir.
#[must_use]
pub fn default_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}

/// What a checkpoint states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Records covered: sequences `1..=tree_size`.
    pub tree_size: u64,
    /// RFC 9162 root of those records.
    pub root: Hash,
    /// Chain hash of record `tree_size`.
    pub head_hash: Hash,
    /// When it was cut, microseconds since the Unix epoch.
    pub time_micros: i64,
}

impl Checkpoint {
    /// The bytes the signature covers.
    #[must_use]
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SIGNED_LEN);
        out.extend_from_slice(DOMAIN);
        out.extend_from_slice(&self.tree_size.to_be_bytes());
        out.extend_from_slice(&self.root);
        out.extend_from_slice(&self.head_hash);
        out.extend_from_slice(&self.time_micros.to_be_bytes());
        out
    }

    /// Parse signed bytes; `None` if they do not have the format.
    #[must_use]
    pub fn parse(bytes: &[u8]) -> Option<Checkpoint> {
        let rest = bytes.strip_prefix(DOMAIN)?;
        if rest.len() != SIGNED_LEN - DOMAIN.len() {
            return None;
        }
        let (size, rest) = rest.split_first_chunk::<8>()?;
        let (root, rest) = rest.split_first_chunk::<32>()?;
        let (head, rest) = rest.split_first_chunk::<32>()?;
        let time = rest.first_chunk::<8>()?;
        Some(Checkpoint {
            tree_size: u64::from_be_bytes(*size),
            root: *root,
            head_hash: *head,
            time_micros: i64::from_be_bytes(*time),
        })
    }
}

/// A checkpoint with its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    pub signature: [u8; SIGNATURE_LEN],
}

impl SignedCheckpoint {
    /// The stored form: signed bytes, then the signature.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.checkpoint.signed_bytes();
        out.extend_from_slice(&self.signature);
        out
    }

    /// Parse the stored form.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] if the bytes do not have the format.
    pub fn decode(bytes: &[u8]) -> Result<SignedCheckpoint, Error> {
        let bad = || {
            Error::Checkpoint(format!(
                "stored checkpoint of {} bytes is malformed",
                bytes.len()
            ))
        };
        if bytes.len() != SIGNED_LEN + SIGNATURE_LEN {
            return Err(bad());
        }
        let (signed, signature) = bytes.split_at(SIGNED_LEN);
        let checkpoint = Checkpoint::parse(signed).ok_or_else(bad)?;
        let signature: [u8; SIGNATURE_LEN] = signature.try_into().map_err(|_| bad())?;
        Ok(SignedCheckpoint {
            checkpoint,
            signature,
        })
    }

    /// Does the signature verify under `key`?
    #[must_use]
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        key.verify(
            &self.checkpoint.signed_bytes(),
            &Signature::from_bytes(&self.signature),
        )
        .is_ok()
    }

    /// The wire message.
    #[must_use]
    pub fn to_pb(&self) -> pb::SignedCheckpoint {
        pb::SignedCheckpoint {
            tree_size: self.checkpoint.tree_size,
            root_hash: self.checkpoint.root.to_vec(),
            head_hash: self.checkpoint.head_hash.to_vec(),
            time_micros: self.checkpoint.time_micros,
            signature: self.signature.to_vec(),
            signed_bytes: self.checkpoint.signed_bytes(),
        }
    }

    /// From the wire message (the signed bytes are rebuilt from the fields, never trusted).
    ///
    /// # Errors
    /// [`Error::Checkpoint`] if a hash or the signature has the wrong length.
    pub fn from_pb(m: &pb::SignedCheckpoint) -> Result<SignedCheckpoint, Error> {
        let hash = |v: &[u8], what: &str| -> Result<Hash, Error> {
            v.try_into()
                .map_err(|_| Error::Checkpoint(format!("{what} is {} bytes, not 32", v.len())))
        };
        Ok(SignedCheckpoint {
            checkpoint: Checkpoint {
                tree_size: m.tree_size,
                root: hash(&m.root_hash, "root_hash")?,
                head_hash: hash(&m.head_hash, "head_hash")?,
                time_micros: m.time_micros,
            },
            signature: m.signature.as_slice().try_into().map_err(|_| {
                Error::Checkpoint(format!("signature is {} bytes, not 64", m.signature.len()))
            })?,
        })
    }
}

/// The ledger's signing key.
pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("public", &hex::encode(self.public().as_bytes()))
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Read the key at `path`, creating it (32 random bytes, mode 0600) if it does not exist.
    ///
    /// # Errors
    /// [`Error::Key`] if the file cannot be read or created, has the wrong size, or can be read
    /// by group or others.
    pub fn load_or_create(path: &Path) -> Result<Signer, Error> {
        if !path.exists() {
            let mut secret = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut secret))
                .map_err(|e| Error::Key(format!("cannot read /dev/urandom: {e}")))?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::Key(format!("cannot create {}: {e}", parent.display())))?;
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| Error::Key(format!("cannot create {}: {e}", path.display())))?;
            file.write_all(&secret)
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::Key(format!("cannot write {}: {e}", path.display())))?;
            tracing::info!(path = %path.display(), "created the ledger signing key");
        }
        Signer::load(path)
    }

    /// Read an existing key.
    ///
    /// # Errors
    /// As [`Signer::load_or_create`], and when the file does not exist.
    pub fn load(path: &Path) -> Result<Signer, Error> {
        let meta = std::fs::metadata(path)
            .map_err(|e| Error::Key(format!("cannot read {}: {e}", path.display())))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(Error::Key(format!(
                "{} is readable by group or others; run chmod 600 on it",
                path.display()
            )));
        }
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Key(format!("cannot read {}: {e}", path.display())))?;
        let secret: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            Error::Key(format!(
                "{} holds {} bytes, not a 32-byte ed25519 secret key",
                path.display(),
                bytes.len()
            ))
        })?;
        Ok(Signer {
            key: SigningKey::from_bytes(&secret),
        })
    }

    /// The public key.
    #[must_use]
    pub fn public(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Sign a checkpoint.
    #[must_use]
    pub fn sign(&self, checkpoint: Checkpoint) -> SignedCheckpoint {
        SignedCheckpoint {
            checkpoint,
            signature: self.key.sign(&checkpoint.signed_bytes()).to_bytes(),
        }
    }
}

/// Parse a public key.
///
/// # Errors
/// [`Error::Key`] if the bytes are not a valid ed25519 public key.
pub fn public_key(bytes: &[u8]) -> Result<VerifyingKey, Error> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| Error::Key(format!("public key is {} bytes, not 32", bytes.len())))?;
    VerifyingKey::from_bytes(&arr).map_err(|e| Error::Key(format!("invalid public key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_checkpoints_round_trip_and_reject_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let signer = Signer::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            Signer::load_or_create(&path).unwrap().public(),
            signer.public()
        );
        let cp = Checkpoint {
            tree_size: 42,
            root: [1; 32],
            head_hash: [2; 32],
            time_micros: 1_700_000_000_000_000,
        };
        let signed = signer.sign(cp);
        assert!(signed.verify(&signer.public()));
        let back = SignedCheckpoint::decode(&signed.encode()).unwrap();
        assert_eq!(back, signed);
        assert_eq!(SignedCheckpoint::from_pb(&signed.to_pb()).unwrap(), signed);
        let mut other = signed;
        other.checkpoint.tree_size = 43;
        assert!(!other.verify(&signer.public()));
        let stranger = Signer::load_or_create(&dir.path().join("k2")).unwrap();
        assert!(!signed.verify(&stranger.public()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(Signer::load(&path), Err(Error::Key(_))));
    }
}
