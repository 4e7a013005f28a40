//! Token rotation without a restart: the tokens file is read again when it changes (checked every
//! couple of seconds: modification time and size) or when the process gets `SIGHUP`.
//!
//! A file that no longer parses is not applied: one ERROR names the file and the reason, and the
//! tokens in force stay so (a typo must not lock every client out, nor open the door). Calls
//! already admitted finish as the principal they were admitted as.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

use crate::{Guard, Tokens};

/// How often the file's modification time and size are looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Keeps `guard` in step with the tokens file at `path` until the guard is dropped. Does nothing
/// when authentication is off or there is no runtime.
pub fn watch(path: PathBuf, guard: &Guard) {
    let Some(slot) = guard.slot() else {
        return;
    };
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(run(path, Arc::downgrade(&slot)));
}

/// The file's modification time and size, which change when it is rewritten.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

async fn run(path: PathBuf, slot: Weak<RwLock<Arc<Tokens>>>) {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut last = stamp(&path);
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let asked = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => true,
        };
        let Some(slot) = slot.upgrade() else {
            return; // the server is gone
        };
        let now = stamp(&path);
        if !asked && now == last {
            continue;
        }
        last = now;
        let guard = Guard::from_slot(slot);
        match load(&path) {
            Ok(tokens) => {
                let principals = tokens.len();
                guard.replace(tokens);
                tracing::info!(
                    path = %path.display(),
                    principals,
                    trigger = if asked { "SIGHUP" } else { "file changed" },
                    "tokens file reloaded; later calls are checked against it"
                );
            }
            Err(reason) => tracing::error!(
                path = %path.display(),
                %reason,
                "tokens file not reloaded; the tokens in force stay so until it is fixed"
            ),
        }
    }
}

/// Reads and parses a tokens file.
///
/// # Errors
/// The file cannot be read or does not parse, in one line.
pub fn load(path: &Path) -> Result<Tokens, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    Tokens::parse(&text).map_err(|e| e.to_string())
}
