//! The end of a message about a misspelt word: the words expected, and the
//! one most likely meant (`natask_core::spelling::closest`, which the
//! backoff grammar's messages use too).

/// `` `a`, `b`, `c` ``.
pub(crate) fn list(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// ``; did you mean `queue`?``, or nothing when no candidate is close.
pub(crate) fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    natask_core::spelling::closest(word, candidates.iter().copied())
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

/// ``expected one of `queue`, `name`; did you mean `queue`?``.
pub(crate) fn expected_one_of(word: &str, candidates: &[&str]) -> String {
    format!(
        "expected one of {}{}",
        list(candidates),
        did_you_mean(word, candidates)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let keys = ["queue", "retries", "timeout", "backoff"];
        assert_eq!(
            expected_one_of("qeue", &keys),
            "expected one of `queue`, `retries`, `timeout`, `backoff`; did you mean `queue`?"
        );
        assert_eq!(did_you_mean("retry", &keys), "; did you mean `retries`?");
        assert_eq!(did_you_mean("timout", &keys), "; did you mean `timeout`?");
        assert_eq!(did_you_mean("backof", &keys), "; did you mean `backoff`?");
        assert_eq!(did_you_mean("colour", &keys), "");
    }
}
