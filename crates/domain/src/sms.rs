//! SMS text rules: GSM-7 and UCS-2 segment counting, fitting a body into a maximum of segments,
//! and the STOP / START / HELP keywords.
//!
//! Counting follows 3GPP TS 23.038 and 23.040: a text is sent in the GSM 03.38 7-bit alphabet when
//! every character is in its default table or its extension table, else in UCS-2 (UTF-16 on modern
//! handsets). A single message holds 160 septets or 70 UTF-16 units; a concatenated message loses
//! room to the user data header and holds 153 or 67 per segment. Carriers never split an escape
//! sequence or a surrogate pair across segments, so characters are packed greedily.

use std::borrow::Cow;

/// Septets in a single GSM-7 message.
const GSM7_SINGLE: usize = 160;
/// Septets per segment of a concatenated GSM-7 message.
const GSM7_MULTI: usize = 153;
/// UTF-16 units in a single UCS-2 message.
const UCS2_SINGLE: usize = 70;
/// UTF-16 units per segment of a concatenated UCS-2 message.
const UCS2_MULTI: usize = 67;
/// Marks a shortened GSM-7 text; "…" is not in the GSM alphabet and would switch it to UCS-2.
const GSM7_ELLIPSIS: &str = "...";
/// Marks a shortened UCS-2 text: one unit instead of three.
const UCS2_ELLIPSIS: &str = "…";

/// How a text is encoded on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// The GSM 03.38 7-bit default alphabet and its extension table.
    Gsm7,
    /// UCS-2 / UTF-16, for anything outside GSM-7.
    Ucs2,
}

impl Encoding {
    /// The name shown in payloads and logs: `gsm7` or `ucs2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Ucs2 => "ucs2",
        }
    }

    /// Room in a message that is not split.
    fn single(self) -> usize {
        match self {
            Encoding::Gsm7 => GSM7_SINGLE,
            Encoding::Ucs2 => UCS2_SINGLE,
        }
    }

    /// Room in each segment of a concatenated message.
    fn multi(self) -> usize {
        match self {
            Encoding::Gsm7 => GSM7_MULTI,
            Encoding::Ucs2 => UCS2_MULTI,
        }
    }

    /// Units `c` takes in this encoding; only called with characters the encoding can carry.
    fn cost(self, c: char) -> usize {
        match self {
            Encoding::Gsm7 if is_gsm7_extension(c) => 2,
            Encoding::Gsm7 => 1,
            Encoding::Ucs2 => c.len_utf16(),
        }
    }

    /// The ellipsis that keeps this encoding.
    fn ellipsis(self) -> &'static str {
        match self {
            Encoding::Gsm7 => GSM7_ELLIPSIS,
            Encoding::Ucs2 => UCS2_ELLIPSIS,
        }
    }
}

/// The size of a text as an SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Segments {
    /// The encoding the text needs.
    pub encoding: Encoding,
    /// Septets (GSM-7, extension characters count 2) or UTF-16 code units (UCS-2).
    pub units: usize,
    /// Messages billed and delivered; an empty text is still one message.
    pub count: u32,
}

/// Whether `c` is in the GSM 03.38 default alphabet (line feed and carriage return included).
fn is_gsm7_basic(c: char) -> bool {
    match c {
        // Printable ASCII except the characters that moved to the extension table, and the
        // backtick, which GSM-7 lacks altogether.
        ' '..='~' => !matches!(c, '`' | '[' | '\\' | ']' | '^' | '{' | '|' | '}' | '~'),
        '\n' | '\r' => true,
        // Code 0x09 is 'Ç' in TS 23.038 (some phones show 'ç'); a 'ç' in the text needs UCS-2.
        _ => matches!(
            c,
            '£' | '¥'
                | 'è'
                | 'é'
                | 'ù'
                | 'ì'
                | 'ò'
                | 'Ç'
                | 'Ø'
                | 'ø'
                | 'Å'
                | 'å'
                | 'Δ'
                | 'Φ'
                | 'Γ'
                | 'Λ'
                | 'Ω'
                | 'Π'
                | 'Ψ'
                | 'Σ'
                | 'Θ'
                | 'Ξ'
                | 'Æ'
                | 'æ'
                | 'ß'
                | 'É'
                | '¤'
                | '¡'
                | 'Ä'
                | 'Ö'
                | 'Ñ'
                | 'Ü'
                | '§'
                | '¿'
                | 'ä'
                | 'ö'
                | 'ñ'
                | 'ü'
                | 'à'
        ),
    }
}

/// Whether `c` is in the GSM 03.38 extension table, sent as ESC followed by a septet.
fn is_gsm7_extension(c: char) -> bool {
    matches!(c, '\u{c}' | '^' | '{' | '}' | '\\' | '[' | '~' | ']' | '|' | '€')
}

/// Whether `c` can be sent in GSM-7.
fn is_gsm7(c: char) -> bool {
    is_gsm7_basic(c) || is_gsm7_extension(c)
}

/// Counts segments as characters are appended, never splitting one across two segments.
#[derive(Clone, Copy)]
struct Packer {
    encoding: Encoding,
    /// Units of the whole text.
    units: usize,
    /// Segments used if the text is concatenated, counting the one being filled.
    segments: u32,
    /// Units in the segment being filled.
    fill: usize,
}

impl Packer {
    fn new(encoding: Encoding) -> Packer {
        Packer { encoding, units: 0, segments: 1, fill: 0 }
    }

    fn push(&mut self, c: char) {
        let cost = self.encoding.cost(c);
        self.units = self.units.saturating_add(cost);
        if self.fill + cost > self.encoding.multi() {
            // Saturating: no text held in memory comes near 2^32 segments, but no input can panic.
            self.segments = self.segments.saturating_add(1);
            self.fill = cost;
        } else {
            self.fill += cost;
        }
    }

    fn push_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.push(c));
    }

    fn count(&self) -> u32 {
        if self.units <= self.encoding.single() { 1 } else { self.segments }
    }

    fn segments(&self) -> Segments {
        Segments { encoding: self.encoding, units: self.units, count: self.count() }
    }
}

/// The encoding `text` needs: GSM-7 when every character has a GSM-7 code.
fn encoding(text: &str) -> Encoding {
    if text.chars().all(is_gsm7) { Encoding::Gsm7 } else { Encoding::Ucs2 }
}

/// The encoding, units and number of messages `text` takes. An empty text is one message.
pub fn measure(text: &str) -> Segments {
    let mut packer = Packer::new(encoding(text));
    packer.push_str(text);
    packer.segments()
}

/// `text` if it fits in `max_segments` (0 counts as 1), else its longest prefix that fits with an
/// ellipsis appended ("..." in GSM-7, "…" in UCS-2, so the encoding never changes).
pub fn fit(text: &str, max_segments: u32) -> Cow<'_, str> {
    let max = max_segments.max(1);
    let whole = measure(text);
    if whole.count <= max {
        return Cow::Borrowed(text);
    }
    let ellipsis = whole.encoding.ellipsis();
    // Counted in the text's encoding even when the kept prefix alone would be GSM-7: the UCS-2
    // ellipsis keeps the result in UCS-2.
    let mut packer = Packer::new(whole.encoding);
    let mut keep = 0;
    for (i, c) in text.char_indices() {
        packer.push(c);
        let mut shortened = packer;
        shortened.push_str(ellipsis);
        // The count never drops as characters are added, so no longer prefix fits either. The
        // whole text does not fit, so this always stops before the end.
        if shortened.count() > max {
            break;
        }
        keep = i + c.len_utf8();
    }
    // `keep` is 0 or the end of a character, so the slice is on a boundary.
    Cow::Owned(format!("{}{ellipsis}", &text[..keep]))
}

/// What a one-word reply asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Keyword {
    /// Stop sending to this number.
    OptOut,
    /// Resume sending to this number.
    OptIn,
    /// Send the help text.
    Help,
}

/// Opt-out words, as carriers and Twilio honour them.
const OPT_OUT: [&str; 8] = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"];
/// Opt-in words.
const OPT_IN: [&str; 4] = ["START", "YES", "UNSTOP", "OPTIN"];
/// Help words.
const HELP: [&str; 2] = ["HELP", "INFO"];

/// Whether `c` may trail a keyword, as in "STOP." or "Stop!!".
fn is_trailing_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || matches!(c, '…' | '。' | '！' | '？' | '、' | '，' | '¡' | '¿')
}

/// The keyword `body` is, if it is exactly one word: "stop", " Stop! " are; "STOP PLEASE" is not.
/// Letters compare case-insensitively in ASCII only, so look-alikes such as "ſtop" are not keywords.
pub fn keyword(body: &str) -> Option<Keyword> {
    let word = body.trim().trim_end_matches(is_trailing_punctuation).trim_end();
    if word.is_empty() || word.contains(char::is_whitespace) {
        return None;
    }
    let is = |list: &[&str]| list.iter().any(|k| k.eq_ignore_ascii_case(word));
    if is(&OPT_OUT) {
        Some(Keyword::OptOut)
    } else if is(&OPT_IN) {
        Some(Keyword::OptIn)
    } else if is(&HELP) {
        Some(Keyword::Help)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Every character GSM-7 can carry, extension table included.
    const GSM7_CHARS: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
        ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà\u{c}^{}\\[~]|€";

    fn measured(encoding: Encoding, units: usize, count: u32) -> Segments {
        Segments { encoding, units, count }
    }

    #[test]
    fn encodings_have_stable_names() {
        assert_eq!(Encoding::Gsm7.as_str(), "gsm7");
        assert_eq!(Encoding::Ucs2.as_str(), "ucs2");
    }

    #[test]
    fn empty_text_is_one_message() {
        assert_eq!(measure(""), measured(Encoding::Gsm7, 0, 1));
    }

    #[test]
    fn whole_gsm7_alphabet_is_gsm7() {
        for c in GSM7_CHARS.chars() {
            let expected = if is_gsm7_extension(c) { 2 } else { 1 };
            assert_eq!(measure(&c.to_string()), measured(Encoding::Gsm7, expected, 1), "{c:?}");
        }
        assert_eq!(GSM7_CHARS.chars().count(), 128 - 1 + 10, "127 basic (ESC excluded) + 10 extension");
    }

    #[test]
    fn characters_outside_gsm7_need_ucs2() {
        for c in ['`', '\t', 'ç', 'á', 'ж', '…', '’', '😀', '\u{301}'] {
            assert_eq!(measure(&c.to_string()).encoding, Encoding::Ucs2, "{c:?}");
        }
        assert_eq!(measure(&format!("{}ж", "a".repeat(100))), measured(Encoding::Ucs2, 101, 2));
    }

    #[test]
    fn gsm7_segment_boundaries() {
        let a = |n: usize| measure(&"a".repeat(n));
        assert_eq!(a(160), measured(Encoding::Gsm7, 160, 1));
        assert_eq!(a(161), measured(Encoding::Gsm7, 161, 2));
        assert_eq!(a(306), measured(Encoding::Gsm7, 306, 2));
        assert_eq!(a(307), measured(Encoding::Gsm7, 307, 3));
    }

    #[test]
    fn extension_characters_take_two_septets() {
        assert_eq!(measure("€"), measured(Encoding::Gsm7, 2, 1));
        assert_eq!(measure(&"{".repeat(80)), measured(Encoding::Gsm7, 160, 1));
        assert_eq!(measure(&"{".repeat(81)), measured(Encoding::Gsm7, 162, 2));
    }

    #[test]
    fn escape_sequence_is_never_split_across_segments() {
        // 306 septets would fill two segments exactly, but the '{' cannot straddle the first
        // boundary: it starts the second segment, and the last septet spills into a third.
        let text = format!("{}{{{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(measure(&text), measured(Encoding::Gsm7, 306, 3));
    }

    #[test]
    fn ucs2_segment_boundaries() {
        let zhe = |n: usize| measure(&"ж".repeat(n));
        assert_eq!(zhe(70), measured(Encoding::Ucs2, 70, 1));
        assert_eq!(zhe(71), measured(Encoding::Ucs2, 71, 2));
        assert_eq!(zhe(134), measured(Encoding::Ucs2, 134, 2));
        assert_eq!(zhe(135), measured(Encoding::Ucs2, 135, 3));
    }

    #[test]
    fn characters_beyond_the_bmp_take_two_units() {
        assert_eq!(measure(&"😀".repeat(35)), measured(Encoding::Ucs2, 70, 1));
        assert_eq!(measure(&"😀".repeat(36)), measured(Encoding::Ucs2, 72, 2));
    }

    #[test]
    fn surrogate_pair_is_never_split_across_segments() {
        let text = format!("{}😀{}", "ж".repeat(66), "ж".repeat(66));
        assert_eq!(measure(&text), measured(Encoding::Ucs2, 134, 3));
    }

    #[test]
    fn fitting_text_is_returned_as_is() {
        let text = "a".repeat(160);
        assert!(matches!(fit(&text, 1), Cow::Borrowed(t) if t == text));
        assert!(matches!(fit("", 0), Cow::Borrowed("")));
        assert!(matches!(fit(&"a".repeat(306), 2), Cow::Borrowed(_)));
    }

    #[test]
    fn gsm7_text_is_cut_with_three_dots() {
        assert_eq!(fit(&"a".repeat(200), 1), format!("{}...", "a".repeat(157)));
        assert_eq!(fit(&"a".repeat(500), 3), format!("{}...", "a".repeat(456)));
        assert_eq!(fit(&"a".repeat(200), 0), fit(&"a".repeat(200), 1), "0 segments means 1");
    }

    #[test]
    fn escape_sequence_that_would_overflow_is_dropped_whole() {
        let text = format!("{}{{{}", "a".repeat(156), "a".repeat(10));
        let fitted = fit(&text, 1);
        assert_eq!(fitted, format!("{}...", "a".repeat(156)));
        assert_eq!(measure(&fitted).units, 159);
    }

    #[test]
    fn ucs2_text_is_cut_with_one_ellipsis_character() {
        assert_eq!(fit(&"ж".repeat(100), 1), format!("{}…", "ж".repeat(69)));
        // The kept prefix is plain ASCII, yet the text and its ellipsis are UCS-2.
        let text = format!("{}ж", "a".repeat(100));
        let fitted = fit(&text, 1);
        assert_eq!(fitted, format!("{}…", "a".repeat(69)));
        assert_eq!(measure(&fitted), measured(Encoding::Ucs2, 70, 1));
    }

    #[test]
    fn surrogate_pair_that_would_overflow_is_dropped_whole() {
        let text = format!("{}😀{}", "ж".repeat(68), "ж".repeat(10));
        assert_eq!(fit(&text, 1), format!("{}…", "ж".repeat(68)));
    }

    #[test]
    fn keywords_are_single_words_in_any_case() {
        let cases = [
            ("STOP", Some(Keyword::OptOut)),
            ("stop", Some(Keyword::OptOut)),
            ("  Stop.  ", Some(Keyword::OptOut)),
            ("stop!!", Some(Keyword::OptOut)),
            ("Stop !", Some(Keyword::OptOut)),
            ("\u{a0}STOP\u{a0}", Some(Keyword::OptOut)),
            ("StopAll", Some(Keyword::OptOut)),
            ("unsubscribe", Some(Keyword::OptOut)),
            ("cancel", Some(Keyword::OptOut)),
            ("end", Some(Keyword::OptOut)),
            ("quit", Some(Keyword::OptOut)),
            ("optout", Some(Keyword::OptOut)),
            ("revoke", Some(Keyword::OptOut)),
            ("start", Some(Keyword::OptIn)),
            ("Yes!", Some(Keyword::OptIn)),
            ("unstop", Some(Keyword::OptIn)),
            ("OPTIN", Some(Keyword::OptIn)),
            ("help?", Some(Keyword::Help)),
            ("Info", Some(Keyword::Help)),
            ("STOP PLEASE", None),
            ("please stop", None),
            ("opt out", None),
            ("STOPP", None),
            ("ſtop", None),
            ("STOP😀", None),
            ("", None),
            ("   ", None),
            ("!!!", None),
            ("¿", None),
        ];
        for (body, expected) in cases {
            assert_eq!(keyword(body), expected, "{body:?}");
        }
    }

    /// Texts of every kind: GSM-7 only (extension characters included) or mixed with UCS-2.
    fn text() -> impl Strategy<Value = String> {
        let gsm7: Vec<char> = GSM7_CHARS.chars().collect();
        let gsm7_char = prop::sample::select(gsm7);
        let any_char = prop_oneof![
            4 => gsm7_char.clone(),
            1 => prop::sample::select(vec!['ж', 'ç', '…', '😀', '👩', '\u{301}']),
            1 => any::<char>(),
        ];
        prop_oneof![
            prop::collection::vec(gsm7_char, 0..500).prop_map(String::from_iter),
            prop::collection::vec(any_char, 0..400).prop_map(String::from_iter),
        ]
    }

    proptest! {
        #[test]
        fn fitted_text_fits_keeps_a_prefix_and_its_encoding(text in text(), max in 0u32..5) {
            let original = measure(&text);
            let fitted = fit(&text, max);
            let after = measure(&fitted);
            prop_assert!(after.count <= max.max(1));
            prop_assert_eq!(after.encoding, original.encoding);
            if original.count <= max.max(1) {
                prop_assert_eq!(fitted.as_ref(), text.as_str());
            } else {
                let ellipsis = original.encoding.ellipsis();
                let kept = fitted.strip_suffix(ellipsis);
                prop_assert!(kept.is_some_and(|k| text.starts_with(k) && k.len() < text.len()));
            }
        }

        #[test]
        fn fitted_prefix_is_the_longest(text in text(), max in 1u32..4) {
            let original = measure(&text);
            let ellipsis = original.encoding.ellipsis();
            let fitted = fit(&text, max);
            if let Some(kept) = fitted.strip_suffix(ellipsis).filter(|_| original.count > max) {
                let next = text[kept.len()..].chars().next();
                prop_assert!(next.is_some());
                let longer: String = kept.chars().chain(next).chain(ellipsis.chars()).collect();
                let mut packer = Packer::new(original.encoding);
                packer.push_str(&longer);
                prop_assert!(packer.count() > max, "{:?} would also fit", longer);
            }
        }

        #[test]
        fn count_never_drops_when_appending(text in text(), more in text()) {
            let mut grown = text.clone();
            let mut last = measure(&grown).count;
            for c in more.chars() {
                grown.push(c);
                let now = measure(&grown).count;
                prop_assert!(now >= last, "{:?} + {:?}: {} -> {}", text, c, last, now);
                last = now;
            }
        }

        #[test]
        fn units_and_count_agree(text in text()) {
            let m = measure(&text);
            let expected_units = match m.encoding {
                Encoding::Gsm7 => text.chars().map(|c| if is_gsm7_extension(c) { 2 } else { 1 }).sum(),
                Encoding::Ucs2 => text.encode_utf16().count(),
            };
            prop_assert_eq!(m.units, expected_units);
            let (single, multi) = (m.encoding.single(), m.encoding.multi());
            if m.units <= single {
                prop_assert_eq!(m.count, 1);
            } else {
                // At least the ideal packing, at most one unit lost per segment.
                let count = m.count as usize;
                prop_assert!(count >= m.units.div_ceil(multi));
                prop_assert!(count <= m.units.div_ceil(multi - 1));
            }
        }

        #[test]
        fn decorated_keywords_are_recognised(
            index in 0usize..14,
            upper in prop::collection::vec(any::<bool>(), 11),
            lead in "[ \t\n]{0,3}",
            trail in "[.!?]{0,3}[ \n]{0,2}",
            extra in "[a-z]{1,8}",
        ) {
            let words: Vec<(&str, Keyword)> = OPT_OUT.iter().map(|w| (*w, Keyword::OptOut))
                .chain(OPT_IN.iter().map(|w| (*w, Keyword::OptIn)))
                .chain(HELP.iter().map(|w| (*w, Keyword::Help)))
                .collect();
            let (word, expected) = words[index];
            let cased: String = word.chars().zip(upper.iter().cycle())
                .map(|(c, up)| if *up { c } else { c.to_ascii_lowercase() })
                .collect();
            prop_assert_eq!(keyword(&format!("{lead}{cased}{trail}")), Some(expected));
            prop_assert_eq!(keyword(&format!("{lead}{cased} {extra}{trail}")), None);
        }
    }
}
