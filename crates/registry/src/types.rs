//! The registry's types: an immutable, fully checked picture of a county.
//!
//! Everything refers to everything else by index (`GridIdx`, `WorkerIdx`...)
//! into the `Registry`'s vectors; codes (strings) are what files, the log and
//! the wire use. A `Registry` value is only ever built by the loader, which
//! checks every invariant listed on [`Registry`].

use std::collections::HashMap;

use gridline_model::{DurationMs, Priority};

macro_rules! index_type {
    ($($name:ident),*) => {$(
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u32);
        impl $name {
            pub fn ix(self) -> usize { self.0 as usize }
        }
    )*};
}
index_type!(TownshipIdx, CommunityIdx, GridIdx, WorkerIdx, DeptIdx, CategoryIdx);

/// The county itself and its county-wide settings (`[county]` in county.toml).
#[derive(Clone, Debug)]
pub struct County {
    pub name: String,
    /// Prefix of case numbers, e.g. `JD`.
    pub code: String,
    /// Minutes east of UTC of the county's civil time (480 for China).
    pub utc_offset_min: i32,
    /// Longitude, latitude of the county seat.
    pub centre: (f64, f64),
    /// Name of the grid command centre (网格协调指挥中心).
    pub command_centre: String,
    /// The warning point of a deadline, in percent of its limit.
    pub warn_at_percent: u8,
    /// The category used when nothing in the text matches.
    pub general_category: CategoryIdx,
    /// The county boundary: the union of all non-dedicated grids lies inside it.
    pub boundary: geo::MultiPolygon<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TownshipKind {
    /// 镇
    Town,
    /// 乡 (including ethnic townships, 民族乡)
    Township,
}

/// 镇/乡: a town or township.
#[derive(Clone, Debug)]
pub struct Township {
    pub code: String,
    pub name: String,
    pub kind: TownshipKind,
    /// The township's grid lead, escalation's second step.
    pub lead: Option<WorkerIdx>,
    pub communities: Vec<CommunityIdx>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommunityKind {
    /// 社区: urban, its grids are urban grids.
    Community,
    /// 村: rural, its grids are rural grids.
    Village,
}

/// 社区/村: a community (urban) or village (rural).
#[derive(Clone, Debug)]
pub struct Community {
    pub code: String,
    pub name: String,
    pub kind: CommunityKind,
    pub township: TownshipIdx,
    /// Address keywords (street and estate names) that place a case here.
    pub keywords: Vec<String>,
    /// The community's grid lead, escalation's first step.
    pub lead: Option<WorkerIdx>,
    /// Its grids, dedicated ones included.
    pub grids: Vec<GridIdx>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GridKind {
    Urban,
    Rural,
    /// 专属网格: a site (school, hospital, industrial park) inside another grid.
    Dedicated,
}

impl GridKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GridKind::Urban => "urban",
            GridKind::Rural => "rural",
            GridKind::Dedicated => "dedicated",
        }
    }
}

/// 网格: the unit of dispatch, one grid party group.
#[derive(Clone, Debug)]
pub struct Grid {
    pub code: String,
    pub name: String,
    pub kind: GridKind,
    pub community: CommunityIdx,
    pub township: TownshipIdx,
    pub polygon: geo::Polygon<f64>,
    /// Address keywords of the grid itself (streets, estates, the site's name).
    pub keywords: Vec<String>,
    /// For dedicated grids: the site's kind, e.g. `school`, `hospital`, `industrial_park`.
    pub site: Option<String>,
    /// For dedicated grids: the grid around it.
    pub parent: Option<GridIdx>,
    /// Full-time and part-time workers of this grid, in file order.
    pub workers: Vec<WorkerIdx>,
}

/// One of the livelihood departments (民生部门).
#[derive(Clone, Debug)]
pub struct Department {
    pub code: String,
    pub name: String,
    /// Its professionals (专业网格员), in file order.
    pub professionals: Vec<WorkerIdx>,
}

/// Who handles a category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Handling {
    /// The grid's own workers.
    Grid,
    /// The department's professional covering the township.
    Department,
    /// The grid leads; the department co-handles.
    GridWithDepartment,
}

impl Handling {
    pub fn as_str(self) -> &'static str {
        match self {
            Handling::Grid => "grid",
            Handling::Department => "department",
            Handling::GridWithDepartment => "grid_with_department",
        }
    }
}

/// Time limits by priority (`normal`, `urgent`, `emergency`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub claim: [DurationMs; 3],
    pub close: [DurationMs; 3],
}

impl Limits {
    pub fn claim(&self, p: Priority) -> DurationMs {
        self.claim[p as usize]
    }
    pub fn close(&self, p: Priority) -> DurationMs {
        self.close[p as usize]
    }
}

/// A case category and its routing rule.
#[derive(Clone, Debug)]
pub struct Category {
    pub code: String,
    pub name: String,
    pub handling: Handling,
    /// Required unless `handling` is `Grid`.
    pub department: Option<DeptIdx>,
    /// Chinese keywords that infer this category from the case text.
    pub keywords: Vec<String>,
    pub limits: Limits,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkerKind {
    /// 专职网格员
    FullTime,
    /// 兼职网格员, on duty in their duty hours only.
    PartTime,
    /// 专业网格员 of a department.
    Department,
}

impl WorkerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerKind::FullTime => "full_time",
            WorkerKind::PartTime => "part_time",
            WorkerKind::Department => "department",
        }
    }
}

/// A duty window in minutes after local midnight; `end < start` wraps past midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DutyWindow {
    pub start_min: u16,
    pub end_min: u16,
}

impl DutyWindow {
    pub fn contains(&self, minute_of_day: u32) -> bool {
        let m = minute_of_day as u16;
        if self.start_min <= self.end_min {
            self.start_min <= m && m < self.end_min
        } else {
            m >= self.start_min || m < self.end_min
        }
    }
}

#[derive(Clone, Debug)]
pub struct Worker {
    pub id: String,
    pub name: String,
    pub kind: WorkerKind,
    pub phone: String,
    /// Full-time and part-time workers: their grid.
    pub grid: Option<GridIdx>,
    /// Professionals: their department.
    pub department: Option<DeptIdx>,
    /// Professionals: the townships they cover.
    pub townships: Vec<TownshipIdx>,
    /// Duty windows; empty means always on duty (full-time and professionals).
    pub duty: Vec<DutyWindow>,
}

impl Worker {
    /// On duty at local minute-of-day `m`.
    pub fn on_duty(&self, minute_of_day: u32) -> bool {
        self.duty.is_empty() || self.duty.iter().any(|w| w.contains(minute_of_day))
    }
}

/// A whole county, checked. Invariants the loader guarantees:
/// - every code is unique within its kind; every reference resolves;
/// - every grid is in exactly one community, every community in one township;
/// - non-dedicated grid polygons are valid and do not overlap; each dedicated
///   grid lies inside one non-dedicated grid (its `parent`) of the same community;
/// - every full-time/part-time worker is in an existing grid, every professional
///   in an existing department and covers at least one existing township;
/// - every category is handled (by the grid, or by an existing department);
/// - the general category exists and is handled by the grid.
#[derive(Clone, Debug)]
pub struct Registry {
    pub county: County,
    pub townships: Vec<Township>,
    pub communities: Vec<Community>,
    pub grids: Vec<Grid>,
    pub departments: Vec<Department>,
    pub categories: Vec<Category>,
    pub workers: Vec<Worker>,
    pub(crate) by_code: Codes,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Codes {
    pub townships: HashMap<String, TownshipIdx>,
    pub communities: HashMap<String, CommunityIdx>,
    pub grids: HashMap<String, GridIdx>,
    pub departments: HashMap<String, DeptIdx>,
    pub categories: HashMap<String, CategoryIdx>,
    pub workers: HashMap<String, WorkerIdx>,
    /// Professionals by (department, township), in file order.
    pub professionals: HashMap<(DeptIdx, TownshipIdx), Vec<WorkerIdx>>,
}

impl Registry {
    pub fn township_idx(&self, code: &str) -> Option<TownshipIdx> {
        self.by_code.townships.get(code).copied()
    }
    pub fn community_idx(&self, code: &str) -> Option<CommunityIdx> {
        self.by_code.communities.get(code).copied()
    }
    pub fn grid_idx(&self, code: &str) -> Option<GridIdx> {
        self.by_code.grids.get(code).copied()
    }
    pub fn department_idx(&self, code: &str) -> Option<DeptIdx> {
        self.by_code.departments.get(code).copied()
    }
    pub fn category_idx(&self, code: &str) -> Option<CategoryIdx> {
        self.by_code.categories.get(code).copied()
    }
    pub fn worker_idx(&self, id: &str) -> Option<WorkerIdx> {
        self.by_code.workers.get(id).copied()
    }

    pub fn township(&self, i: TownshipIdx) -> &Township {
        &self.townships[i.ix()]
    }
    pub fn community(&self, i: CommunityIdx) -> &Community {
        &self.communities[i.ix()]
    }
    pub fn grid(&self, i: GridIdx) -> &Grid {
        &self.grids[i.ix()]
    }
    pub fn department(&self, i: DeptIdx) -> &Department {
        &self.departments[i.ix()]
    }
    pub fn category(&self, i: CategoryIdx) -> &Category {
        &self.categories[i.ix()]
    }
    pub fn worker(&self, i: WorkerIdx) -> &Worker {
        &self.workers[i.ix()]
    }

    /// A department's professionals covering a township, in file order.
    pub fn professionals(&self, dept: DeptIdx, township: TownshipIdx) -> &[WorkerIdx] {
        self.by_code.professionals.get(&(dept, township)).map(Vec::as_slice).unwrap_or(&[])
    }
}
