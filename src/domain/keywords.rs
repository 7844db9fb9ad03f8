//! Keyword extraction (the original's rule, stored normalised) and search-term parsing (every
//! word must prefix-match one keyword; see the README's compatibility notes).

/// Tells whether a character survives extraction: Hangul jamo and syllables, ASCII letters and digits.
fn is_keyword_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || ('\u{3131}'..='\u{3163}').contains(&c)
        || ('\u{AC00}'..='\u{D7A3}').contains(&c)
}

/// Extracts the searchable keywords of a coupon from its brand and title, in that order.
///
/// As the original: other characters split words, words shorter than two characters are
/// dropped, duplicates keep their first place. Unlike the original the keywords are stored
/// normalised (ASCII lowercased), so search can be case-insensitive and still use an index.
pub fn extract_keywords(brand: &str, title: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for text in [brand, title] {
        let cleaned: String = text
            .chars()
            .map(|c| if is_keyword_char(c) { c } else { ' ' })
            .collect();
        for word in cleaned.split_whitespace() {
            if word.chars().count() < 2 {
                continue;
            }
            let word = word.to_ascii_lowercase();
            if !out.contains(&word) {
                out.push(word);
            }
        }
    }
    out
}

/// Splits a search input into normalised words; each must prefix-match one keyword.
///
/// Returns an empty list when the input has no non-whitespace character (no filter).
pub fn search_words(input: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in input.split_whitespace() {
        let word = word.to_ascii_lowercase();
        if !words.contains(&word) {
            words.push(word);
        }
    }
    words
}

/// Escapes `\`, `%` and `_` so the text is literal inside a LIKE pattern (escape char `\`).
pub fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_as_the_original_examples_lowercased() {
        assert_eq!(
            extract_keywords("[나이키]", "(특전) 에어포스 1-중판"),
            vec!["나이키", "특전", "에어포스", "중판"]
        );
        assert_eq!(
            extract_keywords("A.P.C.", "[단독] A.P.C. 스니커즈"),
            vec!["단독", "스니커즈"]
        );
        assert_eq!(
            extract_keywords("NEW BALANCE", "[NEW] NEW BALANCE 팬츠"),
            vec!["new", "balance", "팬츠"]
        );
        assert_eq!(
            extract_keywords("NIKE", "[29CM] NIKE 백팩"),
            vec!["nike", "29cm", "백팩"]
        );
    }

    #[test]
    fn drops_blank_single_char_and_foreign_script_words() {
        assert!(extract_keywords("   ", "").is_empty());
        assert!(extract_keywords("A", "é 漢字 🎉 x").is_empty());
        assert_eq!(extract_keywords("Nike", "NIKE nike"), vec!["nike"]);
        assert_eq!(extract_keywords("ㄱㄴ", "ㅏ"), vec!["ㄱㄴ"]);
    }

    #[test]
    fn search_words_trim_lowercase_and_dedupe() {
        assert!(search_words("").is_empty());
        assert!(search_words("  \t ").is_empty());
        assert_eq!(search_words(" NIKE "), vec!["nike"]);
        assert_eq!(search_words("Nike  스니 nike"), vec!["nike", "스니"]);
    }

    #[test]
    fn like_escaping_makes_wildcards_literal() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
        assert_eq!(escape_like("plain"), "plain");
    }
}
