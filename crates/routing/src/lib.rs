//! Routing: one case's location and category (or its text) and the workers'
//! loads in, one [`Decision`] with its reasons out.
//!
//! - [`Router`]: the indexes built once from a [`Registry`], and the entry
//!   points [`Router::route`], [`Router::locate`] and [`Router::validate`].
//! - `spatial`: the R-tree over grid polygons, point-in-polygon, nearest grid.
//! - `address`: placing a Chinese address text on a grid.
//! - `category`: inferring the category from the case text.
//! - `select`: choosing a worker from a pool (duty hours, loads, returns).
//! - `text`: the keyword matcher the last three share.
//!
//! Architecture invariant: no IO, no clock of its own (the case time comes in
//! the request), no global state. Given a registry that loaded, routing
//! cannot fail and does not panic; only [`Router::validate`] returns errors,
//! for what an operator named that does not exist.
//!
//! # The rules
//!
//! **Location.** Each source given is tried in this order; one that does not
//! resolve is noted in the explanation and the next is tried:
//! 1. a grid code (`grid-code`);
//! 2. a point: every grid containing it, boundary included (R-tree, then an
//!    exact test with robust predicates); a dedicated grid wins over the grid
//!    around it (`dedicated`), otherwise the lowest grid index (`point`), so
//!    a point on a shared edge or vertex always lands in the same one of its
//!    grids. In no grid but inside `county.boundary`: the nearest
//!    non-dedicated grid, by ground distance, ties to the lowest index
//!    (`nearest`, with the distance). Outside the county: not placed;
//! 3. an address: township, community/village and grid names and keywords
//!    found in the text; the grid with the most matched characters over its
//!    agreeing levels (grid, community, township; one hit a level, no two
//!    crossing in the text: sharing characters, neither inside the other)
//!    wins, then a grid named
//!    directly over a community's first grid, then the lowest index
//!    (`address`). A township alone does not place a case (the decision
//!    keeps the township, with no grid). Full-width digits, letters and
//!    spaces match their ASCII forms (`第３网格`).
//!
//! Nothing placed: the command centre (`command-centre`), with the reasons.
//!
//! **Category.** The operator's (by code or by Chinese name, compared
//! normalized as keywords are); else inferred
//! from the text: most distinct keywords of one category, then its longest
//! keyword, then the lowest category index, and the keywords are reported;
//! else the county's general category.
//!
//! **Handling.** `grid`: the grid's workers. `department`: the department's
//! professionals covering the grid's township, one pool, no escalation.
//! `grid_with_department`: the grid's workers lead and the department is
//! recorded as co-handling.
//!
//! **Worker.** Available = on duty at the case's local minute (duty windows
//! of part-timers; an empty list is always on duty) and not among those who
//! returned the case. Pools in order: the grid; for a dedicated grid, the
//! grid around it (`parent`); the community/village (`community`); the
//! township (`township`); then the command centre. Normal and urgent cases:
//! the first pool with anyone available; in it, fewest open cases, then
//! full-time (and professionals) before part-time, then the lowest worker
//! index. Emergencies: (1) the first *local* pool (grid, parent, community;
//! or the department pool) with an available worker having fewer than
//! [`EMERGENCY_FREE_BELOW`] open cases: the best such; else (2) the
//! least-loaded available full-time worker (or professional) of the first
//! pool that has one, township included, however busy, rather than wait;
//! else (3) the normal rule.
//!
//! **Rule string.** `<location>/<handling>[/<pool>]`: `point/grid`,
//! `dedicated/department`, `address/grid_with_department/community`,
//! `point/grid/command-centre` (placed, nobody available), or just
//! `command-centre` (not placed). The pool is omitted when it is the
//! handling's own (the grid, or the department).

mod address;
mod category;
mod select;
mod spatial;
mod text;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use gridline_model::reply::clip;
use gridline_model::{CategorySource, CompactString, Decision, Intake, Location, Priority, Timestamp};
use gridline_registry::{
    CategoryIdx, CommunityIdx, DeptIdx, GridIdx, GridKind, Handling, Registry, TownshipIdx, WorkerIdx,
    WorkerKind,
};

use address::{AddressIndex, AddressMatch, Place};
use category::CategoryIndex;
use select::{Order, Picker, Roster};
use spatial::{GridIndex, PointPlace};

pub use select::EMERGENCY_FREE_BELOW;

/// Minutes since local midnight; unlike `Timestamp::minute_of_day`, total
/// for every `i64` (no overflow near the ends of time).
fn local_minute(at: Timestamp, utc_offset_min: i32) -> u32 {
    let local = i128::from(at.0) + i128::from(utc_offset_min) * 60_000;
    (local.rem_euclid(86_400_000) / 60_000) as u32
}

/// One case to route.
#[derive(Clone, Copy, Debug)]
pub struct RouteRequest<'a> {
    /// What the operator took down: text, category, location, priority.
    pub intake: &'a Intake,
    /// The case time; duty hours are read at the county's local time of it.
    pub at: Timestamp,
    /// Ids of workers who returned this case: never chosen.
    pub exclude: &'a [CompactString],
}

/// How the location was resolved; the first part of [`Decision::rule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Via {
    /// The operator named the grid.
    GridCode,
    /// The point lies in (or on the boundary of) the grid.
    Point,
    /// The point lies in a dedicated grid, which wins over the grid around it.
    Dedicated,
    /// The point lies in no grid but inside the county: the nearest grid.
    Nearest,
    /// Township, community/village and grid names in the address text.
    Address,
    /// No usable location: the command centre.
    CommandCentre,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::GridCode => "grid-code",
            Via::Point => "point",
            Via::Dedicated => "dedicated",
            Via::Nearest => "nearest",
            Via::Address => "address",
            Via::CommandCentre => "command-centre",
        }
    }
}

/// Which pool the worker came from (the escalation step reached).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pool {
    /// The located grid's own workers.
    Grid,
    /// For a dedicated grid: the workers of the grid around it.
    Parent,
    /// The other grids of the community/village.
    Community,
    /// The other grids of the town/township.
    Township,
    /// The department's professionals covering the township.
    Department,
    /// Nobody: the command centre dispatches by hand.
    CommandCentre,
}

impl Pool {
    pub fn as_str(self) -> &'static str {
        match self {
            Pool::Grid => "grid",
            Pool::Parent => "parent",
            Pool::Community => "community",
            Pool::Township => "township",
            Pool::Department => "department",
            Pool::CommandCentre => "command-centre",
        }
    }
}

/// Where a location resolves to, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Located {
    pub grid: Option<GridIdx>,
    pub township: Option<TownshipIdx>,
    pub via: Via,
    /// For [`Via::Nearest`]: about how far the point is from the grid, metres.
    pub distance_m: Option<f64>,
    /// The explanation, one step per source tried.
    pub steps: Vec<String>,
}

/// A routing decision: what is stored and shown, and the same as indexes.
#[derive(Clone, Debug, PartialEq)]
pub struct Routed {
    pub decision: Decision,
    pub category: CategoryIdx,
    /// The grid that handles the case: the chosen grid worker's own grid, or
    /// the located grid (department handling, command centre); `None` when
    /// the case could not be placed.
    pub grid: Option<GridIdx>,
    /// The grid the location resolved to (differs from `grid` after escalation).
    pub located: Option<GridIdx>,
    pub township: Option<TownshipIdx>,
    /// The department handling or co-handling the case.
    pub department: Option<DeptIdx>,
    /// `None`: the command centre (manual dispatch, status `accepted`).
    pub worker: Option<WorkerIdx>,
    pub via: Via,
    pub pool: Pool,
}

/// Something the operator named that the registry does not have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteError {
    UnknownCategory(String),
    UnknownGrid(String),
    /// Longitude and latitude as given, e.g. `NaN,45.2`.
    BadPoint(String),
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteError::UnknownCategory(c) => write!(f, "category: unknown category `{}`", clip(c)),
            RouteError::UnknownGrid(g) => write!(f, "grid: unknown grid code `{}`", clip(g)),
            RouteError::BadPoint(p) => write!(f, "lon/lat: not a finite coordinate `{p}`"),
        }
    }
}

impl std::error::Error for RouteError {}

impl RouteError {
    /// The request field at fault: `category`, `grid` or `lon`.
    pub fn field(&self) -> &'static str {
        match self {
            RouteError::UnknownCategory(_) => "category",
            RouteError::UnknownGrid(_) => "grid",
            RouteError::BadPoint(..) => "lon",
        }
    }
}

/// The registry and the indexes routing needs, built once; cheap to share.
pub struct Router {
    registry: Arc<Registry>,
    grids: GridIndex,
    addresses: AddressIndex,
    categories: CategoryIndex,
    roster: Roster,
    /// Category names and codes an operator may give, normalized.
    category_names: HashMap<String, CategoryIdx>,
    /// The workers of each community's / township's ordinary grids (not its
    /// dedicated ones), in grid then file order.
    community_workers: Vec<Vec<WorkerIdx>>,
    township_workers: Vec<Vec<WorkerIdx>>,
    /// Precomputed explanation pieces, so a decision costs a few string copies.
    grid_label: Vec<String>,
    worker_label: Vec<String>,
    category_label: Vec<String>,
    /// "category water (供水): given by the operator", per category.
    category_given: Vec<String>,
    /// "handled by 县水务局 professionals covering 鸡东镇", per (department, township).
    department_head: Vec<String>,
    /// "the grid leads, 县水务局 co-handles", per department.
    co_handling_head: Vec<String>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").field("county", &self.registry.county.name).finish_non_exhaustive()
    }
}

/// What the location chain found (no strings yet).
#[derive(Clone, Copy)]
struct Loc {
    grid: Option<GridIdx>,
    /// Without a grid: a township the address named alone.
    township: Option<TownshipIdx>,
    via: Via,
    distance_m: Option<f64>,
}

impl Router {
    /// `「word」 (level), 「word」 (level)` for address words (pattern ids).
    fn write_words(&self, s: &mut String, words: &[u32]) {
        for (i, &w) in words.iter().enumerate() {
            let what = match self.addresses.place_of(w) {
                Place::Grid(_) => "grid",
                Place::Community(_) => "community/village",
                Place::Township(_) => "township",
            };
            let _ = write!(s, "{}「{}」 ({what})", if i > 0 { ", " } else { "" }, self.addresses.word(w));
        }
    }

    pub fn new(registry: Arc<Registry>) -> Router {
        let reg = &*registry;
        let mut community_workers = vec![Vec::new(); reg.communities.len()];
        let mut township_workers = vec![Vec::new(); reg.townships.len()];
        // A dedicated grid's workers (a school's, a hospital's) stay with
        // their site: a neighbourhood's case widened to the community or
        // the township does not go to them, though they are the least
        // loaded (their sites take few cases).
        for g in reg.grids.iter().filter(|g| g.kind != GridKind::Dedicated) {
            if let Some(c) = community_workers.get_mut(g.community.ix()) {
                c.extend_from_slice(&g.workers);
            }
            if let Some(t) = township_workers.get_mut(g.township.ix()) {
                t.extend_from_slice(&g.workers);
            }
        }
        let grid_label = reg
            .grids
            .iter()
            .map(|g| {
                let community = reg.communities.get(g.community.ix()).map_or("", |c| c.name.as_str());
                let township = reg.townships.get(g.township.ix()).map_or("", |t| t.name.as_str());
                match &g.site {
                    Some(site) if g.kind == GridKind::Dedicated => {
                        format!("{} [{}] (dedicated, {site}; {community}, {township})", g.name, g.code)
                    }
                    _ => format!("{} [{}] ({}; {community}, {township})", g.name, g.code, g.kind.as_str()),
                }
            })
            .collect();
        let worker_label = reg
            .workers
            .iter()
            .map(|w| {
                let kind = match w.kind {
                    WorkerKind::FullTime => "full-time",
                    WorkerKind::PartTime => "part-time",
                    WorkerKind::Department => "professional",
                };
                format!("{} {} ({kind})", w.id, w.name)
            })
            .collect();
        let category_label: Vec<String> =
            reg.categories.iter().map(|c| format!("{} ({})", c.code, c.name)).collect();
        let category_given =
            category_label.iter().map(|l| format!("category {l}: given by the operator")).collect();
        let department_head = reg
            .departments
            .iter()
            .flat_map(|d| {
                reg.townships
                    .iter()
                    .map(move |t| format!("handled by {} professionals covering {}", d.name, t.name))
            })
            .collect();
        let co_handling_head =
            reg.departments.iter().map(|d| format!("the grid leads, {} co-handles", d.name)).collect();
        // Names, then codes: a code wins over a name written alike.
        let normalize = gridline_registry::words::normalize;
        let category_names = (reg.categories.iter().enumerate().map(|(i, c)| (normalize(&c.name), i)))
            .chain(reg.categories.iter().enumerate().map(|(i, c)| (normalize(&c.code), i)))
            .map(|(k, i)| (k, CategoryIdx(i as u32)))
            .collect();
        Router {
            grids: GridIndex::new(reg),
            addresses: AddressIndex::new(reg),
            categories: CategoryIndex::new(reg),
            roster: Roster::new(reg),
            category_names,
            community_workers,
            township_workers,
            grid_label,
            worker_label,
            category_label,
            category_given,
            department_head,
            co_handling_head,
            registry,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A point strictly inside grid `g` that [`Router::locate`] places in
    /// `g` (for a grid with dedicated grids inside it, a point outside
    /// those). For examples, tests and benches; `None` only for a degenerate
    /// polygon.
    pub fn interior_point(&self, g: GridIdx) -> Option<(f64, f64)> {
        self.grids.interior_point(&self.registry, g)
    }

    /// A category by code, or by its (Chinese) name; failing an exact
    /// code, each compared in the form keywords are (`ＷＡＴＥＲ` is `water`,
    /// `供 水` is `供水`; see [`gridline_registry::words::normalize`]).
    pub fn category_idx(&self, s: &str) -> Option<CategoryIdx> {
        // Categories are a short list: a scan beats hashing the string.
        let by_code = self.registry.categories.iter().position(|c| c.code == s);
        by_code
            .map(|i| CategoryIdx(i as u32))
            .or_else(|| self.category_names.get(&*gridline_registry::words::normalized(s)).copied())
    }

    /// Checks what the operator named: a category and a grid code must
    /// exist, a point must be finite. Routing itself never fails; this is for
    /// replying `ERR bad_request` instead of silently ignoring a typo.
    pub fn validate(&self, intake: &Intake) -> Result<(), RouteError> {
        if let Some(c) = &intake.category {
            if self.category_idx(c).is_none() {
                return Err(RouteError::UnknownCategory(c.to_string()));
            }
        }
        if let Some(g) = &intake.location.grid {
            if self.registry.grid_idx(g).is_none() {
                return Err(RouteError::UnknownGrid(g.to_string()));
            }
        }
        if let Some((lon, lat)) = intake.location.point {
            if !(lon.is_finite() && lat.is_finite()) {
                return Err(RouteError::BadPoint(format!("{lon},{lat}")));
            }
        }
        Ok(())
    }

    /// Resolves a location alone: grid code, then point, then address.
    pub fn locate(&self, loc: &Location) -> Located {
        let mut steps = Vec::with_capacity(2);
        let l = self.locate_into(loc, &mut steps);
        if l.grid.is_none() {
            steps.push(format!("no grid: the case waits at {}", self.registry.county.command_centre));
        }
        Located {
            grid: l.grid,
            township: l.grid.map(|g| self.registry.grid(g).township).or(l.township),
            via: l.via,
            distance_m: l.distance_m,
            steps,
        }
    }

    /// The location chain: each source given is tried in order, and a
    /// source that does not resolve (unknown grid code, point outside the
    /// county, address matching nothing) is noted and the next one tried.
    fn locate_into(&self, loc: &Location, steps: &mut Vec<String>) -> Loc {
        let reg = &*self.registry;
        if let Some(code) = &loc.grid {
            match reg.grid_idx(code) {
                Some(g) => {
                    steps.push(self.with_grid("grid code given: ", g));
                    return Loc { grid: Some(g), township: None, via: Via::GridCode, distance_m: None };
                }
                None => steps.push(format!("grid code `{code}` is not in the registry")),
            }
        }
        if let Some((lon, lat)) = loc.point {
            match self.grids.place(reg, lon, lat) {
                PointPlace::In { grid, dedicated: true, .. } => {
                    let mut s = self.with_grid("point lies in dedicated grid ", grid);
                    if let Some(p) = reg.grid(grid).parent {
                        let _ = write!(s, ", which wins over the grid around it, {}", reg.grid(p).name);
                    }
                    steps.push(s);
                    return Loc { grid: Some(grid), township: None, via: Via::Dedicated, distance_m: None };
                }
                PointPlace::In { grid, shared, .. } => {
                    steps.push(if shared > 1 {
                        let head = format!(
                            "point lies on the shared boundary of {shared} grids; the lowest-numbered wins: "
                        );
                        self.with_grid(&head, grid)
                    } else {
                        self.with_grid("point lies in grid ", grid)
                    });
                    return Loc { grid: Some(grid), township: None, via: Via::Point, distance_m: None };
                }
                PointPlace::Nearest { grid, distance_m } => {
                    let mut s =
                        self.with_grid("point lies in no grid but inside the county; nearest grid ", grid);
                    let _ = write!(s, ", about {distance_m:.0} m away");
                    steps.push(s);
                    return Loc {
                        grid: Some(grid),
                        township: None,
                        via: Via::Nearest,
                        distance_m: Some(distance_m),
                    };
                }
                PointPlace::Outside => {
                    steps.push(format!("point ({lon}, {lat}) lies outside {}", reg.county.name));
                }
            }
        }
        if let Some(addr) = &loc.address {
            match self.addresses.find(reg, addr) {
                AddressMatch::Grid { grid, by_grid, words, ignored } => {
                    let mut s = String::from("address matches ");
                    self.write_words(&mut s, &words);
                    s.push_str(if by_grid {
                        ": grid "
                    } else {
                        "; no grid named, the community's first grid: "
                    });
                    s.push_str(&self.grid_label[grid.ix()]);
                    if !ignored.is_empty() {
                        // Three at most: the reason is stored with the case.
                        s.push_str("; the address also names ");
                        self.write_words(&mut s, &ignored[..ignored.len().min(3)]);
                        if ignored.len() > 3 {
                            let _ = write!(s, " and {} more", ignored.len() - 3);
                        }
                        s.push_str(", elsewhere: not used (give grid= if it is meant)");
                    }
                    steps.push(s);
                    return Loc { grid: Some(grid), township: None, via: Via::Address, distance_m: None };
                }
                AddressMatch::TownshipOnly { township, word } => {
                    steps.push(format!(
                        "address names only the township 「{}」: not enough to choose a grid",
                        self.addresses.word(word)
                    ));
                    return Loc {
                        grid: None,
                        township: Some(township),
                        via: Via::CommandCentre,
                        distance_m: None,
                    };
                }
                AddressMatch::Nothing => {
                    steps.push("address matches no township, community, village or grid name".to_string())
                }
            }
        }
        if loc.grid.is_none() && loc.point.is_none() && loc.address.is_none() {
            steps.push("no location given (grid code, point or address)".to_string());
        }
        Loc { grid: None, township: None, via: Via::CommandCentre, distance_m: None }
    }

    fn with_grid(&self, head: &str, g: GridIdx) -> String {
        let label = &self.grid_label[g.ix()];
        let mut s = String::with_capacity(head.len() + label.len() + 48);
        s.push_str(head);
        s.push_str(label);
        s
    }

    /// The category: the operator's, else inferred from the text, else the
    /// county's general category.
    fn category_into(
        &self,
        intake: &Intake,
        steps: &mut Vec<String>,
    ) -> (CategoryIdx, CategorySource, Vec<String>) {
        if let Some(c) = &intake.category {
            if let Some(i) = self.category_idx(c) {
                steps.push(self.category_given[i.ix()].clone());
                return (i, CategorySource::Given, Vec::new());
            }
            steps.push(format!("category `{c}` is not in the registry; inferring it from the text"));
        }
        if let Some(inf) = self.categories.infer(&intake.text) {
            let words: Vec<String> =
                inf.keywords.iter().map(|&k| self.categories.word(k).to_string()).collect();
            let mut step = format!(
                "category {}: inferred from the keywords {}",
                self.category_label[inf.category.ix()],
                words.join(", ")
            );
            if !inf.tied.is_empty() {
                let tied: Vec<&str> = inf.tied.iter().map(|c| self.category_label[c.ix()].as_str()).collect();
                step.push_str(&format!(
                    " (as many keywords for {}: the category listed first wins; give category= if it is not this one)",
                    tied.join(", ")
                ));
            }
            steps.push(step);
            return (inf.category, CategorySource::Inferred, words);
        }
        let g = self.registry.county.general_category;
        steps.push(format!(
            "category {}: no category keyword in the text, the county's general category",
            self.category_label[g.ix()]
        ));
        (g, CategorySource::Fallback, Vec::new())
    }

    /// Routes one case. `loads[w.ix()]` is worker `w`'s number of open cases
    /// (a missing entry counts as 0).
    ///
    /// Worker choice, once the grid is known (see the crate README for the
    /// whole rule set):
    /// - pools in order: the grid; for a dedicated grid, the grid around it;
    ///   the community/village's grids; the township's grids. For
    ///   department handling, one pool: the department's professionals
    ///   covering the grid's township. Nobody: the command centre.
    /// - normal and urgent cases: the first pool with an available worker
    ///   (on duty, did not return the case); in it, fewest open cases, then
    ///   full-time before part-time, then the lowest worker index.
    /// - emergencies: (1) the first of the local pools (grid, parent,
    ///   community; or the department pool) with an available worker having
    ///   fewer than [`EMERGENCY_FREE_BELOW`] open cases, the best such;
    ///   else (2) the least-loaded available full-time worker (or
    ///   professional) of the first pool that has one, township included,
    ///   however busy: an emergency does not wait; else (3) the normal rule.
    pub fn route(&self, req: &RouteRequest<'_>, loads: &[u32]) -> Routed {
        let reg = &*self.registry;
        let mut steps = Vec::with_capacity(4);
        let loc = self.locate_into(&req.intake.location, &mut steps);
        let (category, category_source, keywords) = self.category_into(req.intake, &mut steps);
        let cat = reg.category(category);
        let handling = match (cat.handling, cat.department) {
            (Handling::Grid, _) | (_, None) => Handling::Grid,
            (h, Some(_)) => h,
        };
        let department = if handling == Handling::Grid { None } else { cat.department };
        let township = loc.grid.map(|g| reg.grid(g).township).or(loc.township);

        let exclude: Vec<WorkerIdx> = req.exclude.iter().filter_map(|id| reg.worker_idx(id)).collect();
        let picker = Picker {
            reg,
            roster: &self.roster,
            loads,
            minute: local_minute(req.at, reg.county.utc_offset_min),
            exclude: &exclude,
        };

        let chosen = match loc.grid {
            None => None,
            Some(g) => self.choose(&picker, g, handling, department, req.intake.priority, &mut steps),
        };

        let (worker, pool, grid) = match chosen {
            Some((w, pool)) => {
                let grid = match pool {
                    Pool::Department | Pool::CommandCentre => loc.grid,
                    _ => reg.worker(w).grid.or(loc.grid),
                };
                (Some(w), pool, grid)
            }
            None => {
                let why = if loc.grid.is_some() { "nobody available" } else { "the case cannot be placed" };
                steps.push(format!("{why}: it waits at {} for manual dispatch", reg.county.command_centre));
                (None, Pool::CommandCentre, loc.grid)
            }
        };

        let mut rule = String::with_capacity(48);
        if loc.grid.is_some() {
            rule.push_str(loc.via.as_str());
            rule.push('/');
            rule.push_str(handling.as_str());
            if !matches!(pool, Pool::Grid | Pool::Department) {
                rule.push('/');
                rule.push_str(pool.as_str());
            }
        } else {
            rule.push_str(Via::CommandCentre.as_str());
        }

        let decision = Decision {
            category: cat.code.clone(),
            category_source,
            keywords,
            grid: grid.map(|g| reg.grid(g).code.clone()),
            township: township.map(|t| reg.township(t).code.clone()),
            department: department.map(|d| reg.department(d).code.clone()),
            worker: worker.map(|w| reg.worker(w).id.clone()),
            rule,
            steps,
        };
        Routed {
            decision,
            category,
            grid,
            located: loc.grid,
            township,
            department,
            worker,
            via: loc.via,
            pool,
        }
    }

    /// The worker for a placed case, with the steps that explain it.
    fn choose(
        &self,
        picker: &Picker<'_>,
        g: GridIdx,
        handling: Handling,
        department: Option<DeptIdx>,
        priority: Priority,
        steps: &mut Vec<String>,
    ) -> Option<(WorkerIdx, Pool)> {
        let reg = picker.reg;
        let grid = reg.grid(g);
        // (pool, its workers, local: an emergency looks for a free worker there)
        let mut pools: [(Pool, &[WorkerIdx], bool); 4] = [(Pool::CommandCentre, &[], false); 4];
        let mut n = 0;
        let mut push = |p| {
            pools[n] = p;
            n += 1;
        };
        let head: &str = match (handling, department) {
            (Handling::Department, Some(d)) => {
                push((Pool::Department, reg.professionals(d, grid.township), true));
                let at = d.ix() * reg.townships.len() + grid.township.ix();
                self.department_head.get(at).map_or("handled by the department", String::as_str)
            }
            _ => {
                push((Pool::Grid, &grid.workers, true));
                if let Some(p) = grid.parent {
                    push((Pool::Parent, &reg.grid(p).workers, true));
                }
                push((Pool::Community, self.workers_of_community(grid.community), true));
                push((Pool::Township, self.workers_of_township(grid.township), false));
                match department {
                    Some(d) => self.co_handling_head.get(d.ix()).map_or("the grid leads", String::as_str),
                    None => "handled by the grid",
                }
            }
        };
        let pools = &pools[..n];

        if priority == Priority::Emergency {
            for &(pool, workers, local) in pools {
                if !local {
                    continue;
                }
                if let Some(w) = picker.best(workers, Order::Free) {
                    steps.push(self.worker_step(
                        head,
                        picker,
                        w,
                        pool,
                        &format!(
                            "emergency: the nearest available worker with fewer than {EMERGENCY_FREE_BELOW} open cases"
                        ),
                    ));
                    return Some((w, pool));
                }
            }
            for &(pool, workers, _) in pools {
                if let Some(w) = picker.best(workers, Order::FullTimeOnly) {
                    steps.push(self.worker_step(
                        head,
                        picker,
                        w,
                        pool,
                        &format!(
                            "emergency: nobody nearby has fewer than {EMERGENCY_FREE_BELOW} open cases, so the \
                             least-loaded full-time worker takes it rather than wait"
                        ),
                    ));
                    return Some((w, pool));
                }
            }
        }
        for &(pool, workers, _) in pools {
            if let Some(w) = picker.best(workers, Order::Balanced) {
                steps.push(self.worker_step(
                    head,
                    picker,
                    w,
                    pool,
                    "fewest open cases among those available",
                ));
                return Some((w, pool));
            }
            let c = picker.census(workers);
            let what = match pool {
                Pool::Grid => format!("grid {}", grid.name),
                Pool::Parent => {
                    format!("the surrounding grid {}", grid.parent.map_or("", |p| &reg.grid(p).name))
                }
                Pool::Community => format!("community/village {}", reg.community(grid.community).name),
                Pool::Township => format!("township {}", reg.township(grid.township).name),
                Pool::Department => head.to_string(),
                Pool::CommandCentre => String::new(),
            };
            steps.push(format!(
                "nobody available in {what} ({} workers: {} off duty, {} returned the case)",
                c.total, c.off_duty, c.returned
            ));
        }
        None
    }

    fn worker_step(&self, head: &str, picker: &Picker<'_>, w: WorkerIdx, pool: Pool, why: &str) -> String {
        let reg = picker.reg;
        let mut s = String::with_capacity(160);
        s.push_str(head);
        s.push_str(": ");
        s.push_str(&self.worker_label[w.ix()]);
        if matches!(pool, Pool::Parent | Pool::Community | Pool::Township) {
            if let Some(g) = reg.worker(w).grid {
                s.push_str(" of ");
                s.push_str(&reg.grid(g).name);
            }
        }
        let _ = write!(s, ", {} open cases; {why}", picker.load(w));
        s
    }

    fn workers_of_community(&self, c: CommunityIdx) -> &[WorkerIdx] {
        self.community_workers.get(c.ix()).map_or(&[], Vec::as_slice)
    }

    fn workers_of_township(&self, t: TownshipIdx) -> &[WorkerIdx] {
        self.township_workers.get(t.ix()).map_or(&[], Vec::as_slice)
    }
}
