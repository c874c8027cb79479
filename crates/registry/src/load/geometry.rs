//! Polygon checks: validity of one polygon, and the relations between grids
//! (overlap, containment) that the loader needs.
//!
//! geo 0.29 has no validity check of its own, so [`polygon`] does it: enough
//! points, closed rings, finite coordinates in range, non-zero area, no ring
//! crossing itself or another ring, holes inside the outer ring and not
//! inside one another. The self-crossing test looks up each edge's
//! neighbours in an R-tree of the edges' bounding boxes, so a ring of k
//! edges costs about k log k, not k², whatever its shape (a sweep over x
//! alone was quadratic for a comb of long teeth).

use geo::coordinate_position::{coord_pos_relative_to_ring, CoordPos, CoordinatePosition};
use geo::dimensions::Dimensions;
use geo::line_intersection::{line_intersection, LineIntersection};
use geo::{
    Area, BoundingRect, Contains, Coord, Line, LineString, MultiPolygon, Point, Polygon, Relate, Winding,
};
use rstar::{RTree, AABB};

/// Builds a polygon from GeoJSON-style coordinates (rings of `[lon, lat]`)
/// and checks it. The message says what is wrong, naming the ring and point.
pub(crate) fn polygon(rings: &[Vec<Vec<f64>>]) -> Result<Polygon<f64>, String> {
    if rings.is_empty() {
        return Err("a polygon needs at least one ring".into());
    }
    let mut lines = Vec::with_capacity(rings.len());
    for (r, ring) in rings.iter().enumerate() {
        let mut coords: Vec<Coord<f64>> = Vec::with_capacity(ring.len());
        for (p, pos) in ring.iter().enumerate() {
            let at = || format!("ring {r}, point {p}");
            if pos.len() < 2 || pos.len() > 3 {
                return Err(format!(
                    "{}: a position is [longitude, latitude], found {} numbers",
                    at(),
                    pos.len()
                ));
            }
            let (x, y) = (pos[0], pos[1]);
            if !x.is_finite()
                || !y.is_finite()
                || !(-180.0..=180.0).contains(&x)
                || !(-90.0..=90.0).contains(&y)
            {
                return Err(format!("{}: [{x}, {y}] is not a longitude, latitude in degrees", at()));
            }
            let c = Coord { x, y };
            // Repeated consecutive points are harmless; drop them.
            if coords.last() != Some(&c) {
                coords.push(c);
            }
        }
        if ring.len() < 4 || coords.len() < 4 {
            return Err(format!(
                "ring {r} has {} distinct points; a ring needs at least 4, the last repeating the first",
                coords.len()
            ));
        }
        if coords.first() != coords.last() {
            return Err(format!("ring {r} is not closed: its last point must repeat its first"));
        }
        lines.push(LineString::new(coords));
    }
    if let Some(msg) = crossing(&lines) {
        return Err(msg);
    }
    for (r, ls) in lines.iter().enumerate() {
        if Polygon::new(ls.clone(), vec![]).unsigned_area() == 0.0 {
            return Err(format!("ring {r} has no area"));
        }
    }
    let mut rings = lines.into_iter();
    let mut exterior = rings.next().expect("checked: at least one ring");
    exterior.make_ccw_winding();
    let outer = Polygon::new(exterior.clone(), vec![]);
    let mut holes = Vec::new();
    for (r, mut hole) in rings.enumerate() {
        // Rings do not cross (checked), so one point tells inside from outside.
        if !outer.contains(&hole.0[0]) {
            return Err(format!("ring {} (a hole) is not inside ring 0", r + 1));
        }
        hole.make_cw_winding();
        holes.push(hole);
    }
    if let Some(msg) = nested_hole(&holes) {
        return Err(msg);
    }
    Ok(Polygon::new(exterior, holes))
}

/// The first hole that lies inside another hole. Such an "island" is read
/// as the polygon's by some algorithms (`Relate`, so the overlap checks) and
/// as outside it by others (point in polygon, so routing); it is not a
/// valid polygon. Holes do not cross or touch (checked), so one point of a
/// hole tells whether it is inside another.
fn nested_hole(holes: &[LineString<f64>]) -> Option<String> {
    use rstar::primitives::{GeomWithData, Rectangle};
    let boxes: Vec<GeomWithData<Rectangle<[f64; 2]>, usize>> = holes
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let r = h.bounding_rect().expect("a checked ring has points");
            GeomWithData::new(Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]), i)
        })
        .collect();
    let tree = RTree::bulk_load(boxes);
    for (i, h) in holes.iter().enumerate() {
        let p = h.0[0];
        let mut around: Vec<usize> = tree
            .locate_all_at_point(&[p.x, p.y])
            .map(|b| b.data)
            .filter(|&j| j != i && coord_pos_relative_to_ring(p, &holes[j]) == CoordPos::Inside)
            .collect();
        around.sort_unstable();
        if let Some(&j) = around.first() {
            return Some(format!(
                "ring {} (a hole) lies inside ring {}, another hole: an island in a hole is a grid of its own",
                i + 1,
                j + 1
            ));
        }
    }
    None
}

#[cfg(test)]
thread_local! {
    /// Pairs of edges `crossing` looked at, for the test of its cost.
    static PAIRS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The first place where a ring crosses or touches itself (other than at the
/// vertex two consecutive edges share) or another ring.
fn crossing(rings: &[LineString<f64>]) -> Option<String> {
    use rstar::primitives::{GeomWithData, Rectangle};
    struct Edge {
        ring: usize,
        index: usize,
        line: Line<f64>,
        min_x: f64,
    }
    let mut edges: Vec<Edge> = Vec::new();
    for (ring, ls) in rings.iter().enumerate() {
        for (index, line) in ls.lines().enumerate() {
            edges.push(Edge { ring, index, line, min_x: line.start.x.min(line.end.x) });
        }
    }
    // Edges in order of their left end, each checked against the earlier
    // ones whose boxes touch its own, nearest first in that order: the
    // crossing reported is the same whatever the index.
    edges.sort_by(|a, b| a.min_x.total_cmp(&b.min_x));
    let boxes =
        |e: &Edge| Rectangle::from_corners([e.line.start.x, e.line.start.y], [e.line.end.x, e.line.end.y]);
    let tree =
        RTree::bulk_load(edges.iter().enumerate().map(|(i, e)| GeomWithData::new(boxes(e), i)).collect());
    let edge_count = |ring: usize| rings[ring].0.len() - 1;
    let mut near: Vec<usize> = Vec::new();
    for (i, e) in edges.iter().enumerate() {
        near.clear();
        near.extend(
            tree.locate_in_envelope_intersecting(&rstar::RTreeObject::envelope(&boxes(e)))
                .map(|g| g.data)
                .filter(|&j| j < i),
        );
        near.sort_unstable();
        #[cfg(test)]
        PAIRS.with(|p| p.set(p.get() + near.len()));
        for &j in &near {
            let f = &edges[j];
            let Some(hit) = line_intersection(e.line, f.line) else { continue };
            let n = edge_count(e.ring);
            let adjacent = e.ring == f.ring && ((e.index + 1) % n == f.index || (f.index + 1) % n == e.index);
            let at = match hit {
                LineIntersection::SinglePoint { intersection, .. } => {
                    if adjacent {
                        let shared = if (e.index + 1) % n == f.index { e.line.end } else { f.line.end };
                        if intersection == shared {
                            continue;
                        }
                    }
                    intersection
                }
                LineIntersection::Collinear { intersection } => intersection.start,
            };
            return Some(if e.ring == f.ring {
                format!("ring {} crosses itself at [{}, {}]", e.ring, at.x, at.y)
            } else {
                format!(
                    "rings {} and {} cross at [{}, {}]",
                    e.ring.min(f.ring),
                    e.ring.max(f.ring),
                    at.x,
                    at.y
                )
            });
        }
    }
    None
}

/// Whether the interiors of two valid polygons share any area (touching along
/// edges or at points does not count).
pub(crate) fn interiors_intersect(a: &Polygon<f64>, b: &Polygon<f64>) -> bool {
    a.relate(b).get(CoordPos::Inside, CoordPos::Inside) != Dimensions::Empty
}

/// Whether `inner` lies inside `outer` (its boundary may touch `outer`'s).
pub(crate) fn covers(outer: &Polygon<f64>, inner: &Polygon<f64>) -> bool {
    outer.relate(inner).is_covers()
}

/// A large region (the county boundary) that many small polygons are tested
/// against. `Relate` would rebuild a graph of the whole boundary for every
/// grid; instead an R-tree over the boundary's edges finds the few edges near
/// a grid, and a grid near none of them is wholly inside or wholly outside.
pub(crate) struct Region<'a> {
    shape: &'a MultiPolygon<f64>,
    edges: RTree<Line<f64>>,
}

impl<'a> Region<'a> {
    pub fn new(shape: &'a MultiPolygon<f64>) -> Region<'a> {
        let edges = shape
            .0
            .iter()
            .flat_map(|p| p.exterior().lines().chain(p.interiors().iter().flat_map(|r| r.lines())));
        Region { shape, edges: RTree::bulk_load(edges.collect()) }
    }

    fn inside_or_on(&self, c: Coord<f64>) -> bool {
        self.shape.0.iter().any(|p| p.coordinate_position(&c) != CoordPos::Outside)
    }

    /// Whether `p` lies inside the region (touching its boundary is inside).
    ///
    /// Every edge of `p` is cut where it meets the region's edges; each piece
    /// either runs along a region edge or lies, by its midpoint, inside or
    /// outside. A hole of the region inside `p` also means `p` is not covered.
    pub fn covers(&self, p: &Polygon<f64>) -> bool {
        let r = p.bounding_rect().expect("a checked polygon has points");
        let env = AABB::from_corners(Point::from(r.min()), Point::from(r.max()));
        if self.edges.locate_in_envelope_intersecting(&env).next().is_none() {
            return self.inside_or_on(p.exterior().0[0]);
        }
        for ring in std::iter::once(p.exterior()).chain(p.interiors()) {
            for e in ring.lines() {
                let env = AABB::from_corners(Point::from(e.start), Point::from(e.end));
                let mut cuts = vec![0.0, 1.0];
                let mut along: Vec<(f64, f64)> = Vec::new();
                for b in self.edges.locate_in_envelope_intersecting(&env) {
                    match line_intersection(e, *b) {
                        None => {}
                        Some(LineIntersection::SinglePoint { intersection, .. }) => {
                            cuts.push(param(e, intersection))
                        }
                        Some(LineIntersection::Collinear { intersection }) => {
                            let (t0, t1) = (param(e, intersection.start), param(e, intersection.end));
                            cuts.extend([t0, t1]);
                            along.push((t0.min(t1), t0.max(t1)));
                        }
                    }
                }
                cuts.sort_by(f64::total_cmp);
                cuts.dedup();
                for w in cuts.windows(2) {
                    let mid = (w[0] + w[1]) / 2.0;
                    if along.iter().any(|&(a, b)| a <= mid && mid <= b) {
                        continue;
                    }
                    let m = Coord {
                        x: e.start.x + (e.end.x - e.start.x) * mid,
                        y: e.start.y + (e.end.y - e.start.y) * mid,
                    };
                    if !self.inside_or_on(m) {
                        return false;
                    }
                }
            }
        }
        let holes = self.shape.0.iter().flat_map(|q| q.interiors());
        !holes.into_iter().any(|h| p.coordinate_position(&h.0[0]) == CoordPos::Inside)
    }
}

/// Where `c`, a point on `e`, lies along it: 0 at the start, 1 at the end.
fn param(e: Line<f64>, c: Coord<f64>) -> f64 {
    let (dx, dy) = (e.end.x - e.start.x, e.end.y - e.start.y);
    let t = if dx.abs() >= dy.abs() { (c.x - e.start.x) / dx } else { (c.y - e.start.y) / dy };
    t.clamp(0.0, 1.0)
}

/// The axis-aligned envelope of a polygon, for the R-tree.
pub(crate) fn envelope(p: &Polygon<f64>) -> AABB<[f64; 2]> {
    let r = p.bounding_rect().expect("a checked polygon has points");
    AABB::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(points: &[(f64, f64)]) -> Vec<Vec<f64>> {
        points.iter().map(|&(x, y)| vec![x, y]).collect()
    }

    /// A comb of long teeth: every edge overlaps every other in x (a sweep
    /// over x looked at about k²/2 pairs), few overlap in both axes.
    #[test]
    fn crossing_looks_at_few_pairs_even_when_all_edges_overlap_in_x() {
        let teeth = 2000;
        let h = 0.5 / teeth as f64;
        let top = 40.0 + 2.0 * teeth as f64 * h;
        let mut pts = vec![(120.0, 40.0), (120.0, top)];
        for i in 0..teeth {
            let yt = top - 2.0 * i as f64 * h;
            pts.extend([(121.0, yt), (121.0, yt - h)]);
            if i + 1 < teeth {
                pts.extend([(120.01, yt - h), (120.01, yt - 2.0 * h)]);
            }
        }
        pts.extend([(121.0, 40.0), (120.0, 40.0)]);
        let edges = pts.len() - 1;
        PAIRS.with(|p| p.set(0));
        assert!(polygon(&[ring(&pts)]).is_ok());
        let pairs = PAIRS.with(|p| p.get());
        assert!(pairs <= 4 * edges, "{pairs} pairs for {edges} edges");
    }

    #[test]
    fn accepts_a_square_with_a_hole() {
        let outer = ring(&[(0., 0.), (4., 0.), (4., 4.), (0., 4.), (0., 0.)]);
        let hole = ring(&[(1., 1.), (1., 2.), (2., 2.), (2., 1.), (1., 1.)]);
        assert!(polygon(&[outer, hole]).is_ok());
    }

    #[test]
    fn rejects_bad_polygons() {
        let check = |rings: Vec<Vec<Vec<f64>>>, want: &str| {
            assert_eq!(polygon(&rings).unwrap_err(), want);
        };
        check(vec![], "a polygon needs at least one ring");
        check(
            vec![ring(&[(0., 0.), (1., 0.), (0., 0.)])],
            "ring 0 has 3 distinct points; a ring needs at least 4, the last repeating the first",
        );
        check(
            vec![ring(&[(0., 0.), (1., 0.), (1., 1.), (0., 1.)])],
            "ring 0 is not closed: its last point must repeat its first",
        );
        check(
            vec![ring(&[(0., 0.), (2., 2.), (2., 0.), (0., 2.), (0., 0.)])],
            "ring 0 crosses itself at [1, 1]",
        );
        check(vec![ring(&[(0., 0.), (1., 1.), (2., 2.), (0., 0.)])], "ring 0 crosses itself at [0, 0]");
        check(
            vec![
                ring(&[(0., 0.), (1., 0.), (1., 1.), (0., 1.), (0., 0.)]),
                ring(&[(2., 2.), (2., 3.), (3., 3.), (2., 2.)]),
            ],
            "ring 1 (a hole) is not inside ring 0",
        );
        check(
            vec![
                ring(&[(0., 0.), (9., 0.), (9., 9.), (0., 9.), (0., 0.)]),
                ring(&[(1., 1.), (5., 1.), (5., 5.), (1., 5.), (1., 1.)]),
                ring(&[(6., 6.), (7., 6.), (7., 7.), (6., 7.), (6., 6.)]),
                ring(&[(2., 2.), (3., 2.), (3., 3.), (2., 3.), (2., 2.)]),
            ],
            "ring 3 (a hole) lies inside ring 1, another hole: an island in a hole is a grid of its own",
        );
        check(
            vec![ring(&[(0., 0.), (1., 0.), (1., 100.), (0., 0.)])],
            "ring 0, point 2: [1, 100] is not a longitude, latitude in degrees",
        );
    }

    #[test]
    fn region_covers() {
        let square = |x0: f64, y0: f64, x1: f64, y1: f64| {
            polygon(&[ring(&[(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)])]).unwrap()
        };
        // An L-shaped region with a hole.
        let outer = ring(&[(0., 0.), (10., 0.), (10., 4.), (4., 4.), (4., 10.), (0., 10.), (0., 0.)]);
        let hole = ring(&[(1., 1.), (2., 1.), (2., 2.), (1., 2.), (1., 1.)]);
        let shape = MultiPolygon::new(vec![polygon(&[outer, hole]).unwrap()]);
        let region = Region::new(&shape);
        assert!(region.covers(&square(5., 1., 6., 2.)), "inside, near no edge");
        assert!(region.covers(&square(4., 0., 10., 4.)), "along the edges");
        assert!(!region.covers(&square(5., 5., 6., 6.)), "in the notch");
        assert!(!region.covers(&square(3., 3., 5., 5.)), "across the reflex corner");
        assert!(!region.covers(&square(0.5, 0.5, 3., 3.)), "around the hole");
        assert!(region.covers(&square(2., 1., 3., 2.)), "touching the hole");
        assert!(!region.covers(&square(-1., 1., 1., 2.)), "across the outer edge");
    }

    #[test]
    fn touching_is_not_overlapping() {
        let a = polygon(&[ring(&[(0., 0.), (1., 0.), (1., 1.), (0., 1.), (0., 0.)])]).unwrap();
        let b = polygon(&[ring(&[(1., 0.), (2., 0.), (2., 1.), (1., 0.5), (1., 0.)])]).unwrap();
        let c = polygon(&[ring(&[(0.5, 0.5), (2., 0.5), (2., 2.), (0.5, 2.), (0.5, 0.5)])]).unwrap();
        assert!(!interiors_intersect(&a, &b));
        assert!(interiors_intersect(&a, &c));
        assert!(interiors_intersect(&a, &a));
    }
}
