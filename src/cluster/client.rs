//! The client side: runs one operation on every member of a cluster.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;

use super::member::to_payload;
use super::membership::{open_bucket, Membership};
use super::wire::{Operation, Outcome, Page, PageEntry, Reply, Request, VERSION};
use super::{check_name, request_subject, ClusterError, FetchSpec};
use crate::{FetchPage, FetchedSession, PropertyChange, SessionStore, StoreOptions};

/// The combined answer of a cluster to one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterAnswer<T> {
    /// The combined result over the members that answered: counts summed,
    /// ids and pages merged. When [`ClusterAnswer::is_complete`] is false it
    /// is a *partial* figure, not the cluster's total.
    pub value: T,
    /// The members expected to answer: those registered when the operation
    /// started, by name.
    pub expected: Vec<String>,
    /// Every member that answered, with its own figure, by name (a member
    /// that was not expected included).
    pub answered: Vec<MemberFigure>,
    /// Every member that was expected and did not answer before the
    /// deadline, and every member whose answer in parts stopped before its
    /// last part, by name.
    pub missing: Vec<String>,
    /// Every member that answered with an error (its sessions are not in
    /// `value`), by name.
    pub failed: Vec<MemberFailure>,
}

impl<T> ClusterAnswer<T> {
    /// True when some member was expected, every expected member answered
    /// and none failed: `value` is the whole cluster's. With no member
    /// expected the answer is never complete, whatever answered: an empty
    /// roster proves nothing about the members serving.
    pub fn is_complete(&self) -> bool {
        !self.expected.is_empty() && self.missing.is_empty() && self.failed.is_empty()
    }
}

/// One member's own figure in a [`ClusterAnswer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberFigure {
    /// The member's name.
    pub member: String,
    /// Its figure: the number of its sessions that matched (for `select`
    /// the number of ids it sent, for `fetch` its total).
    pub figure: usize,
    /// The time it says it spent on the operation itself.
    pub took: Duration,
}

/// A member that answered with an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberFailure {
    /// The member's name.
    pub member: String,
    /// What went wrong there.
    pub message: String,
}

/// Runs operations on every member of one cluster.
///
/// It keeps a live view of the cluster's membership (see the
/// [module docs](super)); the members expected to answer an operation are
/// the ones registered when it starts. Every operation checks its request
/// first, and a bad filter (or role, or property change) is an error before
/// anything is published.
pub struct ClusterClient {
    nats: async_nats::Client,
    subject: String,
    membership: Membership,
    timeout: Duration,
    // An empty store: running a request on it checks the request exactly as
    // the members will, and touches nothing.
    checker: SessionStore,
}

impl std::fmt::Debug for ClusterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterClient")
            .field("subject", &self.subject)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ClusterClient {
    /// The default deadline of an operation.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// A client of `cluster`: opens its membership bucket and waits for the
    /// current members. Must be called within a tokio runtime.
    pub async fn connect(
        nats: async_nats::Client,
        cluster: &str,
    ) -> Result<ClusterClient, ClusterError> {
        check_name("cluster", cluster)?;
        let bucket = open_bucket(&nats, cluster).await?;
        let membership = Membership::watch(bucket).await?;
        Ok(ClusterClient {
            nats,
            subject: request_subject(cluster),
            membership,
            timeout: Self::DEFAULT_TIMEOUT,
            checker: SessionStore::with_options(StoreOptions::new().shards(1).index(false)),
        })
    }

    /// How long an operation waits for the expected members (default
    /// [`ClusterClient::DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> ClusterClient {
        self.timeout = timeout;
        self
    }

    /// The members an operation started now would expect, by name.
    pub fn members(&self) -> Vec<String> {
        self.membership.expected()
    }

    /// How many sessions match `filter` on the whole cluster.
    pub async fn count(&self, filter: &str) -> Result<ClusterAnswer<usize>, ClusterError> {
        self.checker.count(filter)?;
        self.sum(filter, Operation::Count).await
    }

    /// The ids of the sessions that match `filter`, merged in `$SessionId`
    /// (byte) order.
    pub async fn select(&self, filter: &str) -> Result<ClusterAnswer<Vec<String>>, ClusterError> {
        self.checker.count(filter)?;
        let gathered = self.gather(filter, Operation::Select).await?;
        let mut ids = Vec::new();
        let answer = gathered.combine(|outcome| match outcome {
            Outcome::Ids(member_ids) => {
                let figure = member_ids.len();
                ids.extend(member_ids);
                Some(figure)
            }
            _ => None,
        });
        ids.sort_unstable();
        Ok(answer.with(ids))
    }

    /// A page of the sessions that match `filter` (SPEC 6.2), merged from
    /// the members' pages in the requested order; `total` is the number of
    /// matches on all the members that answered.
    pub async fn fetch(
        &self,
        filter: &str,
        spec: &FetchSpec,
    ) -> Result<ClusterAnswer<FetchPage>, ClusterError> {
        self.checker.fetch(filter, &spec.to_request())?;
        let gathered = self
            .gather(filter, Operation::Fetch(member_spec(spec)))
            .await?;
        let mut pages = Vec::new();
        let answer = gathered.combine(|outcome| match outcome {
            Outcome::Page(page) => {
                let figure = page.total;
                pages.push(page);
                Some(figure)
            }
            _ => None,
        });
        let merged = merge_pages(spec, pages);
        let page = FetchPage {
            total: merged.total,
            sessions: merged
                .sessions
                .into_iter()
                .map(|entry| FetchedSession {
                    id: entry.id,
                    properties: entry.properties,
                })
                .collect(),
        };
        Ok(answer.with(page))
    }

    /// Closes the sessions that match `filter` on every member; the value is
    /// how many were closed.
    pub async fn close(&self, filter: &str) -> Result<ClusterAnswer<usize>, ClusterError> {
        self.checker.close(filter)?;
        self.sum(filter, Operation::Close).await
    }

    /// Changes the roles of the sessions that match `filter` on every
    /// member (removing, then adding); the value is the number of matching
    /// sessions.
    pub async fn change_roles(
        &self,
        filter: &str,
        roles_to_remove: &[&str],
        roles_to_add: &[&str],
    ) -> Result<ClusterAnswer<usize>, ClusterError> {
        self.checker
            .change_roles(filter, roles_to_remove, roles_to_add)?;
        let owned = |roles: &[&str]| roles.iter().map(|r| (*r).to_owned()).collect();
        let op = Operation::ChangeRoles {
            remove: owned(roles_to_remove),
            add: owned(roles_to_add),
        };
        self.sum(filter, op).await
    }

    /// Sets and removes properties of the sessions that match `filter` on
    /// every member (SPEC 6.1); the value is the number of matching
    /// sessions.
    pub async fn change_properties(
        &self,
        filter: &str,
        change: &PropertyChange,
    ) -> Result<ClusterAnswer<usize>, ClusterError> {
        self.checker.change_properties(filter, change)?;
        let properties = change
            .iter()
            .map(|(key, value)| (key.to_owned(), value.map(str::to_owned)))
            .collect();
        self.sum(filter, Operation::ChangeProperties { properties })
            .await
    }

    /// Runs an operation whose answers are counts, and sums them.
    async fn sum(&self, filter: &str, op: Operation) -> Result<ClusterAnswer<usize>, ClusterError> {
        let gathered = self.gather(filter, op).await?;
        let mut total = 0usize;
        let answer = gathered.combine(|outcome| match outcome {
            Outcome::Count(n) => {
                total = total.saturating_add(n);
                Some(n)
            }
            _ => None,
        });
        Ok(answer.with(total))
    }

    /// Publishes one request and gathers the replies until every expected
    /// member has answered (all the parts of its answer) or the deadline
    /// passes; with no member expected, until the deadline.
    async fn gather(&self, filter: &str, op: Operation) -> Result<Gathered, ClusterError> {
        let expected = self.membership.expected();
        let inbox = self.nats.new_inbox();
        // The inbox's last token is unique, so it serves as the request id.
        let id = inbox.rsplit('.').next().unwrap_or(&inbox).to_owned();
        let request = Request {
            v: VERSION,
            id: id.clone(),
            filter: filter.to_owned(),
            timeout_ms: Some(u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX)),
            op,
        };
        let deadline = Instant::now() + self.timeout;
        // A broker that is gone leaves these waiting for a reconnection:
        // the deadline bounds them too.
        let late = |action| ClusterError::broker(action, "the broker did not take it in time");
        let subscribe = "subscribe to the replies";
        let mut replies = tokio::time::timeout_at(deadline, self.nats.subscribe(inbox.clone()))
            .await
            .map_err(|_| late(subscribe))?
            .map_err(|e| ClusterError::broker(subscribe, e))?;
        let publish = "publish the request";
        let payload = to_payload(&request).into();
        let published = self
            .nats
            .publish_with_reply(self.subject.clone(), inbox, payload);
        tokio::time::timeout_at(deadline, published)
            .await
            .map_err(|_| late(publish))?
            .map_err(|e| ClusterError::broker(publish, e))?;
        let roster_known = !expected.is_empty();
        let mut waiting: BTreeSet<String> = expected.iter().cloned().collect();
        // Members whose answer has come in full, and the ones still sending
        // parts.
        let mut answers: Vec<Reply> = Vec::new();
        let mut partial: Vec<Reply> = Vec::new();
        while !roster_known || !waiting.is_empty() || !partial.is_empty() {
            let message = match tokio::time::timeout_at(deadline, replies.next()).await {
                Ok(Some(message)) => message,
                Ok(None) | Err(_) => break,
            };
            let reply: Reply = match serde_json::from_slice(&message.payload) {
                Ok(reply) => reply,
                Err(e) => {
                    tracing::warn!("ignored a malformed reply: {e}");
                    continue;
                }
            };
            if reply.v != VERSION || reply.id != id {
                continue;
            }
            if answers.iter().any(|a| a.member == reply.member) {
                continue;
            }
            let reply = match partial.iter().position(|p| p.member == reply.member) {
                Some(at) => {
                    let mut whole = partial.swap_remove(at);
                    append_part(&mut whole, reply);
                    whole
                }
                None => reply,
            };
            if reply.more {
                partial.push(reply);
            } else {
                waiting.remove(&reply.member);
                answers.push(reply);
            }
        }
        let _ = replies.unsubscribe().await;
        // A member whose parts stopped coming is missing, like one that
        // never answered.
        let mut missing: BTreeSet<String> = waiting;
        missing.extend(partial.into_iter().map(|p| p.member));
        answers.sort_by(|a, b| a.member.cmp(&b.member));
        Ok(Gathered {
            expected,
            answers,
            missing: missing.into_iter().collect(),
        })
    }
}

/// Adds the next part of a member's answer to the parts before it.
fn append_part(whole: &mut Reply, part: Reply) {
    whole.more = part.more;
    whole.micros = whole.micros.max(part.micros);
    match (&mut whole.outcome, part.outcome) {
        (Outcome::Ids(ids), Outcome::Ids(more)) => ids.extend(more),
        // Only `select` answers come in parts: anything else ends it.
        (_, outcome) => {
            whole.more = false;
            whole.outcome = outcome;
        }
    }
}

/// The replies to one request.
struct Gathered {
    expected: Vec<String>,
    answers: Vec<Reply>,
    missing: Vec<String>,
}

impl Gathered {
    /// Sorts the replies into figures and failures; `take` consumes each
    /// successful outcome and returns the member's figure, or `None` when
    /// the outcome is not of the operation's kind.
    fn combine(self, mut take: impl FnMut(Outcome) -> Option<usize>) -> ClusterAnswer<()> {
        let mut answered = Vec::new();
        let mut failed = Vec::new();
        for reply in self.answers {
            let took = Duration::from_micros(reply.micros);
            match reply.outcome {
                Outcome::Error(e) => failed.push(MemberFailure {
                    member: reply.member,
                    message: e.message,
                }),
                outcome => match take(outcome) {
                    Some(figure) => answered.push(MemberFigure {
                        member: reply.member,
                        figure,
                        took,
                    }),
                    None => failed.push(MemberFailure {
                        member: reply.member,
                        message: "an answer of the wrong kind".into(),
                    }),
                },
            }
        }
        ClusterAnswer {
            value: (),
            expected: self.expected,
            answered,
            missing: self.missing,
            failed,
        }
    }
}

impl ClusterAnswer<()> {
    fn with<T>(self, value: T) -> ClusterAnswer<T> {
        ClusterAnswer {
            value,
            expected: self.expected,
            answered: self.answered,
            missing: self.missing,
            failed: self.failed,
        }
    }
}

/// Merges the members' pages of a fetch into the page `spec` asked for.
pub(crate) fn merge_pages(spec: &FetchSpec, pages: Vec<Page>) -> Page {
    let total = pages
        .iter()
        .map(|p| p.total)
        .fold(0usize, usize::saturating_add);
    let mut sessions: Vec<PageEntry> = pages.into_iter().flat_map(|p| p.sessions).collect();
    sessions.sort_by(|a, b| page_order(spec.descending, a, b));
    let sessions = sessions
        .into_iter()
        .skip(spec.offset)
        .take(spec.limit.unwrap_or(usize::MAX))
        .collect();
    Page { total, sessions }
}

/// SPEC 6.2: by the order key's value (descending if asked), sessions
/// without it last either way, ties by `$SessionId` ascending.
fn page_order(descending: bool, a: &PageEntry, b: &PageEntry) -> Ordering {
    let by_value = match (&a.sort, &b.sort) {
        (Some(x), Some(y)) if descending => y.cmp(x),
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_value.then_with(|| a.id.cmp(&b.id))
}

/// What each member is asked for in a fetch of `spec`: its first
/// `offset + limit` matches, so that the merged list holds the page.
pub(crate) fn member_spec(spec: &FetchSpec) -> FetchSpec {
    FetchSpec {
        offset: 0,
        limit: spec.limit.map(|l| l.saturating_add(spec.offset)),
        ..spec.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, sort: Option<&str>) -> PageEntry {
        PageEntry {
            id: id.into(),
            sort: sort.map(str::to_owned),
            properties: Default::default(),
        }
    }

    #[test]
    fn pages_merge_in_the_requested_order() {
        let a = Page {
            total: 3,
            sessions: vec![
                entry("a1", Some("x")),
                entry("a2", Some("z")),
                entry("a3", None),
            ],
        };
        let b = Page {
            total: 2,
            sessions: vec![entry("b1", Some("y")), entry("b2", Some("x"))],
        };
        let ids = |page: Page| page.sessions.into_iter().map(|e| e.id).collect::<Vec<_>>();
        let spec = FetchSpec::new().order_by("k");
        let merged = merge_pages(&spec, vec![a.clone(), b.clone()]);
        assert_eq!(merged.total, 5);
        assert_eq!(ids(merged), ["a1", "b2", "b1", "a2", "a3"]);
        let spec = FetchSpec::new()
            .order_by("k")
            .descending()
            .offset(1)
            .limit(3);
        assert_eq!(ids(merge_pages(&spec, vec![a, b])), ["b1", "a1", "b2"]);
        assert_eq!(member_spec(&spec).limit, Some(4));
        assert_eq!(member_spec(&spec).offset, 0);
    }
}
