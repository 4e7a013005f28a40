//! Subject naming for the bus, and validation of the tokens callers put into subjects.
//!
//! Owns: the `wfl.inbox.<org>` and `wfl.ledger.<org>.<event_type>` layout, and the two
//! subjects of commit outcomes ([`OUTCOME_SUBJECT`], [`OUTCOME_QUESTION_SUBJECT`]).
//!
//! Must not: do I/O.

use crate::Error;

/// Prefix of inbox subjects: `wfl.inbox.<org_id>`.
pub const INBOX_SUBJECT_PREFIX: &str = "wfl.inbox";
/// Prefix of committed-event subjects: `wfl.ledger.<org_id>.<event_type>`.
pub const LEDGER_SUBJECT_PREFIX: &str = "wfl.ledger";

/// Core NATS subject on which the ledger's writer publishes the decisions of each flushed batch
/// once (`wfl.internal.v1.Outcomes`); every gateway subscribes to it.
pub const OUTCOME_SUBJECT: &str = "wfl.outcomes";
/// Core NATS request/reply subject on which the ledger's outcomes component answers late or
/// repeated questions (`wfl.internal.v1.OutcomeQuery` → `Outcomes`) from its store.
pub const OUTCOME_QUESTION_SUBJECT: &str = "wfl.ctl.await";

/// The inbox subject of an organisation: `wfl.inbox.<org_id>`.
#[must_use]
pub fn inbox_subject(org_id: &str) -> String {
    format!("{INBOX_SUBJECT_PREFIX}.{org_id}")
}

/// The subject of a committed event: `wfl.ledger.<org_id>.<event_type>`.
#[must_use]
pub fn ledger_subject(org_id: &str, event_type: &str) -> String {
    format!("{LEDGER_SUBJECT_PREFIX}.{org_id}.{event_type}")
}

/// A valid subject token: non-empty, no `.`, no wildcards, no whitespace or control chars.
fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && !token
            .chars()
            .any(|c| c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control())
}

/// Checks that an org id is one subject token.
pub(crate) fn check_org(org_id: &str) -> Result<(), Error> {
    if valid_token(org_id) {
        Ok(())
    } else {
        Err(Error::Rejected(format!(
            "invalid org id {org_id:?}: must be one non-empty subject token (no '.', '*', '>', whitespace)"
        )))
    }
}

/// Checks that an event type is one or more subject tokens without wildcards.
pub(crate) fn check_event_type(event_type: &str) -> Result<(), Error> {
    if event_type.split('.').all(valid_token) {
        Ok(())
    } else {
        Err(Error::Rejected(format!(
            "invalid event type {event_type:?}: must be dot-separated non-empty tokens without wildcards or whitespace"
        )))
    }
}

/// Checks a full subject used for core publish/request/serve: non-empty tokens, no wildcards
/// (the in-process bus matches subjects exactly, so both implementations refuse wildcards).
pub(crate) fn check_subject(subject: &str) -> Result<(), Error> {
    if subject.split('.').all(valid_token) {
        Ok(())
    } else {
        Err(Error::Rejected(format!("invalid subject {subject:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        assert_eq!(inbox_subject("acme"), "wfl.inbox.acme");
        assert_eq!(
            ledger_subject("acme", "shift.started"),
            "wfl.ledger.acme.shift.started"
        );
    }

    #[test]
    fn validation() {
        assert!(check_org("acme-1").is_ok());
        for bad in ["", "a.b", "a*", ">", "a b", "a\n"] {
            assert!(matches!(check_org(bad), Err(Error::Rejected(_))), "{bad:?}");
        }
        assert!(check_event_type("shift.started").is_ok());
        for bad in ["", "a..b", ".a", "a.*", "a.>"] {
            assert!(check_event_type(bad).is_err(), "{bad:?}");
        }
        assert!(check_subject("wfl.rpc.x").is_ok());
        assert!(check_subject("wfl.*.x").is_err());
        assert!(check_subject("wfl.>").is_err());
        assert!(check_subject("").is_err());
    }
}
