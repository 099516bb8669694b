//! Validated identifiers.
//!
//! A node id names a probe in certificates, file names (`NODE.pem`), the run store and reports, so it is
//! restricted to a portable alphabet: 1–64 characters of ASCII letters, digits, `.`, `_` and `-`, not
//! starting with `.` or `-`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest node id accepted.
pub const MAX_NODE_ID_LEN: usize = 64;

/// Why a string is not a valid node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeIdError {
    #[error("node id is empty")]
    Empty,
    #[error("node id is {len} characters long; at most {MAX_NODE_ID_LEN} are allowed")]
    TooLong { len: usize },
    #[error("node id {id:?} contains {ch:?}; use only ASCII letters, digits, '.', '_' and '-'")]
    BadChar { id: String, ch: char },
    #[error("node id {id:?} starts with {ch:?}; start with a letter, digit or '_'")]
    BadStart { id: String, ch: char },
}

/// A validated node id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

impl NodeId {
    /// Validates `s` as a node id.
    pub fn new(s: impl Into<String>) -> Result<Self, NodeIdError> {
        let s = s.into();
        if s.is_empty() {
            return Err(NodeIdError::Empty);
        }
        if s.len() > MAX_NODE_ID_LEN {
            return Err(NodeIdError::TooLong { len: s.len() });
        }
        if let Some(ch) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(NodeIdError::BadChar { id: s, ch });
        }
        if let Some(ch) = s.chars().next().filter(|c| matches!(c, '.' | '-')) {
            return Err(NodeIdError::BadStart { id: s, ch });
        }
        Ok(NodeId(s))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NodeId {
    type Error = NodeIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        NodeId::new(s)
    }
}

impl From<NodeId> for String {
    fn from(id: NodeId) -> String {
        id.0
    }
}

impl std::str::FromStr for NodeId {
    type Err = NodeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeId::new(s)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_typical_ids() {
        for s in ["r01-n03", "node_7", "gpu.host.12", "A"] {
            assert_eq!(NodeId::new(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn rejects_bad_ids() {
        assert_eq!(NodeId::new(""), Err(NodeIdError::Empty));
        assert!(matches!(
            NodeId::new("a/b"),
            Err(NodeIdError::BadChar { ch: '/', .. })
        ));
        assert!(matches!(
            NodeId::new("a b"),
            Err(NodeIdError::BadChar { ch: ' ', .. })
        ));
        assert!(matches!(
            NodeId::new("..x"),
            Err(NodeIdError::BadStart { ch: '.', .. })
        ));
        assert!(matches!(
            NodeId::new("-x"),
            Err(NodeIdError::BadStart { ch: '-', .. })
        ));
        assert!(matches!(
            NodeId::new("x".repeat(65)),
            Err(NodeIdError::TooLong { len: 65 })
        ));
    }

    #[test]
    fn deserialising_validates() {
        let bytes = postcard::to_stdvec(&"a/b".to_string()).unwrap();
        assert!(postcard::from_bytes::<NodeId>(&bytes).is_err());
    }
}
