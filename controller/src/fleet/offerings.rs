//! The cache of offerings that recently had no capacity.
//!
//! When EC2 answers a launch with "no capacity" (or a Spot price or limit error) for an
//! instance type in a subnet and market, that offering is remembered as unavailable for a few
//! minutes, so later launches go straight to the next offering instead of asking again. The
//! clock is an argument: callers pass `now`, tests pass whatever time they like.

use std::collections::BTreeMap;
use std::time::Duration;

use model::Timestamp;
use parking_lot::Mutex;

use super::Offering;

/// How long an offering stays marked unavailable by default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3 * 60);

/// Offerings that recently failed for capacity, each until a deadline.
#[derive(Debug)]
pub struct UnavailableOfferings {
    ttl: Duration,
    until: Mutex<BTreeMap<Offering, Timestamp>>,
}

impl Default for UnavailableOfferings {
    fn default() -> Self {
        Self::new(DEFAULT_TTL)
    }
}

impl UnavailableOfferings {
    /// An empty cache whose entries last `ttl`.
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        UnavailableOfferings {
            ttl,
            until: Mutex::new(BTreeMap::new()),
        }
    }

    /// Remembers `offering` as unavailable from `now` for the cache's TTL.
    pub fn mark(&self, offering: &Offering, now: Timestamp) {
        let mut until = self.until.lock();
        until.insert(offering.clone(), now.plus(self.ttl));
    }

    /// Whether `offering` is still marked unavailable at `now`. Expired entries are dropped.
    #[must_use]
    pub fn is_unavailable(&self, offering: &Offering, now: Timestamp) -> bool {
        let mut until = self.until.lock();
        match until.get(offering) {
            Some(&deadline) if deadline > now => true,
            Some(_) => {
                until.remove(offering);
                false
            }
            None => false,
        }
    }

    /// When every one of `offerings` is marked unavailable at `now`, the first time one of
    /// them may be tried again; `None` when one can be tried now (or there are none).
    #[must_use]
    pub fn all_unavailable_until(
        &self,
        offerings: &[Offering],
        now: Timestamp,
    ) -> Option<Timestamp> {
        let until = self.until.lock();
        let mut first: Option<Timestamp> = None;
        for o in offerings {
            match until.get(o) {
                Some(&deadline) if deadline > now => {
                    first = Some(first.map_or(deadline, |f| f.min(deadline)));
                }
                _ => return None,
            }
        }
        first
    }

    /// The offerings marked unavailable at `now`, with their deadlines.
    #[must_use]
    pub fn snapshot(&self, now: Timestamp) -> Vec<(Offering, Timestamp)> {
        let mut until = self.until.lock();
        until.retain(|_, deadline| *deadline > now);
        until.iter().map(|(o, d)| (o.clone(), *d)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::Lifecycle;

    fn offering(t: &str) -> Offering {
        Offering {
            instance_type: t.into(),
            subnet: "subnet-a".into(),
            lifecycle: Lifecycle::Spot,
        }
    }

    #[test]
    fn a_marked_offering_is_unavailable_until_its_ttl_passes() {
        let cache = UnavailableOfferings::new(Duration::from_secs(180));
        let t0 = Timestamp::from_millis(1_000_000);
        cache.mark(&offering("c7a.large"), t0);
        assert!(cache.is_unavailable(&offering("c7a.large"), t0.plus(Duration::from_secs(179))));
        assert!(!cache.is_unavailable(&offering("c7a.xlarge"), t0));
        assert!(!cache.is_unavailable(&offering("c7a.large"), t0.plus(Duration::from_secs(180))));
        assert!(cache.snapshot(t0).is_empty(), "expired entries are dropped");
    }

    #[test]
    fn the_same_type_on_demand_is_a_different_offering() {
        let cache = UnavailableOfferings::default();
        let t0 = Timestamp::from_millis(0);
        cache.mark(&offering("c7a.large"), t0);
        let on_demand = Offering {
            lifecycle: Lifecycle::OnDemand,
            ..offering("c7a.large")
        };
        assert!(!cache.is_unavailable(&on_demand, t0));
    }
}
