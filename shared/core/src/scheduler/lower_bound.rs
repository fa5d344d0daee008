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
    Cover::new(offers).cost(total)
}

/// An optimal basis: (offer index, how many, price) for at most two offers.
pub type Basis = Vec<(usize, f64, f64)>;

/// The offers on the Pareto front of (cpu per $, memory per $), ready to price many totals.
pub struct Cover {
    /// (cpu per $, memory per $, index into the offers, price).
    front: Vec<(f64, f64, usize, f64)>,
}

impl Cover {
    pub fn new(offers: &[(&Resources, f64)]) -> Cover {
        let mut eff: Vec<(f64, f64, usize, f64)> = offers
            .iter()
            .enumerate()
            .filter(|(_, (r, p))| *p > 0.0 && p.is_finite() && r.cpu() > 0 && r.memory() > 0)
            .map(|(i, (r, p))| (r.cpu() as f64 / p, r.memory() as f64 / p, i, *p))
            .collect();
        // Sort by cpu-efficiency descending and keep strictly rising memory-efficiency. Ties
        // go to the lower index (the caller's order) so the answer is deterministic.
        eff.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.total_cmp(&a.1)).then(a.2.cmp(&b.2)));
        let mut front = Vec::new();
        let mut best_mem = f64::NEG_INFINITY;
        for e in eff {
            if e.1 > best_mem {
                front.push(e);
                best_mem = e.1;
            }
        }
        Cover { front }
    }

    /// The bound for `total`: infinite when no offer has both CPU and memory.
    pub fn cost(&self, total: &Resources) -> f64 {
        if total.cpu() <= 0 && total.memory() <= 0 {
            return 0.0;
        }
        self.optimal(total)
            .map_or(f64::INFINITY, |basis| basis.iter().map(|(_, x, p)| x * p).sum())
    }

    /// The optimal fractional cover: at most two (offer index, how many, price) triples.
    pub fn optimal(&self, total: &Resources) -> Option<Basis> {
        let (cpu, mem) = (total.cpu() as f64, total.memory() as f64);
        // In "per dollar" units each type costs 1 per unit bought.
        let mut best: Option<(f64, Basis)> = None;
        let mut consider = |cost: f64, basis: Basis| {
            if best.as_ref().is_none_or(|(b, _)| cost < *b) {
                best = Some((cost, basis));
            }
        };
        for &(ce, me, i, p) in &self.front {
            let units = (cpu / ce).max(mem / me);
            consider(units, vec![(i, units / p, p)]);
        }
        for (k, &(ci, mi, i, pi)) in self.front.iter().enumerate() {
            for &(cj, mj, j, pj) in &self.front[k + 1..] {
                let det = ci * mj - cj * mi;
                if det.abs() < f64::EPSILON {
                    continue;
                }
                let xi = (cpu * mj - mem * cj) / det;
                let xj = (mem * ci - cpu * mi) / det;
                if xi >= 0.0 && xj >= 0.0 {
                    consider(xi + xj, vec![(i, xi / pi, pi), (j, xj / pj, pj)]);
                }
            }
        }
        best.map(|(_, basis)| basis)
    }
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
