//! The HTTP dashboard (`/` and `/explain` on the HTTP port of `wfl up` and `wfl-projector`):
//! server-rendered HTML with inline SVG charts, no script and nothing fetched from elsewhere (the
//! machines it runs on may be offline).
//!
//! Per org: stacked monthly separations (formal layoff / gradual attrition / neutral), headcount by
//! cohort over time, one gauge per rule pack and count type (the current window's count against
//! its threshold) with a link to the events behind it, AI adoption, and the ledger head.
//!
//! Owns: rendering. The figures come from the views over gRPC on loopback, through the same calls
//! and JSON as `wfl report` ([`crate::demo::view_json`]); it keeps no state and computes no figure
//! itself. Guarded like `/metrics`: with credentials checked, only auditors and admins see it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;
use wfl_proto::pb;

use crate::demo::{ask, by_period, view_json};
use crate::report::{Ask, View};

/// Where the dashboard reads the views.
#[derive(Clone)]
struct Dash {
    /// gRPC address of the views (and, on `wfl up`, the ledger), on loopback.
    addr: String,
    guard: wfl_auth::Guard,
}

/// The dashboard's routes, reading the views at `addr` (a loopback gRPC address; the process's
/// client credentials are used). `guard` admits the HTTP callers, as for `/metrics`.
pub fn router(addr: String, guard: wfl_auth::Guard) -> axum::Router {
    axum::Router::new()
        .route("/", get(index))
        .route("/explain", get(explain))
        .with_state(Dash { addr, guard })
}

fn refused(guard: &wfl_auth::Guard, headers: &HeaderMap, path: &'static str) -> Option<Response> {
    let status = guard.check_http(headers, path).err()?;
    let code = if status.code() == tonic::Code::Unauthenticated {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::FORBIDDEN
    };
    Some((code, format!("{}\n", status.message())).into_response())
}

/// Query parameters, percent-decoded (axum's `Query` extractor is not compiled in).
fn params(uri: &Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or(""), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// HTML-escapes text.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn int(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_f64().map(|f| f as u64))
        .unwrap_or(0)
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1200px}\
h2{border-bottom:2px solid #444;margin-top:1.6em}h3{margin-bottom:.3em}\
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}\
th{background:#eee}td.l,th.l{text-align:left}.legend span{display:inline-block;margin-right:1em}\
.sw{display:inline-block;width:10px;height:10px;margin-right:4px}.met{color:#b00;font-weight:bold}\
.approaching{color:#c60;font-weight:bold}.note{font-size:12px;color:#555}";

const BUCKETS: [(&str, &str, &str); 3] = [
    ("formal_layoff", "formal layoff", "#c0392b"),
    ("gradual_attrition", "gradual attrition", "#e67e22"),
    ("neutral", "neutral", "#95a5a6"),
];

const PALETTE: [&str; 8] = [
    "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf",
];

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        esc(title)
    ))
}

/// The page for a failed answer: the caller's mistake (a bad parameter, a window that does not
/// exist, a refusal naming a field) is 400 or 404; views that do not answer are 502.
fn failed(e: &anyhow::Error) -> Response {
    let message = format!("{e:#}");
    if let Some(bad) = e.downcast_ref::<BadPage>() {
        let code = if bad.missing {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        return (
            code,
            page(
                "wfl dashboard",
                &format!("<h1>wfl dashboard</h1><p>{}</p>", esc(&message)),
            ),
        )
            .into_response();
    }
    if message.starts_with("InvalidArgument") || message.starts_with("OutOfRange") {
        return (
            StatusCode::BAD_REQUEST,
            page(
                "wfl dashboard",
                &format!("<h1>wfl dashboard</h1><p>{}</p>", esc(&message)),
            ),
        )
            .into_response();
    }
    (
        StatusCode::BAD_GATEWAY,
        page(
            "wfl dashboard",
            &format!(
                "<h1>wfl dashboard</h1><p>The views did not answer: {}</p>",
                esc(&format!("{e:#}"))
            ),
        ),
    )
        .into_response()
}

async fn index(State(d): State<Dash>, headers: HeaderMap, uri: Uri) -> Response {
    if let Some(r) = refused(&d.guard, &headers, "/") {
        return r;
    }
    match render_index(&d.addr, &params(&uri)).await {
        Ok(html) => page("wfl dashboard", &html).into_response(),
        Err(e) => failed(&e),
    }
}

async fn explain(State(d): State<Dash>, headers: HeaderMap, uri: Uri) -> Response {
    if let Some(r) = refused(&d.guard, &headers, "/explain") {
        return r;
    }
    match render_explain(&d.addr, &params(&uri)).await {
        Ok(html) => page("wfl: events behind a figure", &html).into_response(),
        Err(e) => failed(&e),
    }
}

/// A page asked with parameters that name nothing (`missing`) or are incomplete.
#[derive(Debug)]
struct BadPage {
    missing: bool,
    what: String,
}

impl std::fmt::Display for BadPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for BadPage {}

/// The orgs the views know: those with threshold statuses or AI measurements.
async fn orgs(addr: &str) -> anyhow::Result<Vec<String>> {
    let watch = view_json(addr, View::Thresholds, Ask::default()).await?;
    let ai = view_json(addr, View::Ai, Ask::default()).await?;
    let mut orgs: Vec<String> = watch["statuses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| text(&s["org"]).to_owned())
        .chain(
            ai["view"]["usage"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(ai["view"]["tools"].as_array().into_iter().flatten())
                .map(|u| text(&u["org"]).to_owned()),
        )
        .filter(|o| !o.is_empty())
        .collect();
    orgs.sort();
    orgs.dedup();
    Ok(orgs)
}

async fn render_index(addr: &str, q: &BTreeMap<String, String>) -> anyhow::Result<String> {
    let orgs = match q.get("org") {
        Some(o) if !o.is_empty() => vec![o.clone()],
        _ => orgs(addr).await?,
    };
    let mut html = String::from("<h1>wfl: workforce restructuring ledger</h1>");
    html.push_str(&ledger_head(addr).await);
    if orgs.is_empty() {
        html.push_str("<p>No org in the views yet: record events (or run <code>wfl demo --addr ...</code>).</p>");
    }
    let _ = write!(html, "<p>Orgs: ");
    for o in &orgs {
        let _ = write!(html, "<a href=\"#org-{0}\">{0}</a> ", esc(o));
    }
    html.push_str("</p>");
    for o in &orgs {
        html.push_str(&org_section(addr, o).await?);
    }
    html.push_str("<p class=\"note\">Shadow counts are economic reductions comparable in size to a collective dismissal, not legal findings. Rule packs carry confidence marks; wfl is not legal advice.</p>");
    Ok(html)
}

/// The ledger head (when this process serves the ledger) and the sequence the views reflect.
async fn ledger_head(addr: &str) -> String {
    let head = async {
        let mut c = pb::ledger_client::LedgerClient::new(crate::client::connect(addr).await?);
        anyhow::Ok(c.head(pb::HeadRequest::default()).await?.into_inner())
    }
    .await;
    match head {
        Ok(h) => format!(
            "<p id=\"ledger-head\">Ledger head: sequence <b data-figure=\"head-sequence\">{}</b>, hash <code>{}</code></p>",
            h.sequence,
            hex::encode(&h.hash)
        ),
        Err(_) => "<p id=\"ledger-head\">Ledger head: not served by this process (a split projector); each figure names the ledger sequence it reflects.</p>".to_owned(),
    }
}

async fn org_section(addr: &str, org: &str) -> anyhow::Result<String> {
    let monthly = view_json(addr, View::Separations, ask(org, pb::Period::Month, 0)).await?;
    let headcount = view_json(addr, View::Headcount, ask(org, pb::Period::Month, 0)).await?;
    let mut watch_ask = ask(org, pb::Period::Month, 0);
    watch_ask.view_request.period = 0;
    let watch = view_json(addr, View::Thresholds, watch_ask).await?;
    let ai = view_json(addr, View::Ai, ask(org, pb::Period::Month, 0)).await?;
    let mut h = String::new();
    let total = int(&monthly["view"]["total"]);
    let _ = write!(
        h,
        "<section id=\"org-{o}\" data-org=\"{o}\"><h2>{o}</h2><p>Views at ledger sequence {seq}. Separations: <b data-figure=\"separations-total\">{total}</b>",
        o = esc(org),
        seq = monthly["as_of_sequence"],
    );
    for t in monthly["view"]["totals"].as_array().into_iter().flatten() {
        let bucket = text(&t["bucket"]);
        let _ = write!(
            h,
            " &middot; <a href=\"/explain?org={}&amp;figure=separations&amp;path={}\">{}: <span data-figure=\"{}\">{}</span></a>",
            encode(org),
            encode(text(&t["evidence"])),
            esc(&bucket.replace('_', " ")),
            esc(bucket),
            int(&t["count"])
        );
    }
    h.push_str("</p>");
    h.push_str("<h3>Separations by month</h3>");
    h.push_str(&separations_chart(&by_period(&monthly)));
    h.push_str("<h3>Headcount by cohort (end of month)</h3>");
    h.push_str(&headcount_chart(&headcount));
    h.push_str("<h3>Threshold watch</h3>");
    h.push_str(&gauges(org, &watch));
    h.push_str("<h3>AI adoption</h3>");
    h.push_str(&ai_section(&ai));
    h.push_str(&ai_trend(addr, org, &headcount).await?);
    h.push_str("</section>");
    Ok(h)
}

fn legend(items: &[(&str, &str)]) -> String {
    let mut s = String::from("<div class=\"legend\">");
    for (label, colour) in items {
        let _ = write!(
            s,
            "<span><i class=\"sw\" style=\"background:{colour}\"></i>{}</span>",
            esc(label)
        );
    }
    s.push_str("</div>");
    s
}

/// Stacked bars, one per month: formal at the bottom, then gradual, then neutral.
fn separations_chart(periods: &BTreeMap<String, [u64; 3]>) -> String {
    if periods.is_empty() {
        return "<p>No separations.</p>".to_owned();
    }
    let (w, h, left, bottom, top) = (1100.0f64, 260.0f64, 40.0, 40.0, 16.0);
    let max = periods
        .values()
        .map(|v| v.iter().sum::<u64>())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let slot = (w - left) / periods.len() as f64;
    let bar = (slot * 0.7).max(2.0);
    let scale = (h - bottom - top) / max;
    let mut s = format!(
        "<svg class=\"separations\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\">"
    );
    let _ = write!(
        s,
        "<line x1=\"{left}\" y1=\"{y}\" x2=\"{w}\" y2=\"{y}\" stroke=\"#444\"/><text x=\"2\" y=\"{t}\" font-size=\"11\">{max}</text>",
        y = h - bottom,
        t = top + 4.0
    );
    for (i, (period, counts)) in periods.iter().enumerate() {
        let x = left + i as f64 * slot + (slot - bar) / 2.0;
        let mut y = h - bottom;
        for (k, (_, label, colour)) in BUCKETS.iter().enumerate() {
            let n = counts[k];
            if n == 0 {
                continue;
            }
            let bh = n as f64 * scale;
            y -= bh;
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{bh:.1}\" fill=\"{colour}\"><title>{period} {label}: {n}</title></rect>"
            );
        }
        let total: u64 = counts.iter().sum();
        let _ = write!(
            s,
            "<text class=\"bar-total\" data-period=\"{period}\" x=\"{cx:.1}\" y=\"{ty:.1}\" font-size=\"10\" text-anchor=\"middle\">{total}</text><text x=\"{cx:.1}\" y=\"{ly:.1}\" font-size=\"10\" text-anchor=\"middle\">{p}</text>",
            period = esc(period),
            cx = x + bar / 2.0,
            ty = y - 3.0,
            ly = h - bottom + 14.0,
            p = esc(period),
        );
    }
    s.push_str("</svg>");
    s.push_str(&legend(
        &BUCKETS.iter().map(|(_, l, c)| (*l, *c)).collect::<Vec<_>>(),
    ));
    s
}

/// One line per cohort: closing headcount at the end of each month.
fn headcount_chart(view: &Value) -> String {
    let rows = view["view"]["rows"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "<p>No headcount.</p>".to_owned();
    }
    let mut series: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        for (cohort, f) in r["by_cohort"].as_object().into_iter().flatten() {
            series
                .entry(cohort.clone())
                .or_insert_with(|| vec![0; rows.len()])[i] = int(&f["closing"]);
        }
    }
    let labels: Vec<String> = rows.iter().map(|r| text(&r["period"]).to_owned()).collect();
    line_chart("headcount", &labels, &series, "", 3)
}

/// One polyline per series over `labels` (every `every`-th label written), the last value at
/// the right end. `unit` follows each value ("%").
fn line_chart(
    class: &str,
    labels: &[String],
    series: &BTreeMap<String, Vec<u64>>,
    unit: &str,
    every: usize,
) -> String {
    let (w, h, left, bottom, top) = (1100.0f64, 240.0f64, 48.0, 30.0, 12.0);
    let max = series.values().flatten().copied().max().unwrap_or(1).max(1) as f64;
    let step = (w - left - 40.0) / (labels.len().max(2) - 1) as f64;
    let y = |v: u64| h - bottom - v as f64 * (h - bottom - top) / max;
    let mut s = format!(
        "<svg class=\"{class}\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\"><line x1=\"{left}\" y1=\"{b}\" x2=\"{w}\" y2=\"{b}\" stroke=\"#444\"/><text x=\"2\" y=\"{t}\" font-size=\"11\">{max}{unit}</text>",
        b = h - bottom,
        t = top + 4.0
    );
    for (i, label) in labels.iter().enumerate() {
        if i % every.max(1) == 0 || i + 1 == labels.len() {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
                left + i as f64 * step,
                h - bottom + 14.0,
                esc(label)
            );
        }
    }
    let mut keys = Vec::new();
    for (k, (name, values)) in series.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", left + i as f64 * step, y(*v)))
            .collect();
        let last = values.last().copied().unwrap_or(0);
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"><title>{}</title></polyline><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"{colour}\" text-anchor=\"end\" data-series=\"{}\">{last}{unit}</text>",
            points.join(" "),
            esc(name),
            w - 2.0,
            y(last) - 3.0,
            esc(name),
        );
        keys.push((name.as_str(), colour));
    }
    s.push_str("</svg>");
    s.push_str(&legend(&keys));
    s
}

/// AI usage over time: the AI view asked as of each quarter's last month-end (`to`), the latest
/// active-user share per scope at that day, in percent.
async fn ai_trend(addr: &str, org: &str, headcount: &Value) -> anyhow::Result<String> {
    let rows = headcount["view"]["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ends: Vec<(String, String)> = rows
        .iter()
        .enumerate()
        .filter(|(i, r)| {
            matches!(
                text(&r["period"]).get(5..7),
                Some("03" | "06" | "09" | "12")
            ) || i + 1 == rows.len()
        })
        .map(|(_, r)| (text(&r["period"]).to_owned(), text(&r["end"]).to_owned()))
        .collect();
    let mut series: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (i, (_, end)) in ends.iter().enumerate() {
        let mut a = ask(org, pb::Period::Month, 0);
        a.view_request.to_date = end.clone();
        let ai = view_json(addr, View::Ai, a).await?;
        for u in ai["view"]["usage"].as_array().into_iter().flatten() {
            let population = int(&u["population"]);
            if population == 0 {
                continue;
            }
            series
                .entry(text(&u["scope"]).to_owned())
                .or_insert_with(|| vec![0; ends.len()])[i] = int(&u["value"]) * 100 / population;
        }
    }
    if series.is_empty() {
        return Ok(String::new());
    }
    let labels: Vec<String> = ends.into_iter().map(|(p, _)| p).collect();
    Ok(format!(
        "<p>Active users of the AI tools, as a share of the population measured, at each quarter's end:</p>{}",
        line_chart("ai-trend", &labels, &series, "%", 1)
    ))
}

/// One gauge per pack and count type: the current window that comes closest to its threshold.
fn gauges(org: &str, watch: &Value) -> String {
    let mut best: BTreeMap<(String, String), &Value> = BTreeMap::new();
    for st in watch["statuses"].as_array().into_iter().flatten() {
        if text(&st["role"]) != "current" || text(&st["org"]) != org {
            continue;
        }
        let ratio = |v: &Value| text(&v["ratio"]).parse::<f64>().unwrap_or(0.0);
        let key = (
            text(&st["pack"]).to_owned(),
            text(&st["count_type"]).to_owned(),
        );
        let replace = best.get(&key).is_none_or(|b| ratio(st) > ratio(b));
        if replace {
            best.insert(key, st);
        }
    }
    if best.is_empty() {
        return "<p>No rule pack applies (or no separation counted yet).</p>".to_owned();
    }
    let mut s = String::from("<table class=\"gauges\"><tr><th class=\"l\">pack</th><th class=\"l\">count</th><th class=\"l\">window</th><th>workers</th><th>threshold</th><th>staff</th><th class=\"l\">gauge</th><th class=\"l\">level</th><th class=\"l\">procedure steps</th><th class=\"l\">events</th></tr>");
    for ((pack, count_type), st) in &best {
        let count = int(&st["count"]);
        let threshold = int(&st["threshold"]).max(1);
        let level = text(&st["level"]);
        let class = match level {
            "MET" => "met",
            "approaching" => "approaching",
            _ => "",
        };
        let colour = match level {
            "MET" => "#c0392b",
            "approaching" => "#e67e22",
            _ => "#27ae60",
        };
        // The bar spans 0 to 1.5 x the threshold; ticks at 80 % and 100 %.
        let span = 1.5 * threshold as f64;
        let width = 240.0;
        let fill = (count as f64 / span).min(1.0) * width;
        let tick = |f: f64| f * threshold as f64 / span * width;
        let svg = format!(
            "<svg class=\"gauge\" width=\"{width}\" height=\"18\" xmlns=\"http://www.w3.org/2000/svg\"><rect width=\"{width}\" height=\"18\" fill=\"#eee\"/><rect width=\"{fill:.1}\" height=\"18\" fill=\"{colour}\"/><line x1=\"{a:.1}\" x2=\"{a:.1}\" y1=\"0\" y2=\"18\" stroke=\"#333\" stroke-dasharray=\"2,2\"/><line x1=\"{b:.1}\" x2=\"{b:.1}\" y1=\"0\" y2=\"18\" stroke=\"#000\" stroke-width=\"2\"/></svg>",
            a = tick(0.8),
            b = tick(1.0)
        );
        let link = format!(
            "/explain?org={}&amp;pack={}&amp;window_key={}&amp;count_type={}",
            encode(org),
            encode(pack),
            encode(text(&st["window_key"])),
            encode(count_type)
        );
        let _ = write!(
            s,
            "<tr class=\"alert\" data-pack=\"{p}\" data-count-type=\"{ct}\" data-level=\"{lv}\"><td class=\"l\">{p}</td><td class=\"l\">{ct}</td><td class=\"l\">{win} {ws}..{we}</td><td>{count}</td><td>{threshold}</td><td>{den}</td><td class=\"l\">{svg}</td><td class=\"l {class}\">{lv}</td><td class=\"l\">{missing}</td><td class=\"l\"><a href=\"{link}\">{n} events</a></td></tr>",
            p = esc(pack),
            ct = esc(count_type),
            lv = if level.is_empty() { "below" } else { level },
            win = esc(text(&st["window"])),
            ws = esc(text(&st["window_start"])),
            we = esc(text(&st["window_end"])),
            den = int(&st["denominator"]),
            missing = steps_cell(st),
            n = int(&st["event_count"]),
        );
    }
    s.push_str("</table>");
    s
}

/// The procedure steps of a threshold row, short (`UnionBriefed missing`), the sentences in a
/// tooltip.
fn steps_cell(st: &Value) -> String {
    let steps: Vec<String> = st["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{} {}",
                text(&c["event_type"]),
                text(&c["state"]).replace('_', " ")
            )
        })
        .collect();
    format!(
        "<span title=\"{}\">{}</span>",
        esc(text(&st["missing_steps"])),
        esc(&steps.join(", "))
    )
}

fn ai_section(ai: &Value) -> String {
    let v = &ai["view"];
    let mut s = format!(
        "<p>{} tool roll-outs; <span data-figure=\"roles-automated\">{}</span> roles automated ({} with a separation); {} AI-attributed separations.</p>",
        v["tools"].as_array().map_or(0, Vec::len),
        int(&v["roles_automated"]["count"]),
        int(&v["roles_automated"]["with_separation"]),
        int(&v["ai_attributed_separations"]["cited_by_employer"])
            + int(&v["ai_attributed_separations"]["inferred"]),
    );
    let usage = v["usage"].as_array().cloned().unwrap_or_default();
    if usage.is_empty() {
        s.push_str("<p>No usage measured.</p>");
        return s;
    }
    let width = 300.0;
    s.push_str("<table><tr><th class=\"l\">scope</th><th class=\"l\">measured</th><th>active</th><th>of</th><th class=\"l\">share</th></tr>");
    for u in &usage {
        let value = int(&u["value"]);
        let population = int(&u["population"]);
        let share = if population > 0 {
            value as f64 / population as f64
        } else {
            0.0
        };
        let _ = write!(
            s,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}..{}</td><td>{value}</td><td>{population}</td><td class=\"l\"><svg width=\"{width}\" height=\"14\" xmlns=\"http://www.w3.org/2000/svg\"><rect width=\"{width}\" height=\"14\" fill=\"#eee\"/><rect width=\"{:.1}\" height=\"14\" fill=\"#2980b9\"/></svg> {:.0} %</td></tr>",
            esc(text(&u["scope"])),
            esc(text(&u["period_start"])),
            esc(text(&u["period_end"])),
            share.min(1.0) * width,
            share * 100.0
        );
    }
    s.push_str("</table>");
    s
}

/// The events behind a threshold row (`pack`, `window_key`, `count_type`) or behind a view figure
/// (`figure`, `path`), one page of up to 500.
async fn render_explain(addr: &str, q: &BTreeMap<String, String>) -> anyhow::Result<String> {
    let org = q.get("org").cloned().unwrap_or_default();
    let mut a = ask(&org, pb::Period::Month, 0);
    a.page_size = 500;
    a.page_token = q.get("page_token").cloned().unwrap_or_default();
    let title;
    if let (Some(pack), Some(key)) = (q.get("pack"), q.get("window_key")) {
        let count_type = q.get("count_type").cloned().unwrap_or_default();
        let mut w = ask(&org, pb::Period::Month, 0);
        w.packs = vec![pack.clone()];
        // The one window's events (a status carries only their count otherwise), of this count
        // type only: the other statuses of the window would take the answer's share of them.
        w.window_keys = vec![key.clone()];
        w.count_types = (!count_type.is_empty())
            .then(|| count_type.clone())
            .into_iter()
            .collect();
        let watch = view_json(addr, View::Thresholds, w.clone()).await?;
        let (i, row) = watch["statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .find(|(_, s)| text(&s["window_key"]) == key && text(&s["count_type"]) == count_type)
            .ok_or_else(|| BadPage {
                missing: true,
                what: format!("no {pack} window {key} ({count_type}) for {org}"),
            })?;
        // Its counted events, paged through the status's list as `ThresholdWatch` reads it
        // again with the same request (all of them, not the 10,000 one answer may list).
        a.packs = w.packs;
        a.window_keys = w.window_keys;
        a.count_types = w.count_types;
        a.figure = Some(("thresholds".to_owned(), format!("/statuses/{i}/event_ids")));
        title = format!(
            "{org}: {pack} {} count, window {}..{}: {} workers against a threshold of {} ({})",
            count_type,
            text(&row["window_start"]),
            text(&row["window_end"]),
            int(&row["count"]),
            int(&row["threshold"]),
            if text(&row["level"]).is_empty() {
                "below"
            } else {
                text(&row["level"])
            }
        );
    } else if let Some(figure) = q.get("figure") {
        let path = q.get("path").cloned().unwrap_or_else(|| "/".into());
        a.figure = Some((figure.clone(), path.clone()));
        title = format!("{org}: {figure} {path}");
    } else {
        return Err(BadPage {
            missing: false,
            what: "give pack and window_key, or figure and path".to_owned(),
        }
        .into());
    }
    let answer = view_json(addr, View::Explain, a).await?;
    let view = &answer["view"];
    let mut h = format!(
        "<h1>Events behind a figure</h1><p><a href=\"/#org-{}\">back to the dashboard</a></p><h2>{}</h2><p><span data-figure=\"explained-total\">{}</span> events at ledger sequence {}.</p>",
        esc(&org),
        esc(&title),
        int(&view["total"]),
        answer["as_of_sequence"]
    );
    h.push_str("<table><tr><th>sequence</th><th class=\"l\">event</th><th class=\"l\">type</th><th class=\"l\">effective</th><th class=\"l\">site</th><th class=\"l\">worker</th><th class=\"l\">bucket</th><th class=\"l\">legal ground</th></tr>");
    for e in view["events"].as_array().into_iter().flatten() {
        let p = &e["payload"];
        let sep = if p["separation"].is_object() {
            &p["separation"]
        } else {
            p
        };
        let _ = write!(
            h,
            "<tr class=\"event\"><td>{}</td><td class=\"l\"><code>{}</code></td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            int(&e["sequence"]),
            esc(text(&e["event_id"])),
            esc(text(&e["event_type"])),
            esc(text(&e["effective_date"])),
            esc(text(&e["site"])),
            esc(text(&sep["worker_ref"])),
            esc(text(&e["classification"]["bucket"])),
            esc(text(&sep["legal_ground"])),
        );
    }
    h.push_str("</table>");
    let next = text(&view["next_page_token"]);
    if !next.is_empty() {
        let mut more: Vec<String> = q
            .iter()
            .filter(|(k, _)| k.as_str() != "page_token")
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        more.push(format!("page_token={}", encode(next)));
        let _ = write!(
            h,
            "<p><a href=\"/explain?{}\">next page</a></p>",
            more.join("&amp;")
        );
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_round_trip_through_encoding() {
        for s in [
            "rolling-30/current/2025-12-01",
            "a b&c=d",
            "%zz",
            "CN-LCL-41",
            "",
        ] {
            let uri: Uri = format!("/explain?k={}", encode(s)).parse().expect("a uri");
            assert_eq!(params(&uri).get("k").map(String::as_str), Some(s));
        }
        let uri: Uri = "/x?a=%4&b".parse().expect("a uri");
        assert_eq!(params(&uri).get("a").map(String::as_str), Some("%4"));
    }

    async fn get(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("send");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }

    #[tokio::test]
    async fn the_pages_are_guarded_like_metrics() {
        let mut tokens = wfl_auth::Tokens::default();
        for (token, role) in [
            ("analyst-token", wfl_auth::Role::Analyst),
            ("auditor-token", wfl_auth::Role::Auditor),
        ] {
            tokens.insert_token(
                token,
                wfl_auth::Principal {
                    name: token.to_owned(),
                    role,
                    orgs: std::collections::BTreeSet::from(["acme".to_owned()]),
                },
            );
        }
        // Views at an address where nothing listens: past the guard, the page says so.
        let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let views = format!("http://{}", dead.local_addr().expect("addr"));
        drop(dead);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = router(views, wfl_auth::Guard::with_tokens(tokens));
        tokio::spawn(async move { axum::serve(listener, app).await });
        for path in ["/", "/explain?org=acme&figure=separations&path=/totals/0"] {
            let anonymous = get(addr, path, None).await;
            assert!(anonymous.starts_with("HTTP/1.1 401"), "{anonymous}");
            let analyst = get(addr, path, Some("analyst-token")).await;
            assert!(analyst.starts_with("HTTP/1.1 403"), "{analyst}");
            let auditor = get(addr, path, Some("auditor-token")).await;
            assert!(auditor.starts_with("HTTP/1.1 502"), "{auditor}");
            assert!(auditor.contains("The views did not answer"), "{auditor}");
        }
        let incomplete = get(addr, "/explain?org=acme", Some("auditor-token")).await;
        assert!(incomplete.starts_with("HTTP/1.1 400"), "{incomplete}");
        assert!(
            incomplete.contains("give pack and window_key"),
            "{incomplete}"
        );
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
