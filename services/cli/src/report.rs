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
    pub event_ids: Vec<String>,
    /// Explain the events behind this figure: (view name, `evidence` path), asked with
    /// `view_request`.
    pub figure: Option<(String, String)>,
    pub page_token: String,
    pub page_size: u32,
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
                .threshold_watch(pb::ThresholdRequest {
                    org_id: r.org_id.clone(),
                    as_of_date: ask.as_of_date.clone(),
                    as_of_sequence: r.as_of_sequence,
                    packs: ask.packs.clone(),
                    alerts_only: ask.alerts_only,
                })
                .await
                .map_err(status)?
                .into_inner();
            let rows: Vec<Value> = resp.statuses.iter().map(threshold_json).collect();
            return Ok(match format {
                Format::Json => {
                    format!(
                        "{}\n",
                        json!({"as_of_sequence": resp.as_of_sequence, "as_of_date": resp.as_of_date, "statuses": rows})
                    )
                }
                Format::Text => {
                    let mut out = format!(
                        "Threshold watch at {} (ledger sequence {})\n",
                        resp.as_of_date, resp.as_of_sequence
                    );
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
            let resp = client
                .explain(pb::ExplainRequest {
                    event_ids: ask.event_ids.clone(),
                    as_of_sequence: r.as_of_sequence,
                    figure: ask.figure.clone().map(|(view, path)| pb::Figure {
                        view,
                        request: Some(r.clone()),
                        path,
                    }),
                    page_token: ask.page_token.clone(),
                    page_size: ask.page_size,
                })
                .await
                .map_err(status)?
                .into_inner();
            let events: Vec<Value> = resp.events.into_iter().map(|s| struct_json(&s)).collect();
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
                v.view.as_ref().map_or(Value::Null, struct_json),
            )
        }
        View::Headcount => {
            let v = client.headcount(r).await.map_err(status)?.into_inner();
            (
                v.as_of_sequence,
                "Headcount",
                v.view.as_ref().map_or(Value::Null, struct_json),
            )
        }
        View::Cohorts => {
            let v = client
                .cohort_exposure(r)
                .await
                .map_err(status)?
                .into_inner();
            (
                v.as_of_sequence,
                "Cohort exposure",
                v.view.as_ref().map_or(Value::Null, struct_json),
            )
        }
        View::Hiring => {
            let v = client.hiring_signals(r).await.map_err(status)?.into_inner();
            (
                v.as_of_sequence,
                "Hiring signals",
                v.view.as_ref().map_or(Value::Null, struct_json),
            )
        }
        View::Ai => {
            let v = client.ai_adoption(r).await.map_err(status)?.into_inner();
            (
                v.as_of_sequence,
                "AI adoption",
                v.view.as_ref().map_or(Value::Null, struct_json),
            )
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
        "label": s.label, "event_ids": s.event_ids,
        "role": s.role, "window_key": s.window_key, "unit_kind": s.unit_kind,
        "count_date": s.count_date, "floor_only": s.floor_only,
        "gate": s.gate.as_ref().map(|g| json!({
            "strict_workers": g.strict_workers, "min_strict": g.min_strict, "open": g.open,
        })),
        "excluded": s.excluded.iter().map(|x| json!({"event_id": x.event_id, "reason": x.reason})).collect::<Vec<_>>(),
        "steps": s.steps.iter().map(|c| json!({
            "step": c.step, "event_type": c.event_type, "plan": c.plan,
            "first_separation": c.first_separation, "due_by": c.due_by, "state": c.state,
            "event_id": c.event_id, "days_late": c.days_late,
        })).collect::<Vec<_>>(),
    })
}

/// A protobuf Struct as JSON.
fn struct_json(s: &prost_types::Struct) -> Value {
    Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_json(v)))
            .collect(),
    )
}

fn value_json(v: &prost_types::Value) -> Value {
    use prost_types::value::Kind;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::NumberValue(n)) => {
            if n.fract() == 0.0 && n.abs() < 9e15 {
                json!(*n as i64)
            } else {
                json!(n)
            }
        }
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(value_json).collect()),
        Some(Kind::StructValue(s)) => struct_json(s),
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
        .map(|r| columns.iter().map(|c| cell(&r[*c])).collect())
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
