//! Finding a fixed set of (Chinese) keywords in a short text.
//!
//! Texts are a sentence or an address, keywords number in the hundreds or
//! thousands and many share a first character (every `南华社区第N网格`
//! starts with `南`): patterns are bucketed by their first *two* characters
//! (one-character patterns by their only one), and the scan looks up each
//! position of the text once per bucket table (binary search) and compares
//! only the patterns of that bucket, longest first. No allocation while
//! scanning.
//!
//! Full-width forms match their ASCII counterparts (see [`fold`]): an
//! operator's input method may type `第３网格` for the registry's `第3网格`.

/// One keyword and what it points at.
#[derive(Clone, Debug)]
pub(crate) struct Pattern<T> {
    pub text: Box<str>,
    /// `text` as it is matched: folded (see [`fold`]).
    folded: Box<str>,
    /// Length in characters (what "longest match" compares).
    pub chars: u32,
    pub target: T,
}

#[derive(Clone, Debug)]
pub(crate) struct Matcher<T> {
    /// Sorted bucket keys (first two characters, packed; see [`key`]), each
    /// with its range in `order`.
    pairs: Buckets,
    /// The same for one-character patterns.
    singles: Buckets,
    /// Pattern ids grouped by bucket, longest first, then by id.
    order: Vec<u32>,
    patterns: Vec<Pattern<T>>,
}

/// (key, start, end) of each bucket's pattern ids in `order`, sorted by key.
type Buckets = Vec<(u64, u32, u32)>;

/// A bucket key: one or two characters packed into a `u64`.
fn key(a: char, b: Option<char>) -> u64 {
    (u64::from(a) << 32) | b.map_or(0, u64::from)
}

/// A character as matching sees it: the full-width forms of ASCII (U+FF01
/// to U+FF5E), which Chinese input methods type for digits, Latin letters
/// and punctuation, as ASCII; the ideographic space (U+3000) as a space.
fn fold(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

/// Whether `rest` starts with the folded `pattern`; `plain`: `rest` has
/// nothing to fold, so bytes can be compared.
fn starts_with_folded(rest: &str, pattern: &str, plain: bool) -> bool {
    if plain {
        return rest.starts_with(pattern);
    }
    let mut t = rest.chars();
    pattern.chars().all(|p| t.next().map(fold) == Some(p))
}

fn bucket_key(text: &str) -> (bool, u64) {
    let mut cs = text.chars();
    let a = cs.next().unwrap_or('\0');
    let b = cs.next();
    (b.is_some(), key(a, b))
}

impl<T: PartialEq> Matcher<T> {
    /// Empty keywords are ignored, and so is a repeated (keyword, target) pair.
    pub fn new(items: impl IntoIterator<Item = (String, T)>) -> Matcher<T> {
        let mut patterns: Vec<Pattern<T>> = Vec::new();
        for (text, target) in items {
            let text = text.trim();
            let folded: String = text.chars().map(fold).collect();
            if text.is_empty() || patterns.iter().any(|p| *p.folded == folded && p.target == target) {
                continue;
            }
            let chars = text.chars().count() as u32;
            patterns.push(Pattern { text: text.into(), folded: folded.into(), chars, target });
        }
        let mut order: Vec<u32> = (0..patterns.len() as u32).collect();
        order.sort_by(|&a, &b| {
            let (pa, pb) = (&patterns[a as usize], &patterns[b as usize]);
            bucket_key(&pa.folded)
                .cmp(&bucket_key(&pb.folded))
                .then(pb.folded.len().cmp(&pa.folded.len()))
                .then(a.cmp(&b))
        });
        let (mut pairs, mut singles): (Buckets, Buckets) = (Vec::new(), Vec::new());
        for (i, &id) in order.iter().enumerate() {
            let (two, k) = bucket_key(&patterns[id as usize].folded);
            let table = if two { &mut pairs } else { &mut singles };
            match table.last_mut() {
                Some(last) if last.0 == k => last.2 = i as u32 + 1,
                _ => table.push((k, i as u32, i as u32 + 1)),
            }
        }
        Matcher { pairs, singles, order, patterns }
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
    /// pattern in `text`, in order of position; at one position, the
    /// patterns of two or more characters (longest first), then those of one.
    /// Characters are compared folded (see [`fold`]).
    pub fn for_each_hit(&self, text: &str, mut f: impl FnMut(usize, u32)) {
        if self.patterns.is_empty() {
            return;
        }
        let plain = text.chars().all(|c| fold(c) == c);
        let mut it = text.char_indices().peekable();
        while let Some((at, c)) = it.next() {
            let c = fold(c);
            let next = it.peek().map(|&(_, n)| fold(n));
            let rest = &text[at..];
            if next.is_some() {
                self.bucket(&self.pairs, key(c, next), rest, plain, at, &mut f);
            }
            self.bucket(&self.singles, key(c, None), rest, plain, at, &mut f);
        }
    }

    fn bucket(
        &self,
        table: &[(u64, u32, u32)],
        k: u64,
        rest: &str,
        plain: bool,
        at: usize,
        f: &mut impl FnMut(usize, u32),
    ) {
        let Ok(i) = table.binary_search_by(|e| e.0.cmp(&k)) else { return };
        let (_, lo, hi) = table[i];
        for &id in &self.order[lo as usize..hi as usize] {
            if starts_with_folded(rest, &self.patterns[id as usize].folded, plain) {
                f(at, id);
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
    fn patterns_sharing_a_first_character() {
        let words = ["南华社区", "南华路", "南", "华路", "南华社区第1网格"];
        let m = Matcher::new(words.iter().enumerate().map(|(i, w)| (w.to_string(), i)));
        let mut hits = Vec::new();
        m.for_each_hit("南华社区南华路", |at, id| hits.push((at, m.pattern(id).target)));
        assert_eq!(hits, [(0, 0), (0, 2), (12, 1), (12, 2), (15, 3)]);
        let mut last = Vec::new();
        m.for_each_hit("路南", |at, id| last.push((at, m.pattern(id).target)));
        assert_eq!(last, [(3, 2)], "a one-character pattern at the very end");
    }

    #[test]
    fn full_width_forms_match_their_ascii() {
        let m = Matcher::new([("第3网格".to_string(), 0u8), ("Ａ区".to_string(), 1), ("A区".to_string(), 1)]);
        assert_eq!(m.len(), 2, "Ａ区 and A区 are one keyword");
        let mut hits = Vec::new();
        m.for_each_hit("第３网格Ａ区 A区", |at, id| hits.push((at, m.pattern(id).target)));
        assert_eq!(hits, [(0, 0), (12, 1), (19, 1)]);
        assert_eq!(&*m.pattern(0).text, "第3网格", "reported as the registry spells it");
    }

    #[test]
    fn empty_matcher_and_text() {
        let m: Matcher<u8> = Matcher::new([]);
        m.for_each_hit("任何文字", |_, _| panic!("no patterns"));
        let m = Matcher::new([("路灯".to_string(), 0u8)]);
        m.for_each_hit("", |_, _| panic!("no text"));
    }
}
