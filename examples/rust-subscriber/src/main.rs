//! An analytics subscriber to copy: follows the wfl ledger over gRPC `Ledger.Subscribe` and keeps
//! its position in a checkpoint file, so a restart resumes exactly after the last event it
//! handled.
//!
//! Delivery is at-least-once per event handled: the checkpoint is written after `handle`, so a
//! crash between the two replays that one event. Make `handle` idempotent on `sequence` (or store
//! the checkpoint in the same transaction as your own writes) to get exactly-once.
//!
//! ```sh
//! cargo run -p wfl-example-subscriber -- --addr http://127.0.0.1:50051 --checkpoint ./position
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use wfl_proto::pb;

#[derive(Parser)]
struct Args {
    /// The wfl gRPC endpoint (wfl up, or wfl-ledger).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    addr: String,
    /// File holding the last handled sequence.
    #[arg(long, default_value = "./wfl-subscriber.checkpoint")]
    checkpoint: PathBuf,
    /// Only these orgs (repeatable).
    #[arg(long)]
    org: Vec<String>,
    /// Stop after this many events (default: run forever).
    #[arg(long)]
    count: Option<u64>,
}

fn read_checkpoint(path: &Path) -> anyhow::Result<u64> {
    match std::fs::read_to_string(path) {
        Ok(s) => s
            .trim()
            .parse()
            .with_context(|| format!("{} does not hold a sequence", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes the checkpoint atomically (temp file + rename), so a crash never leaves half a number.
fn write_checkpoint(path: &Path, sequence: u64) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{sequence}\n"))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Your analytics go here. This one prints a line per event.
fn handle(event: &pb::CommittedEvent) {
    let e = event.event.as_ref();
    let kind = e
        .and_then(|e| e.payload.as_ref())
        .and_then(|p| p.kind.as_ref())
        .map_or("?".to_owned(), |k| {
            let debug = format!("{k:?}");
            debug.split('(').next().unwrap_or("?").to_owned()
        });
    println!(
        "{} {} {} {} {}",
        event.sequence,
        e.map_or("", |e| e.org_id.as_str()),
        kind,
        e.map_or("", |e| e.event_id.as_str()),
        hex::encode(&event.hash)
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut handled = 0u64;
    loop {
        let last = read_checkpoint(&args.checkpoint)?;
        let request = pb::SubscribeRequest {
            from_sequence: last + 1,
            org_ids: args.org.clone(),
            ..Default::default()
        };
        let stream = async {
            let mut client = pb::ledger_client::LedgerClient::connect(args.addr.clone()).await?;
            Ok::<_, anyhow::Error>(client.subscribe(request).await?.into_inner())
        };
        let mut stream = match stream.await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("subscribe failed ({e}); retrying in 1s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            match stream.message().await {
                Ok(Some(pb::SubscribeResponse {
                    kind: Some(pb::subscribe_response::Kind::Event(event)),
                })) => {
                    handle(&event);
                    write_checkpoint(&args.checkpoint, event.sequence)?;
                    handled += 1;
                    if args.count.is_some_and(|n| handled >= n) {
                        return Ok(());
                    }
                }
                // Heartbeats say the stream is alive and where the head is.
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(status) => {
                    eprintln!("stream ended: {status}; resuming from the checkpoint");
                    break;
                }
            }
        }
    }
}
