//! Generates Gridline's default registry, Jidong County (鸡东县), as the three
//! files of `config/jidong/`: `county.toml`, `workers.csv`, `grids.geojson`.
//!
//! The township names are real; communities, villages, streets, estates,
//! people, phone numbers and all geometry are synthetic. The only source of
//! variety is a SplitMix64 generator with a fixed seed, and all geometry is
//! computed in integer micro-degrees, so every run on every machine writes
//! the same bytes (a test holds the committed files to that).
//!
//! - [`rng`]: the PRNG.
//! - `tables`: the fixed names, counts, departments and categories.
//! - `layout`: the lattice, the partition into cells, the warp.
//! - `render`: writing the three files.

pub mod rng;

mod layout;
mod render;
mod tables;

use std::collections::HashSet;

use layout::Rect;
use rng::SplitMix64;
use tables::{numeral, TOWNSHIPS};

/// The seed of the default registry.
pub const SEED: u64 = 0x4A44_4E47_2026_0001;

/// The exact counts of the contract.
pub const URBAN_GRIDS: usize = 115;
pub const RURAL_GRIDS: usize = 503;
pub const DEDICATED_GRIDS: usize = 8;
pub const FULL_TIME: usize = 633;
pub const PART_TIME: usize = 1508;
pub const PROFESSIONALS: usize = 350;

/// The three files, as text.
pub struct Files {
    pub county_toml: String,
    pub workers_csv: String,
    pub grids_geojson: String,
}

impl Files {
    /// (file name, contents)
    pub fn named(&self) -> [(&'static str, &str); 3] {
        [
            ("county.toml", &self.county_toml),
            ("workers.csv", &self.workers_csv),
            ("grids.geojson", &self.grids_geojson),
        ]
    }
}

pub(crate) struct Township {
    pub code: &'static str,
    pub name: &'static str,
    pub kind: &'static str,
    pub lead: String,
}

pub(crate) struct Community {
    pub code: String,
    pub name: String,
    pub township: usize,
    pub urban: bool,
    pub keywords: Vec<String>,
    pub lead: String,
    pub grids: Vec<usize>,
}

pub(crate) struct Grid {
    pub code: String,
    pub name: String,
    pub kind: &'static str,
    pub community: usize,
    pub keywords: Vec<String>,
    pub site: Option<&'static str>,
    /// Closed, counter-clockwise, in warped micro-degrees.
    pub ring: Vec<(i64, i64)>,
}

pub(crate) struct Worker {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub grid: String,
    pub department: String,
    pub townships: Vec<&'static str>,
    pub phone: String,
    pub duty: &'static str,
}

pub(crate) struct County {
    pub townships: Vec<Township>,
    pub communities: Vec<Community>,
    pub grids: Vec<Grid>,
    pub workers: Vec<Worker>,
    /// Closed, counter-clockwise, in warped micro-degrees.
    pub boundary: Vec<(i64, i64)>,
}

/// The default registry, rendered.
pub fn generate() -> Files {
    let county = build(&mut SplitMix64::new(SEED));
    render::files(&county)
}

fn build(rng: &mut SplitMix64) -> County {
    let mut names = Names::new();
    let mut townships = Vec::new();
    let mut communities: Vec<Community> = Vec::new();
    // Non-dedicated grids: (community, rectangle), in file order.
    let mut cells: Vec<(usize, Rect)> = Vec::new();

    // Rural grids per village: 3 each, the rest spread at random (at most 6).
    let village_total: usize = TOWNSHIPS.iter().map(|t| t.villages).sum();
    let mut per_village = vec![3usize; village_total];
    let mut extra = RURAL_GRIDS - 3 * village_total;
    while extra > 0 {
        let v = rng.below(village_total as u64) as usize;
        if per_village[v] < 6 {
            per_village[v] += 1;
            extra -= 1;
        }
    }
    let mut village_no = 0;

    for (ti, t) in TOWNSHIPS.iter().enumerate() {
        townships.push(Township { code: t.code, name: t.name, kind: t.kind, lead: String::new() });
        let block = Rect::from_units(t.block);

        // Urban communities in the core.
        let mut strips = vec![block];
        if let Some(core) = t.core {
            let core = Rect::from_units(core);
            strips = layout::strips_around(block, core).to_vec();
            let weights: Vec<i64> =
                t.communities.iter().map(|c| c.2 as i64 * (100 + rng.range(-8, 8))).collect();
            for (c, rect) in t.communities.iter().zip(layout::partition(core, &weights)) {
                let (suffix, name, n, streets) = *c;
                let ci = communities.len();
                let mut keywords = vec![name.to_string()];
                keywords.extend(streets.iter().map(|s| s.to_string()));
                communities.push(Community {
                    code: format!("{}-{suffix}", t.code),
                    name: name.to_string(),
                    township: ti,
                    urban: true,
                    keywords,
                    lead: String::new(),
                    grids: Vec::new(),
                });
                for r in layout::partition(rect, &layout::jittered(rng, n, 15)) {
                    cells.push((ci, r));
                }
            }
        }

        // Villages in the rest of the block.
        let areas: Vec<i64> = strips.iter().map(Rect::area).collect();
        let counts = layout::apportion(t.villages, &areas);
        let mut v_in_township = 0;
        for (strip, &count) in strips.iter().zip(&counts) {
            let village_weights: Vec<i64> =
                (0..count).map(|k| per_village[village_no + k] as i64 * (100 + rng.range(-15, 15))).collect();
            for rect in layout::partition(*strip, &village_weights) {
                v_in_township += 1;
                let name = names.village(rng);
                let ci = communities.len();
                communities.push(Community {
                    code: format!("{}-V{v_in_township:02}", t.code),
                    name: name.clone(),
                    township: ti,
                    urban: false,
                    keywords: vec![name],
                    lead: String::new(),
                    grids: Vec::new(),
                });
                let n = per_village[village_no];
                village_no += 1;
                for r in layout::partition(rect, &layout::jittered(rng, n, 20)) {
                    cells.push((ci, r));
                }
            }
        }
    }
    assert_eq!(village_no, village_total);

    // Non-dedicated grids, with shared vertices, warped.
    let rects: Vec<Rect> = cells.iter().map(|c| c.1).collect();
    let lattice_rings = layout::rings(&rects);
    let boundary_lattice = layout::outline(&lattice_rings);
    let total_area: i128 = lattice_rings.iter().map(|r| layout::area2(r)).sum();
    assert_eq!(total_area, layout::area2(&boundary_lattice), "the grids tile the county");

    let mut grids: Vec<Grid> = Vec::new();
    for (&(ci, _), ring) in cells.iter().zip(&lattice_rings) {
        let c = &mut communities[ci];
        let no = c.grids.len() + 1;
        let keywords = if c.urban {
            vec![names.estate(rng), names.estate(rng)]
        } else {
            vec![
                format!("{}{}组", c.name, numeral(2 * no - 1)),
                format!("{}{}组", c.name, numeral(2 * no)),
                names.hamlet(rng),
            ]
        };
        c.grids.push(grids.len());
        grids.push(Grid {
            code: format!("{}-{no:02}", c.code),
            name: format!("{}第{no}网格", c.name),
            kind: if c.urban { "urban" } else { "rural" },
            community: ci,
            keywords,
            site: None,
            ring: ring.iter().map(|&p| layout::warp(p)).collect(),
        });
    }

    // Dedicated grids, inside the grid named in the table.
    let mut site_no: Vec<usize> = vec![0; TOWNSHIPS.len()];
    for s in tables::SITES {
        let ti = TOWNSHIPS.iter().position(|t| t.code == s.township).expect("township");
        let code = format!("{}-{}", s.township, s.community);
        let ci = communities.iter().position(|c| c.code == code).expect("community");
        let parent = communities[ci].grids[s.grid - 1];
        let r = cells[parent].1;
        let ring: Vec<(i64, i64)> = if s.park {
            vec![r.at(200, 250), r.at(750, 250), r.at(750, 500), r.at(550, 700), r.at(200, 700)]
        } else {
            vec![r.at(300, 350), r.at(620, 350), r.at(620, 660), r.at(300, 660)]
        };
        let mut ring: Vec<(i64, i64)> = ring.into_iter().map(layout::warp).collect();
        ring.push(ring[0]);
        site_no[ti] += 1;
        communities[ci].grids.push(grids.len());
        grids.push(Grid {
            code: format!("{}-S{:02}", s.township, site_no[ti]),
            name: format!("{}专属网格", s.name),
            kind: "dedicated",
            community: ci,
            keywords: s.keywords.iter().map(|k| k.to_string()).collect(),
            site: Some(s.site),
            ring,
        });
    }

    let counts = |k: &str| grids.iter().filter(|g| g.kind == k).count();
    assert_eq!(
        (counts("urban"), counts("rural"), counts("dedicated")),
        (URBAN_GRIDS, RURAL_GRIDS, DEDICATED_GRIDS)
    );

    let workers = staff(rng, &mut names, &townships, &communities, &grids);

    // Leads: a community's is the full-time worker of its first grid; a
    // township's, that of the second grid of its first community.
    let full_time_of = |g: usize| -> String {
        workers.iter().find(|w| w.kind == "full_time" && w.grid == grids[g].code).expect("staffed").id.clone()
    };
    for c in &mut communities {
        c.lead = full_time_of(c.grids[0]);
    }
    for (ti, t) in townships.iter_mut().enumerate() {
        let first = communities.iter().find(|c| c.township == ti).expect("a community");
        t.lead = full_time_of(first.grids[1]);
    }

    County {
        townships,
        communities,
        grids,
        workers,
        boundary: boundary_lattice.into_iter().map(layout::warp).collect(),
    }
}

/// Grid workers (every grid one full-time and two part-time, the rest spread
/// at random) in grid order, then each department's professionals.
fn staff(
    rng: &mut SplitMix64,
    names: &mut Names,
    townships: &[Township],
    communities: &[Community],
    grids: &[Grid],
) -> Vec<Worker> {
    let mut full = vec![1usize; grids.len()];
    let mut part = vec![2usize; grids.len()];
    let urban: Vec<usize> = (0..grids.len()).filter(|&g| grids[g].kind == "urban").collect();
    let mut chosen = HashSet::new();
    while chosen.len() < FULL_TIME - grids.len() {
        let g = rng.pick(&urban);
        if chosen.insert(g) {
            full[g] += 1;
        }
    }
    for _ in 0..PART_TIME - 2 * grids.len() {
        part[rng.below(grids.len() as u64) as usize] += 1;
    }
    let duty_weights: Vec<u64> = tables::DUTY.iter().map(|d| d.1).collect();

    let mut workers = Vec::new();
    let mut n = 0usize;
    let mut id = || {
        n += 1;
        format!("W{n:05}")
    };
    for (g, grid) in grids.iter().enumerate() {
        let township = communities[grid.community].township;
        let korean = townships[township].kind == "township";
        for _ in 0..full[g] {
            workers.push(Worker {
                id: id(),
                name: names.person(rng, korean),
                kind: "full_time",
                grid: grid.code.clone(),
                department: String::new(),
                townships: Vec::new(),
                phone: names.phone(rng),
                duty: "",
            });
        }
        for _ in 0..part[g] {
            workers.push(Worker {
                id: id(),
                name: names.person(rng, korean),
                kind: "part_time",
                grid: grid.code.clone(),
                department: String::new(),
                townships: Vec::new(),
                phone: names.phone(rng),
                duty: tables::DUTY[rng.weighted(&duty_weights)].0,
            });
        }
    }

    // Professionals: the k-th of each department covers township k mod 10,
    // and about a third of them a second township as well.
    let per_department = PROFESSIONALS / tables::DEPARTMENTS.len();
    for d in tables::DEPARTMENTS {
        for k in 0..per_department {
            let home = k % townships.len();
            let mut covers = vec![home];
            if rng.chance(1, 3) {
                let other = (home + 1 + rng.below(townships.len() as u64 - 1) as usize) % townships.len();
                covers.push(other);
                covers.sort_unstable();
            }
            workers.push(Worker {
                id: id(),
                name: names.person(rng, false),
                kind: "department",
                grid: String::new(),
                department: d.code.to_string(),
                townships: covers.iter().map(|&t| townships[t].code).collect(),
                phone: names.phone(rng),
                duty: "",
            });
        }
    }
    workers
}

/// Draws names that must be unique (villages, estates, hamlets, phones) and
/// people's names (which need not be).
struct Names {
    used: HashSet<String>,
}

impl Names {
    fn new() -> Names {
        // Keep villages from echoing township and urban community names.
        let mut used = HashSet::new();
        for t in TOWNSHIPS {
            used.insert(format!("{}村", t.name.chars().take(2).collect::<String>()));
            for c in t.communities {
                used.insert(c.1.replace("社区", "村"));
            }
        }
        Names { used }
    }

    fn fresh(&mut self, rng: &mut SplitMix64, mut draw: impl FnMut(&mut SplitMix64) -> String) -> String {
        loop {
            let s = draw(rng);
            if self.used.insert(s.clone()) {
                return s;
            }
        }
    }

    fn village(&mut self, rng: &mut SplitMix64) -> String {
        self.fresh(rng, |r| format!("{}{}村", r.pick(tables::VILLAGE_FIRST), r.pick(tables::VILLAGE_SECOND)))
    }

    fn estate(&mut self, rng: &mut SplitMix64) -> String {
        self.fresh(rng, |r| format!("{}{}", r.pick(tables::ESTATE_PREFIX), r.pick(tables::ESTATE_SUFFIX)))
    }

    fn hamlet(&mut self, rng: &mut SplitMix64) -> String {
        self.fresh(rng, |r| format!("{}{}家屯", r.pick(tables::HAMLET_PREFIX), r.pick(tables::SURNAMES)))
    }

    fn phone(&mut self, rng: &mut SplitMix64) -> String {
        self.fresh(rng, |r| format!("{}{:08}", r.pick(tables::PHONE_PREFIXES), r.below(100_000_000)))
    }

    fn person(&mut self, rng: &mut SplitMix64, korean: bool) -> String {
        let surname = if korean && rng.chance(1, 2) {
            rng.pick(tables::KOREAN_SURNAMES)
        } else {
            rng.pick(tables::SURNAMES)
        };
        let mut name = String::from(surname);
        let first = rng.pick(tables::GIVEN);
        name.push_str(first);
        if rng.chance(3, 5) {
            let second = rng.pick(tables::GIVEN);
            // 国国 and the like are rare; redraw once rather than never.
            name.push_str(if second == first { rng.pick(tables::GIVEN) } else { second });
        }
        name
    }
}
