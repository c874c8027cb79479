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
    matches!(c, '十' | '廿' | '卅') || cn_digit(c).is_some()
}

/// Writes a run of Chinese numerals in Arabic digits: digit by digit
/// (`二〇二六`, `三`), or with one `十` for the tens (`十`, `十五`, `三十`,
/// `三十五`; `廿` and `卅` are `二十` and `三十`: `廿三` is 23). Any other
/// run (`十十`, `零十`, `三廿`) is not a number: nothing is written and the
/// answer is false.
fn push_number(run: &str, out: &mut String) -> bool {
    if run.contains(['廿', '卅']) {
        let spelled = run.replace('廿', "二十").replace('卅', "三十");
        return push_number(&spelled, out);
    }
    let Some(at) = run.find('十') else {
        out.extend(run.chars().filter_map(cn_digit).map(|d| char::from(b'0' + d)));
        return true;
    };
    // At most one digit each side of the one 十, and no tens digit 0.
    let one = |s: &str| {
        let mut cs = s.chars();
        match (cs.next(), cs.next()) {
            (None, _) => Some(None),
            (Some(c), None) => cn_digit(c).map(Some),
            _ => None,
        }
    };
    let (Some(tens), Some(ones)) = (one(&run[..at]), one(&run[at + '十'.len_utf8()..])) else {
        return false;
    };
    let tens = match tens {
        None => 1,
        Some(0) => return false,
        Some(d) => d,
    };
    let n = tens * 10 + ones.unwrap_or(0);
    out.push(char::from(b'0' + n / 10));
    out.push(char::from(b'0' + n % 10));
    true
}

/// Characters that take no room and say nothing, which text pasted from
/// chat apps and web pages carries: zero-width space, non-joiner and
/// joiner, word joiner, and the byte-order mark. Not white space to Rust.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}')
}

/// Whether [`normalize`] changes `c` (or a run it starts).
fn changes(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_uppercase() || c.is_whitespace();
    }
    is_cn_numeral(c) || ('\u{FF01}'..='\u{FF5E}').contains(&c) || c.is_whitespace() || is_invisible(c)
}

/// The form keywords and texts are compared in: each character folded (see
/// [`fold`]), invisible characters dropped (see [`is_invisible`]), white space dropped (`南华社区 第3网格`) except that one space
/// stays between two numbers (`1 2组` is not `12组`), and every run of
/// Chinese numerals written in Arabic digits (see [`push_number`]):
/// `第三网格` and `第十二网格` read as `第3网格` and `第12网格`. Applied alike
/// to both sides, so a place name with a numeral in it (`三合村`) still
/// matches itself.
pub fn normalize(text: &str) -> String {
    normalized(text).into_owned()
}

/// [`normalize`], borrowing `text` when it is already in that form (most
/// addresses), in one pass either way.
pub fn normalized(text: &str) -> std::borrow::Cow<'_, str> {
    let Some(first) = text.find(changes) else {
        return std::borrow::Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..first]);
    let mut rest = &text[first..];
    // White space was dropped since the last character written: if it stood
    // between two numbers, one space is kept (`二十三 三合村` is 23 and
    // 三合村, not 233合村).
    let mut gap = false;
    let ends_in_digit = |out: &str| out.as_bytes().last().is_some_and(u8::is_ascii_digit);
    while let Some(c) = rest.chars().next() {
        if is_cn_numeral(c) {
            let end = rest.find(|n: char| !is_cn_numeral(n)).unwrap_or(rest.len());
            let run = &rest[..end];
            let (at, apart) = (out.len(), gap && ends_in_digit(&out));
            if !push_number(run, &mut out) {
                out.push_str(run);
            } else if apart {
                out.insert(at, ' ');
            }
            rest = &rest[end..];
            gap = false;
            continue;
        }
        rest = &rest[c.len_utf8()..];
        if is_invisible(c) {
            continue;
        }
        let c = fold(c);
        if c.is_whitespace() {
            gap = true;
            continue;
        }
        if gap && c.is_ascii_digit() && ends_in_digit(&out) {
            out.push(' ');
        }
        out.push(c);
        gap = false;
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_numerals_read_as_arabic_digits() {
        let n = normalize;
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
    fn nian_and_sa_are_twenty_and_thirty() {
        let n = normalize;
        assert_eq!(n("廿三组"), "23组", "廿三 is 二十三");
        assert_eq!(n("廿组"), "20组");
        assert_eq!(n("卅五号"), "35号");
        assert_eq!(n("三廿"), "三廿", "not a number: left as written");
        assert_eq!(n("廿十"), "廿十");
    }

    #[test]
    fn a_space_between_two_numbers_keeps_them_apart() {
        let n = normalize;
        assert_eq!(n("二十三 三合村"), "23 3合村", "23, then 三合村: not 233合村");
        assert_eq!(n("1 2组"), "1 2组");
        assert_eq!(n("１　２组"), "1 2组");
        assert_eq!(n("十 五组"), "10 5组");
        assert_eq!(n("3  \t 5"), "3 5", "one space for a run of them");
        assert_eq!(n("第 3 网格"), "第3网格");
        assert_eq!(n("3 十十"), "3十十", "a run that is no number is no digit");
    }

    #[test]
    fn invisible_characters_are_dropped() {
        assert_eq!(normalize("南华\u{200B}社区第\u{FEFF}三网格"), "南华社区第3网格");
        assert_eq!(normalize("1\u{200D}2组"), "12组", "no room, so no gap either");
    }

    #[test]
    fn spaces_dropped_and_latin_letters_small() {
        assert_eq!(normalize("南华社区　第３网格 Ａ区 b座"), "南华社区第3网格a区b座");
        assert!(matches!(normalized("南华社区第3网格a区"), std::borrow::Cow::Borrowed(_)));
        for t in ["南华社区第3网格A区", "南华社区第３网格", "第三网格", "a b", "ＡＢ", "\u{3000}", "一"]
        {
            assert!(matches!(normalized(t), std::borrow::Cow::Owned(_)), "{t}");
            assert_ne!(normalize(t), t, "{t}");
        }
    }
}
