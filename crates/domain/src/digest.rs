//! Digest grouping: a user's pending batch goes out as one digest per group (`group_key`, else
//! template), groups in the order their oldest member arrived, members in arrival order.

/// Groups the positions of `keys` by equal key, ordered by first appearance.
pub fn group<K: PartialEq>(keys: &[K]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        match groups.iter_mut().find(|g| keys[g[0]] == *k) {
            Some(g) => g.push(i),
            None => groups.push(vec![i]),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn groups_in_arrival_order() {
        assert_eq!(group(&["a", "b", "a", "c", "b"]), vec![vec![0, 2], vec![1, 4], vec![3]]);
        assert!(group::<&str>(&[]).is_empty());
    }

    proptest! {
        /// Every pending notification lands in exactly one digest, whose count is its size.
        #[test]
        fn digest_counts_equal_what_they_merge(keys in prop::collection::vec(0u8..6, 0..200)) {
            let groups = group(&keys);
            prop_assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), keys.len());
            let mut seen: Vec<usize> = groups.iter().flatten().copied().collect();
            seen.sort();
            prop_assert_eq!(seen, (0..keys.len()).collect::<Vec<_>>());
            for g in &groups {
                prop_assert!(g.iter().all(|i| keys[*i] == keys[g[0]]));
                prop_assert!(g.windows(2).all(|w| w[0] < w[1]));
            }
            prop_assert!(groups.windows(2).all(|w| w[0][0] < w[1][0]));
            let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
            prop_assert_eq!(groups.len(), distinct.len());
        }
    }
}
