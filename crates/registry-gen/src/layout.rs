//! Synthetic geometry on an integer lattice, warped a little so that it does
//! not look like graph paper.
//!
//! Everything is laid out in whole micro-degrees relative to the county seat,
//! so the output does not depend on floating point: township blocks are split
//! into community/village cells, cells into grid cells (guillotine cuts, so
//! every cell is a rectangle and the cells of a parent tile it exactly).
//! Before warping, every vertex of a neighbour that lies on a rectangle's
//! edge is inserted into that rectangle's ring, so neighbours share edges
//! vertex for vertex. The warp is then applied to each vertex; shared
//! vertices stay shared, so the tiling stays exact: no gaps, no overlaps.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::rng::SplitMix64;

/// Micro-degrees per lattice unit (the tables use 1e-4 degree units).
pub const UNIT: i64 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x0: i64,
    pub y0: i64,
    pub x1: i64,
    pub y1: i64,
}

impl Rect {
    pub fn from_units(r: [i64; 4]) -> Rect {
        Rect { x0: r[0] * UNIT, y0: r[1] * UNIT, x1: r[2] * UNIT, y1: r[3] * UNIT }
    }
    pub fn w(&self) -> i64 {
        self.x1 - self.x0
    }
    pub fn h(&self) -> i64 {
        self.y1 - self.y0
    }
    pub fn area(&self) -> i64 {
        self.w() * self.h()
    }
    /// The point at (fx, fy) per mille of the way across.
    pub fn at(&self, fx: i64, fy: i64) -> (i64, i64) {
        (self.x0 + self.w() * fx / 1000, self.y0 + self.h() * fy / 1000)
    }
}

/// The smallest cell side we accept, in micro-degrees (about 150 m).
const MIN_SIDE: i64 = 2_000;

/// Splits `r` into `weights.len()` rectangles with areas in proportion to the
/// weights: rows of cells, the number of rows chosen so cells come out squarish.
pub fn partition(r: Rect, weights: &[i64]) -> Vec<Rect> {
    let n = weights.len();
    assert!(n > 0);
    let rows = {
        let ideal = ((n as f64) * r.h() as f64 / r.w() as f64).sqrt().round() as usize;
        ideal.clamp(1, n)
    };
    // Items per row: n / rows, the first n % rows rows one more.
    let mut out = Vec::with_capacity(n);
    let total: i64 = weights.iter().sum();
    let mut start = 0;
    let mut acc = 0;
    for row in 0..rows {
        let count = n / rows + usize::from(row < n % rows);
        let items = &weights[start..start + count];
        let row_w: i64 = items.iter().sum();
        let ya = r.y0 + r.h() * acc / total;
        acc += row_w;
        let yb = r.y0 + r.h() * acc / total;
        let mut inner = 0;
        for &w in items {
            let xa = r.x0 + r.w() * inner / row_w;
            inner += w;
            let xb = r.x0 + r.w() * inner / row_w;
            let cell = Rect { x0: xa, y0: ya, x1: xb, y1: yb };
            assert!(cell.w() >= MIN_SIDE && cell.h() >= MIN_SIDE, "cell too small: {cell:?}");
            out.push(cell);
        }
        start += count;
    }
    assert_eq!(out.len(), n);
    out
}

/// `n` weights of 100 +- `spread` percent.
pub fn jittered(rng: &mut SplitMix64, n: usize, spread: i64) -> Vec<i64> {
    (0..n).map(|_| 100 + rng.range(-spread, spread)).collect()
}

/// The block around a core, as four strips: west, east (full height), south,
/// north (between them).
pub fn strips_around(block: Rect, core: Rect) -> [Rect; 4] {
    assert!(block.x0 < core.x0 && core.x1 < block.x1 && block.y0 < core.y0 && core.y1 < block.y1);
    [
        Rect { x0: block.x0, y0: block.y0, x1: core.x0, y1: block.y1 },
        Rect { x0: core.x1, y0: block.y0, x1: block.x1, y1: block.y1 },
        Rect { x0: core.x0, y0: block.y0, x1: core.x1, y1: core.y0 },
        Rect { x0: core.x0, y0: core.y1, x1: core.x1, y1: block.y1 },
    ]
}

/// Splits `n` items among parts in proportion to `areas`, at least one each
/// (largest remainders).
pub fn apportion(n: usize, areas: &[i64]) -> Vec<usize> {
    assert!(n >= areas.len());
    let total: i64 = areas.iter().sum();
    let spare = (n - areas.len()) as i64;
    let mut counts: Vec<usize> = areas.iter().map(|a| 1 + (spare * a / total) as usize).collect();
    let mut rest: Vec<(i64, usize)> =
        areas.iter().enumerate().map(|(i, a)| (-((spare * a) % total), i)).collect();
    rest.sort();
    let missing = n - counts.iter().sum::<usize>();
    for &(_, i) in rest.iter().take(missing) {
        counts[i] += 1;
    }
    counts
}

/// Counter-clockwise rings of the rectangles, each with every corner of any
/// other rectangle that lies on its edges, so that neighbours share vertices.
pub fn rings(rects: &[Rect]) -> Vec<Vec<(i64, i64)>> {
    let mut by_x: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    let mut by_y: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for r in rects {
        for (x, y) in [(r.x0, r.y0), (r.x1, r.y0), (r.x1, r.y1), (r.x0, r.y1)] {
            by_x.entry(x).or_default().insert(y);
            by_y.entry(y).or_default().insert(x);
        }
    }
    let between = |m: &BTreeMap<i64, BTreeSet<i64>>, line: i64, a: i64, b: i64| -> Vec<i64> {
        m.get(&line).map(|s| s.range(a + 1..b).copied().collect()).unwrap_or_default()
    };
    rects
        .iter()
        .map(|r| {
            let mut ring = vec![(r.x0, r.y0)];
            ring.extend(between(&by_y, r.y0, r.x0, r.x1).into_iter().map(|x| (x, r.y0)));
            ring.push((r.x1, r.y0));
            ring.extend(between(&by_x, r.x1, r.y0, r.y1).into_iter().map(|y| (r.x1, y)));
            ring.push((r.x1, r.y1));
            ring.extend(between(&by_y, r.y1, r.x0, r.x1).into_iter().rev().map(|x| (x, r.y1)));
            ring.push((r.x0, r.y1));
            ring.extend(between(&by_x, r.x0, r.y0, r.y1).into_iter().rev().map(|y| (r.x0, y)));
            ring.push((r.x0, r.y0));
            ring
        })
        .collect()
}

/// The outline of a set of rings that tile a simply connected region: the
/// edges that no neighbour shares, chained into one closed ring, starting at
/// the lowest, leftmost vertex.
pub fn outline(rings: &[Vec<(i64, i64)>]) -> Vec<(i64, i64)> {
    let mut edges: HashSet<((i64, i64), (i64, i64))> = HashSet::new();
    for ring in rings {
        for e in ring.windows(2) {
            edges.insert((e[0], e[1]));
        }
    }
    let mut next: BTreeMap<(i64, i64), (i64, i64)> = BTreeMap::new();
    for &(a, b) in &edges {
        if !edges.contains(&(b, a)) {
            assert!(next.insert(a, b).is_none(), "the region pinches at {a:?}");
        }
    }
    let start = *next.keys().min_by_key(|&&(x, y)| (y, x)).expect("an outline");
    let mut ring = vec![start];
    let mut at = start;
    loop {
        at = next[&at];
        ring.push(at);
        if at == start {
            break;
        }
    }
    assert_eq!(ring.len(), next.len() + 1, "the region has a hole or is not connected");
    ring
}

/// Twice the signed area (positive for counter-clockwise rings), exact.
pub fn area2(ring: &[(i64, i64)]) -> i128 {
    ring.windows(2).map(|e| e[0].0 as i128 * e[1].1 as i128 - e[1].0 as i128 * e[0].1 as i128).sum()
}

/// A smooth periodic wave of amplitude `amp` and period `period`, in integers:
/// a triangle wave eased by `t (3 - t^2) / 2`, so it has no corners.
fn wave(t: i64, period: i64, amp: i64) -> i64 {
    let q = period / 4;
    let phase = t.rem_euclid(period);
    let tri = (phase - period / 2).abs() - q; // -q..=q
    let (tri, q, amp) = (tri as i128, q as i128, amp as i128);
    (amp * tri * (3 * q * q - tri * tri) / (2 * q * q * q)) as i64
}

/// The county seat in micro-degrees.
pub const SEAT: (i64, i64) = (131_120_000, 45_260_000);

/// Lattice position (micro-degrees from the seat) to warped longitude and
/// latitude in micro-degrees. Its slope is under 0.07, so the map is one to
/// one and edges only lean a little.
pub fn warp((x, y): (i64, i64)) -> (i64, i64) {
    let dx = wave(y + 170_000, 360_000, 3_500) + wave(x, 500_000, 1_500);
    let dy = wave(x + 90_000, 420_000, 3_000) + wave(y + 50_000, 440_000, 1_200);
    (SEAT.0 + x + dx, SEAT.1 + y + dy)
}

/// `131.123456`
pub fn degrees(micro: i64) -> String {
    assert!(micro > 0);
    format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_tiles_its_rectangle() {
        let r = Rect { x0: 0, y0: 0, x1: 100_000, y1: 60_000 };
        let cells = partition(r, &[100, 90, 110, 100, 95, 105, 100]);
        assert_eq!(cells.iter().map(Rect::area).sum::<i64>(), r.area());
    }

    #[test]
    fn outline_of_two_unequal_cells() {
        let a = Rect { x0: 0, y0: 0, x1: 10_000, y1: 10_000 };
        let b = Rect { x0: 10_000, y0: 0, x1: 20_000, y1: 5_000 };
        let c = Rect { x0: 10_000, y0: 5_000, x1: 20_000, y1: 10_000 };
        let rs = rings(&[a, b, c]);
        assert_eq!(rs[0].len(), 6, "a gets the T-junction at (10000, 5000)");
        let o = outline(&rs);
        assert_eq!(area2(&o), 2 * 200_000_000);
    }

    #[test]
    fn wave_is_bounded_and_continuous() {
        let mut last = wave(0, 400_000, 3_000);
        for t in 1..800_000 {
            let v = wave(t, 400_000, 3_000);
            assert!(v.abs() <= 3_000);
            assert!((v - last).abs() <= 1, "{t}");
            last = v;
        }
    }
}
