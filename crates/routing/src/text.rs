//! Finding a fixed set of (Chinese) keywords in a short text.
//!
//! Texts are a sentence or an address, keywords number in the hundreds or
//! thousands and many share a first character (every `南华社区第N网格`
//! starts with `南`): patterns are bucketed by their first *two* characters
//! (one-character patterns by their only one), and the scan looks up each
//! position of the text once per bucket table (binary search) and compares
//! only the patterns of that bucket, longest first.
//!
//! Keywords and texts are compared in one written form
//! ([`gridline_registry::words`]): an operator may type `第３网格`, `第三网格`
//! or `南华社区 第3网格` for the registry's `南华社区第3网格`. A text already
//! in that form (most addresses) is scanned as it is, without allocating.

use gridline_registry::words::{normalize, normalized};

/// One keyword and what it points at.
#[derive(Clone, Debug)]
pub(crate) struct Pattern<T> {
    pub text: Box<str>,
    /// `text` as it is matched: normalized (see [`normalize`]).
    pub folded: Box<str>,
    /// Length in characters of `folded`, what the pattern matches (what
    /// "longest match" compares): the same however the registry spelled it.
    pub chars: u32,
    pub target: T,
}

impl<T> Pattern<T> {
    /// Bytes it covers where it is found (in the normalized text).
    pub fn matched_len(&self) -> usize {
        self.folded.len()
    }
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

fn bucket_key(text: &str) -> (bool, u64) {
    let mut cs = text.chars();
    let a = cs.next().unwrap_or('\0');
    let b = cs.next();
    (b.is_some(), key(a, b))
}

impl<T: PartialEq> Matcher<T> {
    /// Empty keywords are ignored, and so is a repeated (keyword, target)
    /// pair, also one written another way (`第三网格`, `第3网格`).
    pub fn new(items: impl IntoIterator<Item = (String, T)>) -> Matcher<T> {
        let mut patterns: Vec<Pattern<T>> = Vec::new();
        for (text, target) in items {
            let text = text.trim();
            let folded = normalize(text);
            if folded.is_empty() || patterns.iter().any(|p| *p.folded == folded && p.target == target) {
                continue;
            }
            let chars = folded.chars().count() as u32;
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
    /// A number in a pattern matches only that whole number: `五组` (`5组`)
    /// is not found in `十五组` (`15组`), nor `第2` in `第20`.
    /// Both are compared normalized (see [`normalize`]); the offset is in the
    /// normalized text (in `text` itself when that needs no normalizing).
    pub fn for_each_hit(&self, text: &str, mut f: impl FnMut(usize, u32)) {
        if self.patterns.is_empty() {
            return;
        }
        self.scan(&normalized(text), &mut f)
    }

    /// [`Matcher::for_each_hit`] on a normalized text.
    fn scan(&self, text: &str, f: &mut impl FnMut(usize, u32)) {
        let mut it = text.char_indices().peekable();
        let mut after_digit = false;
        while let Some((at, c)) = it.next() {
            let next = it.peek().map(|&(_, n)| n);
            let rest = &text[at..];
            if next.is_some() {
                self.bucket(&self.pairs, key(c, next), rest, at, after_digit, f);
            }
            self.bucket(&self.singles, key(c, None), rest, at, after_digit, f);
            after_digit = c.is_ascii_digit();
        }
    }

    /// The patterns of bucket `k` that `rest` starts with, except one whose
    /// number would be cut out of a longer one: a pattern that starts with
    /// a digit right after a digit (`5组` in `15组`), or ends with one right
    /// before a digit (`第2` in `第20`).
    fn bucket(
        &self,
        table: &[(u64, u32, u32)],
        k: u64,
        rest: &str,
        at: usize,
        after_digit: bool,
        f: &mut impl FnMut(usize, u32),
    ) {
        let Ok(i) = table.binary_search_by(|e| e.0.cmp(&k)) else { return };
        let (_, lo, hi) = table[i];
        for &id in &self.order[lo as usize..hi as usize] {
            let p = self.patterns[id as usize].folded.as_bytes();
            if !rest.as_bytes().starts_with(p) {
                continue;
            }
            let digit = |b: Option<&u8>| b.is_some_and(u8::is_ascii_digit);
            if (after_digit && digit(p.first())) || (digit(p.last()) && digit(rest.as_bytes().get(p.len()))) {
                continue;
            }
            f(at, id);
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
        assert_eq!(hits, [(0, 0), (10, 1), (14, 1)], "offsets in the normalized 第3网格a区a区");
        assert_eq!(&*m.pattern(0).text, "第3网格", "reported as the registry spells it");
    }

    #[test]
    fn keywords_match_however_their_numbers_are_written() {
        let m = Matcher::new([
            ("南华社区第3网格".to_string(), 0u8),
            ("友山村五组".to_string(), 1),
            ("南华社区第12网格".to_string(), 2),
            ("三合村".to_string(), 3),
            ("A区".to_string(), 4),
            ("南华社区第三网格".to_string(), 0),
        ]);
        assert_eq!(m.len(), 5, "第三网格 and 第3网格 of one target are one keyword");
        let hits = |t: &str| {
            let mut v = Vec::new();
            m.for_each_hit(t, |at, id| v.push((at, m.pattern(id).target)));
            v
        };
        assert_eq!(hits("南华社区第三网格"), [(0, 0)]);
        assert_eq!(hits("友山村5组"), [(0, 1)]);
        assert_eq!(hits("友山村十五组"), [], "group 15 is not group 5");
        assert_eq!(hits("南华社区第十二网格"), [(0, 2)]);
        assert_eq!(hits("南华社区第一网格"), []);
        assert_eq!(hits("东边三合村"), [(6, 3)], "a numeral in a place name still matches itself");
        assert_eq!(hits("a 区"), [(0, 4)]);
        // Offsets are in the normalized text: spaces dropped (but one kept
        // between two numbers), numerals in digits.
        assert_eq!(hits("鸡东镇 南华社区第三网格"), [(9, 0)]);
        assert_eq!(hits("二十三 三合村"), [(3, 3)], "in 23 3合村");
    }

    #[test]
    fn a_number_in_a_keyword_is_not_part_of_a_longer_number() {
        // A keyword that starts or ends with a number matches only that
        // number: group 15 is not group 5, whether the 5 begins the keyword
        // (`五组`) or the text writes its digits (`15组`).
        let m = Matcher::new([
            ("五组".to_string(), 0u8),
            ("三楼漏水".to_string(), 1),
            ("第二".to_string(), 2),
            ("一氧化碳".to_string(), 3),
        ]);
        let hits = |t: &str| {
            let mut v = Vec::new();
            m.for_each_hit(t, |at, id| v.push((at, m.pattern(id).target)));
            v
        };
        assert_eq!(hits("友山村五组"), [(9, 0)]);
        assert_eq!(hits("友山村十五组"), [], "group 15");
        assert_eq!(hits("友山村15组"), [], "group 15 in digits");
        assert_eq!(hits("十三楼漏水"), [], "the 13th floor");
        assert_eq!(hits("3楼漏水"), [(0, 1)]);
        assert_eq!(hits("第二十"), [], "the 20th");
        assert_eq!(hits("第二组"), [(0, 2)]);
        assert_eq!(hits("有一氧化碳味"), [(3, 3)]);
        assert_eq!(hits("5组5组"), [(0, 0), (4, 0)]);
    }

    #[test]
    fn a_keyword_is_as_long_as_what_it_matches_however_it_is_spelled() {
        // Scores compare `chars`: the same match must weigh the same whether
        // the registry wrote 二十三号楼 or 23号楼, with a space or without.
        let m = Matcher::new([
            ("二十三号楼".to_string(), 0u8),
            ("23号楼".to_string(), 1),
            ("阳光 小区".to_string(), 2),
            ("阳光小区".to_string(), 3),
        ]);
        let chars = |t: u8| (0..m.len() as u32).map(|i| m.pattern(i)).find(|p| p.target == t).unwrap().chars;
        assert_eq!((chars(0), chars(1)), (4, 4));
        assert_eq!((chars(2), chars(3)), (4, 4));
    }

    #[test]
    fn empty_matcher_and_text() {
        let m: Matcher<u8> = Matcher::new([]);
        m.for_each_hit("任何文字", |_, _| panic!("no patterns"));
        let m = Matcher::new([("路灯".to_string(), 0u8)]);
        m.for_each_hit("", |_, _| panic!("no text"));
    }
}
