//! Progress bars of the long-running client commands (`wfl import`, `wfl demo`), drawn with
//! `indicatif` on stderr and only when stderr is a terminal: redirected output and logs stay
//! clean, and the summary is printed either way.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar over `total` units (`events` or bytes of a file), hidden off a terminal or when not
/// `wanted`.
#[must_use]
pub fn bar(total: u64, unit: Unit, wanted: bool) -> ProgressBar {
    let target = if wanted {
        // `stderr()` draws nothing when stderr is not a terminal.
        ProgressDrawTarget::stderr_with_hz(5)
    } else {
        ProgressDrawTarget::hidden()
    };
    let template = match unit {
        Unit::Events => "{msg} [{bar:40}] {pos}/{len} events ({per_sec}, {eta} left)",
        Unit::Bytes => "{msg} [{bar:40}] {percent:>3}% of {total_bytes} ({eta} left)",
    };
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("#>-");
    ProgressBar::with_draw_target(Some(total), target).with_style(style)
}

/// What a bar counts.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    /// Events recorded.
    Events,
    /// Bytes of an input file read.
    Bytes,
}
