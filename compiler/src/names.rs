//! Name lookup helpers: closest-match suggestions by edit distance.

/// Optimal string alignment distance (Levenshtein with adjacent transpositions), over
/// characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `name`, if it is close enough to be a likely typo: at most one
/// edit for short names, and at most a third of the length for longer ones. Ties go to the
/// candidate that sorts first, so suggestions are deterministic.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        if c == name {
            continue;
        }
        let d = edit_distance(name, c);
        if d > limit {
            continue;
        }
        best = match best {
            Some((bd, bc)) if bd < d || (bd == d && bc <= c) => Some((bd, bc)),
            _ => Some((d, c)),
        };
    }
    best.map(|(_, c)| c)
}

/// A hash map keyed by short names: units, items, fields.
pub(crate) type NameMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<NameHasher>>;

/// FNV-1a (Fowler, Noll and Vo), 64-bit. For names of a few bytes it hashes several times
/// faster than the standard library's SipHash. The maps it serves are built from the
/// user's own spec, so SipHash's protection against chosen collisions buys nothing.
pub(crate) struct NameHasher(u64);

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Default for NameHasher {
    fn default() -> Self {
        NameHasher(FNV_OFFSET_BASIS)
    }
}

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Help text listing the names that may be written in place of an unknown one, e.g.
/// ``try one of the loaders: `image`, `map` ``.
pub fn try_one_of<'a>(what: &str, names: impl IntoIterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = names.into_iter().map(|n| format!("`{n}`")).collect();
    format!("try one of {what}: {}", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_cases() {
        let cases = [("", "", 0), ("abc", "abc", 0), ("abc", "abd", 1), ("abc", "acb", 1), ("kitten", "sitting", 3), ("é", "e", 1)];
        for (a, b, d) in cases {
            assert_eq!(edit_distance(a, b), d, "{a} vs {b}");
        }
    }

    #[test]
    fn closest_cases() {
        let names = ["robot", "floor", "pick", "drop"];
        assert_eq!(closest("robt", names), Some("robot"));
        assert_eq!(closest("flor", names), Some("floor"));
        assert_eq!(closest("zzzzzz", names), None);
    }
}
