//! The ownership tag scheme. Every instance and volume we launch carries all of these; the
//! fleet lists only instances whose [`CLUSTER`] tag is ours, and the planner checks it again.

/// Cluster id: ownership. An instance without our value here is never touched.
pub const CLUSTER: &str = "tinqs-ci:cluster";
/// Pool label.
pub const POOL: &str = "tinqs-ci:pool";
/// Desired run id.
pub const RUN_ID: &str = "tinqs-ci:run-id";
/// Runner name (the join key with Gitea).
pub const RUNNER_NAME: &str = "tinqs-ci:runner-name";
/// Gitea's id of the runner registration made for the instance (absent when the instance
/// registers itself). Lets a runner's absence from a listing be confirmed by id.
pub const RUNNER_ID: &str = "tinqs-ci:runner-id";
/// Launch attempt number.
pub const ATTEMPT: &str = "tinqs-ci:attempt";
/// The EC2 console name.
pub const NAME: &str = "Name";

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instance's tags, key to value. Shared: copying a listed [`crate::Instance`] copies a
/// pointer, not the map (a list of instances is copied and dropped on every pass). Reads go
/// through [`Deref`]; a write copies the map first if another holder shares it. Serialised,
/// printed and compared exactly as the map itself.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tags(Arc<BTreeMap<String, String>>);

impl Tags {
    /// Whether these are the tags of an instance of `cluster` (its [`CLUSTER`] tag says so):
    /// ownership, the one test of it.
    #[must_use]
    pub fn owned_by(&self, cluster: &str) -> bool {
        self.get(CLUSTER).is_some_and(|c| c == cluster)
    }
}

impl Deref for Tags {
    type Target = BTreeMap<String, String>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Tags {
    fn deref_mut(&mut self) -> &mut Self::Target {
        Arc::make_mut(&mut self.0)
    }
}

impl From<BTreeMap<String, String>> for Tags {
    fn from(map: BTreeMap<String, String>) -> Self {
        Tags(Arc::new(map))
    }
}

impl FromIterator<(String, String)> for Tags {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Tags::from(iter.into_iter().collect::<BTreeMap<_, _>>())
    }
}

impl<'a> IntoIterator for &'a Tags {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Debug for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Tags {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(deserializer).map(Tags::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_serialise_print_and_compare_as_the_map() {
        let map = BTreeMap::from([
            (CLUSTER.to_owned(), "prod".to_owned()),
            (NAME.to_owned(), "tq-prod-1".to_owned()),
        ]);
        let tags = Tags::from(map.clone());
        assert_eq!(
            serde_json::to_string(&tags).unwrap(),
            serde_json::to_string(&map).unwrap()
        );
        assert_eq!(format!("{tags:?}"), format!("{map:?}"));
        let back: Tags = serde_json::from_str(&serde_json::to_string(&map).unwrap()).unwrap();
        assert_eq!(back, tags);
        assert_eq!(*back, map);
    }

    #[test]
    fn a_write_leaves_the_other_copies_as_they_were() {
        let a = Tags::from(BTreeMap::from([(CLUSTER.to_owned(), "prod".to_owned())]));
        let mut b = a.clone();
        b.insert(POOL.to_owned(), "docker".to_owned());
        assert_eq!(a.len(), 1);
        assert_eq!(b.len(), 2);
        assert_ne!(a, b);
    }
}
