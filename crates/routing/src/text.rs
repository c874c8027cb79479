//! Finding a fixed set of (Chinese) keywords in a short text.
//!
//! Texts are a sentence or an address, keywords number in the hundreds or
//! thousands and many share a first character (every `南华社区第N网格`
//! starts with `南`): patterns are bucketed by their first *two* characters
//! (one-character patterns by their only one), and the scan looks up each
//! position of the text once per bucket table (binary search) and compares
//! only the patterns of that bucket, longest first.
//!
//! Keywords and texts are compared in one written form (see [`normalize`]):
//! an operator may type `第３网格` (full-width, as Chinese input methods do),
//! `第三网格` or `南华社区 第3网格` for the registry's `南华社区第3网格`. A text
//! already in that form (most addresses) is scanned as it is, without
//! allocating.

/// One keyword and what it points at.
#[derive(Clone, Debug)]
pub(crate) struct Pattern<T> {
    pub text: Box<str>,
    /// `text` as it is matched: normalized (see [`normalize`]).
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
/// and punctuation, as ASCII; the ideographic space (U+3000) as a space;
/// Latin capitals as small letters.
fn fold(c: char) -> char {
    let c = match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    };
    c.to_ascii_lowercase()
}

/// The digit a Chinese numeral stands for (`〇` and `零` are 0).
fn cn_digit(c: char) -> Option<u8> {
    Some(match c {
        '〇' | '零' => 0,
        '一' => 1,
        '二' => 2,
        '三' => 3,
        '四' => 4,
        '五' => 5,
        '六' => 6,
        '七' => 7,
        '八' => 8,
        '九' => 9,
        _ => return None,
    })
}

fn is_cn_numeral(c: char) -> bool {
    c == '十' || cn_digit(c).is_some()
}

/// A run of Chinese numerals in Arabic digits: digit by digit (`二〇二六`,
/// `三`), or with one `十` for the tens (`十`, `十五`, `三十`, `三十五`).
/// `None` for any other run (`十十`, `零十`), which is then left as written.
fn cn_number(run: &[char]) -> Option<String> {
    let digits = |cs: &[char]| cs.iter().map(|&c| cn_digit(c)).collect::<Option<Vec<u8>>>();
    let number = match run.iter().position(|&c| c == '十') {
        None => return Some(digits(run)?.into_iter().map(|d| char::from(b'0' + d)).collect()),
        Some(at) => {
            let (tens, ones) = (digits(&run[..at])?, digits(&run[at + 1..])?);
            let tens = match tens[..] {
                [] => 1,
                [d] if d > 0 => u32::from(d),
                _ => return None,
            };
            let ones = match ones[..] {
                [] => 0,
                [d] => u32::from(d),
                _ => return None,
            };
            tens * 10 + ones
        }
    };
    Some(number.to_string())
}

/// Whether [`normalize`] would change `text`.
fn needs_normalizing(text: &str) -> bool {
    text.chars().any(|c| fold(c) != c || c.is_whitespace() || is_cn_numeral(c))
}

/// The form keywords and texts are compared in: each character folded (see
/// [`fold`]), white space dropped (`南华社区 第3网格`), and every run of
/// Chinese numerals written in Arabic digits (see [`cn_number`]): `第三网格`
/// and `第十二网格` read as `第3网格` and `第12网格`. Applied alike to both
/// sides, so a place name with a numeral in it (`三合村`) still matches
/// itself. `at`, if given, receives for each byte of the result the offset
/// in `text` of the character (or numeral run) it came from.
fn normalize(text: &str, mut at: Option<&mut Vec<usize>>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut put = |out: &mut String, s: &str, from: usize| {
        out.push_str(s);
        if let Some(at) = at.as_deref_mut() {
            at.resize(out.len(), from);
        }
    };
    let mut it = text.char_indices().peekable();
    while let Some((from, c)) = it.next() {
        let c = fold(c);
        if c.is_whitespace() {
            continue;
        }
        if !is_cn_numeral(c) {
            put(&mut out, c.encode_utf8(&mut [0; 4]), from);
            continue;
        }
        let mut run = vec![c];
        while let Some(&(_, n)) = it.peek() {
            if !is_cn_numeral(n) {
                break;
            }
            run.push(n);
            it.next();
        }
        match cn_number(&run) {
            Some(digits) => put(&mut out, &digits, from),
            None => put(&mut out, &run.iter().collect::<String>(), from),
        }
    }
    out
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
            let folded = normalize(text, None);
            if folded.is_empty() || patterns.iter().any(|p| *p.folded == folded && p.target == target) {
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
    /// Both are compared normalized (see [`normalize`]); the offset is in
    /// `text` as given.
    pub fn for_each_hit(&self, text: &str, mut f: impl FnMut(usize, u32)) {
        if self.patterns.is_empty() {
            return;
        }
        if !needs_normalizing(text) {
            return self.scan(text, &mut f);
        }
        let mut at = Vec::new();
        let normal = normalize(text, Some(&mut at));
        self.scan(&normal, &mut |i, id| f(at[i], id));
    }

    /// [`Matcher::for_each_hit`] on a normalized text.
    fn scan(&self, text: &str, f: &mut impl FnMut(usize, u32)) {
        let mut it = text.char_indices().peekable();
        while let Some((at, c)) = it.next() {
            let next = it.peek().map(|&(_, n)| n);
            let rest = &text[at..];
            if next.is_some() {
                self.bucket(&self.pairs, key(c, next), rest, at, f);
            }
            self.bucket(&self.singles, key(c, None), rest, at, f);
        }
    }

    fn bucket(
        &self,
        table: &[(u64, u32, u32)],
        k: u64,
        rest: &str,
        at: usize,
        f: &mut impl FnMut(usize, u32),
    ) {
        let Ok(i) = table.binary_search_by(|e| e.0.cmp(&k)) else { return };
        let (_, lo, hi) = table[i];
        for &id in &self.order[lo as usize..hi as usize] {
            if rest.starts_with(&*self.patterns[id as usize].folded) {
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
    fn chinese_numerals_read_as_arabic_digits() {
        let n = |s: &str| normalize(s, None);
        assert_eq!(n("第三网格"), "第3网格");
        assert_eq!(n("第十网格"), "第10网格");
        assert_eq!(n("第十二网格"), "第12网格");
        assert_eq!(n("二十组"), "20组");
        assert_eq!(n("三十五号"), "35号");
        assert_eq!(n("二〇二六年"), "2026年");
        assert_eq!(n("十十"), "十十", "not a number: left as written");
        assert_eq!(n("零十"), "零十");
        assert_eq!(n("一百二十"), "1百20", "百 ends a run");
    }

    #[test]
    fn spaces_dropped_and_latin_letters_small() {
        assert_eq!(normalize("南华社区　第３网格 Ａ区 b座", None), "南华社区第3网格a区b座");
        assert!(!needs_normalizing("南华社区第3网格a区"));
        assert!(needs_normalizing("南华社区第3网格A区"));
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
        // Offsets are in the text as given, also after dropped spaces and a numeral run.
        assert_eq!(hits("鸡东镇 南华社区第三网格"), [(10, 0)]);
        assert_eq!(hits("二十三 三合村"), [(10, 3)]);
    }

    #[test]
    fn empty_matcher_and_text() {
        let m: Matcher<u8> = Matcher::new([]);
        m.for_each_hit("任何文字", |_, _| panic!("no patterns"));
        let m = Matcher::new([("路灯".to_string(), 0u8)]);
        m.for_each_hit("", |_, _| panic!("no text"));
    }
}
