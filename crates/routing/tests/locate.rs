//! Location to grid: grid code, point (R-tree, dedicated, shared edges,
//! nearest, outside), address.

mod common;

use common::*;
use geo::coordinate_position::CoordPos;
use geo::{Contains, CoordinatePosition, InteriorPoint};
use gridline_model::Location;
use gridline_registry::{GridIdx, GridKind};
use gridline_routing::{Pool, RouteError, Via};

fn code(r: &gridline_routing::Router, g: Option<GridIdx>) -> Option<&str> {
    g.map(|g| r.registry().grid(g).code.as_str())
}

#[test]
fn every_jidong_grid_interior_point_lands_in_its_grid() {
    let r = jidong();
    let reg = r.registry();
    assert_eq!(reg.grids.len(), 626);
    let mut dedicated = 0;
    for (i, g) in reg.grids.iter().enumerate() {
        let p = g.polygon.interior_point().expect("interior point");
        // A point of a grid around a dedicated grid may fall in that dedicated grid.
        let inside_dedicated = reg
            .grids
            .iter()
            .position(|d| d.kind == GridKind::Dedicated && d.polygon.contains(&p))
            .map(|d| GridIdx(d as u32));
        let want = inside_dedicated.unwrap_or(GridIdx(i as u32));
        let l = r.locate(&point(p.x(), p.y()));
        assert_eq!(code(r, l.grid), Some(reg.grid(want).code.as_str()), "interior point of {}", g.code);
        let via = if reg.grid(want).kind == GridKind::Dedicated { Via::Dedicated } else { Via::Point };
        assert_eq!(l.via, via, "{}", g.code);
        dedicated += usize::from(via == Via::Dedicated);
        assert_eq!(l.township, Some(reg.grid(want).township));

        // And the helper's point is strictly inside and routes to the grid itself.
        let (x, y) = r.interior_point(GridIdx(i as u32)).expect("a point of every grid");
        assert!(g.polygon.contains(&geo::Point::new(x, y)), "{}", g.code);
        assert_eq!(r.locate(&point(x, y)).grid, Some(GridIdx(i as u32)), "{}", g.code);
    }
    assert!(dedicated >= 8, "every dedicated grid was hit by its own interior point");
}

#[test]
fn dedicated_grid_wins_over_the_grid_around_it() {
    let r = jidong();
    let reg = r.registry();
    for (i, d) in reg.grids.iter().enumerate().filter(|(_, g)| g.kind == GridKind::Dedicated) {
        let parent = d.parent.expect("a dedicated grid has a parent");
        let p = d.polygon.interior_point().unwrap();
        assert!(reg.grid(parent).polygon.contains(&p), "the parent contains the site too");
        let routed = route(r, &intake("", Some("neighbour_dispute"), point(p.x(), p.y())), "10:00");
        assert_eq!(routed.located, Some(GridIdx(i as u32)));
        assert_eq!(routed.decision.grid.as_deref(), Some(d.code.as_str()));
        assert!(routed.decision.rule.starts_with("dedicated/grid"), "{}", routed.decision.rule);
        let step = &routed.decision.steps[0];
        assert!(step.contains(&d.name) && step.contains(&reg.grid(parent).name), "{step}");
    }
    // The toy county: D1 inside A1.
    let t = toy();
    let l = t.locate(&point(100.025, 30.015));
    assert_eq!((code(t, l.grid), l.via), (Some("D1"), Via::Dedicated));
    // On D1's edge: still D1 (boundary counts as inside, dedicated first).
    assert_eq!(code(t, t.locate(&point(100.02, 30.015)).grid), Some("D1"));
    assert_eq!(code(t, t.locate(&point(100.035, 30.015)).grid), Some("A1"));
}

/// Two grids (by index) and the ends of an edge they share.
type SharedEdge = (usize, usize, (f64, f64), (f64, f64));

/// Pairs of non-dedicated Jidong grids sharing an edge (both orientations of a segment).
fn shared_edges() -> Vec<SharedEdge> {
    let reg = jidong().registry();
    let mut seen = std::collections::HashMap::new();
    let mut out = Vec::new();
    for (i, g) in reg.grids.iter().enumerate().filter(|(_, g)| g.kind != GridKind::Dedicated) {
        for l in g.polygon.exterior().lines() {
            let (a, b) = ((l.start.x, l.start.y), (l.end.x, l.end.y));
            let key = |p: (f64, f64)| (p.0.to_bits(), p.1.to_bits());
            if let Some(&j) = seen.get(&(key(b), key(a))) {
                out.push((j, i, a, b));
            }
            seen.insert((key(a), key(b)), i);
        }
    }
    out
}

#[test]
fn a_point_on_a_shared_edge_goes_to_one_of_its_grids_every_time() {
    let r = jidong();
    let edges = shared_edges();
    assert!(edges.len() > 500, "Jidong's grids tile: {} shared edges", edges.len());
    let reg = r.registry();
    let mut on_two_or_more = 0;
    for &(i, j, a, b) in edges.iter().step_by(5) {
        for (x, y) in [a, ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0)] {
            // Brute force: every grid the point is in or on.
            let c = geo::Coord { x, y };
            let on: Vec<usize> = (0..reg.grids.len())
                .filter(|&k| reg.grids[k].polygon.coordinate_position(&c) != CoordPos::Outside)
                .collect();
            let dedicated = on.iter().copied().find(|&k| reg.grids[k].kind == GridKind::Dedicated);
            let want = dedicated.unwrap_or_else(|| on[0]);
            let first = r.locate(&point(x, y));
            assert_eq!(first.grid, Some(GridIdx(want as u32)), "({x}, {y}) is on {on:?}");
            if dedicated.is_none() {
                assert!(on.contains(&i) || on.contains(&j), "one of the edge's grids: {on:?} vs {i}, {j}");
                assert_eq!(first.via, Via::Point);
                if on.len() > 1 {
                    on_two_or_more += 1;
                    assert!(first.steps[0].contains("shared boundary"), "{:?}", first.steps);
                }
            }
            for _ in 0..3 {
                assert_eq!(r.locate(&point(x, y)), first, "same answer every time");
            }
        }
    }
    assert!(
        on_two_or_more > edges.len() / 5,
        "most tested points lie exactly on two grids: {on_two_or_more}"
    );
    // The toy county: y = 30.05 is A1 | A2; x = 100.1 is A1 | B1; (100.1, 30.05) is A1 | A2 | B1.
    let t = toy();
    for (p, want) in
        [((100.05, 30.05), "A1"), ((100.1, 30.02), "A1"), ((100.1, 30.05), "A1"), ((100.1, 30.07), "A2")]
    {
        let l = t.locate(&point(p.0, p.1));
        assert_eq!((code(t, l.grid), l.via), (Some(want), Via::Point), "{p:?}");
        assert!(l.steps[0].contains("shared boundary"), "{:?}", l.steps);
    }
}

#[test]
fn outside_the_county_waits_at_the_command_centre() {
    let r = jidong();
    for (x, y) in [(116.39, 39.91), (131.12, 46.5), (0.0, 0.0), (-180.0, 90.0), (1e300, -1e300)] {
        let routed = route(r, &intake("路灯坏了", None, point(x, y)), "10:00");
        assert_eq!(routed.worker, None);
        assert_eq!((routed.grid, routed.pool, routed.via), (None, Pool::CommandCentre, Via::CommandCentre));
        assert_eq!(routed.decision.rule, "command-centre");
        let why = routed.decision.explanation();
        assert!(why.contains("outside 鸡东县") && why.contains("鸡东县网格协调指挥中心"), "{why}");
        assert_eq!(routed.decision.category, "street_lighting", "the category is still inferred");
    }
    for (x, y) in [(f64::NAN, 45.2), (131.1, f64::INFINITY)] {
        let i = intake("", None, point(x, y));
        assert_eq!(route(r, &i, "10:00").worker, None);
        let e = r.validate(&i).unwrap_err();
        assert!(matches!(e, RouteError::BadPoint(_)) && e.field() == "lon", "{e}");
    }
    let none = route(r, &intake("", None, Location::default()), "10:00");
    assert_eq!((none.worker, none.decision.rule.as_str()), (None, "command-centre"));
    assert!(none.decision.steps[0].contains("no location given"), "{:?}", none.decision.steps);
}

#[test]
fn a_point_in_no_grid_inside_the_county_goes_to_the_nearest_grid_flagged() {
    let t = toy();
    // The gap cell: C1 is 0.02 degrees (about 2.2 km) south, B1 0.03 * cos(30) west.
    let routed = route(t, &intake("", Some("dispute"), point(100.23, 30.07)), "10:00");
    assert_eq!(routed.decision.grid.as_deref(), Some("C1"));
    assert_eq!(routed.via, Via::Nearest);
    assert_eq!(routed.decision.rule, "nearest/grid");
    assert!(routed.decision.steps[0].contains("nearest grid 东风村网格"), "{:?}", routed.decision.steps);
    let l = t.locate(&point(100.23, 30.07));
    let d = l.distance_m.unwrap();
    assert!((2000.0..2500.0).contains(&d), "{d}");
    // Nearer to B1's edge than to C1's.
    assert_eq!(code(t, t.locate(&point(100.205, 30.09)).grid), Some("B1"));
    // On the gap's boundary with a grid: in that grid, not "nearest".
    assert_eq!(t.locate(&point(100.25, 30.05)).via, Via::Point);
    // Outside the boundary: the command centre, whatever is near.
    assert_eq!(t.locate(&point(100.31, 30.07)).grid, None);
}

#[test]
fn explicit_grid_code_comes_first_and_an_unknown_one_is_reported() {
    let t = toy();
    let both = Location { grid: Some("A2".into()), point: Some((100.25, 30.02)), address: None };
    let l = t.locate(&both);
    assert_eq!((code(t, l.grid), l.via), (Some("A2"), Via::GridCode));
    let typo = Location { grid: Some("A9".into()), point: Some((100.25, 30.02)), address: None };
    let l = t.locate(&typo);
    assert_eq!((code(t, l.grid), l.via), (Some("C1"), Via::Point), "falls through to the point");
    assert!(l.steps[0].contains("`A9` is not in the registry"));
    let e = t.validate(&intake("", None, typo)).unwrap_err();
    assert_eq!((e.field(), e.to_string().as_str()), ("grid", "grid: unknown grid code `A9`"));
    assert_eq!(t.validate(&intake("", Some("water"), grid("B1"))), Ok(()));
    let e = t.validate(&intake("", Some("煤气"), grid("B1"))).unwrap_err();
    assert_eq!((e.field(), e.to_string().as_str()), ("category", "category: unknown category `煤气`"));
    assert_eq!(
        t.validate(&intake("", Some("供水"), grid("B1"))),
        Ok(()),
        "a category's Chinese name works too"
    );
    // Written as an operator may type them: spaced, full-width, capitals.
    for typed in [" 供 水 ", "供\u{3000}水", "ＷＡＴＥＲ", "Water"] {
        let i = t.category_idx(typed);
        assert_eq!(i.map(|i| t.registry().category(i).code.as_str()), Some("water"), "{typed:?}");
    }
    assert_eq!(t.category_idx("供"), None, "a part of a name is not the name");
}

#[test]
fn addresses_prefer_the_longest_most_specific_agreeing_match() {
    let t = toy();
    let cases = [
        ("甲镇东风社区阳光小区3号楼", Some("A1"), "grid keyword inside its community and township"),
        ("东风路18号", Some("A1"), "community keyword only: the community's first grid"),
        ("幸福小区5栋", Some("A2"), "a grid keyword in two grids: the lowest index"),
        ("乙乡幸福小区5栋", Some("C1"), "the township decides between them"),
        ("东风村村委会旁边", Some("C1"), "a village name"),
        ("东风社区第一中学门口", Some("D1"), "a dedicated site's name"),
        ("甲镇", None, "a township alone is not enough"),
        ("北京市朝阳区", None, "nothing matches"),
        ("", None, "empty"),
    ];
    for (a, want, why) in cases {
        let l = t.locate(&address(a));
        assert_eq!(code(t, l.grid), want, "{a}: {why}: {:?}", l.steps);
        assert_eq!(l.via, if want.is_some() { Via::Address } else { Via::CommandCentre });
    }
    let l = t.locate(&address("甲镇东风社区阳光小区3号楼"));
    assert!(
        l.steps[0].contains("「阳光小区」 (grid)") && l.steps[0].contains("「东风社区」"),
        "{:?}",
        l.steps
    );
    let l = t.locate(&address("甲镇"));
    assert!(l.steps[0].contains("only the township 「甲镇」"), "{:?}", l.steps);

    // Jidong: community names, estates and sites.
    let r = jidong();
    let reg = r.registry();
    let at = |a: &str| code(r, r.locate(&address(a)).grid).map(str::to_string);
    assert_eq!(at("鸡东镇南华社区嘉禾公寓2单元").as_deref(), Some("JDZ-NH-01"));
    assert_eq!(at("南华路馨园新村").as_deref(), Some("JDZ-NH-02"));
    let school = reg.grids.iter().find(|g| g.keywords.iter().any(|k| k == "鸡东一中")).unwrap();
    assert_eq!(at("鸡东一中东门").as_deref(), Some(school.code.as_str()));
    // Hits that share characters do not add up: 「鸡东站」 (the station's
    // dedicated grid) and 「站前社区」 share their 站. 鸡东站前社区 is the
    // community; the station is still the station.
    assert_eq!(at("鸡东站前社区").as_deref(), Some("JDZ-ZQ-01"));
    assert_eq!(at("鸡东镇站前社区").as_deref(), Some("JDZ-ZQ-01"));
    assert_eq!(at("鸡东站").as_deref(), Some("JDZ-S05"));
    // 站前路 (the community's street) and 鸡东站 score alike: an ordinary grid
    // wins the tie, so a street address is not taken by the station.
    assert_eq!(at("鸡东站前路15号").as_deref(), Some("JDZ-ZQ-01"));
    // An address naming places that disagree (an intersection, a boundary, a
    // township that is not the community's) is read one way, and says which
    // names it did not use.
    let said = |a: &str| r.locate(&address(a)).steps.join("; ");
    for (a, other) in [
        ("南华路与东风路交叉口", "「东风路」 (community/village)"),
        ("平阳镇南华社区", "「平阳镇」 (township)"),
    ] {
        let s = said(a);
        assert!(s.contains(&format!("the address also names {other}, elsewhere: not used")), "{a}: {s}");
    }
    assert!(!said("鸡东镇南华社区嘉禾公寓2单元").contains("also names"), "names that agree are all used");
    assert_eq!(at("鸡东站前社区鸡东火车站").as_deref(), Some("JDZ-S05"));
    // A name inside another agrees: the grid named whole (its community's
    // name inside it) beats an estate of another grid of the community.
    assert_eq!(at("站前社区第8网格凤凰公寓").as_deref(), Some("JDZ-ZQ-08"));
    // An address of hundreds of names is placed by its first ones.
    assert_eq!(at(&"新华社区阳光小区鸡东镇".repeat(300)).as_deref(), Some("JDZ-XH-05"));
    // Every grid is reachable from "township + community + its first keyword".
    for g in &reg.grids {
        let Some(k) = g.keywords.first() else { continue };
        let a = format!("{}{}{}3号", reg.township(g.township).name, reg.community(g.community).name, k);
        assert_eq!(at(&a).as_deref(), Some(g.code.as_str()), "{a}");
    }
}

#[test]
fn an_address_naming_only_a_township_keeps_the_township() {
    // Not enough for a grid: the command centre. But the township is known, and the
    // case is counted under it (docs/audit.md: the township of its location).
    let t = toy();
    let l = t.locate(&address("甲镇人民路"));
    assert_eq!((l.grid, l.via), (None, Via::CommandCentre));
    assert_eq!(l.township, t.registry().township_idx("T1"));
    let routed = route(t, &intake("", Some("dispute"), address("甲镇人民路")), "10:00");
    assert_eq!((routed.worker, routed.decision.rule.as_str()), (None, "command-centre"));
    assert_eq!(routed.decision.township.as_deref(), Some("T1"));
    assert_eq!(routed.township, t.registry().township_idx("T1"));
    // Nothing known: no township.
    let none = route(t, &intake("", Some("dispute"), address("北京市朝阳区")), "10:00");
    assert_eq!((none.decision.township, none.township), (None, None));
}

#[test]
fn addresses_written_other_ways_match_the_registry_spelling() {
    // Chinese input methods type full-width forms (１, Ａ, U+3000 space), and
    // residents say 第三网格 and 五组 where the registry writes 第3网格 and
    // 五组 (or 5组): a grid named 南华社区第3网格 must be found in each, not
    // fall back to the community's first grid.
    let r = jidong();
    let at = |a: &str| code(r, r.locate(&address(a)).grid).map(str::to_string);
    for a in
        ["鸡东镇南华社区第3网格", "鸡东镇南华社区第３网格", "鸡东镇南华社区第三网格", "南华社区 第 3 网格"]
    {
        assert_eq!(at(a).as_deref(), Some("JDZ-NH-03"), "{a}");
    }
    assert_eq!(at("平阳镇友山村5组").as_deref(), Some("PYZ-V12-03"));
    assert_eq!(at("平阳镇友山村五组").as_deref(), Some("PYZ-V12-03"));
    for a in ["南华社区第３网格", "南华社区第三网格"] {
        let l = r.locate(&address(a));
        assert!(
            l.steps[0].contains("「南华社区第3网格」 (grid)"),
            "the registry's own spelling: {:?}",
            l.steps
        );
    }
}

#[test]
fn a_point_outside_the_county_falls_through_to_the_address() {
    let t = toy();
    let loc = Location { point: Some((0.0, 0.0)), address: Some("阳光小区".into()), grid: None };
    let l = t.locate(&loc);
    assert_eq!((code(t, l.grid), l.via), (Some("A1"), Via::Address));
    assert!(l.steps[0].contains("outside 测试县"), "{:?}", l.steps);
    // Every point of the county boundary is placed.
    let reg = t.registry();
    for c in reg.county.boundary.0[0].exterior().coords() {
        assert!(reg.county.boundary.coordinate_position(c) != CoordPos::Outside);
        assert!(t.locate(&point(c.x, c.y)).grid.is_some(), "{c:?}");
    }
}

#[test]
fn without_a_boundary_a_gap_surrounded_by_grids_is_inside_the_county() {
    // The toy county without `[county.boundary]`, and B1 with a hole in
    // its middle: a sliver of land no grid covers, inside the county.
    let county = TOY_COUNTY.replace(
        "[county.boundary]\ntype = \"Polygon\"\ncoordinates = [[[100.0, 30.0], [100.3, 30.0], [100.3, 30.1], [100.0, 30.1], [100.0, 30.0]]]\n",
        "",
    );
    assert_ne!(county, TOY_COUNTY, "the boundary is removed");
    let grids = TOY_GRIDS.replace(
        "[[[100.1,30.0],[100.2,30.0],[100.2,30.1],[100.1,30.1],[100.1,30.0]]]",
        "[[[100.1,30.0],[100.2,30.0],[100.2,30.1],[100.1,30.1],[100.1,30.0]],\
          [[100.14,30.04],[100.16,30.04],[100.16,30.06],[100.14,30.06],[100.14,30.04]]]",
    );
    assert_ne!(grids, TOY_GRIDS, "B1 has a hole");
    let src = gridline_registry::Sources {
        dir: "<toy without boundary>".into(),
        county_toml: &county,
        workers_csv: TOY_WORKERS,
        grids_geojson: &grids,
    };
    let r = gridline_routing::Router::new(std::sync::Arc::new(
        gridline_registry::Registry::from_sources(&src).unwrap(),
    ));
    let l = r.locate(&point(100.15, 30.05));
    assert_eq!((code(&r, l.grid), l.via), (Some("B1"), Via::Nearest));
    // Beyond the grids' outer edge is still outside.
    assert_eq!(r.locate(&point(100.31, 30.05)).grid, None);
    // The gap at the top right, open to the outside, stays outside too.
    assert_eq!(r.locate(&point(100.25, 30.09)).grid, None);
}

/// A county boundary in two parts that share an edge (a MultiPolygon as
/// some GIS tools export one): a point on the shared edge is inside the
/// county, not outside it (geo's mod-2 rule counts two boundaries there as
/// none).
#[test]
fn a_point_on_the_seam_of_a_two_part_boundary_is_inside_the_county() {
    let whole = "type = \"Polygon\"\ncoordinates = [[[100.0, 30.0], [100.3, 30.0], [100.3, 30.1], [100.0, 30.1], [100.0, 30.0]]]";
    let parts = "type = \"MultiPolygon\"\ncoordinates = [[[[100.0, 30.0], [100.25, 30.0], [100.25, 30.1], [100.0, 30.1], [100.0, 30.0]]], [[[100.25, 30.0], [100.3, 30.0], [100.3, 30.1], [100.25, 30.1], [100.25, 30.0]]]]";
    assert!(TOY_COUNTY.contains(whole));
    let county = TOY_COUNTY.replace(whole, parts);
    let src = gridline_registry::Sources {
        dir: "<toy>".into(),
        county_toml: &county,
        workers_csv: TOY_WORKERS,
        grids_geojson: TOY_GRIDS,
    };
    let reg = match gridline_registry::Registry::from_sources(&src) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let r = gridline_routing::Router::new(std::sync::Arc::new(reg));
    // In the gap cell (no grid), on the seam and beside it: the nearest grid.
    for lon in [100.25, 100.26] {
        let l = r.locate(&point(lon, 30.07));
        assert_eq!(l.via, Via::Nearest, "{lon}: {:?}", l.steps);
    }
    // Outside both parts: outside.
    assert_eq!(r.locate(&point(100.31, 30.07)).grid, None);
}
