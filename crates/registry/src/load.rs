//! Loading and checking a county's config directory: `county.toml`,
//! `workers.csv`, `grids.geojson` (docs/config.md describes them).
//!
//! Each file is first read and checked on its own (`county`, `workers`,
//! `grids`), then [`Registry::from_sources`] resolves the references between
//! them, checks the grids against each other and against the county boundary
//! (`geometry`), and only if no problem was found anywhere builds the
//! [`Registry`]. Every problem is collected, not just the first, and each
//! names the file, the line (and for GeoJSON the feature) and the field.
//!
//! The spatial checks are O(n log n): an R-tree over the grids' bounding
//! boxes picks the few neighbours worth an exact test.

mod county;
mod geometry;
mod grids;
mod report;
mod workers;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use geo::{BooleanOps, MultiPolygon, Polygon};
use rstar::primitives::GeomWithData;
use rstar::{Envelope as _, RTree, AABB};

use crate::types::{
    CategoryIdx, CommunityIdx, CommunityKind, County, DeptIdx, Grid, GridIdx, GridKind, Registry,
    TownshipIdx, Worker, WorkerIdx, WorkerKind,
};
use report::{Report, Src};

/// The files of a config directory.
pub const FILES: [&str; 3] = ["county.toml", "workers.csv", "grids.geojson"];

/// The largest config file `load_dir` reads.
pub const FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// At most this many errors are printed (all are kept in [`LoadErrors`]).
pub const ERRORS_SHOWN_MAX: usize = 100;

/// The three files of a config directory, as text.
#[derive(Clone, Debug)]
pub struct Sources<'a> {
    /// Where they came from, for error messages.
    pub dir: PathBuf,
    pub county_toml: &'a str,
    pub workers_csv: &'a str,
    pub grids_geojson: &'a str,
}

/// One problem in a config directory: file, line (or feature index), field, what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    pub file: PathBuf,
    /// 1-based line in a TOML or CSV file.
    pub line: Option<usize>,
    /// 0-based feature index in a GeoJSON file.
    pub feature: Option<usize>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(i) = self.feature {
            write!(f, ": feature {i}")?;
        }
        write!(f, ": {}: {}", self.field, self.message)
    }
}

/// Every problem found; a registry with any is not loaded at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().take(ERRORS_SHOWN_MAX).enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        if self.0.len() > ERRORS_SHOWN_MAX {
            write!(f, "\n... and {} more", self.0.len() - ERRORS_SHOWN_MAX)?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

impl Registry {
    /// Reads `county.toml`, `workers.csv` and `grids.geojson` from `dir`
    /// and checks them (see [`Registry::from_sources`]).
    pub fn load_dir(dir: &std::path::Path) -> Result<Registry, LoadErrors> {
        let problem = |file: PathBuf, field: &str, message: String| LoadError {
            file,
            line: None,
            feature: None,
            field: field.into(),
            message,
        };
        if !dir.is_dir() {
            let what = if dir.exists() { "not a directory" } else { "no such directory" };
            return Err(LoadErrors(vec![problem(
                dir.to_path_buf(),
                "(directory)",
                format!("{what}; a config directory holds {}", FILES.join(", ")),
            )]));
        }
        // A file that cannot be read is one problem; the others are still
        // parsed and checked (and linked as far as they can be without it).
        let mut report = Report::default();
        let mut texts: [Option<String>; 3] = Default::default();
        for (name, text) in FILES.into_iter().zip(&mut texts) {
            let path = dir.join(name);
            match read_file(&path) {
                Ok(t) => *text = Some(t),
                Err((line, field, message)) => {
                    report.errors.push(LoadError { line, ..problem(path, field, message) })
                }
            }
        }
        let [county, workers, grids] = texts.each_ref().map(Option::as_deref);
        check(dir, [county, workers, grids], report)
    }

    /// Parses and checks the three sources. Nothing is half-loaded: any
    /// problem in any file means no registry, and every problem is reported.
    pub fn from_sources(s: &Sources<'_>) -> Result<Registry, LoadErrors> {
        check(&s.dir, [Some(s.county_toml), Some(s.workers_csv), Some(s.grids_geojson)], Report::default())
    }
}

/// Parses and checks the sources that could be read (`None` for one that
/// could not, already in `report`), then links them.
fn check(
    dir: &std::path::Path,
    [county_toml, workers_csv, grids_geojson]: [Option<&str>; 3],
    mut report: Report,
) -> Result<Registry, LoadErrors> {
    let srcs = Srcs {
        county: Src::new(dir.join("county.toml"), county_toml.unwrap_or("")),
        workers: Src::new(dir.join("workers.csv"), workers_csv.unwrap_or("")),
        grids: Src::new(dir.join("grids.geojson"), grids_geojson.unwrap_or("")),
    };
    let county = county_toml.and_then(|_| county::read(&srcs.county, &mut report));
    let workers = workers_csv.and_then(|_| workers::read(&srcs.workers, &mut report));
    let grids = grids_geojson.and_then(|_| grids::read(&srcs.grids, &mut report));
    let linked = link(&srcs, county.as_ref(), workers.as_ref(), grids.as_ref(), &mut report);
    match (county, workers, grids, linked) {
        (Some(c), Some(w), Some(g), Some(l)) if report.is_empty() => Ok(build(c, w, g, l)),
        _ => {
            assert!(!report.is_empty(), "a registry that did not load has a reason");
            Err(LoadErrors(report.into_sorted()))
        }
    }
}

/// Reads one config file: a regular file of at most [`FILE_BYTES_MAX`]
/// bytes (no more is read, whatever the file is), in UTF-8. A problem is
/// its line (for bad UTF-8), field and message.
fn read_file(path: &std::path::Path) -> Result<String, (Option<usize>, &'static str, String)> {
    use std::io::Read;
    let cannot = |e: std::io::Error| (None, "(file)", format!("cannot read: {e}"));
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() {
        return Err((None, "(file)", "not a regular file".into()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(FILE_BYTES_MAX + 1).read_to_end(&mut bytes))
        .map_err(cannot)?;
    if bytes.len() as u64 > FILE_BYTES_MAX {
        let size = meta.len().max(bytes.len() as u64);
        return Err((None, "(file)", format!("too large: {size} bytes, at most {FILE_BYTES_MAX}")));
    }
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        let line_start = bytes[..at].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let line = 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
        // Columns count characters, as an editor does.
        let column = 1 + String::from_utf8_lossy(&bytes[line_start..at]).chars().count();
        let message =
            format!("not UTF-8: byte 0x{:02X} at column {column}; save the file as UTF-8", bytes[at]);
        (Some(line), "(encoding)", message)
    })
}

struct Srcs<'a> {
    county: Src<'a>,
    workers: Src<'a>,
    grids: Src<'a>,
}

/// What linking the three files found, for [`build`].
struct Linked {
    grid_community: Vec<CommunityIdx>,
    grid_parent: Vec<Option<GridIdx>>,
    boundary: MultiPolygon<f64>,
    worker_grid: Vec<Option<GridIdx>>,
    worker_department: Vec<Option<DeptIdx>>,
    worker_townships: Vec<Vec<TownshipIdx>>,
    township_leads: Vec<Option<WorkerIdx>>,
    community_leads: Vec<Option<WorkerIdx>>,
}

type Envelope = GeomWithData<rstar::primitives::Rectangle<[f64; 2]>, usize>;

fn rtree(items: impl Iterator<Item = (usize, AABB<[f64; 2]>)>) -> RTree<Envelope> {
    RTree::bulk_load(
        items.map(|(i, e)| GeomWithData::new(rstar::primitives::Rectangle::from_aabb(e), i)).collect(),
    )
}

/// Resolves references between the files and checks the grids' geometry
/// against each other and the boundary. Checks what it can even when a file
/// did not parse; returns `None` when something needed to build is missing.
fn link(
    srcs: &Srcs<'_>,
    county: Option<&county::CountyFile>,
    workers: Option<&workers::WorkersFile>,
    grids: Option<&grids::GridsFile>,
    report: &mut Report,
) -> Option<Linked> {
    // Grids: community and kind.
    let mut grid_community = Vec::new();
    if let (Some(c), Some(g)) = (county, grids) {
        let mut has_grid = vec![false; c.communities.len()];
        for f in &g.features {
            let ci = if f.community.is_empty() {
                None
            } else if let Some(&ci) = c.communities_by_code.get(&f.community) {
                Some(ci)
            } else {
                let msg = format!("unknown community \"{}\" (not in county.toml)", f.community);
                report.feature(&srcs.grids, f.index, f.line, "properties.community", msg);
                None
            };
            if let (Some(ci), Some(kind), Some(community_kind)) =
                (ci, f.kind, ci.and_then(|ci| c.community_kinds[ci.ix()]))
            {
                let community = &c.communities[ci.ix()];
                let expected = match community_kind {
                    CommunityKind::Community => GridKind::Urban,
                    CommunityKind::Village => GridKind::Rural,
                };
                if kind != GridKind::Dedicated && kind != expected {
                    let what = match community_kind {
                        CommunityKind::Community => "an urban community",
                        CommunityKind::Village => "a village",
                    };
                    let article = if kind == GridKind::Urban { "an" } else { "a" };
                    let msg = format!(
                        "{article} {} grid cannot be in {what} ({}); its grids are {}",
                        kind.as_str(),
                        community.code,
                        expected.as_str()
                    );
                    report.feature(&srcs.grids, f.index, f.line, "properties.kind", msg);
                }
            }
            if let (Some(ci), Some(GridKind::Urban | GridKind::Rural)) = (ci, f.kind) {
                has_grid[ci.ix()] = true;
            }
            grid_community.push(ci.unwrap_or(CommunityIdx(0)));
        }
        for (i, community) in c.communities.iter().enumerate() {
            let registered = c.communities_by_code.get(&community.code) == Some(&CommunityIdx(i as u32));
            if !has_grid[i] && registered {
                let msg = format!("community {} has no grid in grids.geojson", community.code);
                report.line(&srcs.county, c.community_lines[i], "community.code", msg);
            }
        }
    }

    // Grids: geometry.
    let mut grid_parent = Vec::new();
    let mut boundary = None;
    if let Some(g) = grids {
        let (parents, b) = check_geometry(srcs, county.and_then(|c| c.boundary.as_ref()), g, report);
        grid_parent = parents;
        boundary = b;
    }

    // Workers: grid, department, townships.
    let mut worker_grid = Vec::new();
    let mut worker_department = Vec::new();
    let mut worker_townships = Vec::new();
    if let Some(w) = workers {
        for row in &w.rows {
            let mut err = |field: &str, msg: String| report.line(&srcs.workers, row.line, field, msg);
            let grid = match grids {
                Some(g) if !row.grid.is_empty() => match g.by_code.get(&row.grid) {
                    Some(&i) => Some(GridIdx(i as u32)),
                    None => {
                        err("grid", format!("unknown grid \"{}\" (not in grids.geojson)", row.grid));
                        None
                    }
                },
                _ => None,
            };
            let mut department = None;
            let mut townships = Vec::new();
            if let Some(c) = county {
                if !row.department.is_empty() {
                    department = c.departments_by_code.get(&row.department).copied();
                    if department.is_none() {
                        err(
                            "department",
                            format!("unknown department \"{}\" (not in county.toml)", row.department),
                        );
                    }
                }
                for t in &row.townships {
                    match c.townships_by_code.get(t) {
                        Some(&i) => townships.push(i),
                        None => err("townships", format!("unknown township \"{t}\" (not in county.toml)")),
                    }
                }
            }
            worker_grid.push(grid);
            worker_department.push(department);
            worker_townships.push(townships);
        }
    }

    // Leads.
    let mut township_leads = Vec::new();
    let mut community_leads = Vec::new();
    if let Some(c) = county {
        let mut resolve = |r: &Option<county::WorkerRef>| -> Option<WorkerIdx> {
            let r = r.as_ref()?;
            let w = workers?;
            match w.by_id.get(&r.id) {
                Some(&i) => Some(WorkerIdx(i as u32)),
                // Perhaps in a row that could not be read (reported).
                None if !w.complete => None,
                None => {
                    let msg = format!("unknown worker \"{}\" (not in workers.csv)", r.id);
                    report.line(&srcs.county, r.line, r.field, msg);
                    None
                }
            }
        };
        township_leads = c.township_leads.iter().map(&mut resolve).collect();
        community_leads = c.community_leads.iter().map(&mut resolve).collect();
    }

    Some(Linked {
        grid_community,
        grid_parent,
        boundary: boundary?,
        worker_grid,
        worker_department,
        worker_townships,
        township_leads,
        community_leads,
    })
}

/// Overlaps between non-dedicated grids, dedicated grids and their parents,
/// grids outside the boundary. Returns each grid's parent and the boundary
/// (the given one, or the union of the non-dedicated grids).
fn check_geometry(
    srcs: &Srcs<'_>,
    given: Option<&MultiPolygon<f64>>,
    g: &grids::GridsFile,
    report: &mut Report,
) -> (Vec<Option<GridIdx>>, Option<MultiPolygon<f64>>) {
    let feature = |i: usize| &g.features[i];
    let is = |i: usize, dedicated: bool| {
        let f = feature(i);
        f.polygon.is_some() && f.kind.is_some_and(|k| (k == GridKind::Dedicated) == dedicated)
    };
    let envelopes: Vec<Option<AABB<[f64; 2]>>> =
        g.features.iter().map(|f| f.polygon.as_ref().map(geometry::envelope)).collect();
    let plain: Vec<usize> = (0..g.features.len()).filter(|&i| is(i, false)).collect();
    let dedicated: Vec<usize> = (0..g.features.len()).filter(|&i| is(i, true)).collect();
    if plain.is_empty() {
        // Either there are none, or every one has a problem already reported.
        if !g.features.iter().any(|f| matches!(f.kind, Some(GridKind::Urban | GridKind::Rural))) {
            report.line(
                &srcs.grids,
                1,
                "features",
                "no grids: a county needs at least one urban or rural grid",
            );
        }
        return (vec![None; g.features.len()], None);
    }
    let poly = |i: usize| feature(i).polygon.as_ref().expect("filtered: has a polygon");
    let env = |i: usize| envelopes[i].expect("filtered: has a polygon");

    // Overlaps among one kind (non-dedicated, or dedicated): the R-tree finds
    // the pairs whose boxes meet, the exact test decides; reported once, at
    // the later feature.
    for set in [&plain, &dedicated] {
        let tree = rtree(set.iter().map(|&i| (i, env(i))));
        for &i in set.iter() {
            let mut hits: Vec<usize> = tree
                .locate_in_envelope_intersecting(&env(i))
                .map(|e| e.data)
                .filter(|&j| j < i && geometry::interiors_intersect(poly(i), poly(j)))
                .collect();
            hits.sort_unstable();
            for j in hits {
                let f = feature(i);
                let msg = format!("overlaps grid {} (feature {j})", feature(j).code);
                report.feature(&srcs.grids, f.index, f.line, "geometry", msg);
            }
        }
    }

    // Dedicated grids: inside a non-dedicated one, of the same community.
    let mut parents = vec![None; g.features.len()];
    let tree = rtree(plain.iter().map(|&i| (i, env(i))));
    for &d in &dedicated {
        let mut candidates: Vec<usize> = tree
            .locate_in_envelope_intersecting(&env(d))
            .map(|e| e.data)
            .filter(|&p| env(p).contains_envelope(&env(d)))
            .collect();
        candidates.sort_unstable();
        let f = feature(d);
        match candidates.into_iter().find(|&p| geometry::covers(poly(p), poly(d))) {
            None => report.feature(
                &srcs.grids,
                f.index,
                f.line,
                "geometry",
                "a dedicated grid must lie inside one non-dedicated grid; none contains it",
            ),
            Some(p) => {
                let parent = feature(p);
                if !f.community.is_empty() && !parent.community.is_empty() && f.community != parent.community
                {
                    let msg = format!(
                        "\"{}\", but the grid around it, {} (feature {p}), is in community {}",
                        f.community, parent.code, parent.community
                    );
                    report.feature(&srcs.grids, f.index, f.line, "properties.community", msg);
                }
                parents[d] = Some(GridIdx(p as u32));
            }
        }
    }

    // The county boundary.
    let boundary = match given {
        Some(b) => {
            let region = geometry::Region::new(b);
            for &i in &plain {
                if !region.covers(poly(i)) {
                    let f = feature(i);
                    report.feature(
                        &srcs.grids,
                        f.index,
                        f.line,
                        "geometry",
                        "lies (partly) outside the county boundary ([county.boundary] in county.toml)",
                    );
                }
            }
            b.clone()
        }
        None => {
            // The grids' outline: their union without its holes, since a
            // gap that grids surround (a sliver between two drawn grids,
            // most often) is still in the county: a point there goes to
            // the nearest grid, not to the command centre as outside.
            let all = MultiPolygon::new(plain.iter().map(|&i| poly(i).clone()).collect());
            let union = all.union(&MultiPolygon::new(vec![]));
            MultiPolygon::new(
                union.0.into_iter().map(|p| Polygon::new(p.exterior().clone(), vec![])).collect(),
            )
        }
    };
    (parents, Some(boundary))
}

/// Puts the checked pieces together and fills the back references and
/// indexes. Only called when no problem was found.
fn build(c: county::CountyFile, w: workers::WorkersFile, g: grids::GridsFile, l: Linked) -> Registry {
    let mut townships = c.townships;
    for (t, lead) in townships.iter_mut().zip(l.township_leads) {
        t.lead = lead;
    }
    let mut communities = c.communities;
    for (m, lead) in communities.iter_mut().zip(l.community_leads) {
        m.lead = lead;
    }
    let mut grids: Vec<Grid> = Vec::with_capacity(g.features.len());
    for (i, f) in g.features.into_iter().enumerate() {
        let community = l.grid_community[i];
        communities[community.ix()].grids.push(GridIdx(i as u32));
        grids.push(Grid {
            code: f.code,
            name: f.name,
            kind: f.kind.expect("checked"),
            community,
            township: communities[community.ix()].township,
            polygon: f.polygon.expect("checked"),
            keywords: f.keywords,
            site: f.site,
            parent: l.grid_parent[i],
            workers: Vec::new(),
        });
    }
    let mut departments = c.departments;
    let mut professionals: HashMap<(DeptIdx, TownshipIdx), Vec<WorkerIdx>> = HashMap::new();
    let mut workers: Vec<Worker> = Vec::with_capacity(w.rows.len());
    for (i, row) in w.rows.into_iter().enumerate() {
        let idx = WorkerIdx(i as u32);
        let kind = row.kind.expect("checked");
        let (grid, department) = (l.worker_grid[i], l.worker_department[i]);
        if let Some(gi) = grid {
            grids[gi.ix()].workers.push(idx);
        }
        if let Some(d) = department {
            departments[d.ix()].professionals.push(idx);
            for &t in &l.worker_townships[i] {
                professionals.entry((d, t)).or_default().push(idx);
            }
        }
        debug_assert_eq!(grid.is_some(), kind != WorkerKind::Department);
        workers.push(Worker {
            id: row.id,
            name: row.name,
            kind,
            phone: row.phone,
            grid,
            department,
            townships: l.worker_townships[i].clone(),
            duty: row.duty,
        });
    }
    let by_code = crate::types::Codes {
        townships: c.townships_by_code,
        communities: c.communities_by_code,
        grids: g.by_code.into_iter().map(|(k, i)| (k, GridIdx(i as u32))).collect(),
        departments: c.departments_by_code,
        categories: c.categories_by_code,
        workers: w.by_id.into_iter().map(|(k, i)| (k, WorkerIdx(i as u32))).collect(),
        professionals,
    };
    Registry {
        county: County {
            name: c.name,
            code: c.code,
            utc_offset_min: c.utc_offset_min,
            centre: c.centre,
            command_centre: c.command_centre,
            warn_at_percent: c.warn_at_percent,
            general_category: c.general_category.unwrap_or(CategoryIdx(0)),
            boundary: l.boundary,
        },
        townships,
        communities,
        grids,
        departments,
        categories: c.categories,
        workers,
        by_code,
    }
}
