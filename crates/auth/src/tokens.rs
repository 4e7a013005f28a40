//! The tokens file (pure: parse text, hash, look up).
//!
//! TOML, one `[[principal]]` table per credential:
//!
//! ```toml
//! [[principal]]
//! name = "acme-payroll"        # shown in logs
//! role = "writer"              # writer | analyst | auditor | admin
//! orgs = ["acme"]              # writers and analysts: the orgs they act for
//! token_sha256 = "9f86d0…"     # SHA-256 of the bearer token, hex; the token itself is never stored
//!
//! [[principal]]
//! name = "acme-hr-service"
//! role = "analyst"
//! orgs = ["acme"]
//! cert_name = "acme-hr.clients.wfl"   # mTLS: a DNS name in the client certificate's SAN
//! ```
//!
//! Several entries may share a name (rotation: add the new token, move clients, delete the old).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{Principal, Role};

/// A tokens file that cannot be used, naming the entry and the field.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a tokens file: {0}")]
    Syntax(String),
    #[error("principal #{index} ({name}): {field}: {reason}")]
    Entry {
        index: usize,
        name: String,
        field: &'static str,
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    principal: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    role: String,
    #[serde(default)]
    orgs: Vec<String>,
    token_sha256: Option<String>,
    cert_name: Option<String>,
}

/// The principals of a tokens file, by token hash and by certificate name.
#[derive(Debug, Default, Clone)]
pub struct Tokens {
    by_hash: HashMap<[u8; 32], Arc<Principal>>,
    by_cert_name: HashMap<String, Arc<Principal>>,
}

/// SHA-256 of a bearer token, as stored in the tokens file.
#[must_use]
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Names and orgs are plain identifiers: letters, digits, `.`, `_`, `-`, `:`, `@` (1 to 128).
#[must_use]
pub fn is_identifier(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:@".contains(&b))
}

impl Tokens {
    /// Parses a tokens file.
    ///
    /// # Errors
    /// Bad TOML, an unknown field, an unknown role, a writer or analyst without orgs, a hash that
    /// is not 64 hex digits, an entry with neither or both of `token_sha256` and `cert_name`, or a
    /// credential listed twice.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let file: File = toml::from_str(text).map_err(|e| Error::Syntax(e.to_string()))?;
        let mut tokens = Tokens::default();
        for (index, e) in file.principal.into_iter().enumerate() {
            let bad = |field: &'static str, reason: String| Error::Entry {
                index: index + 1,
                name: e.name.clone(),
                field,
                reason,
            };
            if !is_identifier(&e.name) {
                return Err(bad("name", "letters, digits, . _ - : @ (1 to 128)".into()));
            }
            let role = Role::parse(&e.role)
                .ok_or_else(|| bad("role", "writer, analyst, auditor or admin".into()))?;
            if let Some(org) = e.orgs.iter().find(|o| !is_identifier(o)) {
                return Err(bad("orgs", format!("{org:?} is not an org id")));
            }
            if !role.sees_every_org() && e.orgs.is_empty() {
                return Err(bad("orgs", format!("a {role} needs at least one org")));
            }
            let principal = Arc::new(Principal {
                name: e.name.clone(),
                role,
                orgs: e.orgs.iter().cloned().collect::<BTreeSet<_>>(),
            });
            match (&e.token_sha256, &e.cert_name) {
                (Some(h), None) => {
                    let digest: [u8; 32] = hex::decode(h)
                        .ok()
                        .and_then(|b| b.try_into().ok())
                        .ok_or_else(|| bad("token_sha256", "64 hex digits".into()))?;
                    if tokens.by_hash.insert(digest, principal).is_some() {
                        return Err(bad("token_sha256", "listed twice".into()));
                    }
                }
                (None, Some(name)) => {
                    if tokens
                        .by_cert_name
                        .insert(name.to_ascii_lowercase(), principal)
                        .is_some()
                    {
                        return Err(bad("cert_name", "listed twice".into()));
                    }
                }
                _ => {
                    return Err(bad(
                        "token_sha256",
                        "give exactly one of token_sha256 and cert_name".into(),
                    ))
                }
            }
        }
        Ok(tokens)
    }

    /// The principal holding this bearer token.
    #[must_use]
    pub fn by_token(&self, token: &str) -> Option<Arc<Principal>> {
        // Looked up by hash: the secret is never compared byte by byte.
        self.by_hash.get(&hash(token)).cloned()
    }

    /// The principal of the first of these certificate names (DNS SANs) that is listed.
    #[must_use]
    pub fn by_cert_names<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Option<Arc<Principal>> {
        names
            .into_iter()
            .find_map(|n| self.by_cert_name.get(&n.to_ascii_lowercase()).cloned())
    }

    /// Adds a bearer token for `principal` (a process's own internal client, never written out).
    pub fn insert_token(&mut self, token: &str, principal: Principal) {
        self.by_hash.insert(hash(token), Arc::new(principal));
    }

    /// How many credentials are listed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_hash.len() + self.by_cert_name.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A new random bearer token: `wfl_` and 64 hex digits (256 bits from the OS).
///
/// # Errors
/// When the OS has no randomness to give.
pub fn generate() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)?;
    Ok(format!("wfl_{}", hex::encode(bytes)))
}

/// The `[[principal]]` table that stores `token` (by its hash) for a principal; append it to a
/// tokens file. Names and orgs must be identifiers ([`is_identifier`]).
#[must_use]
pub fn entry(name: &str, role: Role, orgs: &[String], token: &str) -> String {
    let orgs: Vec<String> = orgs.iter().map(|o| format!("\"{o}\"")).collect();
    format!(
        "\n[[principal]]\nname = \"{name}\"\nrole = \"{role}\"\norgs = [{}]\ntoken_sha256 = \"{}\"\n",
        orgs.join(", "),
        hex::encode(hash(token))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_found_by_its_hash_and_stored_only_as_its_hash() {
        let token = generate().unwrap();
        let text = entry("acme-payroll", Role::Writer, &["acme".into()], &token);
        assert!(!text.contains(&token));
        let tokens = Tokens::parse(&text).unwrap();
        let p = tokens.by_token(&token).unwrap();
        assert_eq!((p.name.as_str(), p.role), ("acme-payroll", Role::Writer));
        assert!(tokens.by_token("wfl_guess").is_none());
    }

    #[test]
    fn a_writer_without_orgs_is_refused_naming_the_field() {
        let e = Tokens::parse(
            "[[principal]]\nname = \"w\"\nrole = \"writer\"\ntoken_sha256 = \"00\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("orgs"), "{e}");
    }

    #[test]
    fn unknown_roles_and_fields_are_refused() {
        assert!(
            Tokens::parse("[[principal]]\nname = \"w\"\nrole = \"root\"\ncert_name = \"x\"\n")
                .unwrap_err()
                .to_string()
                .contains("role")
        );
        assert!(
            Tokens::parse("[[principal]]\nname = \"w\"\nrole = \"admin\"\ntoken = \"x\"\n")
                .unwrap_err()
                .to_string()
                .contains("token")
        );
    }

    #[test]
    fn cert_names_match_case_insensitively() {
        let tokens = Tokens::parse(
            "[[principal]]\nname = \"hr\"\nrole = \"analyst\"\norgs = [\"acme\"]\ncert_name = \"HR.clients.wfl\"\n",
        )
        .unwrap();
        assert_eq!(
            tokens
                .by_cert_names(["other", "hr.clients.wfl"])
                .unwrap()
                .name,
            "hr"
        );
    }
}
