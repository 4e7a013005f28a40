//! wfl's projections: views that separate formal layoffs from gradual attrition, and the rule
//! packs that say when quiet reductions add up to what a labour law treats as a collective
//! dismissal.
//!
//! Everything here is a pure fold over committed events: no clock, no async runtime, no storage.
//! The projector service persists the state (it is serde-serialisable) with its checkpoint; an
//! auditor can rebuild it from sequence 0 and must get the same answer.
//!
//! - [`classify`]: an event's bucket and mechanism, from its fields (per-law counting lives in the
//!   rule packs).
//! - [`views`]: the [`views::Projection`] state and its queries (separations, headcount, cohort
//!   exposure, hiring signals, AI adoption, explain).
//! - [`rules`]: rule packs as data files (`rulepacks/*.toml`), their loader, and threshold watch.

pub mod classify;
pub mod rules;
pub mod views;

use wfl_domain::{ContractType, Date, EmploymentRelationship, OrgId, SiteId};

/// What went wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule pack file is malformed; names the file and the field.
    #[error("rule pack {file}: {field}: {message}")]
    RulePack {
        file: String,
        field: String,
        message: String,
    },
    /// A rule pack directory or file cannot be read.
    #[error("cannot read rule packs at {path}: {message}")]
    Io { path: String, message: String },
}

/// Who is counted in a headcount a threshold is measured against (a rule pack's population basis).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PopulationQuery {
    pub org: OrgId,
    /// `None`: the whole legal entity.
    pub site: Option<SiteId>,
    /// Headcount at the end of this day.
    pub on: Date,
    /// Relationships not counted (CN: dispatched workers and contractors are not the host's staff).
    pub exclude_relationships: Vec<EmploymentRelationship>,
    /// Contract types not counted (US WARN: part-time employees).
    pub exclude_contract_types: Vec<ContractType>,
}

/// Answers headcount questions for threshold evaluation; implemented by [`views::Projection`].
pub trait Population {
    /// Workers employed at the end of `query.on` matching the query.
    fn headcount(&self, query: &PopulationQuery) -> u64;
}
