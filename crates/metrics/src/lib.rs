//! One Prometheus registry per wfl process, built on the `metrics` facade's handles and rendered
//! by `metrics-exporter-prometheus` (`PrometheusRecorder` / `PrometheusHandle::render`).
//!
//! Owns: [`Registry`] (counters, gauges and histograms registered by name and labels, the bucket
//! boundaries of every histogram, figures read from shared state at each scrape) and the process
//! metrics read from `/proc/self` on Linux ([`process`]).
//!
//! Why not the global recorder: tests run several nodes in one process (a gateway and a ledger in
//! `tests/liveness.rs`, many ledgers in the crates' own tests), and a process-wide recorder would
//! add their figures together. Each node builds a `Registry` and hands it to its parts, which
//! register their handles once and update them with no lookup on the hot path
//! (`Counter::increment`, `Histogram::record`: atomics). The `/metrics` route renders the node's
//! own registry. Nothing here installs a global recorder, so `metrics::counter!` and friends are
//! not used (they would go nowhere).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

pub use metrics::{Counter, Gauge, Histogram};
use metrics::{Key, KeyName, Label, Level, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

pub mod process;

static METADATA: Metadata<'static> = Metadata::new("wfl", Level::INFO, None);

/// Bucket boundaries of every `*_seconds` histogram: 0.5 ms to 5 min.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

/// Bucket boundaries of every `*_events` histogram (batch sizes): 1 to 4,096.
pub const EVENTS_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// A gauge series not set for this long disappears from `/metrics` (the per-subscriber series of
/// a subscription that ended). Every gauge is set at each scrape, so live ones never idle.
const GAUGE_IDLE: Duration = Duration::from_secs(15);

/// How often histogram samples are folded into their buckets between scrapes, so memory stays
/// bounded when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

type Collector = Box<dyn Fn(&Registry) + Send + Sync>;

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Run before each render: set gauges (and absolute counters) from shared state; each with
    /// the scope that registered it (0: the registry itself, see [`Registry::scoped`]).
    collectors: Mutex<Vec<(u64, Collector)>>,
}

/// Scope ids of [`Registry::scoped`] (0 is the unscoped registry).
static SCOPES: AtomicU64 = AtomicU64::new(1);

/// The metrics of one node (one process in production). Cheap to clone; every clone is the same
/// registry.
///
/// A part that runs several times in one process (each partition's ledger of a cluster
/// instance) registers through a [`Registry::scoped`] view: the same series, with its labels
/// (`partition="3"`) added to every one, and [`Registry::close`] when it stops.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
    /// Labels added to every series registered through this view.
    labels: Arc<[(&'static str, String)]>,
    /// 0 for the registry itself, else the scope of a [`Registry::scoped`] view.
    scope: u64,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

fn key(
    name: &'static str,
    scope: &[(&'static str, String)],
    labels: &[(&'static str, String)],
) -> Key {
    Key::from_parts(
        name,
        scope
            .iter()
            .chain(labels)
            .map(|(k, v)| Label::new(*k, v.clone()))
            .collect::<Vec<_>>(),
    )
}

impl Registry {
    /// A new, empty registry (with the process metrics).
    #[must_use]
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new()
            .idle_timeout(metrics_util::MetricKindMask::GAUGE, Some(GAUGE_IDLE))
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Suffix("_events".into()), EVENTS_BUCKETS)
            })
            .expect("constant, non-empty bucket lists");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let inner = Arc::new(Inner {
            recorder,
            handle,
            collectors: Mutex::new(Vec::new()),
        });
        spawn_upkeep(Arc::downgrade(&inner));
        let registry = Self {
            inner,
            labels: Arc::new([]),
            scope: 0,
        };
        process::register(&registry);
        registry
    }

    /// A view of this registry for one of several instances of a part: every series registered
    /// through it carries `labels` too. Call [`Registry::close`] when the part stops, to drop
    /// its scrape-time collectors (its gauges then leave `/metrics` once idle; its counters and
    /// histograms stay, as counters do).
    #[must_use]
    pub fn scoped(&self, labels: &[(&'static str, String)]) -> Registry {
        Registry {
            inner: self.inner.clone(),
            labels: self.labels.iter().chain(labels).cloned().collect(),
            scope: SCOPES.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Drops the scrape-time collectors registered through this scoped view (nothing for the
    /// registry itself).
    pub fn close(&self) {
        if self.scope != 0 {
            self.inner
                .collectors
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|(scope, _)| *scope != self.scope);
        }
    }

    /// The counter `name` (created on first use), described by `help`.
    pub fn counter(&self, name: &'static str, help: &'static str) -> Counter {
        self.counter_with(name, &[], help)
    }

    /// The counter `name{labels}`.
    pub fn counter_with(
        &self,
        name: &'static str,
        labels: &[(&'static str, String)],
        help: &'static str,
    ) -> Counter {
        let r = &self.inner.recorder;
        r.describe_counter(KeyName::from(name), None, SharedString::from(help));
        r.register_counter(&key(name, &self.labels, labels), &METADATA)
    }

    /// The gauge `name` (created on first use), described by `help`.
    pub fn gauge(&self, name: &'static str, help: &'static str) -> Gauge {
        self.gauge_with(name, &[], help)
    }

    /// The gauge `name{labels}`.
    pub fn gauge_with(
        &self,
        name: &'static str,
        labels: &[(&'static str, String)],
        help: &'static str,
    ) -> Gauge {
        let r = &self.inner.recorder;
        r.describe_gauge(KeyName::from(name), None, SharedString::from(help));
        r.register_gauge(&key(name, &self.labels, labels), &METADATA)
    }

    /// The histogram `name` (created on first use), described by `help`. Names ending in
    /// `_seconds` get [`SECONDS_BUCKETS`], names ending in `_events` [`EVENTS_BUCKETS`].
    pub fn histogram(&self, name: &'static str, help: &'static str) -> Histogram {
        self.histogram_with(name, &[], help)
    }

    /// The histogram `name{labels}`.
    pub fn histogram_with(
        &self,
        name: &'static str,
        labels: &[(&'static str, String)],
        help: &'static str,
    ) -> Histogram {
        let r = &self.inner.recorder;
        r.describe_histogram(KeyName::from(name), None, SharedString::from(help));
        r.register_histogram(&key(name, &self.labels, labels), &METADATA)
    }

    /// Runs `collect` before every render: for figures that live in shared state (a head
    /// sequence, a watch channel), set from it at scrape time instead of at every change. It is
    /// given this registry, for series whose labels are known only then (one per subscriber).
    /// Through a scoped view, `collect` is given that view (its series get the view's labels).
    pub fn on_scrape(&self, collect: impl Fn(&Registry) + Send + Sync + 'static) {
        let collect: Collector = if self.scope == 0 {
            Box::new(collect)
        } else {
            // The view holds the registry that holds this collector: `close` breaks the cycle.
            let view = self.clone();
            Box::new(move |_: &Registry| collect(&view))
        };
        self.inner
            .collectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((self.scope, collect));
    }

    /// The Prometheus text exposition of everything registered, after running the scrape-time
    /// collectors. Series come in no fixed order.
    #[must_use]
    pub fn render(&self) -> String {
        for collect in self
            .inner
            .collectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            collect.1(self);
        }
        self.inner.handle.render()
    }
}

/// A histogram bound to a registry after its owner was built (a part whose shared state is
/// created inside its `start`): samples recorded before the binding (a catch-up that starts at
/// once) are kept, up to [`HistogramSlot::EARLY`], and recorded when it is bound.
#[derive(Default)]
pub struct HistogramSlot {
    bound: std::sync::OnceLock<Histogram>,
    early: Mutex<Vec<f64>>,
}

impl std::fmt::Debug for HistogramSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistogramSlot")
            .field("bound", &self.bound.get().is_some())
            .finish_non_exhaustive()
    }
}

impl HistogramSlot {
    /// Samples kept before the binding, at most.
    pub const EARLY: usize = 1024;

    /// Binds the slot to `histogram` (the first binding stays) and records the early samples.
    pub fn bind(&self, histogram: Histogram) {
        let mut early = self.early.lock().unwrap_or_else(PoisonError::into_inner);
        if self.bound.set(histogram).is_ok() {
            if let Some(h) = self.bound.get() {
                for v in early.drain(..) {
                    h.record(v);
                }
            }
        }
    }

    /// Records `value`.
    pub fn record(&self, value: f64) {
        if let Some(h) = self.bound.get() {
            h.record(value);
            return;
        }
        let mut early = self.early.lock().unwrap_or_else(PoisonError::into_inner);
        // Bound meanwhile: record through the histogram, not into the drained buffer.
        if let Some(h) = self.bound.get() {
            h.record(value);
        } else if early.len() < Self::EARLY {
            early.push(value);
        }
    }

    /// Records the seconds since `micros` (µs since the Unix epoch; 0 for a time in the future).
    pub fn record_age_micros(&self, micros: i64) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        self.record(now.saturating_sub(micros).max(0) as f64 / 1e6);
    }
}

/// Folds histogram samples into buckets every [`UPKEEP_EVERY`] until the registry is dropped.
fn spawn_upkeep(inner: Weak<Inner>) {
    let _ = std::thread::Builder::new()
        .name("wfl-metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            match inner.upgrade() {
                Some(inner) => inner.handle.run_upkeep(),
                None => return,
            }
        });
}

/// Reads the value of an unlabelled series `name` from Prometheus text (tests and `wfl bench`).
#[must_use]
pub fn value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_histograms_and_process_figures() {
        let r = Registry::new();
        r.counter_with("wfl_x_total", &[("outcome", "committed".into())], "X.")
            .increment(3);
        r.gauge("wfl_y", "Y.").set(10.0);
        let h = r.histogram("wfl_z_seconds", "Z.");
        h.record(0.002);
        h.record(0.2);
        let b = r.histogram("wfl_b_events", "B.");
        b.record(100.0);
        let text = r.render();
        assert!(
            text.contains("wfl_x_total{outcome=\"committed\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE wfl_x_total counter"), "{text}");
        assert_eq!(value(&text, "wfl_y"), Some(10.0), "{text}");
        assert!(text.contains("wfl_y 10\n"), "{text}");
        assert_eq!(value(&text, "wfl_z_seconds_count"), Some(2.0), "{text}");
        assert!(
            text.contains("wfl_z_seconds_bucket{le=\"0.0025\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("wfl_b_events_bucket{le=\"128\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE wfl_z_seconds histogram"), "{text}");
        if cfg!(target_os = "linux") {
            for name in [
                "process_resident_memory_bytes",
                "process_open_fds",
                "process_start_time_seconds",
            ] {
                assert!(
                    value(&text, name).is_some_and(|v| v > 0.0),
                    "{name}: {text}"
                );
            }
            // A test process may not have used a whole tick (10 ms) of CPU yet.
            assert!(
                value(&text, "process_cpu_seconds_total").is_some_and(|v| v >= 0.0),
                "{text}"
            );
        }
    }

    #[test]
    fn two_registries_do_not_mix() {
        let (a, b) = (Registry::new(), Registry::new());
        a.counter("wfl_n_total", "N.").increment(1);
        assert_eq!(value(&a.render(), "wfl_n_total"), Some(1.0));
        assert_eq!(value(&b.render(), "wfl_n_total"), None);
    }

    #[test]
    fn a_slot_keeps_what_was_recorded_before_it_was_bound() {
        let r = Registry::new();
        let slot = HistogramSlot::default();
        slot.record(0.5);
        slot.bind(r.histogram("wfl_lag_seconds", "L."));
        slot.record(0.7);
        assert_eq!(value(&r.render(), "wfl_lag_seconds_count"), Some(2.0));
    }

    #[test]
    fn scrape_time_collectors_run_before_render() {
        let r = Registry::new();
        let state = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (g, s) = (r.gauge("wfl_head", "H."), state.clone());
        r.on_scrape(move |_| g.set(s.load(std::sync::atomic::Ordering::Relaxed) as f64));
        state.store(42, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(value(&r.render(), "wfl_head"), Some(42.0));
    }

    #[test]
    fn a_scoped_view_labels_its_series_and_drops_its_collectors_when_closed() {
        let r = Registry::new();
        let p3 = r.scoped(&[("partition", "3".into())]);
        p3.counter("wfl_c_total", "C.").increment(2);
        let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let c = calls.clone();
        p3.on_scrape(move |view| {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            view.gauge("wfl_g", "G.").set(7.0);
        });
        let text = r.render();
        assert!(text.contains("wfl_c_total{partition=\"3\"} 2\n"), "{text}");
        assert!(text.contains("wfl_g{partition=\"3\"} 7\n"), "{text}");
        p3.close();
        let _ = r.render();
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
