//! A closer lower bound for rounds with few pod shapes: the configuration LP of bin packing.
//!
//! The fractional cover ([`super::lower_bound`]) lets pods share CPU and memory across nodes,
//! so it buys, say, half CPU-rich and half memory-rich nodes for pods that need 4 GiB per CPU
//! and can each sit on only one of them; and it buys burstable types whose room no whole pod
//! can use. Here a node of type `t` holds a *pattern*: `yₛ` pods of each shape `s`, within the
//! type's CPU, memory and pod slots, and never more of one shape than fit alone (`kₛ,ₜ`). The
//! bound is the LP `min Σ cₜ·λₚ` over patterns covering every shape's count.
//!
//! It is solved from its dual, `max Σ nₛ·uₛ` with `Σ yₛ·uₛ ≤ cₜ` for every pattern (a packing
//! LP, feasible at `u = 0`), by generating patterns: each round, every type's most valuable
//! pattern at the current `u` (a small LP) becomes a constraint if it is violated. Whatever the
//! round, `u` scaled down by the worst violation is dual feasible for *every* pattern, so the
//! bound returned is valid even when the rounds run out before the LP is solved.

use crate::resources::Resources;

/// Rounds with more distinct shapes are left to the fractional cover: the LP grows with them.
pub const MAX_SHAPES: usize = 16;

/// Pattern-generation rounds at most.
const MAX_ROUNDS: usize = 30;

/// Patterns added per round at most: the most violated ones.
const PATTERNS_PER_ROUND: usize = 12;

/// Relative violation below which a pattern is taken as satisfied.
const TOLERANCE: f64 = 1e-7;

/// A type that can hold some shape: its price and what one node of it holds at most.
struct NodeType {
    price: f64,
    /// Per dimension (CPU, memory, slots), each shape's share of the node's room.
    shares: [Vec<f64>; 3],
    /// Per shape, how many fit alone.
    caps: Vec<f64>,
}

/// The bound for `shapes` (requests, count) over `offers` (usable room, price); `0` when it does
/// not apply (too many shapes, or some shape fits no offer).
pub fn packing_bound(shapes: &[(&Resources, usize)], offers: &[(&Resources, f64)]) -> f64 {
    if shapes.is_empty() || shapes.len() > MAX_SHAPES {
        return 0.0;
    }
    let types = node_types(shapes, offers);
    // A shape no type takes: no packing exists to bound.
    if (0..shapes.len()).any(|s| types.iter().all(|t| t.caps[s] < 1.0)) {
        return 0.0;
    }
    let counts: Vec<f64> = shapes.iter().map(|(_, n)| *n as f64).collect();
    // Start from single-shape patterns: for each shape, the type that holds it cheapest per
    // pod when full of it (the other single-shape patterns are implied by that one).
    let mut patterns: Vec<(Vec<f64>, f64)> = Vec::new();
    for s in 0..shapes.len() {
        let cheapest = types
            .iter()
            .filter(|t| t.caps[s] >= 1.0)
            .min_by(|a, b| (a.price / a.caps[s]).total_cmp(&(b.price / b.caps[s])));
        if let Some(t) = cheapest {
            let mut y = vec![0.0; shapes.len()];
            y[s] = t.caps[s];
            patterns.push((y, t.price));
        }
    }
    let mut best = 0.0f64;
    for _ in 0..MAX_ROUNDS {
        let rows: Vec<Vec<f64>> = patterns.iter().map(|(y, _)| y.clone()).collect();
        let rhs: Vec<f64> = patterns.iter().map(|(_, c)| *c).collect();
        let Some((u, value)) = maximize(&counts, &rows, &rhs) else {
            break;
        };
        let mut worst = 1.0f64;
        let mut violated: Vec<(f64, Vec<f64>, f64)> = Vec::new();
        for t in &types {
            // Should the small LP fail, every shape at its cap is worth at least as much as any
            // pattern: the scaling stays valid, only less tight.
            let (y, v) = best_pattern(t, &u).unwrap_or_else(|| {
                let y: Vec<f64> = t.caps.clone();
                let v = y.iter().zip(&u).map(|(a, b)| a * b).sum();
                (y, v)
            });
            let ratio = v / t.price;
            worst = worst.max(ratio);
            if ratio > 1.0 + TOLERANCE {
                violated.push((ratio, y, t.price));
            }
        }
        best = best.max(value / worst);
        if violated.is_empty() {
            break;
        }
        violated.sort_by(|a, b| b.0.total_cmp(&a.0));
        patterns.extend(
            violated
                .into_iter()
                .take(PATTERNS_PER_ROUND)
                .map(|(_, y, c)| (y, c)),
        );
    }
    // Floating point may put an optimal plan a rounding error below the LP's value.
    best * (1.0 - 1e-9)
}

/// The offers that can hold some shape, less those another offer matches in every dimension
/// for no more money (never needed in a cheapest packing).
fn node_types(shapes: &[(&Resources, usize)], offers: &[(&Resources, f64)]) -> Vec<NodeType> {
    let dims = |r: &Resources| [r.cpu() as f64, r.memory() as f64, r.pods() as f64];
    let mut kept: Vec<([f64; 3], f64)> = Vec::new();
    let mut valid: Vec<([f64; 3], f64)> = offers
        .iter()
        .filter(|(_, p)| *p > 0.0 && p.is_finite())
        .map(|(r, p)| (dims(r), *p))
        .collect();
    valid.sort_by(|a, b| a.1.total_cmp(&b.1));
    for (room, price) in valid {
        if !kept
            .iter()
            .any(|(r, p)| *p <= price && (0..3).all(|k| r[k] >= room[k]))
        {
            kept.push((room, price));
        }
    }
    kept.into_iter()
        .filter_map(|(room, price)| {
            let shares: [Vec<f64>; 3] = std::array::from_fn(|k| {
                shapes
                    .iter()
                    .map(|(r, _)| {
                        let need = dims(r)[k];
                        if need <= 0.0 {
                            0.0
                        } else if room[k] <= 0.0 {
                            f64::INFINITY
                        } else {
                            need / room[k]
                        }
                    })
                    .collect()
            });
            let caps: Vec<f64> = (0..shapes.len())
                .map(|s| {
                    (0..3)
                        .map(|k| shares[k][s])
                        .filter(|x| *x > 0.0)
                        .map(|x| (1.0 / x + 1e-9).floor())
                        .fold(f64::INFINITY, f64::min)
                })
                .map(|c| if c.is_finite() { c.max(0.0) } else { 0.0 })
                .collect();
            caps.iter()
                .any(|c| *c >= 1.0)
                .then_some(NodeType { price, shares, caps })
        })
        .collect()
}

/// The most valuable pattern of type `t` at prices `u`: `max u·y` within the node's room and
/// each shape's cap, fractional.
fn best_pattern(t: &NodeType, u: &[f64]) -> Option<(Vec<f64>, f64)> {
    let n = u.len();
    let mut rows: Vec<Vec<f64>> = t.shares.to_vec();
    let mut rhs = vec![1.0; 3];
    for (s, &cap) in t.caps.iter().enumerate() {
        let mut row = vec![0.0; n];
        row[s] = 1.0;
        rows.push(row);
        rhs.push(cap);
    }
    // A shape that does not fit alone cannot be on the node at all.
    let objective: Vec<f64> = u
        .iter()
        .zip(&t.caps)
        .map(|(v, c)| if *c >= 1.0 { *v } else { 0.0 })
        .collect();
    maximize(&objective, &rows, &rhs)
}

/// `max c·x` subject to `A·x ≤ b`, `x ≥ 0`, for `b ≥ 0` (so `x = 0` is feasible): the primal
/// simplex on a dense tableau, entering the most improving column, and by Bland's rule (which
/// never cycles) after a degenerate stretch. `None` when unbounded or out of iterations.
fn maximize(c: &[f64], a: &[Vec<f64>], b: &[f64]) -> Option<(Vec<f64>, f64)> {
    const EPS: f64 = 1e-12;
    let (m, n) = (a.len(), c.len());
    let width = n + m + 1;
    let mut tab: Vec<Vec<f64>> = a
        .iter()
        .zip(b)
        .enumerate()
        .map(|(i, (row, &bi))| {
            let mut r = vec![0.0; width];
            r[..n].copy_from_slice(&row[..n]);
            r[n + i] = 1.0;
            r[width - 1] = bi.max(0.0);
            r
        })
        .collect();
    // Reduced costs of the objective row (to maximize: negative means improving).
    let mut z: Vec<f64> = vec![0.0; width];
    for j in 0..n {
        z[j] = -c[j];
    }
    let mut basis: Vec<usize> = (n..n + m).collect();
    let tolerance = -EPS * (1.0 + c.iter().fold(0.0f64, |a, v| a.max(v.abs())));
    let mut stalled = 0usize;
    for _ in 0..50 * (m + n + 1) {
        let enter = if stalled < 2 * (m + n) {
            (0..width - 1)
                .filter(|&j| z[j] < tolerance)
                .min_by(|&a, &b| z[a].total_cmp(&z[b]))
        } else {
            (0..width - 1).find(|&j| z[j] < tolerance)
        };
        let Some(enter) = enter else {
            let mut x = vec![0.0; n];
            for (i, &v) in basis.iter().enumerate() {
                if v < n {
                    x[v] = tab[i][width - 1];
                }
            }
            return Some((x, z[width - 1]));
        };
        let mut leave: Option<(f64, usize)> = None;
        for (i, row) in tab.iter().enumerate() {
            if row[enter] > EPS {
                let ratio = row[width - 1] / row[enter];
                let better = match leave {
                    None => true,
                    Some((r, l)) => ratio < r - EPS || (ratio <= r + EPS && basis[i] < basis[l]),
                };
                if better {
                    leave = Some((ratio, i));
                }
            }
        }
        let (step, l) = leave?;
        if step <= EPS {
            stalled += 1;
        } else {
            stalled = 0;
        }
        let pivot = tab[l][enter];
        for v in tab[l].iter_mut() {
            *v /= pivot;
        }
        let pivot_row = tab[l].clone();
        for (i, row) in tab.iter_mut().enumerate() {
            if i != l && row[enter].abs() > 0.0 {
                let f = row[enter];
                for (v, p) in row.iter_mut().zip(&pivot_row) {
                    *v -= f * p;
                }
            }
        }
        let f = z[enter];
        for (v, p) in z.iter_mut().zip(&pivot_row) {
            *v -= f * p;
        }
        basis[l] = enter;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(cpu: i64, mem_gib: i64, pods: i64) -> Resources {
        let mut r = Resources::new();
        r.set(crate::resources::ResourceName::Cpu, cpu);
        r.set(crate::resources::ResourceName::Memory, mem_gib << 30);
        r.set(crate::resources::ResourceName::Pods, pods);
        r
    }

    #[test]
    fn the_simplex_solves_a_small_packing_lp() {
        // max 3x + 2y, x + y ≤ 4, x + 3y ≤ 6, x ≤ 3 → x = 3, y = 1, value 11.
        let (x, v) = maximize(
            &[3.0, 2.0],
            &[vec![1.0, 1.0], vec![1.0, 3.0], vec![1.0, 0.0]],
            &[4.0, 6.0, 3.0],
        )
        .expect("bounded");
        assert!((v - 11.0).abs() < 1e-9, "{v}");
        assert!((x[0] - 3.0).abs() < 1e-9 && (x[1] - 1.0).abs() < 1e-9, "{x:?}");
    }

    #[test]
    fn pods_that_fit_one_to_a_node_need_a_node_each() {
        // 2-CPU pods on 3.9-CPU nodes: the fractional cover buys 2/3.9 of a node per pod, but
        // no node holds two of them.
        let pod = res(2000, 1, 1);
        let node = res(3900, 15, 58);
        let bound = packing_bound(&[(&pod, 10)], &[(&node, 1.0)]);
        assert!((bound - 10.0).abs() < 1e-6, "{bound}");
    }

    #[test]
    fn pods_of_one_ratio_cannot_be_split_between_cpu_and_memory_rich_nodes() {
        // 4 GiB-per-CPU pods. A CPU-rich node (8 CPU, 16 GiB, $0.60) holds 4 of them, a
        // memory-rich one (8 CPU, 64 GiB, $1) 8: $0.125 a pod at best, $10 for 80. The
        // fractional cover mixes the two into balanced capacity for $7.33.
        let pod = res(1000, 4, 1);
        let cpu_rich = res(8000, 16, 58);
        let mem_rich = res(8000, 64, 58);
        let bound = packing_bound(&[(&pod, 80)], &[(&cpu_rich, 0.6), (&mem_rich, 1.0)]);
        assert!((bound - 10.0).abs() < 1e-6, "{bound}");
        let mut total = Resources::new();
        for _ in 0..80 {
            total.add(&pod);
        }
        let cover =
            super::super::lower_bound::fractional_cover(&total, &[(&cpu_rich, 0.6), (&mem_rich, 1.0)]);
        assert!(cover < 7.4, "{cover}");
    }

    #[test]
    fn complementary_shapes_share_nodes_in_the_bound() {
        // A 3 CPU / 2 GiB pod and a 1 CPU / 14 GiB one make 4 CPU / 16 GiB: two such pairs fill
        // an 8 CPU / 32 GiB node, where two of either kind alone leave half of it idle.
        let cpu_heavy = res(3000, 2, 1);
        let mem_heavy = res(1000, 14, 1);
        let node = res(8000, 32, 58);
        let bound = packing_bound(&[(&cpu_heavy, 20), (&mem_heavy, 20)], &[(&node, 1.0)]);
        // 20 pairs at 4 CPU + 16 GiB: exactly two pairs per node → 10 nodes.
        assert!((bound - 10.0).abs() < 1e-6, "{bound}");
    }

    #[test]
    fn a_shape_no_offer_takes_gives_no_bound() {
        let pod = res(64000, 1, 1);
        let node = res(3900, 15, 58);
        assert_eq!(packing_bound(&[(&pod, 1)], &[(&node, 1.0)]), 0.0);
    }
}
