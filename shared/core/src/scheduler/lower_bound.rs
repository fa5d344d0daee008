//! The LP lower bound of hourly cost: the cheapest *fractional* cover of the pods' total CPU,
//! memory and pod slots by the offerings allowed. No packing can beat it, so plan cost over
//! this bound is an honest measure of packing loss. Pod slots count: small pods on small types
//! run out of slots (a t3.micro holds 4 pods) long before CPU or memory.

use crate::resources::{ResourceName, Resources};

/// Minimum of Σ xₜ·priceₜ subject to Σ xₜ·cpuₜ ≥ cpu, Σ xₜ·memₜ ≥ mem, Σ xₜ·podsₜ ≥ pods,
/// xₜ ≥ 0.
pub fn fractional_cover(total: &Resources, offers: &[(&Resources, f64)]) -> f64 {
    Cover::new(offers).cost(total)
}

/// The smallest CPU and the smallest memory any of the pods asks for (each `0` when some pod
/// asks for none), as a resource vector.
pub fn smallest<'r>(requests: impl IntoIterator<Item = &'r Resources>) -> Resources {
    let (mut cpu, mut mem) = (i64::MAX, i64::MAX);
    for r in requests {
        cpu = cpu.min(r.cpu());
        mem = mem.min(r.memory());
    }
    let mut out = Resources::new();
    out.set(ResourceName::Cpu, if cpu == i64::MAX { 0 } else { cpu });
    out.set(ResourceName::Memory, if mem == i64::MAX { 0 } else { mem });
    out
}

/// A type's room as whole pods can use it: no more pod slots than pods of the `smallest` size
/// fit in its CPU and in its memory. Still a true bound (no node holds more pods than that), and
/// a much closer one when every pod is large for the type (two 2-CPU pods never share a
/// 3.9-CPU node, however cheap its spare CPU).
pub fn usable_by_pods(room: &Resources, smallest: &Resources) -> Resources {
    let mut slots = room.pods();
    if smallest.cpu() > 0 {
        slots = slots.min(room.cpu() / smallest.cpu());
    }
    if smallest.memory() > 0 {
        slots = slots.min(room.memory() / smallest.memory());
    }
    let mut out = room.clone();
    out.set(ResourceName::Pods, slots.max(0));
    out
}

/// The bound for a round's pods (their requests) over the offers (usable room, price): the
/// largest of the fractional covers of the pods of the largest shapes alone, each by only the
/// offers that fit one of those shapes. Each is a true bound — big pods need types that hold
/// them, whatever small types cost — and the largest of them is the closest.
pub fn round_bound(pods: &[&Resources], offers: &[(&Resources, f64)]) -> f64 {
    // Distinct shapes with their counts.
    let mut sorted: Vec<&Resources> = pods.to_vec();
    sorted.sort_by(|a, b| b.cpu().cmp(&a.cpu()).then(b.memory().cmp(&a.memory())));
    let mut shapes: Vec<(&Resources, i64)> = Vec::new();
    for p in sorted {
        match shapes.last_mut() {
            Some((s, n)) if *s == p => *n += 1,
            _ => shapes.push((p, 1)),
        }
    }
    let mut by_memory = shapes.clone();
    by_memory.sort_by(|a, b| b.0.memory().cmp(&a.0.memory()).then(b.0.cpu().cmp(&a.0.cpu())));
    // Prefixes of the shapes by CPU and by memory; a handful of them keeps the work small.
    let steps = |n: usize| -> Vec<usize> {
        let mut out: Vec<usize> = (1..=PREFIXES).map(|i| (n * i).div_ceil(PREFIXES)).collect();
        out.dedup();
        out
    };
    let mut best = 0.0f64;
    for order in [&shapes, &by_memory] {
        for k in steps(order.len()) {
            let chosen = &order[..k];
            let mut total = Resources::new();
            for (shape, n) in chosen {
                for _ in 0..*n {
                    total.add(shape);
                }
            }
            let least = smallest(chosen.iter().map(|(s, _)| *s));
            let rooms: Vec<(Resources, f64)> = offers
                .iter()
                .filter(|(room, _)| chosen.iter().any(|(s, _)| room.fits(s)))
                .map(|(room, price)| (usable_by_pods(room, &least), *price))
                .collect();
            let refs: Vec<(&Resources, f64)> = rooms.iter().map(|(r, p)| (r, *p)).collect();
            let cost = fractional_cover(&total, &refs);
            if cost.is_finite() {
                best = best.max(cost);
            }
        }
    }
    best
}

/// How many prefixes of the shapes [`round_bound`] tries in each order.
const PREFIXES: usize = 6;

/// An optimal basis: (offer index, how many, price) for at most three offers.
pub type Basis = Vec<(usize, f64, f64)>;

/// The dimensions covered: CPU, memory, pod slots.
const DIMS: usize = 3;

/// The offers that can be in an optimal cover, ready to price many totals.
pub struct Cover {
    /// (what one dollar buys of each dimension, index into the offers, price): offers no other
    /// offer beats per dollar in every dimension at once.
    front: Vec<([f64; DIMS], usize, f64)>,
}

fn amounts(r: &Resources) -> [f64; DIMS] {
    [r.cpu() as f64, r.memory() as f64, r.pods() as f64]
}

impl Cover {
    pub fn new(offers: &[(&Resources, f64)]) -> Cover {
        let valid: Vec<([f64; DIMS], usize, f64)> = offers
            .iter()
            .enumerate()
            .filter(|(_, (r, p))| *p > 0.0 && p.is_finite() && r.cpu() > 0 && r.memory() > 0 && r.pods() > 0)
            .map(|(i, (r, p))| (amounts(r).map(|a| a / p), i, *p))
            .collect();
        // An offer another one matches or beats per dollar in every dimension is never needed.
        // Taken in falling order of the first dimension, an offer can only be beaten by one
        // already kept (whoever beats a dropped offer beats it too).
        let mut valid = valid;
        valid.sort_by(|a, b| {
            (0..DIMS)
                .map(|k| b.0[k].total_cmp(&a.0[k]))
                .fold(std::cmp::Ordering::Equal, std::cmp::Ordering::then)
                .then(a.1.cmp(&b.1))
        });
        let mut front: Vec<([f64; DIMS], usize, f64)> = Vec::new();
        for b in valid {
            if !front.iter().any(|a| (0..DIMS).all(|k| a.0[k] >= b.0[k])) {
                front.push(b);
            }
        }
        Cover { front }
    }

    /// The bound for `total`: infinite when no offer covers it.
    pub fn cost(&self, total: &Resources) -> f64 {
        if total.cpu() <= 0 && total.memory() <= 0 && total.pods() <= 0 {
            return 0.0;
        }
        self.optimal(total)
            .map_or(f64::INFINITY, |basis| basis.iter().map(|(_, x, p)| x * p).sum())
    }

    /// The optimal fractional cover: at most three (offer index, how many, price) triples.
    ///
    /// Solved as its dual — maximize Σ totalₖ·yₖ subject to Σₖ (what a dollar of each offer
    /// buys)ₖ·yₖ ≤ 1 — by the simplex method on a dictionary with one row per offer and one
    /// column per dimension. Each dimension is measured as a share of the total, so that
    /// millicores, bytes and pod counts meet on one scale.
    pub fn optimal(&self, total: &Resources) -> Option<Basis> {
        self.solve(total).map(|(basis, _)| basis)
    }

    /// What a unit of CPU, memory and pod slot is worth at the optimum for `total` (the dual
    /// prices, in dollars per millicore, byte and slot): what one more of each would cost.
    pub fn prices(&self, total: &Resources) -> Option<[f64; DIMS]> {
        self.solve(total).map(|(_, prices)| prices)
    }

    /// The value of `used` at these prices.
    pub fn value(prices: &[f64; DIMS], used: &Resources) -> f64 {
        amounts(used).iter().zip(prices).map(|(a, p)| a * p).sum()
    }

    fn solve(&self, total: &Resources) -> Option<(Basis, [f64; DIMS])> {
        let want = amounts(total);
        let scale = want.map(|w| if w > 0.0 { w } else { 1.0 });
        let b: [f64; DIMS] = std::array::from_fn(|k| if want[k] > 0.0 { 1.0 } else { 0.0 });
        // Row r: slack_r = constant + Σ coef[k]·(nonbasic k); slack ids are DIMS + offer row.
        let mut rows: Vec<(usize, f64, [f64; DIMS])> = self
            .front
            .iter()
            .enumerate()
            .map(|(r, (per_dollar, _, _))| {
                (DIMS + r, 1.0, std::array::from_fn(|k| -per_dollar[k] / scale[k]))
            })
            .collect();
        let mut nonbasic: [usize; DIMS] = std::array::from_fn(|k| k);
        let (mut z, mut obj) = (0.0f64, b);
        const EPS: f64 = 1e-12;
        for _ in 0..1000 {
            // Bland's rule: the lowest-numbered improving variable enters, the lowest-numbered
            // tied row leaves, so the method cannot cycle.
            let Some(k) = (0..DIMS).filter(|k| obj[*k] > EPS).min_by_key(|k| nonbasic[*k]) else {
                break;
            };
            let leave = rows
                .iter()
                .enumerate()
                .filter(|(_, row)| row.2[k] < -EPS)
                .map(|(r, row)| (row.1 / -row.2[k], row.0, r))
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))?;
            let r = leave.2;
            let (basic, c, a) = rows[r];
            let pivot = a[k];
            let mut new = [0.0; DIMS];
            for j in 0..DIMS {
                new[j] = if j == k { 1.0 / pivot } else { -a[j] / pivot };
            }
            let new_c = -c / pivot;
            for (i, row) in rows.iter_mut().enumerate() {
                if i == r {
                    continue;
                }
                let f = row.2[k];
                if f == 0.0 {
                    continue;
                }
                row.1 += f * new_c;
                for j in 0..DIMS {
                    row.2[j] = if j == k { f * new[k] } else { row.2[j] + f * new[j] };
                }
            }
            let f = obj[k];
            z += f * new_c;
            for j in 0..DIMS {
                obj[j] = if j == k { f * new[k] } else { obj[j] + f * new[j] };
            }
            rows[r] = (nonbasic[k], new_c, new);
            nonbasic[k] = basic;
        }
        if z <= 0.0 {
            return None;
        }
        // The dollars spent on an offer are the dual value of its row: minus the objective
        // coefficient of its slack, where that slack is nonbasic.
        let basis: Basis = (0..DIMS)
            .filter(|k| nonbasic[*k] >= DIMS && -obj[*k] > EPS)
            .map(|k| {
                let (_, index, price) = self.front[nonbasic[k] - DIMS];
                (index, -obj[k] / price, price)
            })
            .collect();
        // The dual values: a dimension's variable where it is basic, 0 where not.
        let mut prices = [0.0; DIMS];
        for (basic, c, _) in &rows {
            if *basic < DIMS {
                prices[*basic] = c / scale[*basic];
            }
        }
        (!basis.is_empty()).then_some((basis, prices))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(cpu: i64, mem: i64) -> Resources {
        Resources::new()
            .with(ResourceName::Cpu, cpu)
            .with(ResourceName::Memory, mem)
            .with(ResourceName::Pods, 1)
    }

    fn with_pods(cpu: i64, mem: i64, pods: i64) -> Resources {
        Resources::new()
            .with(ResourceName::Cpu, cpu)
            .with(ResourceName::Memory, mem)
            .with(ResourceName::Pods, pods)
    }

    #[test]
    fn pod_slots_bound_the_cover_when_small_pods_outnumber_them() {
        // 100 tiny pods: CPU and memory would fit one big node's worth of small ones, but each
        // small node holds 4 pods; the big one holds 110 and costs 10 times as much.
        let small = with_pods(2000, 1 << 30, 4);
        let big = with_pods(8000, 4 << 30, 110);
        let demand = with_pods(10_000, 10 << 28, 100);
        let b = fractional_cover(&demand, &[(&small, 1.0), (&big, 10.0)]);
        // Slots: 100/4 = 25 small nodes ($25) or 100/110 big ($9.09); CPU needs 1.25 big
        // nodes ($12.5); a mix does better than either alone.
        assert!((100.0 / 110.0 * 10.0 - 1e-9..12.5 + 1e-9).contains(&b), "{b}");
        let cpu_only = with_pods(10_000, 10 << 28, 0);
        assert!(fractional_cover(&cpu_only, &[(&small, 1.0), (&big, 10.0)]) < b);
    }

    #[test]
    fn the_cover_agrees_with_a_brute_force_over_every_triple_of_types() {
        // Small random instances: the simplex optimum equals the best basic solution found by
        // trying every set of up to three offers.
        let mut seed = 1u64;
        let mut draw = |n: i64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            1 + ((seed >> 33) as i64 % n)
        };
        for _ in 0..200 {
            let offers: Vec<(Resources, f64)> = (0..6)
                .map(|_| {
                    (
                        with_pods(draw(64) * 1000, draw(256) << 28, draw(110)),
                        draw(100) as f64 / 10.0,
                    )
                })
                .collect();
            let demand = with_pods(draw(500) * 1000, draw(2000) << 28, draw(800));
            let refs: Vec<(&Resources, f64)> = offers.iter().map(|(r, p)| (r, *p)).collect();
            let lp = fractional_cover(&demand, &refs);
            let best = brute_force(&demand, &offers);
            assert!(
                (lp - best).abs() <= 1e-6 * best.max(1.0),
                "simplex {lp} vs brute force {best}"
            );
        }
    }

    /// The cheapest cover using at most three offers, each set solved exactly (Cramer's rule on
    /// the tight constraints, every choice of which constraints are tight).
    fn brute_force(demand: &Resources, offers: &[(Resources, f64)]) -> f64 {
        let want = amounts(demand);
        let n = offers.len();
        let mut best = f64::INFINITY;
        let cover_cost = |x: &[(usize, f64)]| -> Option<f64> {
            if x.iter().any(|(_, v)| *v < -1e-9) {
                return None;
            }
            let covered = (0..DIMS).all(|k| {
                let got: f64 = x.iter().map(|(i, v)| v * amounts(&offers[*i].0)[k]).sum();
                got >= want[k] * (1.0 - 1e-9)
            });
            covered.then(|| x.iter().map(|(i, v)| v * offers[*i].1).sum())
        };
        // One offer: enough of it for every dimension.
        for (i, offer) in offers.iter().enumerate() {
            let a = amounts(&offer.0);
            let v = (0..DIMS).map(|k| want[k] / a[k]).fold(0.0, f64::max);
            best = best.min(cover_cost(&[(i, v)]).unwrap_or(f64::INFINITY));
        }
        // Two or three offers: solve with that many constraints tight.
        let dims: Vec<Vec<usize>> = vec![vec![0, 1], vec![0, 2], vec![1, 2]];
        for i in 0..n {
            for j in i + 1..n {
                for d in &dims {
                    let (a, b) = (amounts(&offers[i].0), amounts(&offers[j].0));
                    let det = a[d[0]] * b[d[1]] - b[d[0]] * a[d[1]];
                    if det.abs() < 1e-12 {
                        continue;
                    }
                    let x = (want[d[0]] * b[d[1]] - b[d[0]] * want[d[1]]) / det;
                    let y = (a[d[0]] * want[d[1]] - want[d[0]] * a[d[1]]) / det;
                    best = best.min(cover_cost(&[(i, x), (j, y)]).unwrap_or(f64::INFINITY));
                }
                for l in j + 1..n {
                    let (a, b, c) = (
                        amounts(&offers[i].0),
                        amounts(&offers[j].0),
                        amounts(&offers[l].0),
                    );
                    let m = [[a[0], b[0], c[0]], [a[1], b[1], c[1]], [a[2], b[2], c[2]]];
                    let det3 = |m: &[[f64; 3]; 3]| {
                        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
                            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
                            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
                    };
                    let d = det3(&m);
                    if d.abs() < 1e-12 {
                        continue;
                    }
                    let solve = |col: usize| {
                        let mut mc = m;
                        for (row, w) in mc.iter_mut().zip(want) {
                            row[col] = w;
                        }
                        det3(&mc) / d
                    };
                    let x = [(i, solve(0)), (j, solve(1)), (l, solve(2))];
                    best = best.min(cover_cost(&x).unwrap_or(f64::INFINITY));
                }
            }
        }
        best
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
