//! How far apart two words are, for "did you mean" hints: a misspelt config key
//! (docs/configuration.md#value-types-and-how-errors-are-reported), a misspelt `tags`
//! filter prefix (docs/behaviour.md#tag-filters) or a misspelt flag
//! (docs/behaviour.md#exit-codes).

/// The Levenshtein distance between `a` and `b`: how many characters (Unicode scalar values)
/// must be inserted, deleted or replaced to turn one into the other. Case-sensitive: callers
/// lowercase first when case does not matter.
pub fn edit_distance(a: &str, b: &str) -> usize {
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

/// The name of `known` closest to `name`, case aside, when it is close enough to be a likely
/// typo: at most 2 edits, or a third of the known name's length for longer names. `None`
/// when nothing is that close.
pub fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = name.to_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&lower, &k.to_lowercase()), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::edit_distance;

    #[test]
    fn counts_insertions_deletions_and_replacements() {
        assert_eq!(edit_distance("semver", "semver"), 0);
        assert_eq!(edit_distance("semvr", "semver"), 1);
        assert_eq!(edit_distance("sever", "semver"), 1);
        assert_eq!(edit_distance("semvar", "semver"), 1);
        assert_eq!(edit_distance("kep", "keep"), 1);
        assert_eq!(edit_distance("", "keep"), 4);
        assert_eq!(edit_distance("Keep", "keep"), 1);
        assert_eq!(edit_distance("é", "e"), 1);
    }
}
