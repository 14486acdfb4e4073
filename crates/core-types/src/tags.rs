//! `Tags`: the text fields a message schema keeps with a sample (`material`, `job`, `machine`),
//! stored with it and usable in history queries and rule scopes.

use serde::{Deserialize, Serialize};

/// Named text values of one sample, sorted by name, each name once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tags(Vec<(String, String)>);

impl Tags {
    /// No tags.
    pub const fn new() -> Tags {
        Tags(Vec::new())
    }

    /// Sets `name` to `value`; returns the value it replaces (a schema refuses a name given twice).
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) -> Option<String> {
        let (name, value) = (name.into(), value.into());
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (name, value));
                None
            }
        }
    }

    /// The value of `name`, if tagged.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)).ok().map(|i| self.0[i].1.as_str())
    }

    /// The tags as (name, value) pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no tags.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every `(name, value)` of `wanted` is among these tags.
    pub fn contains_all(&self, wanted: &[(String, String)]) -> bool {
        wanted.iter().all(|(n, v)| self.get(n) == Some(v.as_str()))
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Tags {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Tags {
        let mut tags = Tags::new();
        for (n, v) in iter {
            tags.insert(n, v);
        }
        tags
    }
}

impl Serialize for Tags {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(n, v)| (n, v)))
    }
}

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Tags, D::Error> {
        struct TagsVisitor;
        impl<'de> serde::de::Visitor<'de> for TagsVisitor {
            type Value = Tags;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map from tag name to text")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Tags, A::Error> {
                let mut tags = Tags::new();
                while let Some((name, value)) = map.next_entry::<String, String>()? {
                    if tags.get(&name).is_some() {
                        return Err(serde::de::Error::custom(format!("tag `{name}` given twice")));
                    }
                    tags.insert(name, value);
                }
                Ok(tags)
            }
        }
        deserializer.deserialize_map(TagsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_stay_sorted_and_unique_and_match_wanted_pairs() {
        let mut tags: Tags = [("material", "Ti64"), ("job", "j1")].into_iter().collect();
        assert_eq!(tags.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["job", "material"]);
        assert_eq!(tags.insert("job", "j2"), Some("j1".to_owned()));
        assert_eq!(tags.len(), 2);
        assert!(tags.contains_all(&[("job".into(), "j2".into())]));
        assert!(!tags.contains_all(&[("job".into(), "j1".into())]));
        assert!(!tags.contains_all(&[("machine".into(), "m".into())]));
        assert!(Tags::new().contains_all(&[]));
    }
}
