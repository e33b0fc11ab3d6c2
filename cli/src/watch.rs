//! `watch FILTERS [EVENTS|-]`: replay a log of session events against
//! standing filters, through a store with one watch per filter, and print
//! the membership changes, first-match changes or final counts (SPEC 10).
//!
//! After each event line every watch is drained into a map from session to
//! the set-order positions of the filters it matches; the line's output is
//! the difference between that map before and after the line, so it shows
//! what the line did as a whole, sorted by session id and then set order.
//!
//! Filter ids are JSON strings or integers, printed back as given. Two ids
//! with the same text (`1` and `"1"`) are duplicates, since `--counts`
//! names filters by object keys, which are strings.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use session_filter::{
    Error, Program, PropertyChange, Session, SessionStore, Watch, WatchEvent, WatchOptions,
};

use crate::select::{self, Value, MAX_LINE};
use crate::Failure;

/// What to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every entered/left of every line.
    Changes,
    /// Each change of a session's first matching filter.
    FirstMatch,
    /// The number of sessions each filter matches, once, at the end.
    Counts,
}

/// The smallest queue a watch gets; it grows with the store.
const MIN_CAPACITY: usize = 1024;

pub fn run(filters: &str, events: Option<&str>, mode: Mode) -> Result<(), Failure> {
    let events = events.unwrap_or("-");
    if filters == "-" && events == "-" {
        return Err(Failure::Invalid(
            "the filters and the events cannot both come from stdin".into(),
        ));
    }
    let store = SessionStore::new();
    let filters = read_filters(&store, open(filters)?)?;
    let mut replay = Replay::new(store, filters, mode);
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = replay.run(BufReader::with_capacity(1 << 16, open(events)?), &mut out);
    // What was printed before a bad line stays printed.
    let flushed = out.flush();
    result?;
    flushed?;
    if mode == Mode::Counts {
        let mut out = io::stdout().lock();
        writeln!(out, "{}", replay.counts())?;
        out.flush()?;
    }
    Ok(())
}

fn open(path: &str) -> Result<Box<dyn Read>, Failure> {
    if path == "-" {
        return Ok(Box::new(io::stdin().lock()));
    }
    let file = File::open(path)
        .map_err(|e| Failure::Io(io::Error::new(e.kind(), format!("cannot open {path}: {e}"))))?;
    Ok(Box::new(file))
}

/// Reads one line of at most [`MAX_LINE`] bytes into `line` (cleared
/// first); false at the end of the input.
fn read_line(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    what: &str,
    n: usize,
) -> Result<bool, Failure> {
    line.clear();
    let read = reader.take(MAX_LINE as u64 + 1).read_until(b'\n', line)?;
    if read > MAX_LINE {
        return Err(Failure::Invalid(format!(
            "{what} line {n}: longer than {} MiB",
            MAX_LINE >> 20
        )));
    }
    Ok(read > 0)
}

/// The line as text, or `None` when it is blank.
fn text_of(line: &[u8]) -> Result<Option<&str>, String> {
    let text = std::str::from_utf8(line).map_err(|e| {
        format!(
            "expected UTF-8 text, found an invalid byte at offset {}",
            e.valid_up_to()
        )
    })?;
    Ok(Some(text).filter(|t| !t.trim().is_empty()))
}

/// A filter's id as the FILTERS file gave it.
struct FilterId {
    /// As printed in JSON output: a JSON string or integer.
    json: String,
    /// Its text: the string itself, or the integer's digits.
    text: String,
}

/// One standing filter: its id and its compiled program, in set order.
struct Standing {
    id: FilterId,
    program: Program,
}

fn read_filters(store: &SessionStore, input: Box<dyn Read>) -> Result<Vec<Standing>, Failure> {
    let mut reader = BufReader::new(input);
    let mut filters: Vec<Standing> = Vec::new();
    // Text of each id → the line it was defined on.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut line = Vec::new();
    let mut n = 0;
    while read_line(&mut reader, &mut line, "filters", n + 1)? {
        n += 1;
        let invalid = |message: String| Failure::Invalid(format!("filters line {n}: {message}"));
        let Some(text) = text_of(&line).map_err(invalid)? else {
            continue;
        };
        let entry: FilterLine =
            serde_json::from_str(text).map_err(|e| invalid(format!("invalid filter JSON: {e}")))?;
        let (Some(id), Some(filter)) = (entry.id, entry.filter) else {
            return Err(invalid(
                "expected an object with \"id\" and \"filter\"".into(),
            ));
        };
        let id = filter_id(id).map_err(invalid)?;
        if let Some(first) = seen.get(&id.text) {
            return Err(invalid(format!(
                "the id {} is already used on line {first}",
                id.json
            )));
        }
        let program = store
            .compile(&filter)
            .map_err(|e| invalid(error_text(&e)))?;
        seen.insert(id.text.clone(), n);
        filters.push(Standing { id, program });
    }
    Ok(filters)
}

fn filter_id(id: serde_json::Value) -> Result<FilterId, String> {
    match id {
        serde_json::Value::String(text) => Ok(FilterId {
            json: serde_json::Value::from(text.as_str()).to_string(),
            text,
        }),
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => Ok(FilterId {
            json: n.to_string(),
            text: n.to_string(),
        }),
        other => Err(format!(
            "a filter id must be a string or an integer, not {other}"
        )),
    }
}

/// A library error as the CLI reports it: a bad filter as `check` does,
/// `LINE:COL: MESSAGE` and the caret rendering.
fn error_text(e: &Error) -> String {
    match e {
        Error::Filter(e) => format!("{e}\n{}", e.render()),
        e => e.to_string(),
    }
}

/// The replay: the store, its watches and what each session matches.
struct Replay {
    store: SessionStore,
    filters: Vec<Standing>,
    /// One per filter, in set order.
    watches: Vec<Watch>,
    /// The queue size the watches were made with.
    capacity: usize,
    /// Each session matching some filter → the positions of those filters.
    members: HashMap<String, BTreeSet<usize>>,
    mode: Mode,
}

impl Replay {
    fn new(store: SessionStore, filters: Vec<Standing>, mode: Mode) -> Replay {
        let mut replay = Replay {
            store,
            filters,
            watches: Vec::new(),
            capacity: 0,
            members: HashMap::new(),
            mode,
        };
        replay.make_room(MIN_CAPACITY);
        replay
    }

    /// Makes sure each watch can queue `events` events. One event line
    /// gives a watch at most one event per session it touches, so a queue
    /// as large as the store (plus one, for an open) never overflows; when
    /// the store outgrows the queues, the watches are made again, larger
    /// (their counts restart at what matches, and no events are pending,
    /// since every line drains them).
    fn make_room(&mut self, events: usize) {
        if events <= self.capacity {
            return;
        }
        self.capacity = events.max(self.capacity * 2);
        // Membership is all it prints: no updates, no property maps.
        let options = WatchOptions::new()
            .skip_snapshot()
            .membership_only()
            .without_properties()
            .capacity(self.capacity);
        // The old watches go first, so two never exist for one filter.
        self.watches.clear();
        self.watches = self
            .filters
            .iter()
            .map(|f| self.store.watch_compiled(&f.program, options.clone()))
            .collect();
    }

    fn run(
        &mut self,
        mut reader: BufReader<Box<dyn Read>>,
        out: &mut impl Write,
    ) -> Result<(), Failure> {
        let mut line = Vec::new();
        let mut n = 0;
        loop {
            // Print what is done before waiting for more input, so a live
            // log shows its changes as they happen.
            if reader.buffer().is_empty() {
                out.flush()?;
            }
            if !read_line(&mut reader, &mut line, "events", n + 1)? {
                return Ok(());
            }
            n += 1;
            let invalid = |message: String| Failure::Invalid(format!("events line {n}: {message}"));
            let Some(text) = text_of(&line).map_err(invalid)? else {
                continue;
            };
            let event = parse_event(text).map_err(invalid)?;
            self.make_room(self.store.len() + 1);
            self.apply(event).map_err(invalid)?;
            self.report(n, out)?;
        }
    }

    fn apply(&self, event: Event) -> Result<(), String> {
        let store = &self.store;
        match event {
            Event::Open(session) => store.insert_session(session).map_err(|e| error_text(&e)),
            Event::Set { target, change } => self.set(&target, &change),
            Event::Roles {
                target,
                remove,
                add,
            } => {
                let remove: Vec<&str> = remove.iter().map(String::as_str).collect();
                let add: Vec<&str> = add.iter().map(String::as_str).collect();
                match target {
                    Target::Id(id) => store.change_session_roles(&id, &remove, &add),
                    Target::Where(filter) => {
                        let program = compile_where(store, &filter)?;
                        store
                            .change_roles_compiled(&program, &remove, &add)
                            .map(drop)
                    }
                }
                .map_err(|e| error_text(&e))
            }
            Event::Close(Target::Id(id)) => {
                if store.close_session(&id) {
                    Ok(())
                } else {
                    Err(Error::UnknownSession(id).to_string())
                }
            }
            Event::Close(Target::Where(filter)) => {
                store.close_compiled(&compile_where(store, &filter)?);
                Ok(())
            }
        }
    }

    /// A property change (SPEC 6.1) by id or by filter: the library checks
    /// it whole and normalises the fixed properties it may set.
    fn set(&self, target: &Target, change: &PropertyChange) -> Result<(), String> {
        let store = &self.store;
        match target {
            Target::Id(id) => store.change_session_properties(id, change).map(drop),
            Target::Where(filter) => {
                let program = compile_where(store, filter)?;
                store.change_properties_compiled(&program, change).map(drop)
            }
        }
        .map_err(|e| error_text(&e))
    }

    /// Drains every watch and prints what the line changed.
    fn report(&mut self, n: usize, out: &mut impl Write) -> Result<(), Failure> {
        // The sessions the line touched, with what they matched before it.
        let mut before: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        for (position, watch) in self.watches.iter().enumerate() {
            for event in watch.drain() {
                let (id, entered) = match event {
                    WatchEvent::Entered { id, .. } => (id, true),
                    WatchEvent::Left { id, .. } => (id, false),
                    WatchEvent::Lagged { missed } => {
                        // The queues are sized so this cannot happen;
                        // printing on would print wrong answers.
                        return Err(Failure::Io(io::Error::other(format!(
                            "events line {n}: the watch of filter {} missed {missed} events",
                            self.filters[position].id.json
                        ))));
                    }
                    _ => continue,
                };
                if self.mode == Mode::Counts {
                    continue;
                }
                let members = self.members.entry(id.to_string()).or_default();
                before
                    .entry(id.to_string())
                    .or_insert_with(|| members.clone());
                if entered {
                    members.insert(position);
                } else {
                    members.remove(&position);
                }
            }
        }
        for (id, before) in before {
            let after = match self.members.get(&id) {
                Some(after) if after.is_empty() => {
                    self.members.remove(&id);
                    BTreeSet::new()
                }
                Some(after) => after.clone(),
                None => BTreeSet::new(),
            };
            let session = json_string(&id);
            match self.mode {
                Mode::Changes => {
                    // In set order, entered and left mixed.
                    for &position in before.symmetric_difference(&after) {
                        let event = if after.contains(&position) {
                            "entered"
                        } else {
                            "left"
                        };
                        writeln!(
                            out,
                            "{{\"line\":{n},\"session\":{session},\"filter\":{},\"event\":\"{event}\"}}",
                            self.filters[position].id.json
                        )?;
                    }
                }
                Mode::FirstMatch => {
                    let (was, is) = (before.first(), after.first());
                    if was != is {
                        let first = match is {
                            Some(&position) => self.filters[position].id.json.as_str(),
                            None => "null",
                        };
                        writeln!(
                            out,
                            "{{\"line\":{n},\"session\":{session},\"first\":{first}}}"
                        )?;
                    }
                }
                Mode::Counts => {}
            }
        }
        Ok(())
    }

    /// `{"FID": COUNT, …}` in set order.
    fn counts(&self) -> String {
        let entries: Vec<String> = self
            .filters
            .iter()
            .zip(&self.watches)
            .map(|(f, w)| format!("{}:{}", json_string(&f.id.text), w.count()))
            .collect();
        format!("{{{}}}", entries.join(","))
    }
}

fn compile_where(store: &SessionStore, filter: &str) -> Result<Program, String> {
    store
        .compile(filter)
        .map_err(|e| format!("\"where\": {}", error_text(&e)))
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// Which sessions an event applies to.
enum Target {
    Id(String),
    Where(String),
}

/// One event line, checked.
enum Event {
    Open(Session),
    Set {
        target: Target,
        change: PropertyChange,
    },
    Roles {
        target: Target,
        remove: Vec<String>,
        add: Vec<String>,
    },
    Close(Target),
}

fn parse_event(text: &str) -> Result<Event, String> {
    let raw: RawEvent =
        serde_json::from_str(text).map_err(|e| format!("invalid event JSON: {e}"))?;
    let op = raw.op.ok_or("the event has no \"op\"")?;
    let allowed: &[&str] = match op.as_str() {
        "open" => &["properties"],
        "set" => &["id", "where", "properties"],
        "roles" => &["id", "where", "remove", "add"],
        "close" => &["id", "where"],
        other => {
            return Err(format!(
                "unknown op {other:?}: expected \"open\", \"set\", \"roles\" or \"close\""
            ))
        }
    };
    let given = [
        ("id", raw.id.is_some()),
        ("where", raw.filter.is_some()),
        ("properties", raw.properties.is_some()),
        ("remove", raw.remove.is_some()),
        ("add", raw.add.is_some()),
    ];
    for (field, present) in given {
        if present && !allowed.contains(&field) {
            return Err(format!("a {op:?} event takes no {field:?}"));
        }
    }
    let target = || match (raw.id.clone(), raw.filter.clone()) {
        (Some(id), None) => Ok(Target::Id(id)),
        (None, Some(filter)) => Ok(Target::Where(filter)),
        (Some(_), Some(_)) => Err(format!(
            "a {op:?} event takes \"id\" or \"where\", not both"
        )),
        (None, None) => Err(format!("a {op:?} event needs \"id\" or \"where\"")),
    };
    Ok(match op.as_str() {
        "open" => {
            let properties = raw
                .properties
                .ok_or("an \"open\" event needs \"properties\"")?;
            let mut entries = Vec::with_capacity(properties.len());
            for (key, value) in properties {
                let value = value.ok_or_else(|| {
                    format!("the value of {key:?} must be a string (null only removes, in \"set\")")
                })?;
                entries.push((key, value));
            }
            Event::Open(select::session_of(entries)?)
        }
        "set" => {
            let target = target()?;
            let properties = raw
                .properties
                .ok_or("a \"set\" event needs \"properties\"")?;
            let mut change: Vec<(String, Option<String>)> = Vec::with_capacity(properties.len());
            for (key, value) in properties {
                // A change would keep the last of two; in JSON a repeated
                // key is more likely a mistake, as it is for `open`.
                if change.iter().any(|(k, _)| *k == key) {
                    return Err(Error::DuplicateKey(key).to_string());
                }
                let value = match value {
                    None => None,
                    Some(Value::Text(v)) => Some(v),
                    Some(Value::Roles(_)) => {
                        return Err(format!(
                            "the value of {key:?} must be a string, or null to remove it"
                        ))
                    }
                };
                change.push((key, value));
            }
            Event::Set {
                target,
                change: change.into_iter().collect(),
            }
        }
        "roles" => Event::Roles {
            target: target()?,
            remove: raw.remove.unwrap_or_default(),
            add: raw.add.unwrap_or_default(),
        },
        _ => Event::Close(target()?),
    })
}

/// A FILTERS line's fields.
struct FilterLine {
    id: Option<serde_json::Value>,
    filter: Option<String>,
}

/// An event line's fields, before the op says which it needs.
#[derive(Default)]
struct RawEvent {
    op: Option<String>,
    id: Option<String>,
    filter: Option<String>,
    /// In order, duplicates kept for the checks to reject.
    properties: Option<Vec<(String, Option<Value>)>>,
    remove: Option<Vec<String>>,
    add: Option<Vec<String>>,
}

/// Sets `slot` from the map's next value, once.
fn once<'de, A, T>(map: &mut A, slot: &mut Option<T>, field: &'static str) -> Result<(), A::Error>
where
    A: MapAccess<'de>,
    T: de::Deserialize<'de>,
{
    if slot.is_some() {
        return Err(de::Error::duplicate_field(field));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

impl<'de> de::Deserialize<'de> for FilterLine {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FilterLine, D::Error> {
        struct LineVisitor;
        impl<'de> Visitor<'de> for LineVisitor {
            type Value = FilterLine;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object {\"id\": ID, \"filter\": TEXT}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FilterLine, A::Error> {
                let mut line = FilterLine {
                    id: None,
                    filter: None,
                };
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "id" => once(&mut map, &mut line.id, "id")?,
                        "filter" => once(&mut map, &mut line.filter, "filter")?,
                        other => return Err(de::Error::unknown_field(other, &["id", "filter"])),
                    }
                }
                Ok(line)
            }
        }
        d.deserialize_map(LineVisitor)
    }
}

/// The properties of an event, in order: `null` as `None`.
struct Entries(Vec<(String, Option<Value>)>);

impl<'de> de::Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Entries, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of properties")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Option<Value>>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(EntriesVisitor)
    }
}

const EVENT_FIELDS: &[&str] = &["op", "id", "where", "properties", "remove", "add"];

impl<'de> de::Deserialize<'de> for RawEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawEvent, D::Error> {
        struct EventVisitor;
        impl<'de> Visitor<'de> for EventVisitor {
            type Value = RawEvent;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event object with an \"op\"")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEvent, A::Error> {
                let mut event = RawEvent::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "op" => once(&mut map, &mut event.op, "op")?,
                        "id" => once(&mut map, &mut event.id, "id")?,
                        "where" => once(&mut map, &mut event.filter, "where")?,
                        "properties" => {
                            let mut entries: Option<Entries> = None;
                            if event.properties.is_some() {
                                return Err(de::Error::duplicate_field("properties"));
                            }
                            once(&mut map, &mut entries, "properties")?;
                            event.properties = entries.map(|e| e.0);
                        }
                        "remove" => once(&mut map, &mut event.remove, "remove")?,
                        "add" => once(&mut map, &mut event.add, "add")?,
                        other => return Err(de::Error::unknown_field(other, EVENT_FIELDS)),
                    }
                }
                Ok(event)
            }
        }
        d.deserialize_map(EventVisitor)
    }
}
