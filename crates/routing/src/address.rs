//! Placing a free-text Chinese address on a grid.
//!
//! Dictionary: township names, community/village names and their keywords,
//! grid names and grid keywords. Every occurrence in the address is a hit.
//! Each grid named directly, and the first (non-dedicated) grid of each
//! community named, is a candidate; a candidate scores the characters of its
//! longest hit at each level that agrees with it (its own keyword, its
//! community, its township). The highest score wins; then a grid named
//! directly beats a community's first grid; then the lowest grid index.
//! So `鸡东镇东海社区阳光小区` prefers the grid whose keyword is `阳光小区`
//! inside `东海社区` over a `阳光小区` elsewhere, and the result never
//! depends on anything but the text and the registry.

use gridline_registry::{CommunityIdx, GridIdx, GridKind, Registry, TownshipIdx};

use crate::text::Matcher;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    Township(TownshipIdx),
    Community(CommunityIdx),
    Grid(GridIdx),
}

/// What an address matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AddressMatch {
    /// A grid, and the words that chose it (pattern ids, most specific first).
    Grid {
        grid: GridIdx,
        by_grid: bool,
        words: Vec<u32>,
    },
    /// Only a township's name: not enough to choose a grid.
    TownshipOnly {
        township: TownshipIdx,
        word: u32,
    },
    Nothing,
}

pub(crate) struct AddressIndex {
    matcher: Matcher<Place>,
    /// Per community: the grid a community-level match goes to.
    default_grid: Vec<Option<GridIdx>>,
}

impl AddressIndex {
    pub fn new(reg: &Registry) -> AddressIndex {
        let mut items: Vec<(String, Place)> = Vec::new();
        for (i, t) in reg.townships.iter().enumerate() {
            items.push((t.name.clone(), Place::Township(TownshipIdx(i as u32))));
        }
        for (i, c) in reg.communities.iter().enumerate() {
            let p = Place::Community(CommunityIdx(i as u32));
            items.push((c.name.clone(), p));
            items.extend(c.keywords.iter().map(|k| (k.clone(), p)));
        }
        for (i, g) in reg.grids.iter().enumerate() {
            let p = Place::Grid(GridIdx(i as u32));
            items.push((g.name.clone(), p));
            items.extend(g.keywords.iter().map(|k| (k.clone(), p)));
        }
        let default_grid = reg
            .communities
            .iter()
            .map(|c| {
                let mut gs = c.grids.clone();
                gs.sort();
                gs.iter().copied().find(|&g| reg.grid(g).kind != GridKind::Dedicated).or(gs.first().copied())
            })
            .collect();
        AddressIndex { matcher: Matcher::new(items), default_grid }
    }

    pub fn word(&self, id: u32) -> &str {
        &self.matcher.pattern(id).text
    }

    pub fn place_of(&self, id: u32) -> Place {
        self.matcher.pattern(id).target
    }

    pub fn find(&self, reg: &Registry, address: &str) -> AddressMatch {
        // Longest hit per place: (place, pattern id, chars).
        let mut hits: Vec<(Place, u32, u32)> = Vec::new();
        self.matcher.for_each_hit(address, |_, id| {
            let p = self.matcher.pattern(id);
            match hits.iter_mut().find(|h| h.0 == p.target) {
                Some(h) if h.2 >= p.chars => {}
                Some(h) => (h.1, h.2) = (id, p.chars),
                None => hits.push((p.target, id, p.chars)),
            }
        });
        let hit = |want: Place| hits.iter().find(|h| h.0 == want).map(|h| (h.1, h.2));
        let levels = |g: GridIdx| {
            let grid = reg.grid(g);
            [Place::Grid(g), Place::Community(grid.community), Place::Township(grid.township)]
        };
        // (score, named directly, Reverse(index)): the largest wins.
        type Key = (u32, bool, std::cmp::Reverse<u32>);
        let mut best: Option<(Key, GridIdx)> = None;
        for h in &hits {
            let (grid, by_grid) = match h.0 {
                Place::Grid(g) => (g, true),
                Place::Community(c) => match self.default_grid.get(c.ix()).copied().flatten() {
                    Some(g) => (g, false),
                    None => continue,
                },
                Place::Township(_) => continue,
            };
            if !by_grid && hits.iter().any(|o| o.0 == Place::Grid(grid)) {
                continue; // the same grid, named directly, is scored as such
            }
            let score = levels(grid).into_iter().filter_map(hit).map(|(_, chars)| chars).sum();
            let key = (score, by_grid, std::cmp::Reverse(grid.0));
            if best.is_none_or(|b| key > b.0) {
                best = Some((key, grid));
            }
        }
        if let Some(((_, by_grid, _), grid)) = best {
            let words = levels(grid).into_iter().filter_map(hit).map(|(id, _)| id).collect();
            return AddressMatch::Grid { grid, by_grid, words };
        }
        let township = hits
            .iter()
            .filter_map(|h| match h.0 {
                Place::Township(t) => Some((std::cmp::Reverse(h.2), t, h.1)),
                _ => None,
            })
            .min();
        match township {
            Some((_, township, word)) => AddressMatch::TownshipOnly { township, word },
            None => AddressMatch::Nothing,
        }
    }
}
