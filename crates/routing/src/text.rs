//! Finding a fixed set of (Chinese) keywords in a short text.
//!
//! Texts are a sentence or an address, keywords number in the hundreds or
//! thousands: patterns are bucketed by their first character, and the scan
//! looks up each character of the text once (binary search over the sorted
//! first characters) and tries only the patterns starting with it, longest
//! first. No allocation while scanning.

/// One keyword and what it points at.
#[derive(Clone, Debug)]
pub(crate) struct Pattern<T> {
    pub text: Box<str>,
    /// Length in characters (what "longest match" compares).
    pub chars: u32,
    pub target: T,
}

#[derive(Clone, Debug)]
pub(crate) struct Matcher<T> {
    /// Sorted distinct first characters, each with its range in `order`.
    firsts: Vec<(char, u32, u32)>,
    /// Pattern ids grouped by first character, longest first, then by id.
    order: Vec<u32>,
    patterns: Vec<Pattern<T>>,
}

impl<T: PartialEq> Matcher<T> {
    /// Empty keywords are ignored, and so is a repeated (keyword, target) pair.
    pub fn new(items: impl IntoIterator<Item = (String, T)>) -> Matcher<T> {
        let mut patterns: Vec<Pattern<T>> = Vec::new();
        for (text, target) in items {
            let text = text.trim();
            if text.is_empty() || patterns.iter().any(|p| &*p.text == text && p.target == target) {
                continue;
            }
            let chars = text.chars().count() as u32;
            patterns.push(Pattern { text: text.into(), chars, target });
        }
        let first = |p: &Pattern<T>| p.text.chars().next().unwrap_or('\0');
        let mut order: Vec<u32> = (0..patterns.len() as u32).collect();
        order.sort_by(|&a, &b| {
            let (pa, pb) = (&patterns[a as usize], &patterns[b as usize]);
            first(pa).cmp(&first(pb)).then(pb.text.len().cmp(&pa.text.len())).then(a.cmp(&b))
        });
        let mut firsts: Vec<(char, u32, u32)> = Vec::new();
        for (i, &id) in order.iter().enumerate() {
            let c = first(&patterns[id as usize]);
            match firsts.last_mut() {
                Some(last) if last.0 == c => last.2 = i as u32 + 1,
                _ => firsts.push((c, i as u32, i as u32 + 1)),
            }
        }
        Matcher { firsts, order, patterns }
    }
}

impl<T> Matcher<T> {
    pub fn pattern(&self, id: u32) -> &Pattern<T> {
        &self.patterns[id as usize]
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Calls `f(byte_offset, pattern_id)` for every occurrence of every
    /// pattern in `text`, in order of position, longer patterns first at
    /// one position.
    pub fn for_each_hit(&self, text: &str, mut f: impl FnMut(usize, u32)) {
        if self.firsts.is_empty() {
            return;
        }
        for (at, c) in text.char_indices() {
            let Ok(i) = self.firsts.binary_search_by(|e| e.0.cmp(&c)) else { continue };
            let (_, lo, hi) = self.firsts[i];
            let rest = &text[at..];
            for &id in &self.order[lo as usize..hi as usize] {
                if rest.starts_with(&*self.patterns[id as usize].text) {
                    f(at, id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_occurrence_longest_first() {
        let m = Matcher::new([
            ("漏水".to_string(), 1),
            ("水管".to_string(), 1),
            ("水".to_string(), 2),
            ("水管".to_string(), 1),
            ("".to_string(), 3),
        ]);
        assert_eq!(m.len(), 3);
        let mut hits = Vec::new();
        m.for_each_hit("水管漏水了", |at, id| hits.push((at, m.pattern(id).text.to_string())));
        let want = [(0, "水管"), (0, "水"), (6, "漏水"), (9, "水")];
        assert_eq!(hits, want.map(|(a, s)| (a, s.to_string())));
    }

    #[test]
    fn empty_matcher_and_text() {
        let m: Matcher<u8> = Matcher::new([]);
        m.for_each_hit("任何文字", |_, _| panic!("no patterns"));
        let m = Matcher::new([("路灯".to_string(), 0u8)]);
        m.for_each_hit("", |_, _| panic!("no text"));
    }
}
