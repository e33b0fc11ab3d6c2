//! Fetching a page of matching sessions (SPEC section 6.2).
//!
//! Each shard, under its read lock, finds its matches (from the index when
//! that pays, as `select` does) and keeps the best `k = offset + limit` of
//! them in a bounded heap: a match is compared with the worst kept one by its
//! sort value alone, and its id is looked at only on a tie or when it is
//! kept. The shards' lists are merged and cut to the page, and only then are
//! the page's sessions read again for their properties. That is
//! O(n log k) for n matches, against O(n log n) for a full sort.
//!
//! The total and the order come from one pass over the shards; the
//! properties are read in a second step. A session closed between the two
//! is left out of the page, and one changed between them shows its new
//! properties. Each session is still read wholly before or wholly after any
//! change.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use super::shard::Shard;
use super::{Execution, SessionStore};
use crate::error::Error;
use crate::session::{PropertyKey, Session};
use crate::util::properties::{ROLES, SESSION_ID};
use crate::vm::Program;

use super::limits::DataLimit;

/// Which properties a fetch returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Projection {
    #[default]
    None,
    Keys(Vec<String>),
    All,
}

/// What [`SessionStore::fetch`] returns: the order, the page and the
/// properties of each session on it.
///
/// By default: ordered by `$SessionId`, from the first match, no limit, no
/// properties (only the ids).
///
/// ```
/// use session_filter::FetchRequest;
///
/// let page_two = FetchRequest::new()
///     .properties(["$Principal", "Department"])
///     .order_by("$StartTime")
///     .descending()
///     .offset(50)
///     .limit(50);
/// # let _ = page_two;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchRequest {
    projection: Projection,
    order_by: Option<String>,
    descending: bool,
    offset: usize,
    limit: Option<usize>,
}

impl FetchRequest {
    /// The default request: every match, by `$SessionId`, without properties.
    pub fn new() -> FetchRequest {
        FetchRequest::default()
    }

    /// Returns these properties of each session (those it has; `$Roles` as
    /// a canonical roles string).
    pub fn properties<I, S>(mut self, keys: I) -> FetchRequest
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.projection = Projection::Keys(keys.into_iter().map(Into::into).collect());
        self
    }

    /// Returns every property of each session, as [`SessionStore::get`]
    /// gives them.
    pub fn all_properties(mut self) -> FetchRequest {
        self.projection = Projection::All;
        self
    }

    /// Orders by the value of `key`, compared as byte strings (`$Roles` by
    /// its canonical roles string). Sessions without `key` come after those
    /// with it, in either direction; ties are broken by `$SessionId`
    /// ascending.
    pub fn order_by(mut self, key: impl Into<String>) -> FetchRequest {
        self.order_by = Some(key.into());
        self
    }

    /// Orders from the greatest value down (sessions without the key still
    /// come last, and ties are still by `$SessionId` ascending).
    pub fn descending(mut self) -> FetchRequest {
        self.descending = true;
        self
    }

    /// Skips the first `n` sessions in the order.
    pub fn offset(mut self, n: usize) -> FetchRequest {
        self.offset = n;
        self
    }

    /// Returns at most `n` sessions; `limit(0)` returns only the total.
    pub fn limit(mut self, n: usize) -> FetchRequest {
        self.limit = Some(n);
        self
    }
}

/// A page of matching sessions, from [`SessionStore::fetch`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchPage {
    /// How many sessions match the filter (on every page, not just this one).
    pub total: usize,
    /// The sessions of the page, in the requested order.
    pub sessions: Vec<FetchedSession>,
}

/// One session on a [`FetchPage`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedSession {
    /// Its `$SessionId`.
    pub id: String,
    /// The requested properties that it has.
    pub properties: BTreeMap<String, String>,
}

/// What a fetch orders by.
enum SortBy {
    Id,
    Roles,
    Key(PropertyKey),
    /// A key the interner had no room for (so no session has it, or it is
    /// looked up by text each time).
    Text(String),
}

impl SortBy {
    fn new(key: Option<&str>) -> SortBy {
        match key {
            None | Some(SESSION_ID) => SortBy::Id,
            Some(ROLES) => SortBy::Roles,
            Some(key) => {
                PropertyKey::new(key).map_or_else(|_| SortBy::Text(key.to_owned()), SortBy::Key)
            }
        }
    }

    fn value(&self, session: &Session) -> Option<Arc<str>> {
        match self {
            SortBy::Id => session.id(),
            SortBy::Roles => session.get(ROLES),
            SortBy::Key(key) => session.value(key).map(|v| v.as_arc_str()),
            SortBy::Text(key) => session.get(key),
        }
    }
}

/// A sort value, with the direction built in: derived order puts `Absent`
/// after both kinds of present value, and a fetch uses only one of them.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SortValue {
    Ascending(Arc<str>),
    Descending(Reverse<Arc<str>>),
    Absent,
}

impl SortValue {
    fn new(value: Option<Arc<str>>, descending: bool) -> SortValue {
        match value {
            None => SortValue::Absent,
            Some(v) if descending => SortValue::Descending(Reverse(v)),
            Some(v) => SortValue::Ascending(v),
        }
    }
}

/// A match's place in the order: smaller comes first.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    value: SortValue,
    id: Arc<str>,
}

/// The best `k` matches of one shard (all of them when `k` is at least
/// their number), unordered, and how many matched.
fn shard_top(
    shard: &Shard,
    program: &Program,
    sort: &SortBy,
    descending: bool,
    k: usize,
) -> (usize, Vec<Rank>) {
    if k == 0 {
        return (shard.count(program, true), Vec::new());
    }
    let matches = shard.matching(program, true);
    let id = |session: &Session| -> Arc<str> { session.id().unwrap_or_else(|| Arc::from("")) };
    let rank = |session: &Session| -> Rank {
        let id = id(session);
        let value = match sort {
            SortBy::Id => Some(id.clone()),
            _ => sort.value(session),
        };
        Rank {
            value: SortValue::new(value, descending),
            id,
        }
    };
    if k >= matches.len() {
        let all = matches
            .iter()
            .map(|&slot| rank(shard.session(slot)))
            .collect();
        return (matches.len(), all);
    }
    // A max-heap of the best k so far: its top is the worst kept.
    let mut best: BinaryHeap<Rank> = BinaryHeap::with_capacity(k);
    for &slot in &matches {
        let session = shard.session(slot);
        if best.len() < k {
            best.push(rank(session));
            continue;
        }
        let Some(mut worst) = best.peek_mut() else {
            continue;
        };
        let value = SortValue::new(sort.value(session), descending);
        let better = match value.cmp(&worst.value) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => *id(session) < *worst.id,
        };
        if better {
            *worst = Rank {
                value,
                id: id(session),
            };
        }
    }
    (matches.len(), best.into_vec())
}

impl SessionStore {
    /// The number of sessions that match `filter`, and one page of them in
    /// the requested order, each with the requested properties (SPEC section
    /// 6.2). A page of `k = offset + limit` out of `n` matches costs
    /// O(n log k). A bad filter is an error.
    ///
    /// The total and the order come from one pass over the shards, each
    /// under its read lock; the properties of the page's sessions are read
    /// just after, so a session closed in between is left out of the page
    /// and one changed in between shows its new properties.
    ///
    /// ```
    /// use session_filter::{FetchRequest, SessionStore};
    ///
    /// let store = SessionStore::new();
    /// for (id, start) in [("a", "300"), ("b", "100"), ("c", "200"), ("d", "100")] {
    ///     store.insert([("$SessionId", id), ("$StartTime", start), ("$Principal", "p")])?;
    /// }
    /// store.insert([("$SessionId", "e"), ("$Principal", "p")])?; // no $StartTime
    ///
    /// let request = FetchRequest::new().order_by("$StartTime").properties(["$StartTime"]).limit(3);
    /// let page = store.fetch("$Principal is 'p'", &request)?;
    /// assert_eq!(page.total, 5);
    /// let ids: Vec<&str> = page.sessions.iter().map(|s| s.id.as_str()).collect();
    /// assert_eq!(ids, ["b", "d", "c"]); // b and d tie: by id
    /// assert_eq!(page.sessions[0].properties["$StartTime"], "100");
    ///
    /// // Descending; sessions without the key still come last.
    /// let page = store.fetch("all", &FetchRequest::new().order_by("$StartTime").descending().offset(2))?;
    /// let ids: Vec<&str> = page.sessions.iter().map(|s| s.id.as_str()).collect();
    /// assert_eq!(ids, ["b", "d", "e"]);
    /// # Ok::<(), session_filter::Error>(())
    /// ```
    pub fn fetch(&self, filter: &str, request: &FetchRequest) -> Result<FetchPage, Error> {
        self.fetch_compiled(&self.compile(filter)?, request)
    }

    /// [`SessionStore::fetch`] with a compiled filter. A request for more
    /// keys than the store's [`DataLimits`](crate::DataLimits) allow is an
    /// error.
    pub fn fetch_compiled(
        &self,
        program: &Program,
        request: &FetchRequest,
    ) -> Result<FetchPage, Error> {
        if let Projection::Keys(keys) = &request.projection {
            self.options
                .data_limits
                .check(DataLimit::KeysPerFetch, keys.len())?;
        }
        let sort = SortBy::new(request.order_by.as_deref());
        let k = request
            .limit
            .map_or(usize::MAX, |limit| request.offset.saturating_add(limit));
        let tops = self.map_shards(Execution::Auto, |shard| {
            shard_top(&Self::read(shard), program, &sort, request.descending, k)
        });
        let total = tops.iter().map(|(n, _)| n).sum();
        let mut ranks: Vec<Rank> = tops.into_iter().flat_map(|(_, top)| top).collect();
        ranks.sort_unstable();
        let page = ranks
            .into_iter()
            .skip(request.offset)
            .take(request.limit.unwrap_or(usize::MAX));
        let sessions = match &request.projection {
            Projection::None => page
                .map(|rank| FetchedSession {
                    id: rank.id.to_string(),
                    properties: BTreeMap::new(),
                })
                .collect(),
            projection => page
                .filter_map(|rank| self.project(&rank.id, projection))
                .collect(),
        };
        Ok(FetchPage { total, sessions })
    }

    /// The session with this id and the properties `projection` asks for, or
    /// `None` when it has been closed since it was ranked.
    fn project(&self, id: &str, projection: &Projection) -> Option<FetchedSession> {
        let shard = Self::read(self.shard_of(id));
        let session = shard.session(shard.slot(id)?);
        let properties = match projection {
            Projection::None => BTreeMap::new(),
            Projection::All => session.properties().into_iter().collect(),
            Projection::Keys(keys) => keys
                .iter()
                .filter_map(|key| Some((key.clone(), session.get(key)?.to_string())))
                .collect(),
        };
        Some(FetchedSession {
            id: id.to_owned(),
            properties,
        })
    }
}
