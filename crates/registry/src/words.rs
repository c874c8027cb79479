//! Words as routing matches them: one written form for keywords and texts.
//!
//! An operator may type `第３网格` (full-width, as Chinese input methods do),
//! `第三网格`, `南华社区 第3网格` or `a区` for the registry's `南华社区第3网格`
//! and `A区`. Routing compares keywords and texts after [`normalize`], and
//! the loader refuses two keywords that normalize alike in two categories,
//! since routing could not tell them apart.

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
pub fn needs_normalizing(text: &str) -> bool {
    text.chars().any(|c| fold(c) != c || c.is_whitespace() || is_cn_numeral(c))
}

/// The form keywords and texts are compared in: each character folded (see
/// [`fold`]), white space dropped (`南华社区 第3网格`), and every run of
/// Chinese numerals written in Arabic digits (see [`cn_number`]): `第三网格`
/// and `第十二网格` read as `第3网格` and `第12网格`. Applied alike to both
/// sides, so a place name with a numeral in it (`三合村`) still matches
/// itself. `at`, if given, receives for each byte of the result the offset
/// in `text` of the character (or numeral run) it came from.
pub fn normalize(text: &str, mut at: Option<&mut Vec<usize>>) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
