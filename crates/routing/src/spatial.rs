//! Point location over the grid polygons: an R-tree of grid envelopes, then
//! an exact point-in-polygon test on the registry's own polygon.
//!
//! Two trees. The hot one holds only each grid's bounding box (40 bytes an
//! entry, so a query touches few cache lines), in the original coordinates:
//! a box test there is exact, and containment is decided by geo's robust
//! predicates on the registry's polygon (boundary inclusive). The other,
//! used only for points in no grid, holds the non-dedicated polygons in a
//! locally "equirectangular" plane (longitude scaled by the cosine of the
//! county seat's latitude), so that nearest-grid distances are distances on
//! the ground, not in degrees; its envelopes are widened by [`ENVELOPE_PAD`]
//! so that rounding in the scaling can never make them too small.

use geo::coordinate_position::CoordPos;
use geo::{BoundingRect, Coord, CoordinatePosition, InteriorPoint};
use gridline_registry::{GridIdx, GridKind, Registry};
use rstar::{PointDistance, RTree, RTreeObject, AABB};

/// Widening of each scaled envelope (degrees, ~0.1 mm): far above rounding error.
const ENVELOPE_PAD: f64 = 1e-9;

/// Metres per degree of latitude (and per scaled degree of longitude).
pub(crate) const METRES_PER_DEGREE: f64 = 111_320.0;

/// A grid's bounding box, for the containment tree.
struct Cell {
    grid: u32,
    dedicated: bool,
    envelope: AABB<[f64; 2]>,
}

impl RTreeObject for Cell {
    type Envelope = AABB<[f64; 2]>;
    fn envelope(&self) -> Self::Envelope {
        self.envelope
    }
}

/// A non-dedicated grid's polygon, scaled, for the nearest-grid tree.
struct Entry {
    grid: u32,
    envelope: AABB<[f64; 2]>,
    /// Every ring of the polygon, scaled, as closed vertex lists.
    rings: Vec<Vec<[f64; 2]>>,
}

impl RTreeObject for Entry {
    type Envelope = AABB<[f64; 2]>;
    fn envelope(&self) -> Self::Envelope {
        self.envelope
    }
}

impl PointDistance for Entry {
    /// Squared distance to the polygon's boundary (only asked for points outside it).
    fn distance_2(&self, p: &[f64; 2]) -> f64 {
        let mut best = f64::INFINITY;
        for ring in &self.rings {
            for seg in ring.windows(2) {
                best = best.min(segment_distance_2(*p, seg[0], seg[1]));
            }
        }
        best
    }
}

fn segment_distance_2(p: [f64; 2], a: [f64; 2], b: [f64; 2]) -> f64 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len_2 = dx * dx + dy * dy;
    let t =
        if len_2 > 0.0 { (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len_2).clamp(0.0, 1.0) } else { 0.0 };
    let (x, y) = (a[0] + t * dx - p[0], a[1] + t * dy - p[1]);
    x * x + y * y
}

/// Where a point is, as far as grids go.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum PointPlace {
    /// Inside (or on the boundary of) `grid`. `dedicated`: a dedicated grid
    /// won over the grid around it. `shared`: how many non-dedicated grids
    /// contain the point (more than one: it lies on a shared edge or vertex).
    In { grid: GridIdx, dedicated: bool, shared: u32 },
    /// In no grid but inside the county: the nearest non-dedicated grid.
    Nearest { grid: GridIdx, distance_m: f64 },
    /// Outside the county boundary (or not a finite coordinate).
    Outside,
}

pub(crate) struct GridIndex {
    cells: RTree<Cell>,
    polygons: RTree<Entry>,
    /// Longitude scale: cos(latitude of the county seat).
    kx: f64,
}

impl GridIndex {
    pub fn new(reg: &Registry) -> GridIndex {
        let lat0 = reg.county.centre.1;
        let kx = if lat0.is_finite() && lat0.abs() < 89.0 { lat0.to_radians().cos() } else { 1.0 };
        let scale = |c: &Coord<f64>| [c.x * kx, c.y];
        let finite = |lo: [f64; 2], hi: [f64; 2]| lo.iter().chain(&hi).all(|v| v.is_finite());
        let mut cells = Vec::with_capacity(reg.grids.len());
        let mut polygons = Vec::with_capacity(reg.grids.len());
        for (i, g) in reg.grids.iter().enumerate() {
            let dedicated = g.kind == GridKind::Dedicated;
            if let Some(r) = g.polygon.bounding_rect() {
                let (lo, hi) = ([r.min().x, r.min().y], [r.max().x, r.max().y]);
                if finite(lo, hi) {
                    cells.push(Cell { grid: i as u32, dedicated, envelope: AABB::from_corners(lo, hi) });
                }
            }
            if dedicated {
                continue; // never the nearest grid: its parent is at least as near
            }
            let rings: Vec<Vec<[f64; 2]>> = std::iter::once(g.polygon.exterior())
                .chain(g.polygon.interiors())
                .map(|r| r.0.iter().map(scale).collect())
                .collect();
            let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
            for p in rings.first().into_iter().flatten() {
                lo = [lo[0].min(p[0]), lo[1].min(p[1])];
                hi = [hi[0].max(p[0]), hi[1].max(p[1])];
            }
            if finite(lo, hi) {
                let envelope = AABB::from_corners(
                    [lo[0] - ENVELOPE_PAD, lo[1] - ENVELOPE_PAD],
                    [hi[0] + ENVELOPE_PAD, hi[1] + ENVELOPE_PAD],
                );
                polygons.push(Entry { grid: i as u32, envelope, rings });
            }
        }
        GridIndex { cells: RTree::bulk_load(cells), polygons: RTree::bulk_load(polygons), kx }
    }

    /// The grid of a point: a dedicated grid wins over the grid around it;
    /// among several grids containing the point (boundary counts as inside),
    /// the lowest grid index wins, so a point on a shared edge always lands
    /// in the same one of its grids.
    pub fn place(&self, reg: &Registry, lon: f64, lat: f64) -> PointPlace {
        if !(lon.is_finite() && lat.is_finite()) {
            return PointPlace::Outside;
        }
        let coord = Coord { x: lon, y: lat };
        // (not dedicated, index): the smallest wins.
        let mut best: Option<(bool, u32)> = None;
        let mut shared = 0u32;
        let _ = self.cells.locate_in_envelope_intersecting_int(&AABB::from_point([lon, lat]), |e| {
            if reg.grids[e.grid as usize].polygon.coordinate_position(&coord) != CoordPos::Outside {
                shared += u32::from(!e.dedicated);
                let key = (!e.dedicated, e.grid);
                if best.is_none_or(|b| key < b) {
                    best = Some(key);
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        if let Some((not_dedicated, grid)) = best {
            return PointPlace::In { grid: GridIdx(grid), dedicated: !not_dedicated, shared };
        }
        // Outside every part: a point on an edge two parts share is on
        // both their boundaries, which the collection's mod-2 rule would
        // count as outside the whole.
        if reg.county.boundary.0.iter().all(|part| part.coordinate_position(&coord) == CoordPos::Outside) {
            return PointPlace::Outside;
        }
        self.nearest([lon * self.kx, lat]).map_or(PointPlace::Outside, |(grid, d2)| PointPlace::Nearest {
            grid,
            distance_m: d2.sqrt() * METRES_PER_DEGREE,
        })
    }

    /// A point strictly inside grid `g` that routes to `g` (so not inside a
    /// dedicated grid within it): geo's interior point if it qualifies, else
    /// the first qualifying point of a 31 x 31 lattice over the grid's
    /// bounding box. Deterministic.
    pub fn interior_point(&self, reg: &Registry, g: GridIdx) -> Option<(f64, f64)> {
        let poly = &reg.grids.get(g.ix())?.polygon;
        let rect = poly.bounding_rect()?;
        let lattice = (1..32).flat_map(|i| (1..32).map(move |j| (i, j))).map(|(i, j)| {
            let x = rect.min().x + rect.width() * f64::from(i) / 32.0;
            let y = rect.min().y + rect.height() * f64::from(j) / 32.0;
            geo::Point::new(x, y)
        });
        poly.interior_point().into_iter().chain(lattice).map(|p| (p.x(), p.y())).find(|&(x, y)| {
            poly.coordinate_position(&Coord { x, y }) == CoordPos::Inside
                && matches!(self.place(reg, x, y), PointPlace::In { grid, shared: 0 | 1, .. } if grid == g)
        })
    }

    /// The nearest non-dedicated grid to a scaled point; ties go to the lowest index.
    fn nearest(&self, q: [f64; 2]) -> Option<(GridIdx, f64)> {
        let mut best: Option<(f64, u32)> = None;
        for (e, d2) in self.polygons.nearest_neighbor_iter_with_distance_2(&q) {
            match best {
                None => best = Some((d2, e.grid)),
                Some((b, _)) if d2 > b => break,
                Some((b, g)) => best = Some((b, g.min(e.grid))),
            }
        }
        best.map(|(d2, g)| (GridIdx(g), d2))
    }
}

#[cfg(test)]
mod tests {
    use super::segment_distance_2;

    #[test]
    fn segment_distance() {
        assert_eq!(segment_distance_2([0.0, 1.0], [-1.0, 0.0], [1.0, 0.0]), 1.0);
        assert_eq!(segment_distance_2([3.0, 0.0], [-1.0, 0.0], [1.0, 0.0]), 4.0);
        assert_eq!(segment_distance_2([0.0, 2.0], [0.0, 0.0], [0.0, 0.0]), 4.0);
    }
}
