//! `wfl report`: the views over gRPC, as readable tables or as JSON (`--format json`).

use std::fmt::Write as _;

use anyhow::anyhow;
use serde_json::{json, Value};
use wfl_proto::pb;

use crate::client::{connect, describe_status, Format};

/// Which view to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum View {
    Separations,
    Headcount,
    Cohorts,
    Hiring,
    Ai,
    Thresholds,
    Explain,
}

/// What to ask for.
#[derive(Debug, Clone, Default)]
pub struct Ask {
    pub view_request: pb::ViewRequest,
    pub as_of_date: String,
    pub packs: Vec<String>,
    pub alerts_only: bool,
    /// Thresholds: only these windows (`window_key`).
    pub window_keys: Vec<String>,
    /// Thresholds: list the events behind each status (needs `window_keys`), not only count them.
    pub with_event_ids: bool,
    /// Thresholds: only these count types (strict, assimilated, shadow).
    pub count_types: Vec<String>,
    pub event_ids: Vec<String>,
    /// Explain the events behind this figure: (view name, `evidence` path), asked with
    /// `view_request`.
    pub figure: Option<(String, String)>,
    /// What was known at this instant (µs since the epoch; 0 = now): also in `view_request`.
    pub as_of_recorded_at_micros: i64,
    pub page_token: String,
    pub page_size: u32,
}

/// The filters of the five views (`ViewRequest`).
const VIEW_FLAGS: &[&str] = &["org", "site", "from", "to", "period", "cohort"];
/// The bounds every answer takes.
const BOUND_FLAGS: &[&str] = &["as-of-sequence", "min-sequence", "as-of-recorded-at"];
/// The threshold watch's own flags (`ThresholdRequest`).
const THRESHOLD_FLAGS: &[&str] = &[
    "org",
    "as-of-date",
    "pack",
    "alerts-only",
    "window-key",
    "with-event-ids",
    "count-type",
];
/// Paging through the events behind a figure.
const FIGURE_FLAGS: &[&str] = &["figure", "path", "page-token", "page-size"];

/// Refuses the flags `given` (long names, without `--`) that `view` would not use, so that a
/// flag is never silently dropped (`--site` on `thresholds`, which counts the whole org, say);
/// `figure` is `explain --figure`'s view. `Err` is the one-line reason.
///
/// # Errors
/// The first flag that does not apply, or an `explain` with neither or both of `--event-id`
/// and `--figure`.
pub fn check_flags(view: View, figure: Option<&str>, given: &[&str]) -> Result<(), String> {
    let explain = view == View::Explain;
    let by_ids = given.contains(&"event-id");
    if explain && by_ids == figure.is_some() {
        return Err(
            "explain: name events (--event-id, repeatable) or a figure (--figure with --path), one of the two"
                .to_owned(),
        );
    }
    let (what, own): (String, Vec<&[&str]>) = match (view, figure) {
        (View::Thresholds, _) => ("thresholds".into(), vec![THRESHOLD_FLAGS]),
        (View::Explain, None) => ("explain --event-id".into(), vec![&["event-id"]]),
        (View::Explain, Some("thresholds")) => (
            "explain --figure thresholds".into(),
            vec![THRESHOLD_FLAGS, FIGURE_FLAGS],
        ),
        (View::Explain, Some(f)) => (
            format!("explain --figure {f}"),
            vec![VIEW_FLAGS, FIGURE_FLAGS],
        ),
        (v, _) => (format!("{v:?}").to_lowercase(), vec![VIEW_FLAGS]),
    };
    match given
        .iter()
        .find(|g| !BOUND_FLAGS.contains(g) && !own.iter().any(|o| o.contains(g)))
    {
        Some(flag) => Err(format!("--{flag} does not apply to {what}")),
        None => Ok(()),
    }
}

/// Fetches a view and renders it.
///
/// # Errors
/// When the server cannot be reached or refuses the request (the reason names the field).
pub async fn report(addr: &str, view: View, ask: Ask, format: Format) -> anyhow::Result<String> {
    let mut client = pb::views_client::ViewsClient::new(connect(addr).await?)
        .max_decoding_message_size(64 << 20);
    let r = ask.view_request.clone();
    let status = |s: tonic::Status| anyhow!("{}", describe_status(&s));
    let (seq, title, body) = match view {
        View::Thresholds => {
            let resp = client
                .threshold_watch(threshold_request(&ask, &r))
                .await
                .map_err(status)?
                .into_inner();
            let rows: Vec<Value> = resp.statuses.iter().map(threshold_json).collect();
            return Ok(match format {
                Format::Json => {
                    format!(
                        "{}\n",
                        json!({"as_of_sequence": resp.as_of_sequence, "views_sequence": resp.views_sequence, "as_of_date": resp.as_of_date, "statuses": rows})
                    )
                }
                Format::Text => {
                    let mut out = format!(
                        "Threshold watch at {} (ledger sequence {})\n",
                        resp.as_of_date, resp.as_of_sequence
                    );
                    // An answer from an org's recent rows (not one asked as of a sequence or a
                    // recorded-at bound) says how far it trails the views.
                    if r.as_of_sequence == 0
                        && r.as_of_recorded_at_micros == 0
                        && resp.views_sequence > resp.as_of_sequence
                    {
                        out.push_str(&format!(
                            "The views hold sequence {}: events after {} are not in this answer (--min-sequence {} waits for an evaluation that holds them).\n",
                            resp.views_sequence, resp.as_of_sequence, resp.views_sequence
                        ));
                    }
                    out.push_str(&table(
                        &rows,
                        &[
                            "pack",
                            "org",
                            "unit",
                            "window",
                            "role",
                            "window_start",
                            "count_type",
                            "count",
                            "threshold",
                            "denominator",
                            "ratio",
                            "level",
                            "missing_steps",
                        ],
                    ));
                    out.push_str("\nShadow counts are economic reductions comparable in size to a collective dismissal, not legal findings.\n");
                    out
                }
            });
        }
        View::Explain => {
            let by_figure = ask.figure.is_some();
            let resp = client
                .explain(pb::ExplainRequest {
                    // A figure carries its bounds in its own request; events by id here.
                    as_of_recorded_at_micros: if by_figure {
                        0
                    } else {
                        ask.as_of_recorded_at_micros
                    },
                    event_ids: ask.event_ids.clone(),
                    as_of_sequence: if by_figure { 0 } else { r.as_of_sequence },
                    figure: ask.figure.clone().map(|(view, path)| pb::Figure {
                        // A threshold figure is a status of the `ThresholdWatch` answer the
                        // threshold flags ask for.
                        thresholds: (view == "thresholds").then(|| threshold_request(&ask, &r)),
                        view,
                        request: Some(r.clone()),
                        path,
                    }),
                    page_token: ask.page_token.clone(),
                    page_size: ask.page_size,
                    min_sequence: if by_figure { 0 } else { r.min_sequence },
                })
                .await
                .map_err(status)?
                .into_inner();
            let events: Vec<Value> = resp.events.iter().map(explained_json).collect();
            (
                resp.as_of_sequence,
                "Explain",
                json!({ "total": resp.total, "next_page_token": resp.next_page_token, "events": events }),
            )
        }
        View::Separations => {
            let v = client.separations(r).await.map_err(status)?.into_inner();
            (
                v.as_of_sequence,
                "Separations by bucket and mechanism",
                view_json(&v),
            )
        }
        View::Headcount => {
            let v = client.headcount(r).await.map_err(status)?.into_inner();
            (v.as_of_sequence, "Headcount", view_json(&v))
        }
        View::Cohorts => {
            let v = client
                .cohort_exposure(r)
                .await
                .map_err(status)?
                .into_inner();
            (v.as_of_sequence, "Cohort exposure", view_json(&v))
        }
        View::Hiring => {
            let v = client.hiring_signals(r).await.map_err(status)?.into_inner();
            (v.as_of_sequence, "Hiring signals", view_json(&v))
        }
        View::Ai => {
            let v = client.ai_adoption(r).await.map_err(status)?.into_inner();
            (v.as_of_sequence, "AI adoption", view_json(&v))
        }
    };
    Ok(match format {
        Format::Json => format!("{}\n", json!({"as_of_sequence": seq, "view": body})),
        Format::Text => {
            let mut out = format!("{title} (ledger sequence {seq})\n");
            render_tables(&body, "", &mut out);
            out
        }
    })
}

fn threshold_json(s: &pb::ThresholdStatus) -> Value {
    let level = match pb::AlertLevel::try_from(s.level) {
        Ok(pb::AlertLevel::Met) => "MET",
        Ok(pb::AlertLevel::Approaching) => "approaching",
        _ => "",
    };
    json!({
        "pack": s.pack, "org": s.org_id, "unit": s.unit, "window": s.window,
        "window_start": s.window_start, "window_end": s.window_end, "count_type": s.count_type,
        "count": s.count, "threshold": s.threshold, "denominator": s.denominator,
        "ratio": format!("{:.2}", s.ratio), "level": level, "missing_steps": s.missing_steps.join("; "),
        "label": s.label, "event_ids": s.event_ids, "event_count": s.event_count,
        "excluded_count": s.excluded_count, "notice_only_count": s.notice_only_count,
        "role": s.role, "window_key": s.window_key, "unit_kind": s.unit_kind,
        "count_date": s.count_date, "floor_only": s.floor_only,
        "notice_only": s.notice_only_event_ids, "site_event": s.site_event_id,
        "gate": s.gate.as_ref().map(|g| json!({
            "strict_workers": g.strict_workers, "min_strict": g.min_strict, "open": g.open,
        })),
        "excluded": s.excluded.iter().map(|x| json!({"event_id": x.event_id, "reason": x.reason})).collect::<Vec<_>>(),
        "steps": s.steps.iter().map(|c| json!({
            "step": c.step, "event_type": c.event_type, "plan": c.plan,
            "first_separation": c.first_separation, "due_by": c.due_by, "state": c.state,
            "event_id": c.event_id, "days_late": c.days_late,
            "earliest_effective": c.earliest_effective,
            "effective_too_early": c.effective_too_early_event_ids,
            "effective_too_early_count": c.effective_too_early_count,
        })).collect::<Vec<_>>(),
    })
}

/// A typed view answer as the JSON document `wfl report` prints (the view's fields, keys sorted,
/// whole numbers without a fraction).
#[must_use]
pub fn view_json(r: &pb::ViewResponse) -> Value {
    r.view.as_ref().map_or(Value::Null, view_value)
}

/// One typed view as its JSON document (see [`view_json`]).
#[must_use]
pub fn view_value(view: &pb::view_response::View) -> Value {
    use pb::view_response::View as V;
    let value = match view {
        V::Separations(v) => serde_json::to_value(v),
        V::Headcount(v) => serde_json::to_value(v),
        V::CohortExposure(v) => serde_json::to_value(v),
        V::HiringSignals(v) => serde_json::to_value(v),
        V::AiAdoption(v) => serde_json::to_value(v),
    };
    value.map_or(Value::Null, normalised)
}

/// One explained event as JSON: the projection's own form (payloads in the domain's JSON, as
/// `wfl record` reads them).
fn explained_json(e: &pb::ExplainedEvent) -> Value {
    let payload = |p: &Option<pb::Payload>| {
        p.clone()
            .and_then(|p| wfl_proto::convert::payload_from_pb(p).ok())
            .and_then(|p| serde_json::to_value(p).ok())
            .unwrap_or(Value::Null)
    };
    let c = e.classification.clone().unwrap_or_default();
    normalised(json!({
        "event_id": e.event_id,
        "sequence": e.sequence,
        "org": e.org_id,
        "site": e.site_id,
        "jurisdiction": e.jurisdiction,
        "effective_date": e.effective_date,
        "event_type": e.event_type,
        "correlation_id": e.correlation_id,
        "payload": payload(&e.payload),
        "original_payload": payload(&e.original_payload),
        "classification": {
            "bucket": c.bucket,
            "employer_influenced": c.employer_influenced,
            "mechanism": c.mechanism,
            "ai": c.ai,
            "position_closed": c.position_closed,
            "backfilled": c.backfilled,
        },
        "corrected_by": e.corrected_by,
        "linked_by": e.linked_by,
        "retracted_by": e.retracted_by,
    }))
}

/// Keys sorted and whole numbers printed without a fraction (`5`, not `5.0`), as the views have
/// always been printed.
fn normalised(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, x)| (k, normalised(x)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(normalised).collect()),
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9e15 => json!(f as i64),
            _ => Value::Number(n),
        },
        other => other,
    }
}

/// Prints every array of objects in `v` as a table (scalar columns; ids and nested data summarised).
fn render_tables(v: &Value, path: &str, out: &mut String) {
    match v {
        Value::Object(map) => {
            let scalars: Vec<String> = map
                .iter()
                .filter(|(_, x)| !x.is_array() && !x.is_object())
                .map(|(k, x)| format!("{k}: {}", cell(x)))
                .collect();
            if !scalars.is_empty() {
                let _ = writeln!(
                    out,
                    "{}{}",
                    if path.is_empty() {
                        String::new()
                    } else {
                        format!("[{path}] ")
                    },
                    scalars.join("  ")
                );
            }
            for (k, x) in map {
                if x.is_array() || x.is_object() {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    render_tables(x, &p, out);
                }
            }
        }
        Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
            let mut columns: Vec<String> = Vec::new();
            for item in items {
                if let Value::Object(m) = item {
                    for (k, x) in m {
                        if !x.is_object()
                            && !columns.contains(k)
                            && k != "event_ids"
                            && k != "evidence"
                        {
                            columns.push(k.clone());
                        }
                        // A figure held in an object (headcount's `total`): its numbers as
                        // `total.closing` columns, so the text shows them.
                        if let Value::Object(inner) = x {
                            for (ik, ix) in inner {
                                let name = format!("{k}.{ik}");
                                if (ix.is_number() || ix.is_boolean())
                                    && !columns.contains(&name)
                                    && ik != "evidence"
                                {
                                    columns.push(name);
                                }
                            }
                        }
                    }
                }
            }
            let _ = writeln!(out, "\n{path}");
            let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
            out.push_str(&table(items, &cols));
        }
        _ => {}
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("{} items", a.len()),
        Value::Object(_) => "{…}".to_owned(),
        other => other.to_string(),
    }
}

/// A plain-text table with the given columns.
fn table(rows: &[Value], columns: &[&str]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| {
                    // `total.closing` is a field of an object column; plain names are looked up
                    // whole.
                    let v = if r.get(*c).is_some() {
                        &r[*c]
                    } else {
                        c.split('.').fold(r, |v, k| &v[k])
                    };
                    cell(v)
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
                .min(48)
        })
        .collect();
    let mut out = String::new();
    let line = |values: Vec<String>| -> String {
        values
            .iter()
            .zip(&widths)
            .map(|(v, w)| {
                let v: String = v.chars().take(*w).collect();
                format!("{v:<w$}", w = *w)
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let _ = writeln!(
        out,
        "{}",
        line(columns.iter().map(|c| (*c).to_owned()).collect())
    );
    for r in cells {
        let _ = writeln!(out, "{}", line(r));
    }
    out
}

/// Parses `--as-of-recorded-at`: µs since the Unix epoch, or an RFC 3339 UTC instant
/// (`2026-12-02T03:04:05Z`, fractional seconds allowed).
///
/// # Errors
/// Anything else, with the accepted forms named.
pub fn parse_instant(s: &str) -> anyhow::Result<i64> {
    let bad = || {
        anyhow!("--as-of-recorded-at: expected µs since the epoch or YYYY-MM-DDTHH:MM:SS[.ffffff]Z, got {s:?}")
    };
    if let Ok(micros) = s.parse::<i64>() {
        return if micros >= 0 { Ok(micros) } else { Err(bad()) };
    }
    let (date, time) = s.split_once('T').ok_or_else(bad)?;
    let time = time.strip_suffix('Z').ok_or_else(bad)?;
    let date = wfl_domain::Date::parse(date).map_err(|_| bad())?;
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    let parts: Vec<i64> = hms
        .split(':')
        .map(|p| p.parse::<i64>().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [h, m, sec] = parts[..] else {
        return Err(bad());
    };
    if !(0..24).contains(&h) || !(0..60).contains(&m) || !(0..61).contains(&sec) {
        return Err(bad());
    }
    let micros_frac = if fraction.is_empty() {
        0
    } else {
        if fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        format!("{fraction:0<6}")
            .parse::<i64>()
            .map_err(|_| bad())?
    };
    let seconds = i64::from(date.days()) * 86_400 + h * 3_600 + m * 60 + sec;
    let micros = seconds * 1_000_000 + micros_frac;
    if micros < 0 {
        return Err(bad());
    }
    Ok(micros)
}

/// The `ThresholdWatch` request of the threshold flags (`wfl report thresholds`, and the
/// threshold figure `wfl report explain --figure thresholds` pages).
fn threshold_request(ask: &Ask, r: &pb::ViewRequest) -> pb::ThresholdRequest {
    pb::ThresholdRequest {
        as_of_recorded_at_micros: ask.as_of_recorded_at_micros,
        org_id: r.org_id.clone(),
        as_of_date: ask.as_of_date.clone(),
        as_of_sequence: r.as_of_sequence,
        packs: ask.packs.clone(),
        alerts_only: ask.alerts_only,
        window_keys: ask.window_keys.clone(),
        with_event_ids: ask.with_event_ids,
        count_types: ask.count_types.clone(),
        min_sequence: r.min_sequence,
    }
}

#[cfg(test)]
mod tests {
    use super::{check_flags, parse_instant, View};

    #[test]
    fn a_flag_the_view_would_not_use_is_refused_by_name() {
        let refused = |view, figure, given: &[&str]| check_flags(view, figure, given).err();
        // Accepted: each view's own flags and the bounds every answer takes.
        assert_eq!(
            refused(
                View::Headcount,
                None,
                &["org", "site", "cohort", "min-sequence"]
            ),
            None
        );
        assert_eq!(
            refused(
                View::Thresholds,
                None,
                &["org", "pack", "window-key", "as-of-date"]
            ),
            None
        );
        assert_eq!(
            refused(View::Explain, None, &["event-id", "min-sequence"]),
            None
        );
        assert_eq!(
            refused(
                View::Explain,
                Some("separations"),
                &["org", "figure", "path", "page-size"]
            ),
            None
        );
        assert_eq!(
            refused(
                View::Explain,
                Some("thresholds"),
                &["org", "figure", "window-key", "count-type"]
            ),
            None
        );
        // Refused, naming the flag and the view.
        assert_eq!(
            refused(View::Thresholds, None, &["org", "site"]).as_deref(),
            Some("--site does not apply to thresholds")
        );
        assert_eq!(
            refused(View::Separations, None, &["pack"]).as_deref(),
            Some("--pack does not apply to separations")
        );
        assert_eq!(
            refused(View::Explain, None, &["event-id", "page-size"]).as_deref(),
            Some("--page-size does not apply to explain --event-id")
        );
        assert_eq!(
            refused(View::Explain, Some("headcount"), &["figure", "window-key"]).as_deref(),
            Some("--window-key does not apply to explain --figure headcount")
        );
        assert_eq!(
            refused(View::Explain, Some("thresholds"), &["figure", "cohort"]).as_deref(),
            Some("--cohort does not apply to explain --figure thresholds")
        );
        assert_eq!(
            refused(View::Hiring, None, &["figure"]).as_deref(),
            Some("--figure does not apply to hiring")
        );
        // Explain names events or a figure: one of the two.
        for (figure, given) in [
            (None, &[][..]),
            (Some("headcount"), &["event-id", "figure"][..]),
        ] {
            assert!(refused(View::Explain, figure, given)
                .is_some_and(|r| r.starts_with("explain: name events")));
        }
    }

    #[test]
    fn instants_parse_as_micros_or_rfc3339_utc() {
        assert_eq!(parse_instant("0").ok(), Some(0));
        assert_eq!(
            parse_instant("1700000000000000").ok(),
            Some(1_700_000_000_000_000)
        );
        assert_eq!(parse_instant("1970-01-01T00:00:01Z").ok(), Some(1_000_000));
        assert_eq!(
            parse_instant("2026-12-02T03:04:05.25Z").ok(),
            Some(1_796_180_645_250_000)
        );
        for bad in [
            "-5",
            "2026-12-02",
            "2026-12-02T03:04:05",
            "2026-12-02T25:00:00Z",
            "x",
        ] {
            assert!(parse_instant(bad).is_err(), "{bad}");
        }
    }
}
