//! Suggestions for misspelt words ("did you mean `fixed`?"), shared by the
//! messages of natask's grammars ([`crate::retry::parse_backoff`]) and of
//! `#[task]`.

/// The candidate `word` most likely misspells: the one with the fewest
/// single-character edits to `word`, if those are at most half of its length
/// (the first of equally close ones).
///
/// ```
/// use natask_core::spelling::closest;
///
/// assert_eq!(closest("retry", ["queue", "retries"]), Some("retries"));
/// assert_eq!(closest("colour", ["queue", "retries"]), None);
/// ```
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (levenshtein(word, c), c))
        .filter(|(d, c)| *d * 2 <= c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The fewest insertions, deletions and substitutions of characters that
/// turn `a` into `b`.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("fixd", "fixed"), 1);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("fixed", "list"), 4);
    }

    #[test]
    fn the_closest_candidate_wins() {
        assert_eq!(closest("lst", ["fixed", "list"]), Some("list"));
        assert_eq!(closest("fxed", ["fixed", "list"]), Some("fixed"));
        assert_eq!(closest("linear", ["fixed", "exponential", "list"]), None);
    }
}
