//! Scheduling throughput on the full embedded catalog: Karpenter's benchmark mix, pods without
//! constraints, and the spot + on-demand mix over both architectures.

use criterion::{Criterion, criterion_group, criterion_main};
use nodewright_core::benchmark::{self, Mix};
use nodewright_core::scheduler::schedule;

fn scheduling(c: &mut Criterion) {
    let mut group = c.benchmark_group("schedule");
    group.sample_size(10);
    for (count, mix, name) in [
        (1_000, Mix::Diverse, "diverse-1000"),
        (10_000, Mix::Diverse, "diverse-10000"),
        (20_000, Mix::Diverse, "diverse-20000"),
        (50_000, Mix::Diverse, "diverse-50000"),
        (10_000, Mix::Plain, "plain-10000"),
        (10_000, Mix::Mixed, "mixed-10000"),
    ] {
        let input = benchmark::input(count, mix, 42);
        group.bench_function(name, |b| b.iter(|| schedule(&input)));
    }
    group.finish();
}

criterion_group!(benches, scheduling);
criterion_main!(benches);
