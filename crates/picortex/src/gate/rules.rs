//! Mention detection: does a message name the bot?
//!
//! [`mentions`] looks for the bot's name and each alias, case-insensitively, as a whole word,
//! with or without a leading `@` (so "hey pi", "@Pi,", "Pi!", "(pi)" and "PI?" all count).
//! Precisely, an occurrence counts when:
//!
//! - the character before it is not a word character (a letter, digit or `_` of any script,
//!   or a combining accent), so "api" and "okpi" do not count; an `@` right before it is
//!   allowed unless a word character precedes the `@` (the domain of "me@pi.dev");
//! - the character after it is not a word character ("pie", "pipe", "pí" do not count);
//! - it is not glued into a compound, file name, address or path: a `-`, `.` or `:` right
//!   after it followed by a word character ("pi-hole", "pi.dev", "pi.rs", "pi:8080"), or a
//!   `-`, `.`, `/`, `\` or `:` right before it ("x-pi", "file.pi", "/usr/pi"), or an `@`,
//!   `/` or `\` right after it ("pi@x.com", "pi/src") rule it out;
//! - the whitespace-separated chunk around it is not a URL, e-mail address or path: no
//!   `://`, no leading `www.`, no `/` or `\`, and no `@` except one directly before the name
//!   ("https://x.dev/?q=pi" does not count).
//!
//! Apostrophes end a word, so the possessive and contractions count: "pi's answer",
//! "pi’ll do it" refer to the bot. Sentence punctuation after the name ("Pi.", "pi...",
//! "pi: do this") counts. Han, kana and Hangul characters are not treated as word characters,
//! because those scripts do not put spaces between words ("你好pi" counts). Names of several
//! words ("robo pi") must appear with the same single spaces.

use super::BotIdentity;

/// Whether `text` mentions the bot by its name or an alias (see the module documentation for
/// the exact rules). Unicode-safe; allocates the lowercased text once.
pub fn mentions(text: &str, bot: &BotIdentity) -> bool {
    let mut lowered: Option<String> = None;
    for name in bot.names() {
        let name = name.to_lowercase();
        let text = lowered.get_or_insert_with(|| text.to_lowercase());
        if text
            .match_indices(name.as_str())
            .any(|(start, found)| counts_at(text, start, start + found.len()))
        {
            return true;
        }
    }
    false
}

/// A word character: letters and digits of any script, `_` and combining accents, except
/// the scripts written without spaces between words.
fn is_word_char(c: char) -> bool {
    (c.is_alphanumeric() || c == '_' || ('\u{0300}'..='\u{036f}').contains(&c)) && !is_cjk(c)
}

/// Han, Hiragana, Katakana and Hangul.
fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{1100}'..='\u{11ff}'
        | '\u{3040}'..='\u{30ff}'
        | '\u{3130}'..='\u{318f}'
        | '\u{3400}'..='\u{4dbf}'
        | '\u{4e00}'..='\u{9fff}'
        | '\u{ac00}'..='\u{d7af}'
        | '\u{f900}'..='\u{faff}'
        | '\u{ff66}'..='\u{ff9f}'
        | '\u{20000}'..='\u{2fa1f}')
}

/// Whether the occurrence at `text[start..end]` is a mention.
fn counts_at(text: &str, start: usize, end: usize) -> bool {
    let before = &text[..start];
    let after = &text[end..];
    let mut back = before.chars().rev();
    let prev = back.next();
    let prev2 = back.next();
    let mut fwd = after.chars();
    let next = fwd.next();
    let next2 = fwd.next();

    let left_ok = match prev {
        None => true,
        Some('@') => !prev2.is_some_and(is_word_char),
        Some(c) if is_word_char(c) => false,
        Some('-' | '.' | '/' | '\\' | ':') => false,
        Some(_) => true,
    };
    if !left_ok {
        return false;
    }
    let glued = next2.is_some_and(|c| is_word_char(c) || c == '/');
    let right_ok = match next {
        None => true,
        Some(c) if is_word_char(c) => false,
        Some('@' | '/' | '\\') => false,
        Some('-' | '.' | ':') => !glued,
        Some(_) => true,
    };
    if !right_ok {
        return false;
    }

    // The whitespace-separated chunk around the occurrence.
    let chunk_start = before
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map_or(0, |(i, c)| i + c.len_utf8());
    let chunk_end = after
        .char_indices()
        .find(|(_, c)| c.is_whitespace())
        .map_or(text.len(), |(i, _)| end + i);
    let chunk = &text[chunk_start..chunk_end];
    let head = chunk.trim_start_matches(|c: char| !c.is_alphanumeric());
    if chunk.contains("://") || head.starts_with("www.") || chunk.contains(['/', '\\']) {
        return false;
    }
    // An '@' is allowed only directly before the name.
    let at_before_name = prev == Some('@');
    !chunk
        .char_indices()
        .any(|(i, c)| c == '@' && !(at_before_name && chunk_start + i + 1 == start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pi() -> BotIdentity {
        BotIdentity {
            name: "Pi".into(),
            aliases: vec!["picortex".into()],
        }
    }

    fn yes(text: &str) {
        assert!(mentions(text, &pi()), "should mention: {text:?}");
    }

    fn no(text: &str) {
        assert!(!mentions(text, &pi()), "should not mention: {text:?}");
    }

    #[test]
    fn the_issue_cases() {
        no("I baked a pie");
        yes("Pi!");
        yes("@Pi, can you look?");
        yes("hey pi");
        yes("Hey Pi what's the weather");
        no("see https://pi.dev for details");
        no("mail pi@x.com about it");
        no("it's in /usr/pi");
        no("the pipe is broken");
        no("call the api");
    }

    #[test]
    fn whole_words_with_punctuation() {
        yes("pi");
        yes("PI?");
        yes("(pi)");
        yes("\"pi\"");
        yes("ok pi.");
        yes("pi... are you there");
        yes("pi: do this");
        yes("pi; then");
        yes("thanks pi 🙏");
        yes("🙏pi");
        yes("pi's answer was good");
        yes("pi’ll do it");
        yes("#pi");
        yes("*pi*");
        yes("multi\nline pi\nmessage");
        no("");
        no("p i");
        no("spin");
        no("pizza");
        no("okpi");
        no("pi_bot");
        no("pi2");
        no("3.14 is pi\u{0301}"); // a combining accent makes a different word
        no("piñata");
    }

    #[test]
    fn not_inside_urls_emails_paths_or_compounds() {
        no("https://example.com/?q=pi");
        no("https://example.com/pi");
        no("www.pi.dev");
        no("pi.dev");
        no("open pi.rs");
        no("me@pi.dev");
        no("x@pi");
        no("pi/src/main.rs");
        no("C:\\Users\\pi");
        no("~/pi");
        no("pi-hole is down");
        no("raspberry-pi");
        no("file.pi");
        no("pi:8080");
        no("ssh pi@raspberrypi.local");
        // …but a mention next to a link still counts.
        yes("pi, look at https://example.com/pi");
        yes("@pi https://x.dev");
    }

    #[test]
    fn aliases_and_multi_word_names() {
        yes("@picortex status?");
        yes("PICORTEX!");
        no("picortexes");
        no("robopi");
        let bot = BotIdentity {
            name: "Deep Thought".into(),
            aliases: Vec::new(),
        };
        assert!(mentions("ask deep thought about it", &bot));
        assert!(mentions("Deep Thought, hello", &bot));
        assert!(!mentions("deep thoughts", &bot));
        assert!(!mentions("deepthought", &bot));
        assert!(!mentions("a deep, thought-out plan", &bot));
        let bot = BotIdentity {
            name: "@Max".into(),
            aliases: vec![String::new()],
        };
        assert!(mentions("hey max", &bot));
        assert!(mentions("@MAX", &bot));
        assert!(!mentions("maximum effort", &bot));
        assert!(!mentions("anything at all", &BotIdentity::default()));
    }

    #[test]
    fn unicode_is_safe() {
        yes("你好pi");
        yes("pi你好");
        yes("«pi»");
        yes("İstanbul pi"); // lowercasing changes byte lengths before the name
        no("İpi");
        no("ßpi");
        let bot = BotIdentity {
            name: "Ωmega".into(),
            aliases: vec!["小派".into()],
        };
        assert!(mentions("hi ωMEGA!", &bot));
        assert!(!mentions("ωmegas", &bot));
        assert!(mentions("小派你好", &bot));
        // No panics on any char boundary.
        let text = "é🙂pi\u{0301}ɪ̈pi—pi";
        for end in 0..=text.len() {
            if text.is_char_boundary(end) {
                let _ = mentions(&text[..end], &pi());
            }
        }
    }
}
