//! Registry counts, as `gridline registry stats` prints them.

use serde::Serialize;

use crate::types::{GridKind, Registry, WorkerKind};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GridCounts {
    pub total: usize,
    pub urban: usize,
    pub rural: usize,
    pub dedicated: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkerCounts {
    pub total: usize,
    pub full_time: usize,
    pub part_time: usize,
    pub department: usize,
}

/// The contract's `registry stats --json` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub county: String,
    pub grids: GridCounts,
    pub workers: WorkerCounts,
    pub departments: usize,
    pub townships: usize,
    pub communities: usize,
    pub villages: usize,
    pub categories: usize,
}

impl Stats {
    pub fn of(r: &Registry) -> Stats {
        let grids = |k| r.grids.iter().filter(|g| g.kind == k).count();
        let workers = |k| r.workers.iter().filter(|w| w.kind == k).count();
        let villages =
            r.communities.iter().filter(|c| c.kind == crate::types::CommunityKind::Village).count();
        Stats {
            county: r.county.name.clone(),
            grids: GridCounts {
                total: r.grids.len(),
                urban: grids(GridKind::Urban),
                rural: grids(GridKind::Rural),
                dedicated: grids(GridKind::Dedicated),
            },
            workers: WorkerCounts {
                total: r.workers.len(),
                full_time: workers(WorkerKind::FullTime),
                part_time: workers(WorkerKind::PartTime),
                department: workers(WorkerKind::Department),
            },
            departments: r.departments.len(),
            townships: r.townships.len(),
            communities: r.communities.len() - villages,
            villages,
            categories: r.categories.len(),
        }
    }
}
