//! The views' pure fold under criterion: `Projection::apply_owned` over events of the
//! restructuring mix (`wfl load --mix restructuring`), in memory, no network, no store.
//!
//! Two cases, each folding the same 100,000 events per iteration into a state made before the
//! clock starts:
//! - `fold/empty`: into an empty projection;
//! - `fold/after_<N>`: into a projection that already holds N events of the same org (default
//!   1,000,000; `WFL_FOLD_BENCH_HELD=5000000` for 5M; a multiple of 10), nothing pending: the
//!   cost of a folded event at volume.
//!
//! Criterion runs each case many times in one process, so the allocator hands back memory it
//! has used before: this is the fold's own cost. `wfl bench fold` times one fold into memory the
//! process never touched (first-touch page faults included, as a projector catching up meets
//! them). Run: `cargo bench -p wfl-cli --bench fold` (BENCHMARKS.md, "The pure fold under
//! criterion").

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use wfl_cli::loadgen::{Generator, Mix};
use wfl_projections::views::Projection;

/// Events folded per iteration.
const STEP: u64 = 100_000;

/// A projection holding events `0..held` of `generator`'s org, folded as the follower does:
/// what changed is taken after each chunk (the follower's persist), so nothing is pending.
fn holding(generator: &Generator, held: u64) -> Projection {
    let mut p = Projection::new();
    let mut from = 0;
    while from < held {
        let to = (from + STEP).min(held);
        for (i, e) in generator.events(from, to).into_iter().enumerate() {
            p.apply_owned(from + i as u64 + 1, e);
        }
        drop(p.take_changes());
        from = to;
    }
    p
}

/// `WFL_FOLD_BENCH_HELD`, else 1,000,000: a whole number of the generator's blocks of ten (a
/// block's events refer to each other, so the events after the state start a block).
fn held() -> u64 {
    let held = match std::env::var("WFL_FOLD_BENCH_HELD") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("WFL_FOLD_BENCH_HELD={v:?} is not a number of events")),
        Err(_) => 1_000_000,
    };
    assert!(
        held % 10 == 0,
        "WFL_FOLD_BENCH_HELD={held} is not a multiple of 10 (the generator's blocks)"
    );
    held
}

fn fold(c: &mut Criterion) {
    let held = held();
    let generator =
        Generator::new(Mix::Restructuring, "bench", "criterion").expect("the bench org is valid");
    let mut group = c.benchmark_group("fold");
    group.throughput(Throughput::Elements(STEP));
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(10));

    let first = generator.events(0, STEP);
    group.bench_function("empty", |b| {
        b.iter_batched(
            || (Projection::new(), first.clone()),
            |(mut p, events)| {
                for (i, e) in events.into_iter().enumerate() {
                    p.apply_owned(i as u64 + 1, e);
                }
                p
            },
            BatchSize::PerIteration,
        );
    });
    drop(first);

    let base = holding(&generator, held);
    let next = generator.events(held, held + STEP);
    group.bench_function(format!("after_{held}"), |b| {
        b.iter_batched(
            || (base.clone(), next.clone()),
            |(mut p, events)| {
                for (i, e) in events.into_iter().enumerate() {
                    p.apply_owned(held + i as u64 + 1, e);
                }
                p
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, fold);
criterion_main!(benches);
