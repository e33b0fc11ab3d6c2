//! The page `select` prints (SPEC sections 6.2 and 10): what each match
//! shows, in which order, and which slice of the matches.
//!
//! In input order a page is printed as the matches come and is full after
//! `offset + limit` of them, so the caller can stop reading. Sorted, the
//! best `k = offset + limit` matches seen so far are kept in a max-heap of
//! at most `k` entries (O(n log k) for `n` matches), and printed at the end;
//! without `--limit` every match has to be kept.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::io::{self, Write};
use std::sync::Arc;

use session_filter::properties::SESSION_ID;
use session_filter::{validate_user_key, Session};

/// What each printed line shows.
pub enum Projection {
    /// The `$SessionId` alone, as plain text (SPEC section 7).
    Id,
    /// A JSON object of `$SessionId` and these keys, distinct and without
    /// `$SessionId`; absent ones are left out.
    Keys(Vec<String>),
    /// A JSON object of every property.
    All,
}

/// The order of the printed matches.
pub enum Order {
    /// Input order.
    Input,
    /// By the value of `key` as a byte string, ascending or descending;
    /// sessions without it come last either way, ties go by `$SessionId`
    /// ascending.
    By { key: String, desc: bool },
}

/// Which matches to print and how.
pub struct Request {
    pub projection: Projection,
    pub order: Order,
    pub offset: usize,
    pub limit: Option<usize>,
}

impl Request {
    /// How many matches the page needs to see: `offset + limit`, or all.
    fn wanted(&self) -> Option<usize> {
        self.limit.map(|limit| self.offset.saturating_add(limit))
    }
}

/// Checks a key named on the command line as the store checks keys: a `$`
/// key is anything after the `$`, any other key must be a valid user key.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.starts_with('$') {
        return Ok(());
    }
    validate_user_key(key).map_err(|e| e.to_string())
}

/// A matching session and where it sorts.
struct Hit {
    /// The sort key's value (none in input order).
    value: Option<Arc<str>>,
    id: Option<Arc<str>>,
    /// The 1-based input line (or position in the demo population): the
    /// session's name when it has no `$SessionId`, and the last tie-break.
    line: usize,
    desc: bool,
    session: Session,
}

impl Ord for Hit {
    fn cmp(&self, other: &Hit) -> Ordering {
        by_value(&self.value, &other.value, self.desc)
            // Sessions without an id sort after those with one, by line.
            .then_with(|| by_value(&self.id, &other.id, false))
            .then(self.line.cmp(&other.line))
    }
}

impl PartialOrd for Hit {
    fn partial_cmp(&self, other: &Hit) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Hit {
    fn eq(&self, other: &Hit) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Hit {}

/// Present values in byte order (reversed when `desc`), absent ones last in
/// either direction.
fn by_value(a: &Option<Arc<str>>, b: &Option<Arc<str>>, desc: bool) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) if desc => b.as_bytes().cmp(a.as_bytes()),
        (Some(a), Some(b)) => a.as_bytes().cmp(b.as_bytes()),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// The page being filled, one match at a time.
pub struct Page<'r> {
    request: &'r Request,
    /// The best matches so far, worst on top (sorted order only).
    best: BinaryHeap<Hit>,
    /// Matches pushed so far.
    seen: usize,
}

impl<'r> Page<'r> {
    pub fn new(request: &'r Request) -> Page<'r> {
        Page {
            request,
            best: BinaryHeap::new(),
            seen: 0,
        }
    }

    /// Matches printed so far (all of them once [`Page::finish`] ran).
    pub fn printed(&self) -> usize {
        let past_offset = self.seen.saturating_sub(self.request.offset);
        self.request
            .limit
            .map_or(past_offset, |l| past_offset.min(l))
    }

    /// True when no later match can change the page: input order and
    /// `offset + limit` matches seen.
    pub fn is_full(&self) -> bool {
        matches!(self.request.order, Order::Input) && self.still_needed() == Some(0)
    }

    /// In input order with a limit, how many more matches fill the page (so
    /// at least how many more lines it needs); `None` when it needs them all.
    pub fn still_needed(&self) -> Option<usize> {
        match self.request.order {
            Order::Input => self.request.wanted().map(|k| k.saturating_sub(self.seen)),
            Order::By { .. } => None,
        }
    }

    /// Takes one match: prints it now in input order (if it falls on the
    /// page), keeps it if it is among the best so far otherwise.
    pub fn push(&mut self, session: Session, line: usize, out: &mut impl Write) -> io::Result<()> {
        let index = self.seen;
        self.seen += 1;
        match &self.request.order {
            Order::Input => {
                let on_page = index >= self.request.offset
                    && self
                        .request
                        .limit
                        .is_none_or(|l| index - self.request.offset < l);
                if on_page {
                    self.write(&session, line, out)?;
                }
            }
            Order::By { key, desc } => {
                let id = session.id();
                let value = if key == SESSION_ID {
                    id.clone()
                } else {
                    session.get(key)
                };
                let hit = Hit {
                    value,
                    id,
                    line,
                    desc: *desc,
                    session,
                };
                match self.request.wanted() {
                    Some(k) if self.best.len() >= k => {
                        // Replacing the top sifts it down as the guard drops.
                        if let Some(mut worst) = self.best.peek_mut() {
                            if hit < *worst {
                                *worst = hit;
                            }
                        }
                    }
                    _ => self.best.push(hit),
                }
            }
        }
        Ok(())
    }

    /// Prints what sorting kept; nothing is left to print in input order.
    pub fn finish(&mut self, out: &mut impl Write) -> io::Result<()> {
        let best = std::mem::take(&mut self.best).into_sorted_vec();
        let limit = self.request.limit.unwrap_or(usize::MAX);
        for hit in best.iter().skip(self.request.offset).take(limit) {
            self.write(&hit.session, hit.line, out)?;
        }
        Ok(())
    }

    fn write(&self, session: &Session, line: usize, out: &mut impl Write) -> io::Result<()> {
        let id = session.id();
        let mut text = String::new();
        match &self.request.projection {
            Projection::Id => match id {
                Some(id) => text.push_str(&id),
                None => text.push_str(&line.to_string()),
            },
            Projection::Keys(keys) => {
                open_object(&mut text, id.as_deref(), line);
                for key in keys {
                    if let Some(value) = session.get(key) {
                        push_entry(&mut text, key, &value);
                    }
                }
                text.push('}');
            }
            Projection::All => {
                open_object(&mut text, id.as_deref(), line);
                for (key, value) in session.properties() {
                    if key != SESSION_ID {
                        push_entry(&mut text, &key, &value);
                    }
                }
                text.push('}');
            }
        }
        text.push('\n');
        out.write_all(text.as_bytes())
    }
}

/// `{"$SessionId":ID`, where a session without an id is named by its line
/// number as a JSON number, so it cannot pass for an id.
fn open_object(text: &mut String, id: Option<&str>, line: usize) {
    text.push('{');
    push_json_string(text, SESSION_ID);
    text.push(':');
    match id {
        Some(id) => push_json_string(text, id),
        None => text.push_str(&line.to_string()),
    }
}

fn push_entry(text: &mut String, key: &str, value: &str) {
    text.push(',');
    push_json_string(text, key);
    text.push(':');
    push_json_string(text, value);
}

fn push_json_string(text: &mut String, s: &str) {
    text.push_str(&serde_json::Value::from(s).to_string());
}
