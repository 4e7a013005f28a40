//! Rule packs as data files (`rulepacks/*.toml`), their loader, and the threshold watch.
//!
//! A rule pack says, for one labour law, which separations it counts (strictly, as the statute
//! counts them; assimilated, as dismissals in substance; shadow, as an economic reduction of
//! comparable size), over which windows, against which headcount, and which procedure steps must
//! precede the first separation. Every legal number (thresholds, shares, bands, window lengths,
//! lead times) lives in the pack file with the confidence of its source (domain-rules.md: ✅
//! `verified`, ◑ `secondary`, ❓ `unconfirmed`); this module only reads and applies them.
//!
//! - [`pack`]: the file format, [`parse`] and [`load_dir`] with validation.
//! - [`watch`]: [`evaluate`], which folds separations, compliance steps and a
//!   [`crate::Population`] into [`ThresholdStatus`] rows.
//!
//! It must not read a clock, do I/O other than reading the pack directory, or depend on the views:
//! the caller passes the separations (with their position links resolved) and a headcount oracle.
//! Nothing here is legal advice; a shadow count is never a legal finding.

pub mod pack;
mod tomlpath;
pub mod watch;

pub use pack::{
    load_dir, parse, Confidence, CountDate, CountDateRule, Counts, Coverage, CoverageScope,
    EffectBlock, Gate, LawStatus, MatchRule, MemberStates, NationalPack, PopulationBasis,
    ProcedureStep, RulePack, SiteEventKind, SiteEventRule, SourceRef, Sourced, Threshold, Unit,
    VariantChoice, Window, WindowKind,
};
pub use watch::{
    evaluate, AlertLevel, ComplianceStep, CountType, Excluded, GateState, Separation, SiteEvent,
    StepCheck, StepState, ThresholdStatus, WindowRole, APPROACHING_PERCENT, SHADOW_LABEL,
};
