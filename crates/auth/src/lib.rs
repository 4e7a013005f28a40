//! Who may do what in wfl, and the transport that carries it.
//!
//! Owns: the tokens file (principals, roles, org sets, SHA-256 hashed bearer tokens, mTLS
//! names), the table of which role may call which gRPC method, the org-scope checks the services
//! apply to their filters, the tower guard that authenticates every call to a wrapped service,
//! the client side (`authorization: Bearer …`, TLS) and the TLS set-up of gRPC and HTTP ports.
//!
//! The policy modules ([`tokens`], [`access`], [`principal`]) are pure: no I/O, no clock. The
//! transport modules ([`guard`], [`client`], [`tls`]) read certificate files and serve.
//!
//! Must not: know the event model beyond org ids, or decide anything a service's own validation
//! decides.

pub mod access;
pub mod client;
pub mod guard;
pub mod principal;
pub mod reload;
pub mod tls;
pub mod tokens;

pub use access::{method_access, Access};
pub use client::{Conn, Credentials};
pub use guard::{caller, Caller, Guard, Guarded, Security};
pub use principal::{Denied, Principal, Role};
pub use tokens::Tokens;
