//! Search tokens: what a product is found by, and what a query asks for.

/// Tokens of a text: lower-cased runs of letters and digits, at least two
/// characters long, each once, in order of first appearance.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        let count = word.chars().count();
        if !(2..=40).contains(&count) {
            continue;
        }
        let token = word.to_lowercase();
        if !out.contains(&token) {
            out.push(token);
        }
    }
    out
}

/// Products are found by at most this many tokens.
pub const MAX_TOKENS: usize = 200;

#[cfg(test)]
mod tests {
    use super::tokens;

    #[test]
    fn tokens_are_lower_cased_words_of_two_or_more_characters() {
        assert_eq!(
            tokens("Blue Mug — 350ml, blue; a  STONEWARE-mug"),
            ["blue", "mug", "350ml", "stoneware"]
        );
        assert!(tokens("a b c !").is_empty());
        assert_eq!(tokens("Crème brûlée"), ["crème", "brûlée"]);
    }
}
