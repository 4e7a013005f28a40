//! The HTTP side of every wfl process: `/healthz` (readiness) and `/metrics` (Prometheus text,
//! rendered from the process's [`wfl_metrics::Registry`]), plus the dashboard pages
//! ([`crate::dashboard`]) of the processes that serve views.
//!
//! Owns: the [`Readiness`] probes a process registers (bus connection, ledger verification,
//! projector following its ledger, ...), mirroring them into gRPC health, and serving both
//! endpoints. `wfl up` and the split binaries (`wfl-gateway`, `wfl-ledger`, `wfl-projector`)
//! use the same code.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A readiness probe: `Ok` when its part is ready, else the reason it is not.
pub type Probe = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// How often readiness is mirrored into gRPC health.
const MIRROR_EVERY: Duration = Duration::from_millis(500);

/// The readiness probes of one process. The process is ready when every probe is.
#[derive(Clone, Default)]
pub struct Readiness {
    probes: Vec<(&'static str, Probe)>,
}

impl Readiness {
    /// Adds a named probe.
    #[must_use]
    pub fn with(
        mut self,
        name: &'static str,
        probe: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.probes.push((name, Arc::new(probe)));
        self
    }

    /// `name: reason` of every probe that is not ready, in registration order.
    #[must_use]
    pub fn failures(&self) -> Vec<String> {
        self.probes
            .iter()
            .filter_map(|(name, probe)| probe().err().map(|why| format!("{name}: {why}")))
            .collect()
    }

    /// `name: reason` of every probe whose name starts with one of `prefixes` that is not
    /// ready.
    fn failures_of(&self, prefixes: &[&str]) -> Vec<String> {
        self.probes
            .iter()
            .filter(|(name, _)| prefixes.iter().any(|p| name.starts_with(p)))
            .filter_map(|(name, probe)| probe().err().map(|why| format!("{name}: {why}")))
            .collect()
    }

    /// Keeps gRPC health equal to this readiness: the server as a whole (`""`) follows every
    /// probe, each named service the probes whose names start with one of its prefixes
    /// (NOT_SERVING while one fails, SERVING again when they pass). Logs each change of the
    /// whole once.
    pub fn mirror(
        &self,
        mut reporter: tonic_health::server::HealthReporter,
        services: Vec<(&'static str, &'static [&'static str])>,
        shutdown: CancellationToken,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut last: Option<Vec<String>> = None;
            let mut last_of: Vec<Option<bool>> = vec![None; services.len()];
            loop {
                let failures = this.failures();
                if last.as_ref() != Some(&failures) {
                    let status = if failures.is_empty() {
                        if last.is_some() {
                            tracing::info!("ready: health SERVING");
                        }
                        tonic_health::ServingStatus::Serving
                    } else {
                        // Starting up (the projector subscribing, say) is not an error.
                        if last.is_none() {
                            tracing::info!(reasons = %failures.join("; "), "not ready yet: health NOT_SERVING");
                        } else {
                            tracing::warn!(reasons = %failures.join("; "), "not ready: health NOT_SERVING");
                        }
                        tonic_health::ServingStatus::NotServing
                    };
                    reporter.set_service_status("", status).await;
                    last = Some(failures);
                }
                for ((name, prefixes), last) in services.iter().zip(last_of.iter_mut()) {
                    let ok = this.failures_of(prefixes).is_empty();
                    if *last != Some(ok) {
                        let status = if ok {
                            tonic_health::ServingStatus::Serving
                        } else {
                            tonic_health::ServingStatus::NotServing
                        };
                        reporter.set_service_status(name, status).await;
                        *last = Some(ok);
                    }
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(MIRROR_EVERY) => {}
                }
            }
        });
    }

    /// Registers `wfl_ready` and `wfl_ready_probe{probe}` in `registry`, evaluated at each
    /// scrape.
    pub fn register(&self, registry: &wfl_metrics::Registry) {
        let ready = registry.gauge(
            "wfl_ready",
            "1 when every readiness probe of this process passes (see /healthz).",
        );
        let probes: Vec<(Probe, wfl_metrics::Gauge)> = self
            .probes
            .iter()
            .map(|(name, probe)| {
                (
                    probe.clone(),
                    registry.gauge_with(
                        "wfl_ready_probe",
                        &[("probe", (*name).to_owned())],
                        "1 when the named readiness probe passes.",
                    ),
                )
            })
            .collect();
        registry.on_scrape(move |_| {
            let mut all = true;
            for (probe, gauge) in &probes {
                let ok = probe().is_ok();
                all &= ok;
                gauge.set(f64::from(u8::from(ok)));
            }
            ready.set(f64::from(u8::from(all)));
        });
    }
}

#[derive(Clone)]
struct HttpState {
    readiness: Readiness,
    metrics: wfl_metrics::Registry,
    /// `/metrics` is for auditors and admins when credentials are checked; `/healthz` is open.
    guard: wfl_auth::Guard,
}

/// The `/healthz` and `/metrics` routes over `readiness` and `metrics` (the readiness figures are
/// registered in `metrics`).
pub fn router(
    readiness: Readiness,
    metrics: wfl_metrics::Registry,
    guard: wfl_auth::Guard,
) -> axum::Router {
    readiness.register(&metrics);
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_guarded))
        .with_state(HttpState {
            readiness,
            metrics,
            guard,
        })
}

/// Serves [`router`] and `pages` (the dashboard, when the process has views) on `listener`
/// (with TLS when `security` has it) until `shutdown`.
///
/// # Errors
/// When the server fails.
pub async fn serve(
    listener: TcpListener,
    readiness: Readiness,
    metrics: wfl_metrics::Registry,
    pages: Option<axum::Router>,
    security: &wfl_auth::Security,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut routes = router(readiness, metrics, security.guard.clone());
    if let Some(pages) = pages {
        routes = routes.merge(pages);
    }
    wfl_auth::tls::serve_http(
        listener,
        routes,
        security.tls.as_ref().map(|t| t.http.clone()),
        shutdown,
    )
    .await
}

/// `/metrics` after the guard: 401 without valid credentials, 403 below auditor.
async fn metrics_guarded(
    State(s): State<HttpState>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Err(status) = s.guard.check_http(&headers, "/metrics") {
        let code = if status.code() == tonic::Code::Unauthenticated {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::FORBIDDEN
        };
        return (code, format!("{}\n", status.message())).into_response();
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics_text(&s),
    )
        .into_response()
}

/// 200 `ok` when ready; 503 and one `probe: reason` line per failing probe otherwise.
async fn healthz(State(s): State<HttpState>) -> (StatusCode, String) {
    let failures = s.readiness.failures();
    if failures.is_empty() {
        (StatusCode::OK, "ok\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready\n{}\n", failures.join("\n")),
        )
    }
}

fn metrics_text(s: &HttpState) -> String {
    s.metrics.render()
}

/// Binds a listener (gRPC or HTTP, named by `what`), naming the address in the error.
///
/// # Errors
/// When the address is taken or not permitted.
pub async fn bind(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} ({what}): {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn healthz_lists_every_failing_probe_and_metrics_show_them() {
        let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f = flag.clone();
        let readiness = Readiness::default()
            .with("bus", || Ok(()))
            .with("store", move || {
                if f.load(std::sync::atomic::Ordering::Relaxed) {
                    Err("disk full".into())
                } else {
                    Ok(())
                }
            });
        let registry = wfl_metrics::Registry::new();
        registry.gauge("x", "X.").set(1.0);
        readiness.register(&registry);
        let state = HttpState {
            readiness: readiness.clone(),
            metrics: registry,
            guard: wfl_auth::Guard::default(),
        };
        assert_eq!(healthz(State(state.clone())).await.0, StatusCode::OK);
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
        let (code, body) = healthz(State(state.clone())).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "not ready\nstore: disk full\n");
        let text = metrics_text(&state);
        assert!(text.contains("wfl_ready 0\n"), "{text}");
        assert!(
            text.contains("wfl_ready_probe{probe=\"store\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("wfl_ready_probe{probe=\"bus\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("\nx 1\n"), "{text}");
    }
}
