//! Spread arithmetic: how a spreadscaler's `instances` are split across its spreads by weight.
//!
//! Each spread gets `floor(instances × weight / Σweights)`; what is left over goes out one at a
//! time to the spreads in order of descending weight, ties keeping manifest order.

/// Split `instances` over spreads with these `weights` (manifest order). The result has one entry
/// per weight, in the same order. All-zero weights give every spread zero.
pub fn split_instances(instances: u32, weights: &[u32]) -> Vec<u32> {
    // One spread takes everything (the common case: no allocation beyond the result).
    if let [w] = weights {
        return vec![if *w == 0 { 0 } else { instances }];
    }
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total == 0 {
        return vec![0; weights.len()];
    }
    let mut counts: Vec<u32> =
        weights.iter().map(|w| (u64::from(instances) * u64::from(*w) / total) as u32).collect();
    let assigned: u32 = counts.iter().sum();
    let mut remainder = instances - assigned;
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Stable sort: equal weights keep manifest order.
    order.sort_by(|a, b| weights[*b].cmp(&weights[*a]));
    for i in order.into_iter().cycle() {
        if remainder == 0 {
            break;
        }
        counts[i] += 1;
        remainder -= 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_examples() {
        assert_eq!(split_instances(7, &[30, 40]), vec![3, 4]);
        assert_eq!(split_instances(103, &[42, 3, 37, 384]), vec![10, 0, 8, 85]);
    }

    #[test]
    fn remainder_goes_by_descending_weight_then_manifest_order() {
        assert_eq!(split_instances(5, &[100, 100, 100]), vec![2, 2, 1]);
        assert_eq!(split_instances(1, &[50, 100, 100]), vec![0, 1, 0]);
        assert_eq!(split_instances(3, &[100]), vec![3]);
        assert_eq!(split_instances(0, &[1, 2]), vec![0, 0]);
        assert_eq!(split_instances(4, &[0, 0]), vec![0, 0]);
        assert_eq!(
            split_instances(u32::MAX, &[u32::MAX, u32::MAX])
                .iter()
                .map(|c| u64::from(*c))
                .sum::<u64>(),
            u64::from(u32::MAX)
        );
    }
}
