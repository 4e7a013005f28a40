//! The population basis the rule packs measure thresholds against, indexed once per evaluation.
//!
//! [`Projection::population`](super::Projection::population) rebuilds every stint of the org for
//! each question, which is fine for one answer and quadratic for a threshold watch that asks once
//! per window. [`PopulationIndex`] builds the stints once and keeps, per (org, site, relationship,
//! contract type), the sorted presence boundaries, so each question costs a few binary searches.
//! It gives the same answers as `Projection::population` (property test in
//! `tests/fold_property.rs`). Reads the projection; never changes it.

use super::headcount::Counter;
use super::timeline;
use super::Projection;
use crate::{Population, PopulationQuery};
use std::collections::BTreeMap;
use wfl_domain::{ContractType, EmploymentRelationship, OrgId, SiteId};

type Key = (SiteId, EmploymentRelationship, ContractType);

/// Headcount at the end of any day, per org, site, relationship and contract type.
#[derive(Debug, Default)]
pub struct PopulationIndex {
    groups: BTreeMap<OrgId, BTreeMap<Key, Counter>>,
}

impl PopulationIndex {
    /// Indexes the stints of `org` (every org when `None`).
    #[must_use]
    pub fn new(p: &Projection, org: Option<&OrgId>) -> Self {
        let mut groups: BTreeMap<OrgId, BTreeMap<Key, Counter>> = BTreeMap::new();
        for s in timeline::stints(p, org) {
            let by_key = groups.entry(s.org.clone()).or_default();
            for (start, end, site) in s.intervals() {
                by_key
                    .entry((
                        site.clone(),
                        s.profile.relationship,
                        s.profile.contract_type,
                    ))
                    .or_default()
                    .add(start, end);
            }
        }
        for by_key in groups.values_mut() {
            for c in by_key.values_mut() {
                c.sort();
            }
        }
        Self { groups }
    }
}

impl Population for PopulationIndex {
    fn headcount(&self, q: &PopulationQuery) -> u64 {
        let Some(by_key) = self.groups.get(&q.org) else {
            return 0;
        };
        by_key
            .iter()
            .filter(|((site, rel, ct), _)| {
                q.site.as_ref().is_none_or(|s| s == site)
                    && !q.exclude_relationships.contains(rel)
                    && !q.exclude_contract_types.contains(ct)
            })
            .map(|(_, c)| c.at_end_of(q.on))
            .sum()
    }
}
