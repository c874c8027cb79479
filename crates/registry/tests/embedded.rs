//! The embedded Jidong registry: the contract's counts and the invariants
//! every other crate relies on.

use std::collections::{HashMap, HashSet};

use geo::{Area, BoundingRect, Centroid, Contains, Intersects};
use gridline_model::Priority;
use gridline_registry::{embedded, CommunityKind, GridKind, Handling, Registry, Stats, WorkerKind};

fn jd() -> &'static Registry {
    embedded::jidong()
}

#[test]
fn contract_counts() {
    let s = Stats::of(jd());
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["grids"], serde_json::json!({"total": 626, "urban": 115, "rural": 503, "dedicated": 8}));
    assert_eq!(
        json["workers"],
        serde_json::json!({"total": 2491, "full_time": 633, "part_time": 1508, "department": 350})
    );
    assert_eq!(json["departments"], 10);
    assert_eq!(s.county, "鸡东县");
    assert_eq!((s.townships, s.communities, s.villages), (10, 15, 130));
    assert!(s.categories >= 12);
    for d in &jd().departments {
        assert!(!d.professionals.is_empty(), "{} has professionals", d.code);
    }
}

#[test]
fn county_settings() {
    let c = &jd().county;
    assert_eq!((c.code.as_str(), c.utc_offset_min, c.warn_at_percent), ("JD", 480, 80));
    assert_eq!(c.centre, (131.12, 45.26));
    assert_eq!(c.command_centre, "鸡东县网格协调指挥中心");
    let general = jd().category(c.general_category);
    assert_eq!((general.code.as_str(), general.handling), ("general", Handling::Grid));
    for code in [
        "water",
        "heating",
        "power",
        "street_lighting",
        "roads",
        "sanitation",
        "public_order",
        "neighbour_dispute",
        "social_security",
        "market_food_safety",
        "petition",
        "gas",
        "housing",
        "elevator",
        "city_management",
        "traffic",
        "fire_safety",
        "environment",
        "general",
    ] {
        assert!(jd().category_idx(code).is_some(), "category {code}");
    }
}

#[test]
fn hierarchy() {
    let r = jd();
    // Every grid is in exactly one community, listed there once.
    let mut seen = vec![0; r.grids.len()];
    for (ci, c) in r.communities.iter().enumerate() {
        for &g in &c.grids {
            seen[g.ix()] += 1;
            assert_eq!(r.grid(g).community.ix(), ci);
        }
        assert!(r.township(c.township).communities.iter().any(|&x| x.ix() == ci));
        assert!(c.grids.iter().any(|&g| r.grid(g).kind != GridKind::Dedicated), "{} has a grid", c.code);
    }
    assert!(seen.iter().all(|&n| n == 1));
    // Every community is in exactly one township.
    let mut seen = vec![0; r.communities.len()];
    for t in &r.townships {
        for &c in &t.communities {
            seen[c.ix()] += 1;
        }
    }
    assert!(seen.iter().all(|&n| n == 1));
    for g in &r.grids {
        let c = r.community(g.community);
        assert_eq!(g.township, c.township);
        match g.kind {
            GridKind::Urban => assert_eq!(c.kind, CommunityKind::Community),
            GridKind::Rural => assert_eq!(c.kind, CommunityKind::Village),
            GridKind::Dedicated => assert!(g.site.is_some() && g.parent.is_some()),
        }
        assert_eq!(r.grid_idx(&g.code).map(|i| r.grid(i).code.as_str()), Some(g.code.as_str()));
    }
    // Urban communities are mostly in the county seat.
    let seat = r.township_idx("JDZ").unwrap();
    let urban = r.communities.iter().filter(|c| c.kind == CommunityKind::Community);
    assert!(urban.clone().filter(|c| c.township == seat).count() * 2 > urban.count());
}

#[test]
fn leads_are_workers() {
    let r = jd();
    for t in &r.townships {
        assert!(t.lead.is_some(), "{}", t.code);
    }
    for c in &r.communities {
        let lead = r.worker(c.lead.expect("a lead"));
        assert_eq!(lead.kind, WorkerKind::FullTime);
    }
}

#[test]
fn workers() {
    let r = jd();
    let mut ids = HashSet::new();
    for (i, w) in r.workers.iter().enumerate() {
        assert!(ids.insert(w.id.as_str()), "unique id {}", w.id);
        assert_eq!(r.worker_idx(&w.id).map(|x| x.ix()), Some(i));
        assert!(w.phone.len() == 11 && w.phone.bytes().all(|b| b.is_ascii_digit()));
        match w.kind {
            WorkerKind::FullTime | WorkerKind::PartTime => {
                let g = w.grid.expect("a grid worker has a grid");
                assert!(r.grid(g).workers.iter().any(|x| x.ix() == i));
                assert!(w.department.is_none() && w.townships.is_empty());
            }
            WorkerKind::Department => {
                let d = w.department.expect("a professional has a department");
                assert!(r.department(d).professionals.iter().any(|x| x.ix() == i));
                assert!(w.grid.is_none() && !w.townships.is_empty());
            }
        }
        if w.kind != WorkerKind::PartTime {
            assert!(w.duty.is_empty());
        }
    }
    // Part-timers have a mix of duty hours, some wrapping midnight.
    let part: Vec<_> = r.workers.iter().filter(|w| w.kind == WorkerKind::PartTime).collect();
    let shapes: HashSet<_> = part.iter().map(|w| format!("{:?}", w.duty)).collect();
    assert!(shapes.len() >= 5);
    assert!(part.iter().any(|w| w.duty.iter().any(|d| d.end_min < d.start_min)));
    assert!(part.iter().filter(|w| w.duty.is_empty()).count() < part.len() / 5);
}

#[test]
fn every_grid_is_staffed() {
    let r = jd();
    for g in &r.grids {
        let full = g.workers.iter().filter(|&&w| r.worker(w).kind == WorkerKind::FullTime).count();
        assert!(full >= 1, "{} has a full-time worker", g.code);
        assert!(g.workers.len() >= 3, "{} has part-timers too", g.code);
    }
    assert!(r.grids.iter().any(|g| g.workers.len() > 3), "some grids have more");
}

#[test]
fn every_department_covers_every_township() {
    let r = jd();
    for (di, d) in r.departments.iter().enumerate() {
        assert_eq!(d.professionals.len(), 35);
        for (ti, t) in r.townships.iter().enumerate() {
            let pros = r.professionals(
                gridline_registry::DeptIdx(di as u32),
                gridline_registry::TownshipIdx(ti as u32),
            );
            assert!(!pros.is_empty(), "{} in {}", d.code, t.code);
            for &p in pros {
                assert!(r.worker(p).townships.iter().any(|x| x.ix() == ti));
            }
        }
    }
}

#[test]
fn every_category_is_handled() {
    let r = jd();
    let mut keywords = HashMap::new();
    for k in &r.categories {
        match k.handling {
            Handling::Grid => assert!(k.department.is_none()),
            Handling::Department | Handling::GridWithDepartment => {
                let d = k.department.expect("a department");
                for t in 0..r.townships.len() {
                    assert!(!r.professionals(d, gridline_registry::TownshipIdx(t as u32)).is_empty());
                }
            }
        }
        for p in Priority::ALL {
            assert!(k.limits.claim(p) <= k.limits.close(p), "{} {p:?}", k.code);
        }
        for w in &k.keywords {
            assert!(keywords.insert(w.clone(), k.code.clone()).is_none(), "keyword {w} in two categories");
        }
    }
    assert_eq!(keywords["漏水"], "water");
    assert_eq!(keywords["路灯"], "street_lighting");
    assert_eq!(keywords["暖气"], "heating");
    assert_eq!(keywords["停电"], "power");
    assert_eq!(keywords["噪音"], "neighbour_dispute");
}

#[test]
fn dedicated_grids_lie_inside_their_parents() {
    let r = jd();
    let dedicated: Vec<_> = r.grids.iter().filter(|g| g.kind == GridKind::Dedicated).collect();
    let sites: Vec<_> = dedicated.iter().map(|g| g.site.as_deref().unwrap()).collect();
    for site in ["school", "hospital", "industrial_park"] {
        assert_eq!(sites.iter().filter(|&&s| s == site).count(), 2, "{site}");
    }
    for g in dedicated {
        let parent = r.grid(g.parent.unwrap());
        assert_ne!(parent.kind, GridKind::Dedicated);
        assert_eq!(parent.community, g.community);
        assert!(parent.polygon.contains(&g.polygon), "{} inside {}", g.code, parent.code);
        assert!(parent.polygon.unsigned_area() > 3.0 * g.polygon.unsigned_area());
    }
}

#[test]
fn grids_tile_the_county() {
    let r = jd();
    let plain: Vec<_> = r.grids.iter().filter(|g| g.kind != GridKind::Dedicated).collect();
    // No gaps: the grids' areas add up to the boundary's (they do not overlap: the loader checks).
    let total: f64 = plain.iter().map(|g| g.polygon.unsigned_area()).sum();
    let boundary = r.county.boundary.unsigned_area();
    assert!((total - boundary).abs() < 1e-9 * boundary, "{total} vs {boundary}");
    // Within about +-0.6 lon / +-0.4 lat of the seat; urban grids small, rural bigger.
    let b = r.county.boundary.bounding_rect().unwrap();
    assert!(b.min().x > 130.5 && b.max().x < 131.74 && b.min().y > 44.84 && b.max().y < 45.68, "{b:?}");
    let mean = |k: GridKind| {
        let v: Vec<f64> = plain.iter().filter(|g| g.kind == k).map(|g| g.polygon.unsigned_area()).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(mean(GridKind::Rural) > 20.0 * mean(GridKind::Urban));
}

#[test]
fn each_grid_contains_its_centroid_and_no_other_does() {
    let r = jd();
    let boxes: Vec<_> = r.grids.iter().map(|g| g.polygon.bounding_rect().unwrap()).collect();
    for (i, g) in r.grids.iter().enumerate() {
        let c = g.polygon.centroid().unwrap();
        assert!(g.polygon.contains(&c), "{}", g.code);
        assert!(r.county.boundary.contains(&c));
        let containing: Vec<usize> = (0..r.grids.len())
            .filter(|&j| boxes[j].intersects(&c) && r.grids[j].polygon.contains(&c))
            .filter(|&j| r.grids[j].kind != GridKind::Dedicated)
            .collect();
        let expected = if g.kind == GridKind::Dedicated { g.parent.unwrap().ix() } else { i };
        assert_eq!(containing, [expected], "{}", g.code);
    }
}

#[test]
fn address_keywords_are_distinct() {
    let r = jd();
    let mut sets = HashSet::new();
    let mut all = HashMap::new();
    for g in &r.grids {
        assert!(!g.keywords.is_empty(), "{} has keywords", g.code);
        let mut set = g.keywords.clone();
        set.sort();
        assert!(sets.insert(set), "{} shares its keyword set", g.code);
        for k in &g.keywords {
            assert!(all.insert(k.clone(), g.code.clone()).is_none(), "{k} names two grids");
        }
    }
    for c in &r.communities {
        assert!(c.keywords.iter().any(|k| k == &c.name));
    }
}
