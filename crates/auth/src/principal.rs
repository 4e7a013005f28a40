//! Principals, roles and their org scope (pure).
//!
//! Owns: what each role may see or write, and how an org filter is narrowed to a principal's
//! orgs. An empty filter means "my orgs", never "all" (except for roles that see every org).

use std::collections::BTreeSet;
use std::fmt;

/// What a principal is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Records events for its orgs; reads nothing.
    Writer,
    /// Views, Subscribe and Read for its orgs.
    Analyst,
    /// Reads everything (every org, proofs, checkpoints); writes nothing.
    Auditor,
    /// Everything.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Writer, Role::Analyst, Role::Auditor, Role::Admin];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Analyst => "analyst",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    /// Parses `writer`, `analyst`, `auditor` or `admin`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Auditors and admins see every org; writers and analysts only their own.
    #[must_use]
    pub fn sees_every_org(self) -> bool {
        matches!(self, Role::Auditor | Role::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller: a name (for logs), a role and the orgs it acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// The orgs of a writer or analyst. Ignored for auditors and admins, who see every org.
    pub orgs: BTreeSet<String>,
}

/// Why a principal may not do something (PERMISSION_DENIED).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("role {role} may not call {method}")]
    Role { role: Role, method: String },
    #[error("org {org:?} is not among the orgs of this principal")]
    Org { org: String },
    #[error("{field}: this principal acts for several orgs ({orgs}); name one")]
    AmbiguousOrg { field: String, orgs: String },
}

impl Principal {
    /// The principal of a node that runs with authentication off (`--no-auth`): an admin.
    #[must_use]
    pub fn unauthenticated_admin() -> Self {
        Self {
            name: "anonymous (authentication off)".to_owned(),
            role: Role::Admin,
            orgs: BTreeSet::new(),
        }
    }

    /// May this principal see or write events of `org`?
    #[must_use]
    pub fn covers(&self, org: &str) -> bool {
        self.role.sees_every_org() || self.orgs.contains(org)
    }

    /// Narrows a multi-org filter (Read, Subscribe): empty means "my orgs" (every org only for
    /// auditors and admins); a named org outside the principal's set is denied, naming it.
    ///
    /// # Errors
    /// [`Denied::Org`] for the first foreign org.
    pub fn org_filter(&self, requested: Vec<String>) -> Result<Vec<String>, Denied> {
        if self.role.sees_every_org() {
            return Ok(requested);
        }
        if requested.is_empty() {
            return Ok(self.orgs.iter().cloned().collect());
        }
        match requested.iter().find(|o| !self.orgs.contains(o.as_str())) {
            Some(org) => Err(Denied::Org { org: org.clone() }),
            None => Ok(requested),
        }
    }

    /// Narrows a single-org filter (the views): empty means "my org", which must then be one.
    ///
    /// # Errors
    /// [`Denied::Org`] for a foreign org; [`Denied::AmbiguousOrg`] when the filter is empty and the
    /// principal acts for several orgs (or none).
    pub fn single_org(&self, field: &str, requested: String) -> Result<String, Denied> {
        if self.role.sees_every_org() {
            return Ok(requested);
        }
        if requested.is_empty() {
            let mut orgs = self.orgs.iter();
            return match (orgs.next(), orgs.next()) {
                (Some(only), None) => Ok(only.clone()),
                _ => Err(Denied::AmbiguousOrg {
                    field: field.to_owned(),
                    orgs: self.orgs.iter().cloned().collect::<Vec<_>>().join(", "),
                }),
            };
        }
        if self.orgs.contains(&requested) {
            Ok(requested)
        } else {
            Err(Denied::Org { org: requested })
        }
    }

    /// An org this principal may not see or write, among `orgs`.
    #[must_use]
    pub fn first_foreign<'a>(&self, orgs: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
        if self.role.sees_every_org() {
            return None;
        }
        orgs.into_iter().find(|o| !self.orgs.contains(*o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyst(orgs: &[&str]) -> Principal {
        Principal {
            name: "a".into(),
            role: Role::Analyst,
            orgs: orgs.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn an_empty_filter_means_my_orgs_never_all() {
        assert_eq!(
            analyst(&["acme", "beta"]).org_filter(vec![]).unwrap(),
            vec!["acme".to_owned(), "beta".to_owned()]
        );
    }

    #[test]
    fn a_foreign_org_in_a_filter_is_denied_by_name() {
        assert_eq!(
            analyst(&["acme"]).org_filter(vec!["acme".into(), "orgb".into()]),
            Err(Denied::Org { org: "orgb".into() })
        );
        assert_eq!(
            analyst(&["acme"]).single_org("org_id", "orgb".into()),
            Err(Denied::Org { org: "orgb".into() })
        );
    }

    #[test]
    fn a_single_org_view_defaults_to_the_only_org_and_asks_otherwise() {
        assert_eq!(
            analyst(&["acme"]).single_org("org_id", String::new()),
            Ok("acme".into())
        );
        assert!(matches!(
            analyst(&["acme", "beta"]).single_org("org_id", String::new()),
            Err(Denied::AmbiguousOrg { .. })
        ));
    }

    #[test]
    fn auditors_see_every_org() {
        let p = Principal {
            role: Role::Auditor,
            ..analyst(&[])
        };
        assert_eq!(p.org_filter(vec![]).unwrap(), Vec::<String>::new());
        assert!(p.covers("anything"));
        assert_eq!(p.first_foreign(["x", "y"]), None);
    }
}
