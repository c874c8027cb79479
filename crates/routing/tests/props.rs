//! Property tests: any point in (and around) the county's bounding box, any
//! text, any loads: a grid containing the point, the nearest grid (flagged)
//! or the command centre, and never a panic.

mod common;

use common::*;
use geo::coordinate_position::CoordPos;
use geo::{BoundingRect, Coord, CoordinatePosition};
use gridline_model::{Intake, Location, Priority, Timestamp};
use gridline_registry::GridKind;
use gridline_routing::{RouteRequest, Router, Via};
use proptest::prelude::*;

fn segment_distance_2(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len_2 = dx * dx + dy * dy;
    let t = if len_2 > 0.0 { (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len_2).clamp(0.0, 1.0) } else { 0.0 };
    let (x, y) = (a.0 + t * dx - p.0, a.1 + t * dy - p.1);
    x * x + y * y
}

/// Ground distance (in latitude degrees) from a point to a polygon's rings.
fn distance(r: &Router, g: usize, p: (f64, f64)) -> f64 {
    let kx = r.registry().county.centre.1.to_radians().cos();
    let poly = &r.registry().grids[g].polygon;
    let s = |c: &Coord<f64>| (c.x * kx, c.y);
    std::iter::once(poly.exterior())
        .chain(poly.interiors())
        .flat_map(|ring| ring.lines())
        .map(|l| segment_distance_2((p.0 * kx, p.1), s(&l.start), s(&l.end)))
        .fold(f64::INFINITY, f64::min)
        .sqrt()
}

/// The property, checked by brute force over every grid.
fn check_point(r: &Router, x: f64, y: f64) -> Result<(), TestCaseError> {
    let reg = r.registry();
    let c = Coord { x, y };
    let containing: Vec<usize> = (0..reg.grids.len())
        .filter(|&g| reg.grids[g].polygon.coordinate_position(&c) != CoordPos::Outside)
        .collect();
    let in_county = reg.county.boundary.coordinate_position(&c) != CoordPos::Outside;
    let routed = route(r, &intake("", None, point(x, y)), "10:00");
    let l = r.locate(&point(x, y));
    prop_assert_eq!(routed.located, l.grid);
    prop_assert_eq!(routed.via, l.via);
    match l.via {
        Via::Dedicated | Via::Point => {
            let g = l.grid.unwrap().ix();
            prop_assert!(containing.contains(&g), "({}, {}) routed to {} which does not contain it", x, y, g);
            let dedicated = containing.iter().copied().find(|&k| reg.grids[k].kind == GridKind::Dedicated);
            prop_assert_eq!(dedicated.is_some(), l.via == Via::Dedicated);
            prop_assert_eq!(g, dedicated.unwrap_or(containing[0]), "dedicated first, then the lowest index");
        }
        Via::Nearest => {
            prop_assert!(
                containing.is_empty() && in_county,
                "({}, {}) nearest, but in {:?}",
                x,
                y,
                containing
            );
            let g = l.grid.unwrap().ix();
            prop_assert!(reg.grids[g].kind != GridKind::Dedicated);
            let d = distance(r, g, (x, y));
            for k in (0..reg.grids.len()).filter(|&k| reg.grids[k].kind != GridKind::Dedicated) {
                prop_assert!(d <= distance(r, k, (x, y)) + 1e-12, "grid {} is nearer than {}", k, g);
            }
            prop_assert!(l.distance_m.is_some() && routed.decision.steps[0].contains("nearest grid"));
            prop_assert!(routed.decision.rule.starts_with("nearest/"));
        }
        Via::CommandCentre => {
            prop_assert!(!in_county && containing.is_empty(), "({}, {}) is in the county", x, y);
            prop_assert_eq!(routed.worker, None);
            prop_assert_eq!(routed.decision.rule.as_str(), "command-centre");
        }
        other => prop_assert!(false, "a point cannot resolve via {:?}", other),
    }
    Ok(())
}

fn bbox(r: &Router) -> (f64, f64, f64, f64) {
    let b = r.registry().county.boundary.bounding_rect().unwrap();
    let (dx, dy) = (b.width() * 0.05, b.height() * 0.05);
    (b.min().x - dx, b.max().x + dx, b.min().y - dy, b.max().y + dy)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn jidong_points_land_in_a_containing_grid_the_nearest_or_the_command_centre(
        fx in 0.0..1.0f64, fy in 0.0..1.0f64,
    ) {
        let r = jidong();
        let (x0, x1, y0, y1) = bbox(r);
        check_point(r, x0 + fx * (x1 - x0), y0 + fy * (y1 - y0))?;
    }

    #[test]
    fn toy_points_land_in_a_containing_grid_the_nearest_or_the_command_centre(
        // Snapped to a 0.005 lattice half the time, so edges and vertices are hit exactly.
        fx in 0.0..1.0f64, fy in 0.0..1.0f64, snap in any::<bool>(),
    ) {
        let r = toy();
        let (x0, x1, y0, y1) = bbox(r);
        let (mut x, mut y) = (x0 + fx * (x1 - x0), y0 + fy * (y1 - y0));
        if snap {
            x = (x / 0.005).round() * 0.005;
            y = (y / 0.005).round() * 0.005;
        }
        check_point(r, x, y)?;
    }

    #[test]
    fn any_intake_routes_without_panicking(
        text in ".{0,40}",
        addr in proptest::option::of("[东风社区村镇甲乙阳光幸福小区第一中学号楼 a-z0-9]{0,20}"),
        grid in proptest::option::of("[A-D][0-9]"),
        category in proptest::option::of(prop_oneof![Just("water".to_string()), Just("dispute".to_string()), ".{0,6}"]),
        pt in proptest::option::of((99.9..100.4f64, 29.9..30.2f64)),
        priority in 0..3usize,
        ms in any::<i64>(),
        loads in proptest::collection::vec(0..20u32, 0..12),
        exclude in proptest::collection::vec("W[0-9]{1,2}", 0..4),
    ) {
        for r in [toy(), jidong()] {
            let i = Intake {
                text: text.clone().into(),
                category: category.clone().map(Into::into),
                location: Location { point: pt, grid: grid.clone().map(Into::into), address: addr.clone().map(Into::into) },
                priority: Priority::ALL[priority],
                ..Intake::default()
            };
            let excluded: Vec<gridline_model::CompactString> = exclude.iter().map(Into::into).collect();
            let routed = r.route(&RouteRequest { intake: &i, at: Timestamp(ms), exclude: &excluded }, &loads);
            let d = &routed.decision;
            prop_assert!(!d.steps.is_empty() && !d.rule.is_empty());
            prop_assert_eq!(d.worker.is_some(), routed.worker.is_some());
            if let Some(w) = &d.worker {
                prop_assert!(!exclude.contains(w), "{} returned the case", w);
                prop_assert!(routed.grid.is_some());
            }
            prop_assert_eq!(&d.category, &r.registry().category(routed.category).code);
        }
    }
}
