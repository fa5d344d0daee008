//! The LP lower bound of hourly cost: the cheapest *fractional* cover of the pods' total CPU and
//! memory by the offerings allowed. No packing can beat it, so plan cost over this bound is an
//! honest measure of packing loss.

use crate::resources::Resources;

/// Minimum of Σ xₜ·priceₜ subject to Σ xₜ·cpuₜ ≥ cpu, Σ xₜ·memₜ ≥ mem, xₜ ≥ 0.
///
/// With two constraints an optimal basic solution uses at most two types, so the optimum is the
/// best single type or pair. Types not on the Pareto front of (cpu per $, memory per $) can never
/// be in it, which keeps the pair search small.
pub fn fractional_cover(total: &Resources, offers: &[(&Resources, f64)]) -> f64 {
    let (cpu, mem) = (total.cpu() as f64, total.memory() as f64);
    if cpu <= 0.0 && mem <= 0.0 {
        return 0.0;
    }
    // (cpu per $, memory per $, price) for usable offers.
    let mut eff: Vec<(f64, f64, f64, f64)> = offers
        .iter()
        .filter(|(r, p)| *p > 0.0 && p.is_finite() && r.cpu() > 0 && r.memory() > 0)
        .map(|(r, p)| {
            (
                r.cpu() as f64 / p,
                r.memory() as f64 / p,
                r.cpu() as f64,
                r.memory() as f64,
            )
        })
        .collect();
    if eff.is_empty() {
        return f64::INFINITY;
    }
    // Pareto front: sort by cpu-efficiency descending, keep strictly rising memory-efficiency.
    eff.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.total_cmp(&a.1)));
    let mut front: Vec<(f64, f64)> = Vec::new();
    let mut best_mem = f64::NEG_INFINITY;
    for (ce, me, _, _) in eff {
        if me > best_mem {
            front.push((ce, me));
            best_mem = me;
        }
    }
    // In "per dollar" units each type costs 1 per unit bought.
    let mut best = f64::INFINITY;
    for &(ce, me) in &front {
        best = best.min((cpu / ce).max(mem / me));
    }
    for (i, &(ci, mi)) in front.iter().enumerate() {
        for &(cj, mj) in &front[i + 1..] {
            let det = ci * mj - cj * mi;
            if det.abs() < f64::EPSILON {
                continue;
            }
            let xi = (cpu * mj - mem * cj) / det;
            let xj = (mem * ci - cpu * mi) / det;
            if xi >= 0.0 && xj >= 0.0 {
                best = best.min(xi + xj);
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::ResourceName;

    fn res(cpu: i64, mem: i64) -> Resources {
        Resources::new()
            .with(ResourceName::Cpu, cpu)
            .with(ResourceName::Memory, mem)
    }

    #[test]
    fn lower_bound_of_one_type_is_the_fraction_needed() {
        let t = res(2000, 8);
        let b = fractional_cover(&res(3000, 4), &[(&t, 1.0)]);
        assert!((b - 1.5).abs() < 1e-9, "{b}");
    }

    #[test]
    fn lower_bound_mixes_two_types_when_that_is_cheaper() {
        // A CPU-rich and a memory-rich type; the demand needs both.
        let cpu_rich = res(4000, 2);
        let mem_rich = res(1000, 8);
        let b = fractional_cover(&res(5000, 10), &[(&cpu_rich, 1.0), (&mem_rich, 1.0)]);
        // x·4000 + y·1000 = 5000, x·2 + y·8 = 10 → x = 1, y = 1.
        assert!((b - 2.0).abs() < 1e-9, "{b}");
        let single = fractional_cover(&res(5000, 10), &[(&cpu_rich, 1.0)]);
        assert!(single > b);
    }

    #[test]
    fn nothing_to_cover_costs_nothing() {
        assert_eq!(fractional_cover(&Resources::new(), &[]), 0.0);
    }
}
