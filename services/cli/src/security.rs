//! TLS and authentication flags of the servers (`wfl up`, `wfl-gateway`, `wfl-ledger`,
//! `wfl-projector`) and of the client commands, turned into [`wfl_auth`] settings.
//!
//! Owns: the start-up rule. Plain TCP and unauthenticated calls only when asked for
//! (`--insecure`, `--no-auth`); `wfl up` bound to loopback only defaults to both, so the README's
//! commands work on a laptop. Anything else without a certificate or tokens file is refused with
//! one line saying what to give.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::{bail, Context};
use wfl_auth::{Credentials, Guard, Security, Tokens};

/// Server-side flags, the same on every server binary.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TLS certificate chain (PEM) for every gRPC and HTTP port of this process.
    #[arg(long, env = "WFL_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of --tls-cert.
    #[arg(long, env = "WFL_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// mTLS: verify client certificates against this CA; a certificate's DNS names map to a
    /// principal through `cert_name` in the tokens file.
    #[arg(long, env = "WFL_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// mTLS: refuse connections without a client certificate (default: a bearer token will do).
    #[arg(long, env = "WFL_REQUIRE_CLIENT_CERT", value_parser = clap::builder::FalseyValueParser::new())]
    pub require_client_cert: bool,
    /// Serve plain TCP without TLS (the default only for `wfl up` on a loopback address).
    #[arg(long, env = "WFL_INSECURE", value_parser = clap::builder::FalseyValueParser::new())]
    pub insecure: bool,
    /// Principals, roles, orgs and hashed tokens (see SECURITY.md); `wfl token add` writes it.
    #[arg(long, env = "WFL_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// Accept every call without credentials, as an admin (the default only for `wfl up` on a
    /// loopback address).
    #[arg(long, env = "WFL_NO_AUTH", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_auth: bool,
}

impl ServeArgs {
    /// The TLS and guard of a server bound to `binds`. `loopback_default`: plain and open are
    /// the defaults when every bind is a loopback address (`wfl up` only).
    ///
    /// # Errors
    /// Inconsistent flags, unreadable files, or no TLS / no tokens file on a bind that needs them,
    /// in one line naming the flag to give.
    pub fn security(
        &self,
        binds: &[SocketAddr],
        loopback_default: bool,
    ) -> anyhow::Result<Security> {
        let loopback = loopback_default && binds.iter().all(|a| a.ip().is_loopback());
        let exposed: Vec<String> = binds.iter().map(ToString::to_string).collect();
        let exposed = exposed.join(", ");
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                if self.insecure {
                    bail!("--insecure and --tls-cert contradict each other; give one");
                }
                Some(wfl_auth::tls::ServerTls::load(
                    &wfl_auth::tls::ServerFiles {
                        cert: cert.clone(),
                        key: key.clone(),
                        client_ca: self.tls_client_ca.clone(),
                        require_client_cert: self.require_client_cert,
                    },
                )?)
            }
            (Some(_), None) => bail!("--tls-cert needs --tls-key"),
            (None, Some(_)) => bail!("--tls-key needs --tls-cert"),
            (None, None) => {
                if self.tls_client_ca.is_some() || self.require_client_cert {
                    bail!("--tls-client-ca needs --tls-cert and --tls-key");
                }
                if !self.insecure && !loopback {
                    bail!(
                        "refusing to serve plain TCP on {exposed}: give --tls-cert and --tls-key, or --insecure"
                    );
                }
                None
            }
        };
        let guard = match &self.tokens_file {
            Some(path) => {
                if self.no_auth {
                    bail!("--no-auth and --tokens-file contradict each other; give one");
                }
                let tokens = wfl_auth::reload::load(path)
                    .map_err(|e| anyhow::anyhow!("tokens file {}: {e}", path.display()))?;
                let guard = Guard::with_tokens(tokens);
                // Rotation without a restart: a changed file (or SIGHUP) is read again.
                wfl_auth::reload::watch(path.clone(), &guard);
                guard
            }
            None if self.no_auth || loopback => Guard::off(),
            None if self.require_client_cert => {
                bail!("--require-client-cert needs --tokens-file (its cert_name entries say who each certificate is)")
            }
            None => bail!(
                "refusing to serve {exposed} without authentication: give --tokens-file, or --no-auth"
            ),
        };
        if tls.is_none() && guard.is_on() && !loopback {
            tracing::warn!(
                "bearer tokens over plain TCP (--insecure): anyone on the path can read them"
            );
        }
        Ok(Security { tls, guard })
    }
}

/// Client-side flags of the `wfl` commands that call a server.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientArgs {
    /// CA certificate (PEM) to verify the server with; turns TLS on.
    #[arg(long, env = "WFL_CA", global = true)]
    pub ca: Option<PathBuf>,
    /// mTLS: client certificate (PEM); needs --cert-key.
    #[arg(long, env = "WFL_CERT", global = true)]
    pub cert: Option<PathBuf>,
    /// mTLS: the private key (PEM) of --cert. (Not `--key`: `wfl verify --key` and `wfl key
    /// --key` name the ledger's signing key.)
    #[arg(long, env = "WFL_CERT_KEY", global = true)]
    pub cert_key: Option<PathBuf>,
    /// The name to check in the server's certificate (default: the address's host).
    #[arg(long, env = "WFL_TLS_DOMAIN", global = true)]
    pub tls_domain: Option<String>,
    /// Bearer token (`wfl token add` prints one).
    #[arg(long, env = "WFL_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Cluster mode: the partition a command's ledger calls are for (request metadata
    /// `wfl-partition`), when --addr is a ledger instance of a cluster.
    #[arg(long, env = "WFL_PARTITION", global = true)]
    pub partition: Option<u32>,
}

impl ClientArgs {
    /// The credentials these flags describe.
    ///
    /// # Errors
    /// Half an identity, or unreadable files (named).
    pub fn credentials(&self) -> anyhow::Result<Credentials> {
        let identity = match (&self.cert, &self.cert_key) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            (None, None) => None,
            _ => bail!("--cert and --cert-key go together"),
        };
        let tls = if self.ca.is_some() || identity.is_some() || self.tls_domain.is_some() {
            Some(wfl_auth::tls::client(
                self.ca.as_deref(),
                identity,
                self.tls_domain.as_deref(),
            )?)
        } else {
            None
        };
        Ok(Credentials {
            tls,
            token: self.token.clone().filter(|t| !t.is_empty()),
            partition: self.partition,
        })
    }
}

static CLIENT: OnceLock<Credentials> = OnceLock::new();

/// Sets the credentials every client command of this process uses (first call wins).
pub fn set_client_credentials(credentials: Credentials) {
    let _ = CLIENT.set(credentials);
}

/// The credentials of this process's client commands (none unless set).
#[must_use]
pub fn client_credentials() -> Credentials {
    CLIENT.get().cloned().unwrap_or_default()
}

/// `wfl token add`: a new token for a principal, appended to `path` as its SHA-256 hash; the
/// whole file is parsed again before it is written, so a bad entry never lands.
///
/// # Errors
/// A bad role, name or org, an unreadable or invalid tokens file, or a failed write.
pub fn add_token(
    path: &std::path::Path,
    name: &str,
    role: &str,
    orgs: &[String],
) -> anyhow::Result<String> {
    use std::io::Write;
    let role = wfl_auth::Role::parse(role).ok_or_else(|| {
        anyhow::anyhow!("--role: writer, analyst, auditor or admin, not {role:?}")
    })?;
    if !wfl_auth::tokens::is_identifier(name) {
        bail!("--name: letters, digits, . _ - : @ (1 to 128), not {name:?}");
    }
    if let Some(o) = orgs.iter().find(|o| !wfl_auth::tokens::is_identifier(o)) {
        bail!("--org: {o:?} is not an org id");
    }
    let existing = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => bail!("cannot read {}: {e}", path.display()),
    };
    let token = wfl_auth::tokens::generate()
        .map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    let entry = wfl_auth::tokens::entry(name, role, orgs, &token);
    Tokens::parse(&format!("{existing}{entry}")).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.write_all(entry.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(token)
}
