//! Placing a free-text Chinese address on a grid.
//!
//! Dictionary: township names, community/village names and their keywords,
//! grid names and grid keywords. Every occurrence in the address is a hit.
//! Each grid named directly, and the first (non-dedicated) grid of each
//! community named, is a candidate; a candidate scores the characters of
//! its hits, at most one at each level that agrees with it (its own
//! keyword, its community, its township), no two of them crossing in the
//! address (sharing characters, neither inside the other): its own hit
//! (the one that named it) and the best of the rest. The highest score wins; then a grid named directly beats a
//! community's first grid; then the lowest grid index.
//! So `鸡东镇东海社区阳光小区` prefers the grid whose keyword is `阳光小区`
//! inside `东海社区` over a `阳光小区` elsewhere; and `鸡东站前社区` is
//! 站前社区 in 鸡东, not the railway station's grid (`鸡东站`), whose hit
//! shares its `站` with the community's. The result never depends on
//! anything but the text and the registry.

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
        /// Words the address also holds that name another grid, community
        /// or township (an intersection, a boundary, a slip): not used, and
        /// said, so that the operator sees the address was read one way.
        ignored: Vec<u32>,
    },
    /// Only a township's name: not enough to choose a grid.
    TownshipOnly {
        township: TownshipIdx,
        word: u32,
    },
    Nothing,
}

/// The hits an address is placed by, the first in the text: far more
/// than a real address holds (the protocol takes 256 characters), and a
/// bound on the work, which grows with the cube of the hits in the worst
/// case (a candidate, and one hit at each of two levels).
const HITS_MAX: usize = 64;

/// One occurrence of a name or keyword in the (normalized) address.
struct Hit {
    place: Place,
    id: u32,
    chars: u32,
    /// Byte range in the normalized address.
    span: (usize, usize),
}

impl Hit {
    /// Whether the two share characters with neither inside the other: two
    /// readings of the text that cannot both be what was written
    /// (`鸡东站|站前社区`). One inside the other is one word read at two
    /// levels (a grid named `站前社区第8网格` holds its community's name),
    /// which agree.
    fn crosses(&self, o: &Hit) -> bool {
        let (a, b) = (self.span, o.span);
        let overlap = a.0 < b.1 && b.0 < a.1;
        let nested = (a.0 <= b.0 && b.1 <= a.1) || (b.0 <= a.0 && a.1 <= b.1);
        overlap && !nested
    }
}

/// The most characters `first` and at most one hit at each of `levels`
/// add up to, no two crossing, and their pattern ids (`first` first, then
/// by level). Ties keep the earlier choice: the longest hit at a level,
/// then the first in the address.
fn best_with(first: &Hit, levels: &[Place], hits: &[Hit]) -> (u32, Vec<u32>) {
    let mut best = (first.chars, vec![first.id]);
    let mut chosen: Vec<&Hit> = vec![first];
    fn walk<'a>(levels: &[Place], hits: &'a [Hit], chosen: &mut Vec<&'a Hit>, best: &mut (u32, Vec<u32>)) {
        let Some((&level, rest)) = levels.split_first() else {
            let score = chosen.iter().map(|h| h.chars).sum();
            if score > best.0 {
                *best = (score, chosen.iter().map(|h| h.id).collect());
            }
            return;
        };
        for h in hits.iter().filter(|h| h.place == level) {
            if chosen.iter().all(|c| !c.crosses(h)) {
                chosen.push(h);
                walk(rest, hits, chosen, best);
                chosen.pop();
            }
        }
        // Or nothing at this level.
        walk(rest, hits, chosen, best);
    }
    walk(levels, hits, &mut chosen, &mut best);
    best
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
        let mut hits: Vec<Hit> = Vec::new();
        self.matcher.for_each_hit(address, |at, id| {
            let p = self.matcher.pattern(id);
            if hits.len() < HITS_MAX {
                hits.push(Hit { place: p.target, id, chars: p.chars, span: (at, at + p.matched_len()) });
            }
        });
        // (score, an ordinary grid, named directly, Reverse(index)): the
        // largest wins. At equal scores a street beats a site it shares
        // characters with (鸡东站前路 is 站前社区's street, not the station):
        // a dedicated grid takes an address only by naming its site better.
        type Key = (u32, bool, bool, std::cmp::Reverse<u32>);
        let mut best: Option<(Key, GridIdx, Vec<u32>)> = None;
        for h in &hits {
            let (grid, by_grid) = match h.place {
                Place::Grid(g) => (g, true),
                Place::Community(c) => match self.default_grid.get(c.ix()).copied().flatten() {
                    Some(g) => (g, false),
                    None => continue,
                },
                Place::Township(_) => continue,
            };
            if !by_grid && hits.iter().any(|o| o.place == Place::Grid(grid)) {
                continue; // the same grid, named directly, is scored as such
            }
            let g = reg.grid(grid);
            // The hit that made it a candidate, and the best of the levels
            // below it that agree: one hit each, none overlapping.
            let levels: &[Place] = if by_grid {
                &[Place::Community(g.community), Place::Township(g.township)]
            } else {
                &[Place::Township(g.township)]
            };
            let (score, words) = best_with(h, levels, &hits);
            let key = (score, g.kind != GridKind::Dedicated, by_grid, std::cmp::Reverse(grid.0));
            if best.as_ref().is_none_or(|b| key > b.0) {
                best = Some((key, grid, words));
            }
        }
        if let Some(((_, _, by_grid, _), grid, words)) = best {
            let g = reg.grid(grid);
            let mut ignored: Vec<u32> = Vec::new();
            for h in &hits {
                let agrees = match h.place {
                    Place::Grid(x) => x == grid,
                    Place::Community(c) => c == g.community,
                    Place::Township(t) => t == g.township,
                };
                if !agrees && !ignored.contains(&h.id) {
                    ignored.push(h.id);
                }
            }
            return AddressMatch::Grid { grid, by_grid, words, ignored };
        }
        let township = hits
            .iter()
            .filter_map(|h| match h.place {
                Place::Township(t) => Some((std::cmp::Reverse(h.chars), t, h.id)),
                _ => None,
            })
            .min();
        match township {
            Some((_, township, word)) => AddressMatch::TownshipOnly { township, word },
            None => AddressMatch::Nothing,
        }
    }
}
