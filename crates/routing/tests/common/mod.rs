//! Shared test fixtures: the embedded Jidong router and a small hand-written
//! county whose every grid, worker and gap is known.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use gridline_model::{Intake, Location, Priority, Timestamp};
use gridline_registry::{Registry, Sources};
use gridline_routing::{RouteRequest, Routed, Router};

pub fn jidong() -> &'static Router {
    static R: OnceLock<Router> = OnceLock::new();
    R.get_or_init(|| Router::new(Arc::new(gridline_registry::embedded::jidong().clone())))
}

/// Local time (+08:00) on 2026-11-24.
pub fn at(hhmm: &str) -> Timestamp {
    Timestamp::parse(&format!("2026-11-24T{hhmm}"), 480).unwrap()
}

pub fn intake(text: &str, category: Option<&str>, location: Location) -> Intake {
    Intake { text: text.into(), category: category.map(Into::into), location, ..Intake::default() }
}

pub fn point(lon: f64, lat: f64) -> Location {
    Location { point: Some((lon, lat)), ..Location::default() }
}

pub fn grid(code: &str) -> Location {
    Location { grid: Some(code.into()), ..Location::default() }
}

pub fn address(a: &str) -> Location {
    Location { address: Some(a.into()), ..Location::default() }
}

/// Routes with every load 0 and nobody excluded.
pub fn route(r: &Router, i: &Intake, time: &str) -> Routed {
    route_with(r, i, time, &vec![0; r.registry().workers.len()], &[])
}

pub fn route_with(r: &Router, i: &Intake, time: &str, loads: &[u32], exclude: &[&str]) -> Routed {
    let exclude: Vec<gridline_model::CompactString> = exclude.iter().map(|&s| s.into()).collect();
    r.route(&RouteRequest { intake: i, at: at(time), exclude: &exclude }, loads)
}

pub fn emergency(mut i: Intake) -> Intake {
    i.priority = Priority::Emergency;
    i
}

/// Loads by worker id (everyone else 0).
pub fn loads(r: &Router, by_id: &[(&str, u32)]) -> Vec<u32> {
    let mut v = vec![0; r.registry().workers.len()];
    for (id, n) in by_id {
        v[r.registry().worker_idx(id).unwrap().ix()] = *n;
    }
    v
}

/// The toy county (测试县), 0.3 x 0.1 degrees at 30 N:
///
/// ```text
///  30.10 +---------+---------+---------+
///        |   A2    |         |  (gap:  |
///        | 东风社区 |   B1    |  no grid|
///  30.05 +---------+  红旗村  +---------+
///        |  A1 [D1]|         |   C1    |
///        | 东风社区 |         |  东风村  |
///  30.00 +---------+---------+---------+
///      100.0     100.1     100.2     100.3
/// ```
/// A1, A2 and the dedicated school grid D1 (inside A1) are 东风社区, B1 is
/// 红旗村 (both in 甲镇, T1); C1 is 东风村 in 乙乡 (T2). The top right cell
/// is inside the county boundary but in no grid.
pub const TOY_COUNTY: &str = r#"
[county]
name = "测试县"
code = "TS"
utc_offset_minutes = 480
centre = [100.15, 30.05]
command_centre = "测试县网格协调指挥中心"
warn_at_percent = 80
general_category = "general"

[county.boundary]
type = "Polygon"
coordinates = [[[100.0, 30.0], [100.3, 30.0], [100.3, 30.1], [100.0, 30.1], [100.0, 30.0]]]

[[department]]
code = "water"
name = "县水务局"

[[category]]
code = "water"
name = "供水"
handling = "department"
department = "water"
keywords = ["漏水", "停水", "水管"]
claim = { normal = "1h", urgent = "30m", emergency = "10m" }
close = { normal = "2d", urgent = "12h", emergency = "4h" }

[[category]]
code = "drainage"
name = "排水"
handling = "grid_with_department"
department = "water"
keywords = ["下水道", "堵塞"]
claim = { normal = "1h", urgent = "30m", emergency = "10m" }
close = { normal = "2d", urgent = "12h", emergency = "4h" }

[[category]]
code = "dispute"
name = "邻里纠纷"
handling = "grid"
keywords = ["噪音", "邻居"]
claim = { normal = "1h", urgent = "30m", emergency = "10m" }
close = { normal = "2d", urgent = "12h", emergency = "4h" }

[[category]]
code = "general"
name = "综合事项"
handling = "grid"
keywords = []
claim = { normal = "1h", urgent = "30m", emergency = "10m" }
close = { normal = "2d", urgent = "12h", emergency = "4h" }

[[township]]
code = "T1"
name = "甲镇"
kind = "town"

[[township]]
code = "T2"
name = "乙乡"
kind = "township"

[[community]]
code = "T1-A"
name = "东风社区"
township = "T1"
kind = "community"
keywords = ["东风路"]

[[community]]
code = "T1-B"
name = "红旗村"
township = "T1"
kind = "village"

[[community]]
code = "T2-C"
name = "东风村"
township = "T2"
kind = "village"
"#;

pub const TOY_WORKERS: &str = "\
id,name,kind,grid,department,townships,phone,duty
W1,甲一,full_time,A1,,,13800000001,
W2,甲二,part_time,A1,,,13800000002,08:00-12:00
W3,甲三,part_time,A1,,,13800000003,18:00-22:00
W4,乙一,part_time,A2,,,13800000004,20:00-08:00
W5,丙一,full_time,D1,,,13800000005,
W6,丁一,full_time,B1,,,13800000006,
W7,戊一,full_time,C1,,,13800000007,
W8,水一,department,,water,T1,13800000008,
W9,水二,department,,water,T2,13800000009,
";

pub const TOY_GRIDS: &str = r#"{"type":"FeatureCollection","features":[
{"type":"Feature","properties":{"code":"A1","name":"东风社区第1网格","kind":"urban","community":"T1-A","keywords":["阳光小区"]},
 "geometry":{"type":"Polygon","coordinates":[[[100.0,30.0],[100.1,30.0],[100.1,30.05],[100.0,30.05],[100.0,30.0]]]}},
{"type":"Feature","properties":{"code":"A2","name":"东风社区第2网格","kind":"urban","community":"T1-A","keywords":["幸福小区"]},
 "geometry":{"type":"Polygon","coordinates":[[[100.0,30.05],[100.1,30.05],[100.1,30.1],[100.0,30.1],[100.0,30.05]]]}},
{"type":"Feature","properties":{"code":"D1","name":"第一中学网格","kind":"dedicated","community":"T1-A","keywords":["第一中学"],"site":"school"},
 "geometry":{"type":"Polygon","coordinates":[[[100.02,30.01],[100.03,30.01],[100.03,30.02],[100.02,30.02],[100.02,30.01]]]}},
{"type":"Feature","properties":{"code":"B1","name":"红旗村网格","kind":"rural","community":"T1-B","keywords":[]},
 "geometry":{"type":"Polygon","coordinates":[[[100.1,30.0],[100.2,30.0],[100.2,30.1],[100.1,30.1],[100.1,30.0]]]}},
{"type":"Feature","properties":{"code":"C1","name":"东风村网格","kind":"rural","community":"T2-C","keywords":["幸福小区"]},
 "geometry":{"type":"Polygon","coordinates":[[[100.2,30.0],[100.3,30.0],[100.3,30.05],[100.2,30.05],[100.2,30.0]]]}}
]}"#;

pub fn toy_registry() -> Registry {
    let src = Sources {
        dir: "<toy>".into(),
        county_toml: TOY_COUNTY,
        workers_csv: TOY_WORKERS,
        grids_geojson: TOY_GRIDS,
    };
    match Registry::from_sources(&src) {
        Ok(r) => r,
        Err(e) => panic!("the toy county does not load:\n{e}"),
    }
}

pub fn toy() -> &'static Router {
    static R: OnceLock<Router> = OnceLock::new();
    R.get_or_init(|| Router::new(Arc::new(toy_registry())))
}
