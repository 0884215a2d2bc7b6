//! The `AutoDatabaseMountDial` decision: may a new owner mount automatically with logs missing?

use super::config::{DialLimits, MountDial};
use crate::storage::Generation;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountDecision {
    /// Mount; `lost` generations of the old stream are given up (0 is lossless).
    Mount { lost: u32 },
    /// Stay dismounted until the logs arrive or an admin forces the mount.
    StayDismounted { missing: u32, allowed: u32 },
}

/// `have`: the newest generation this copy holds (inspected). `source_last`: the newest
/// generation the lost owner is known to have written (its open log counts when it held
/// records).
pub fn decide(
    dial: MountDial,
    limits: &DialLimits,
    have: Generation,
    source_last: Generation,
) -> MountDecision {
    let missing = source_last.saturating_sub(have);
    let allowed = limits.allowed(dial);
    if missing <= allowed {
        MountDecision::Mount { lost: missing }
    } else {
        MountDecision::StayDismounted { missing, allowed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MountDial::*;

    #[test]
    fn the_dial_table() {
        let limits = DialLimits::default();
        let mount = |lost| MountDecision::Mount { lost };
        let stay = |missing, allowed| MountDecision::StayDismounted { missing, allowed };
        // (dial, have, source_last, decision)
        let table = [
            (Lossless, 10, 10, mount(0)),
            (Lossless, 10, 11, stay(1, 0)),
            (Lossless, 12, 11, mount(0)),
            (GoodAvailability, 10, 13, mount(3)),
            (GoodAvailability, 10, 14, stay(4, 3)),
            (BestAvailability, 10, 16, mount(6)),
            (BestAvailability, 10, 17, stay(7, 6)),
            (BestAvailability, 0, 0, mount(0)),
        ];
        for (dial, have, last, expected) in table {
            assert_eq!(
                decide(dial, &limits, have, last),
                expected,
                "{dial:?} have {have} last {last}"
            );
        }
        let exchange_2010 = DialLimits {
            lossless: 0,
            good_availability: 6,
            best_availability: 12,
        };
        assert_eq!(decide(BestAvailability, &exchange_2010, 0, 12), mount(12));
    }
}
