//! Writing the three files. Formatting is done by hand so that the output is
//! stable and readable: one TOML table per item, one CSV row per worker, one
//! GeoJSON feature per line.

use std::fmt::Write as _;

use crate::layout::degrees;
use crate::tables::{CATEGORIES, DEPARTMENTS, GENERAL_CATEGORY};
use crate::{County, Files};

pub const REGENERATE: &str = "cargo run -p gridline-registry-gen -- config/jidong";

pub fn files(c: &County) -> Files {
    Files { county_toml: county_toml(c), workers_csv: workers_csv(c), grids_geojson: grids_geojson(c) }
}

/// A TOML basic string; our strings never need escapes, and we check that.
fn q(s: &str) -> String {
    assert!(!s.contains(['"', '\\', '\n']) && !s.chars().any(char::is_control), "{s:?}");
    format!("\"{s}\"")
}

fn list(items: &[impl AsRef<str>]) -> String {
    let inner: Vec<String> = items.iter().map(|s| q(s.as_ref())).collect();
    format!("[{}]", inner.join(", "))
}

fn county_toml(c: &County) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "# Jidong County (鸡东县), Jixi, Heilongjiang: Gridline's default registry.");
    let _ = writeln!(w, "# Township names are real. Community, village and street names, all people");
    let _ = writeln!(w, "# and all geometry are synthetic. Generated, do not edit by hand:");
    let _ = writeln!(w, "#     {REGENERATE}");
    let _ = writeln!(w, "# The format is described in docs/config.md.");
    let _ = writeln!(w);
    let _ = writeln!(w, "[county]");
    let _ = writeln!(w, "name = {}", q("鸡东县"));
    let _ = writeln!(w, "code = {}", q("JD"));
    let _ = writeln!(w, "utc_offset_minutes = 480");
    let _ = writeln!(w, "centre = [131.12, 45.26]");
    let _ = writeln!(w, "command_centre = {}", q("鸡东县网格协调指挥中心"));
    let _ = writeln!(w, "warn_at_percent = 80");
    let _ = writeln!(w, "general_category = {}", q(GENERAL_CATEGORY));

    let _ = writeln!(w, "\n# The livelihood departments (民生部门).");
    for d in DEPARTMENTS {
        let _ = writeln!(w, "\n[[department]]\ncode = {}\nname = {}", q(d.code), q(d.name));
    }

    let _ = writeln!(w, "\n# Case categories: who handles them, the words that suggest them, time limits.");
    for k in CATEGORIES {
        let _ = writeln!(w, "\n[[category]]");
        let _ = writeln!(w, "code = {}", q(k.code));
        let _ = writeln!(w, "name = {}", q(k.name));
        let _ = writeln!(w, "handling = {}", q(k.handling));
        if let Some(d) = k.department {
            let _ = writeln!(w, "department = {}", q(d));
        }
        let _ = writeln!(w, "keywords = {}", list(k.keywords));
        let limits = |l: [&str; 3]| {
            format!("{{ normal = {}, urgent = {}, emergency = {} }}", q(l[0]), q(l[1]), q(l[2]))
        };
        let _ = writeln!(w, "claim = {}", limits(k.claim));
        let _ = writeln!(w, "close = {}", limits(k.close));
    }

    let _ = writeln!(w, "\n# Towns (镇) and townships (乡).");
    for t in &c.townships {
        let _ = writeln!(w, "\n[[township]]");
        let _ = writeln!(
            w,
            "code = {}\nname = {}\nkind = {}\nlead = {}",
            q(t.code),
            q(t.name),
            q(t.kind),
            q(&t.lead)
        );
    }

    let _ = writeln!(w, "\n# Communities (社区, urban) and villages (村, rural).");
    for m in &c.communities {
        let _ = writeln!(w, "\n[[community]]");
        let _ = writeln!(w, "code = {}", q(&m.code));
        let _ = writeln!(w, "name = {}", q(&m.name));
        let _ = writeln!(w, "township = {}", q(c.townships[m.township].code));
        let _ = writeln!(w, "kind = {}", q(if m.urban { "community" } else { "village" }));
        let _ = writeln!(w, "keywords = {}", list(&m.keywords));
        let _ = writeln!(w, "lead = {}", q(&m.lead));
    }

    let _ = writeln!(w, "\n# The county boundary (synthetic): exactly the outline of the grids.");
    let _ = writeln!(w, "[county.boundary]");
    let _ = writeln!(w, "type = \"Polygon\"");
    let _ = writeln!(w, "coordinates = [[");
    for chunk in c.boundary.chunks(4) {
        let points: Vec<String> =
            chunk.iter().map(|&(x, y)| format!("[{}, {}]", degrees(x), degrees(y))).collect();
        let _ = writeln!(w, "  {},", points.join(", "));
    }
    let _ = writeln!(w, "]]");
    s
}

fn workers_csv(c: &County) -> String {
    let mut s = String::from("id,name,kind,grid,department,townships,phone,duty\n");
    for w in &c.workers {
        let fields =
            [&w.id, &w.name, w.kind, &w.grid, &w.department, &w.townships.join(";"), &w.phone, w.duty];
        for f in fields {
            assert!(!f.contains([',', '"', '\n']), "{f:?}");
        }
        s.push_str(&fields.join(","));
        s.push('\n');
    }
    s
}

fn json(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

fn grids_geojson(c: &County) -> String {
    let mut s = String::new();
    s.push_str("{\"type\":\"FeatureCollection\",");
    let note = format!(
        "Jidong County grids. Synthetic geometry, generated by `{REGENERATE}`; see config/jidong/README.md."
    );
    let _ = writeln!(s, "\"note\":{},\"features\":[", json(&note));
    for (i, g) in c.grids.iter().enumerate() {
        let keywords: Vec<String> = g.keywords.iter().map(|k| json(k)).collect();
        let mut props = format!(
            "\"code\":{},\"name\":{},\"kind\":{},\"community\":{},\"keywords\":[{}]",
            json(&g.code),
            json(&g.name),
            json(g.kind),
            json(&c.communities[g.community].code),
            keywords.join(",")
        );
        if let Some(site) = g.site {
            let _ = write!(props, ",\"site\":{}", json(site));
        }
        let points: Vec<String> =
            g.ring.iter().map(|&(x, y)| format!("[{},{}]", degrees(x), degrees(y))).collect();
        let sep = if i + 1 < c.grids.len() { "," } else { "" };
        let _ = writeln!(
            s,
            "{{\"type\":\"Feature\",\"properties\":{{{props}}},\"geometry\":{{\"type\":\"Polygon\",\"coordinates\":[[{}]]}}}}{sep}",
            points.join(",")
        );
    }
    s.push_str("]}\n");
    s
}
