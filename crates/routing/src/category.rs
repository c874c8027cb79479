//! Inferring a case's category from its text with the registry's keywords.
//!
//! Every occurrence of every category keyword in the text is found, except
//! one inside a longer keyword found over it (maximal munch: 卫生 in 卫生院,
//! 垃圾 in 垃圾短信, 暖气 in 暖气片 do not count). Each
//! category scores the number of its distinct keywords found, then the length
//! (in characters) of its longest one; the highest score wins, then the lowest
//! category index. The winning category's keywords are reported in the order
//! they first appear in the text. No keyword at all: no inference (the caller
//! falls back to the county's general category). The general category's own
//! keywords are phrases that hold another category's keyword and are not its
//! matter (手机没电, a phone's battery, over power's 没电): they mask the
//! keywords inside them and choose nothing themselves.

use gridline_registry::{CategoryIdx, Registry};

use crate::text::Matcher;

pub(crate) struct CategoryIndex {
    matcher: Matcher<CategoryIdx>,
    /// The county's general category: its keywords only mask (a keyword
    /// inside one of them does not count) and choose nothing themselves.
    general: CategoryIdx,
}

/// The winning category and its keywords (pattern ids, in text order).
pub(crate) struct Inferred {
    pub category: CategoryIdx,
    pub keywords: Vec<u32>,
    /// Categories that scored as well and lost only on the registry's
    /// order: the operator should know the choice was a toss-up.
    pub tied: Vec<CategoryIdx>,
}

impl CategoryIndex {
    pub fn new(reg: &Registry) -> CategoryIndex {
        let items = reg
            .categories
            .iter()
            .enumerate()
            .flat_map(|(i, c)| c.keywords.iter().map(move |k| (k.clone(), CategoryIdx(i as u32))));
        CategoryIndex { matcher: Matcher::new(items), general: reg.county.general_category }
    }

    pub fn word(&self, id: u32) -> &str {
        &self.matcher.pattern(id).text
    }

    pub fn infer(&self, text: &str) -> Option<Inferred> {
        // Distinct (pattern id), in order of first occurrence, but for hits
        // inside a longer hit. Hits come by position, the longest first at
        // each: one is inside another if a hit before it reaches as far.
        let mut found: Vec<u32> = Vec::new();
        // The furthest end of the hits at earlier positions; the position
        // now and the end of its longest hit.
        let (mut reach, mut here, mut here_end) = (0, usize::MAX, 0);
        self.matcher.for_each_hit(text, |at, id| {
            let end = at + self.matcher.pattern(id).folded.len();
            let inside = if at != here {
                reach = reach.max(here_end);
                (here, here_end) = (at, end);
                reach >= end
            } else {
                reach >= end || here_end > end
            };
            if !inside && !found.contains(&id) {
                found.push(id);
            }
        });
        // The general category's phrases have masked what lies inside them
        // (手机没电 over 没电); they choose nothing.
        found.retain(|&id| self.matcher.pattern(id).target != self.general);
        // (distinct keywords, longest keyword, Reverse(category)): the largest wins.
        let score = |cat: CategoryIdx| {
            let mine = found.iter().map(|&o| self.matcher.pattern(o)).filter(|p| p.target == cat);
            mine.fold((0, 0), |(n, l), p| (n + 1, l.max(p.chars)))
        };
        let mut best: Option<(usize, u32, std::cmp::Reverse<u32>)> = None;
        for &id in &found {
            let cat = self.matcher.pattern(id).target;
            let (count, longest) = score(cat);
            let key = (count, longest, std::cmp::Reverse(cat.0));
            if best.is_none_or(|b| key > b) {
                best = Some(key);
            }
        }
        let (count, longest, std::cmp::Reverse(won)) = best?;
        let category = CategoryIdx(won);
        let mut tied: Vec<CategoryIdx> = Vec::new();
        for &id in &found {
            let cat = self.matcher.pattern(id).target;
            if cat != category && !tied.contains(&cat) && score(cat) == (count, longest) {
                tied.push(cat);
            }
        }
        found.retain(|&id| self.matcher.pattern(id).target == category);
        Some(Inferred { category, keywords: found, tied })
    }
}
