//! The JSON wire format between cluster clients and members, version 1.
//!
//! A client publishes one [`Request`] on the cluster's request subject
//! ([`request_subject`](super::request_subject)) with a reply subject (an
//! inbox of its own); every member answers there with one [`Reply`]. Both
//! are JSON objects:
//!
//! ```json
//! {"v":1,"id":"k3YtH2…","op":"change_roles","filter":"Department is 'IT'","remove":["guest"],"add":["staff"]}
//! {"v":1,"id":"k3YtH2…","member":"m2","micros":412,"count":17}
//! ```
//!
//! - `v` is the format version. A member answers a request of another
//!   version with an error of kind `version`; a client ignores replies of
//!   another version.
//! - Within a version, unknown fields are ignored, so fields can be added
//!   without breaking older peers; a change of meaning is a new version.
//! - `id` names the request. A member applies a mutating request (`close`,
//!   `change_roles`, `change_properties`) at most once per id and answers a
//!   repeat with the answer it gave the first time.
//! - Answers: `{"count": N}` (for `count` and for the three mutating
//!   operations, the number of matching sessions), `{"ids": […]}` (for
//!   `select`, sorted), `{"page": {"total": N, "sessions": […]}}` (for
//!   `fetch`), or `{"error": {"kind": K, "message": M}}`.
//! - A `select` answer too large for one message comes in parts: every
//!   reply but the last says `"more": true`, and the ids of all the parts,
//!   in order, are the member's answer.
//! - `timeout_ms`, when the request has it, is how long its sender waits: a
//!   member that could not start the work within that time (from when the
//!   request reached it) drops it without an answer.
//! - A member answers only on a reply subject under the requesters' inbox
//!   prefix (`_INBOX.` by default), never on another subject.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::FetchRequest;

/// The version of the format this module speaks.
pub const VERSION: u32 = 1;

/// The longest request id a member accepts (ids are remembered, so their
/// size is bounded).
pub const MAX_ID_LEN: usize = 256;

/// A cluster-wide operation, as published to every member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The format version, [`VERSION`].
    pub v: u32,
    /// The request id; a mutating request is applied at most once per id.
    pub id: String,
    /// The filter text; each member parses it with its own store's limits.
    pub filter: String,
    /// How long the sender waits for answers, in milliseconds; a member
    /// does not start work it could not answer in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// What to do with the matching sessions.
    #[serde(flatten)]
    pub op: Operation,
}

/// The operation of a [`Request`], tagged by `"op"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Operation {
    /// `{"op":"count"}`: how many sessions match.
    Count,
    /// `{"op":"select"}`: the matching sessions' ids, sorted.
    Select,
    /// `{"op":"fetch", …}`: a page of matching sessions (SPEC 6.2).
    Fetch(FetchSpec),
    /// `{"op":"close"}`: closes the matching sessions.
    Close,
    /// `{"op":"change_roles","remove":[…],"add":[…]}` (either list may be
    /// absent): changes the matching sessions' roles.
    ChangeRoles {
        /// Roles to remove.
        #[serde(default)]
        remove: Vec<String>,
        /// Roles to add (after removing).
        #[serde(default)]
        add: Vec<String>,
    },
    /// `{"op":"change_properties","properties":{"K":"V","K2":null}}`:
    /// sets (a string) or removes (`null`) properties of the matching
    /// sessions (SPEC 6.1).
    ChangeProperties {
        /// Each key with its new value, `None` (`null`) meaning removal.
        properties: BTreeMap<String, Option<String>>,
    },
}

impl Operation {
    /// True for the operations that change sessions.
    pub fn is_mutating(&self) -> bool {
        matches!(
            self,
            Operation::Close | Operation::ChangeRoles { .. } | Operation::ChangeProperties { .. }
        )
    }

    /// The operation's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Count => "count",
            Operation::Select => "select",
            Operation::Fetch(_) => "fetch",
            Operation::Close => "close",
            Operation::ChangeRoles { .. } => "change_roles",
            Operation::ChangeProperties { .. } => "change_properties",
        }
    }
}

/// What a fetch asks for, on the wire: the fields of a
/// [`FetchRequest`], flattened into the request.
///
/// It is a type of its own because the wire needs a stable, versioned
/// shape, and because the client must know the order to merge the
/// members' pages. A client sends each member `offset: 0` and
/// `limit: offset + limit`, and cuts the merged list to the page itself.
///
/// ```
/// use session_filter::cluster::FetchSpec;
/// let spec = FetchSpec::new().properties(["$Principal"]).order_by("$StartTime").descending().limit(10);
/// assert_eq!(spec.limit, Some(10));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FetchSpec {
    /// These properties of each session (those it has); `None` for none
    /// (only the ids) unless `all_properties`.
    pub properties: Option<Vec<String>>,
    /// Every property of each session.
    pub all_properties: bool,
    /// The key to order by (default `$SessionId`).
    pub order_by: Option<String>,
    /// From the greatest value down.
    pub descending: bool,
    /// Sessions to skip in the order.
    pub offset: usize,
    /// At most this many sessions.
    pub limit: Option<usize>,
}

impl FetchSpec {
    /// Every match, by `$SessionId`, ids only.
    pub fn new() -> FetchSpec {
        FetchSpec::default()
    }

    /// Returns these properties of each session.
    pub fn properties<I, S>(mut self, keys: I) -> FetchSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.properties = Some(keys.into_iter().map(Into::into).collect());
        self.all_properties = false;
        self
    }

    /// Returns every property of each session.
    pub fn all_properties(mut self) -> FetchSpec {
        self.properties = None;
        self.all_properties = true;
        self
    }

    /// Orders by this key's value (byte order; sessions without it last).
    pub fn order_by(mut self, key: impl Into<String>) -> FetchSpec {
        self.order_by = Some(key.into());
        self
    }

    /// Orders from the greatest value down.
    pub fn descending(mut self) -> FetchSpec {
        self.descending = true;
        self
    }

    /// Skips the first `n` sessions in the order.
    pub fn offset(mut self, n: usize) -> FetchSpec {
        self.offset = n;
        self
    }

    /// Returns at most `n` sessions.
    pub fn limit(mut self, n: usize) -> FetchSpec {
        self.limit = Some(n);
        self
    }

    /// The key the order is by.
    pub fn order_key(&self) -> &str {
        self.order_by
            .as_deref()
            .unwrap_or(crate::properties::SESSION_ID)
    }

    /// The same request for [`SessionStore::fetch`](crate::SessionStore::fetch).
    pub fn to_request(&self) -> FetchRequest {
        let mut request = FetchRequest::new();
        if self.all_properties {
            request = request.all_properties();
        } else if let Some(keys) = &self.properties {
            request = request.properties(keys.iter().cloned());
        }
        if let Some(key) = &self.order_by {
            request = request.order_by(key.clone());
        }
        if self.descending {
            request = request.descending();
        }
        request = request.offset(self.offset);
        if let Some(limit) = self.limit {
            request = request.limit(limit);
        }
        request
    }
}

/// One member's answer to a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The format version, [`VERSION`].
    pub v: u32,
    /// The id of the request answered (empty when the request was too
    /// malformed to have one).
    pub id: String,
    /// The member's name.
    pub member: String,
    /// Microseconds the member's store spent on the operation itself
    /// (parsing the filter included; the broker, JSON and the member's
    /// queue not), so a client can tell the cluster's overhead from the
    /// members' work. 0 when the store was not asked (an error, a repeat).
    #[serde(default)]
    pub micros: u64,
    /// True on every part of a `select` answer but the last.
    #[serde(default, skip_serializing_if = "is_false")]
    pub more: bool,
    /// The answer.
    #[serde(flatten)]
    pub outcome: Outcome,
}

fn is_false(b: &bool) -> bool {
    !b
}

/// The answer in a [`Reply`], one key of the reply object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// `"count": N`: the number of matching sessions (for `count`, `close`,
    /// `change_roles` and `change_properties`).
    Count(usize),
    /// `"ids": […]`: the matching sessions' ids, sorted (for `select`).
    Ids(Vec<String>),
    /// `"page": {…}`: the member's page (for `fetch`).
    Page(Page),
    /// `"error": {…}`: the member did not do it.
    Error(WireError),
}

/// A member's page of a fetch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// How many of the member's sessions match.
    pub total: usize,
    /// The member's first `offset + limit` matches, in the requested order.
    pub sessions: Vec<PageEntry>,
}

/// One session on a member's [`Page`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageEntry {
    /// Its `$SessionId`.
    pub id: String,
    /// Its value of the order key (absent when it has none), so that the
    /// client can merge pages without asking for that key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// The requested properties it has.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

/// Why a member did not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// What kind of failure.
    pub kind: WireErrorKind,
    /// A message for people.
    pub message: String,
}

/// The kinds of [`WireError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WireErrorKind {
    /// The filter does not parse or compile with the member's limits.
    Filter,
    /// The operation's arguments are invalid (a key, a role, a change).
    Invalid,
    /// The message is not a request of this format.
    Malformed,
    /// The request is of a version the member does not speak.
    Version,
    /// The member cannot send its answer (too large for the broker's
    /// payload limit, for instance).
    Unavailable,
    /// A kind this version does not know.
    #[serde(other)]
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_look_as_documented() {
        let request = Request {
            v: VERSION,
            id: "r1".into(),
            filter: "all".into(),
            timeout_ms: None,
            op: Operation::ChangeRoles {
                remove: vec!["a".into()],
                add: vec![],
            },
        };
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(
            json,
            r#"{"v":1,"id":"r1","filter":"all","op":"change_roles","remove":["a"],"add":[]}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), request);
        let count: Request = serde_json::from_str(
            r#"{"op":"count","v":1,"id":"x","filter":"all","later":"ignored"}"#,
        )
        .unwrap();
        assert_eq!(count.op, Operation::Count);
        let fetch: Request =
            serde_json::from_str(r#"{"op":"fetch","v":1,"id":"x","filter":"all","limit":3}"#)
                .unwrap();
        assert_eq!(fetch.op, Operation::Fetch(FetchSpec::new().limit(3)));
        let set: Request = serde_json::from_str(
            r#"{"op":"change_properties","v":1,"id":"x","filter":"all","properties":{"a":"1","b":null}}"#,
        )
        .unwrap();
        assert_eq!(
            set.op,
            Operation::ChangeProperties {
                properties: [("a".into(), Some("1".into())), ("b".into(), None)].into()
            }
        );
        assert!(
            serde_json::from_str::<Request>(r#"{"op":"drop","v":1,"id":"x","filter":"all"}"#)
                .is_err()
        );
        let timed = Request {
            timeout_ms: Some(2000),
            op: Operation::Select,
            ..request
        };
        let json = serde_json::to_string(&timed).unwrap();
        assert_eq!(
            json,
            r#"{"v":1,"id":"r1","filter":"all","timeout_ms":2000,"op":"select"}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), timed);
    }

    #[test]
    fn replies_look_as_documented() {
        let reply = Reply {
            v: VERSION,
            id: "r1".into(),
            member: "m1".into(),
            micros: 7,
            more: false,
            outcome: Outcome::Count(3),
        };
        let json = serde_json::to_string(&reply).unwrap();
        assert_eq!(
            json,
            r#"{"v":1,"id":"r1","member":"m1","micros":7,"count":3}"#
        );
        assert_eq!(serde_json::from_str::<Reply>(&json).unwrap(), reply);
        let error: Reply = serde_json::from_str(
            r#"{"v":1,"id":"","member":"m","error":{"kind":"brand_new","message":"?"}}"#,
        )
        .unwrap();
        assert!(matches!(
            error.outcome,
            Outcome::Error(WireError {
                kind: WireErrorKind::Other,
                ..
            })
        ));
        let page = Reply {
            outcome: Outcome::Page(Page {
                total: 2,
                sessions: vec![PageEntry {
                    id: "s1".into(),
                    sort: Some("UK".into()),
                    properties: BTreeMap::new(),
                }],
            }),
            ..reply
        };
        let json = serde_json::to_string(&page).unwrap();
        assert!(
            json.ends_with(r#""page":{"total":2,"sessions":[{"id":"s1","sort":"UK"}]}}"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Reply>(&json).unwrap(), page);
        let part = Reply {
            more: true,
            outcome: Outcome::Ids(vec!["s1".into()]),
            ..page
        };
        let json = serde_json::to_string(&part).unwrap();
        assert!(json.ends_with(r#""more":true,"ids":["s1"]}"#), "{json}");
        assert_eq!(serde_json::from_str::<Reply>(&json).unwrap(), part);
    }
}
