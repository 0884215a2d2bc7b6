//! Guided sweeps: after each batch of seeds, favour the fault families whose seeds reached
//! what the sweep has seen least. Every seed's scenario is still a pure function of its name —
//! the weights it was drawn with are part of it (`swarm@V:SEED~0.50,0.65,…`) — so a guided
//! failure replays and shrinks like any other; what `swarm:SEED` means never changes.
//!
//! The rule: a situation seen in `n` seeds so far is worth `1 / (1 + n)`; a seed is worth the
//! sum over the situations it reached. A family's weight moves from ½ by how much more the
//! seeds that drew it were worth than those that did not, bounded to 0.15–0.85 (every family
//! stays in play) and rounded to 0.05 (short names, and batches that agree share them).

use std::collections::{BTreeMap, BTreeSet};

use crate::swarm::Family;

#[derive(Debug, Default, Clone)]
pub struct Guide {
    /// Per seed observed: the families it drew and the situations it reached.
    seen: Vec<(Vec<Family>, BTreeSet<String>)>,
}

impl Guide {
    pub fn observe(&mut self, families: Vec<Family>, situations: impl IntoIterator<Item = String>) {
        self.seen.push((families, situations.into_iter().collect()));
    }

    /// The weights for the next batch; `None` before anything was observed (plain ½).
    pub fn weights(&self) -> Option<[f64; 8]> {
        if self.seen.is_empty() {
            return None;
        }
        let mut seen_in: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, situations) in &self.seen {
            for s in situations {
                *seen_in.entry(s.as_str()).or_default() += 1;
            }
        }
        let worth: Vec<f64> = self
            .seen
            .iter()
            .map(|(_, situations)| {
                situations
                    .iter()
                    .map(|s| 1.0 / (1.0 + seen_in[s.as_str()] as f64))
                    .sum()
            })
            .collect();
        let mut weights = [0.5; 8];
        for (i, family) in Family::ALL.into_iter().enumerate() {
            let (mut with, mut without) = ((0.0, 0usize), (0.0, 0usize));
            for ((families, _), w) in self.seen.iter().zip(&worth) {
                let bucket = if families.contains(&family) {
                    &mut with
                } else {
                    &mut without
                };
                bucket.0 += w;
                bucket.1 += 1;
            }
            let mean = |(sum, n): (f64, usize)| if n == 0 { 0.0 } else { sum / n as f64 };
            let (a, b) = (mean(with), mean(without));
            let lean = if a + b > 0.0 { (a - b) / (a + b) } else { 0.0 };
            let w = (0.5 + 0.5 * lean).clamp(0.15, 0.85);
            weights[i] = (w * 20.0).round() / 20.0;
        }
        Some(weights)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_that_reach_rare_situations_gain_weight() {
        let mut g = Guide::default();
        assert_eq!(g.weights(), None);
        for k in 0..40 {
            // Every seed reaches something common; only seeds with the disk family reach
            // something rare.
            let disk = k % 4 == 0;
            let families = if disk {
                vec![Family::Disk, Family::Network]
            } else {
                vec![Family::Network]
            };
            let mut situations = vec!["common".to_string()];
            if disk {
                situations.push("rare".into());
            }
            g.observe(families, situations);
        }
        let w = g.weights().unwrap();
        let at = |f: Family| w[Family::ALL.iter().position(|x| *x == f).unwrap()];
        assert!(at(Family::Disk) > 0.5, "{w:?}");
        assert!(at(Family::Clock) <= 0.5, "{w:?}");
        assert!(w.iter().all(|x| (0.15..=0.85).contains(x)));
        assert!(w
            .iter()
            .all(|x| (x * 20.0 - (x * 20.0).round()).abs() < 1e-9));
    }
}
