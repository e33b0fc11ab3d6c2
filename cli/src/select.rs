//! `select FILTER [FILE|-]`: stream JSON-lines sessions through a compiled
//! program and print the matches, in input order or sorted, one page of
//! them (see [`crate::fetch`]).
//!
//! Lines are read in batches; each batch is parsed and matched in parallel
//! and handed to the page in order, so memory stays bounded by the batch
//! (and, sorted, by the page), whatever the input size. A malformed line
//! stops the run after everything before it has been printed. In input
//! order reading stops once the page is full; batches then start at the
//! number of matches still needed, so no line past the page's last match is
//! read when the lines before it all match.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use session_filter::properties::ROLES;
use session_filter::{roles_to_string, Program, Session, SessionStore};

use crate::fetch::{Page, Request};
use crate::Failure;

/// The longest input line accepted.
pub(crate) const MAX_LINE: usize = 16 << 20;
/// Lines per batch.
const BATCH_LINES: usize = 4096;
/// Bytes per batch, roughly (a batch ends at the first line past this).
const BATCH_BYTES: usize = 8 << 20;
/// The demo population's size.
pub const DEMO_SESSIONS: usize = 5000;
/// Progress shows only for runs longer than this.
const PROGRESS_AFTER: Duration = Duration::from_millis(800);

pub struct Options {
    /// Print only the number of matches; the request's paging is ignored.
    pub count_only: bool,
    pub quiet: bool,
    pub request: Request,
}

/// What happened, for the summary line.
#[derive(Default)]
struct Summary {
    matched: usize,
    scanned: usize,
    /// Matches printed, when paging left some out.
    printed: Option<usize>,
    /// Reading stopped at a full page, before the end of the input.
    stopped: bool,
}

impl Summary {
    /// Records what the page printed, if paging may have left matches out.
    fn paged(mut self, options: &Options, page: &Page) -> Summary {
        let request = &options.request;
        if !options.count_only && (request.offset > 0 || request.limit.is_some()) {
            self.printed = Some(page.printed());
        }
        self
    }
}

pub fn run(program: &Program, input: Option<&str>, options: &Options) -> Result<(), Failure> {
    let started = Instant::now();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = match input {
        None => run_demo(program, options, &mut out),
        Some(path) => {
            let (reader, len): (Box<dyn Read>, Option<u64>) = if path == "-" {
                (Box::new(io::stdin().lock()), None)
            } else {
                let file = File::open(path).map_err(|e| {
                    Failure::Io(io::Error::new(e.kind(), format!("cannot open {path}: {e}")))
                })?;
                let len = file.metadata().ok().map(|m| m.len());
                (Box::new(file), len)
            };
            run_lines(
                program,
                BufReader::with_capacity(1 << 16, reader),
                len,
                options,
                &mut out,
            )
        }
    };
    let flushed = out.flush();
    let summary = result?;
    flushed?;
    if options.count_only {
        let mut out = io::stdout().lock();
        writeln!(out, "{}", summary.matched)?;
        out.flush()?;
    }
    if !options.quiet {
        let printed = summary
            .printed
            .map(|n| format!(", printed {n}"))
            .unwrap_or_default();
        let stopped = if summary.stopped {
            " (stopped reading at the end of the page)"
        } else {
            ""
        };
        eprintln!(
            "matched {} of {} sessions in {:.1?}{printed}{stopped}",
            summary.matched,
            summary.scanned,
            started.elapsed()
        );
    }
    Ok(())
}

fn run_demo(
    program: &Program,
    options: &Options,
    out: &mut impl Write,
) -> Result<Summary, Failure> {
    let sessions = session_filter::demo::sessions(DEMO_SESSIONS)
        .map_err(|e| Failure::Invalid(format!("demo population: {e}")))?;
    let matches = program.par_select(&sessions);
    let summary = Summary {
        matched: matches.len(),
        scanned: sessions.len(),
        ..Summary::default()
    };
    if options.count_only {
        return Ok(summary);
    }
    let mut page = Page::new(&options.request);
    for &i in &matches {
        if page.is_full() {
            break;
        }
        // The position in the population stands in for the line number.
        page.push(sessions[i].clone(), i + 1, out)?;
    }
    page.finish(out)?;
    Ok(summary.paged(options, &page))
}

/// One input line's outcome.
enum Line {
    Blank,
    Miss,
    Match(Session),
}

fn run_lines(
    program: &Program,
    mut reader: impl BufRead,
    len: Option<u64>,
    options: &Options,
    out: &mut impl Write,
) -> Result<Summary, Failure> {
    let mut progress = Progress::new(len);
    let mut summary = Summary::default();
    let mut page = Page::new(&options.request);
    let mut line_no = 0usize;
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(BATCH_LINES);
    let mut batch_lines = 0;
    // A count reads everything.
    let full = |page: &Page| !options.count_only && page.is_full();
    loop {
        if full(&page) {
            summary.stopped = true;
            break;
        }
        // A page that needs `n` more matches needs at least `n` more lines;
        // past that, batches double, so a sparse filter still runs in
        // parallel.
        batch_lines = match page.still_needed() {
            Some(needed) if !options.count_only => needed.max(batch_lines * 2).min(BATCH_LINES),
            _ => BATCH_LINES,
        };
        // Read a batch; a read error or an over-long line ends it early, to
        // be reported after the lines before it are printed.
        batch.clear();
        let mut bytes = 0;
        let mut stop: Option<Failure> = None;
        while batch.len() < batch_lines && bytes < BATCH_BYTES {
            let mut line = Vec::new();
            match read_line(&mut reader, &mut line) {
                Ok(LineRead::End) => break,
                Ok(LineRead::TooLong) => {
                    stop = Some(Failure::Invalid(too_long(line_no + batch.len() + 1)));
                    break;
                }
                Ok(LineRead::Line(n)) => {
                    bytes += n;
                    batch.push(line);
                }
                Err(e) => {
                    stop = Some(Failure::Io(e));
                    break;
                }
            }
        }
        if batch.is_empty() && stop.is_none() {
            break;
        }
        let results: Vec<Result<Line, String>> =
            batch.par_iter().map(|l| evaluate(program, l)).collect();
        for result in results {
            // Lines after a full page count as never read, errors included.
            if full(&page) {
                break;
            }
            line_no += 1;
            match result {
                Ok(Line::Blank) => {}
                Ok(Line::Miss) => summary.scanned += 1,
                Ok(Line::Match(session)) => {
                    summary.scanned += 1;
                    summary.matched += 1;
                    if !options.count_only {
                        page.push(session, line_no, out)?;
                    }
                }
                Err(message) => {
                    progress.finish();
                    return Err(Failure::Invalid(format!("line {line_no}: {message}")));
                }
            }
        }
        progress.advance(bytes as u64, summary.scanned);
        if let Some(failure) = stop {
            if !full(&page) {
                progress.finish();
                return Err(failure);
            }
        }
    }
    progress.finish();
    if !options.count_only {
        page.finish(out)?;
    }
    Ok(summary.paged(options, &page))
}

/// Parses one JSON line into a session and matches it.
fn evaluate(program: &Program, line: &[u8]) -> Result<Line, String> {
    Ok(match session_from_line(line)? {
        None => Line::Blank,
        Some(session) if program.matches(&session) => Line::Match(session),
        Some(_) => Line::Miss,
    })
}

/// Parses one JSON line into a session; `None` for a blank line.
pub(crate) fn session_from_line(line: &[u8]) -> Result<Option<Session>, String> {
    let text = std::str::from_utf8(line).map_err(|e| {
        format!(
            "expected UTF-8 text, found an invalid byte at offset {}",
            e.valid_up_to()
        )
    })?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let props: Props =
        serde_json::from_str(text).map_err(|e| format!("invalid session JSON: {e}"))?;
    session_of(props.0).map(Some)
}

/// Builds a session from a JSON object's entries: string values, `$Roles`
/// also as an array; keys and duplicates checked as the store checks them.
pub(crate) fn session_of(entries: Vec<(String, Value)>) -> Result<Session, String> {
    let mut pairs = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let value = match value {
            Value::Text(v) => v,
            // A roles array stands for the set its roles string would.
            Value::Roles(roles) if key == ROLES => roles_to_string(&roles),
            Value::Roles(_) => {
                return Err(format!(
                    "the value of {key:?} must be a string (only $Roles may be an array)"
                ))
            }
        };
        pairs.push((key, value));
    }
    // Session::new checks keys and duplicates as the store does.
    Session::new(pairs).map_err(|e| e.to_string())
}

/// A session object's entries, in order, duplicates kept for the caller to
/// reject.
struct Props(Vec<(String, Value)>);

pub(crate) enum Value {
    Text(String),
    Roles(Vec<String>),
}

impl<'de> de::Deserialize<'de> for Props {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Props, D::Error> {
        struct PropsVisitor;
        impl<'de> Visitor<'de> for PropsVisitor {
            type Value = Props;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Props, A::Error> {
                let mut props = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    props.push((k, v));
                }
                Ok(Props(props))
            }
        }
        d.deserialize_map(PropsVisitor)
    }
}

impl<'de> de::Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string (or, for $Roles, an array of strings)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
                Ok(Value::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
                Ok(Value::Text(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                let mut roles = Vec::new();
                while let Some(r) = seq.next_element::<String>()? {
                    roles.push(r);
                }
                Ok(Value::Roles(roles))
            }
        }
        d.deserialize_any(ValueVisitor)
    }
}

/// A progress bar on stderr that appears only once a run takes a while.
struct Progress {
    bar: ProgressBar,
    started: Instant,
    shown: bool,
}

impl Progress {
    fn new(len: Option<u64>) -> Progress {
        let bar = match len {
            Some(len) => ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()),
        };
        let style = match len {
            Some(_) => ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}"),
            None => ProgressStyle::with_template("{spinner} {bytes} {msg}"),
        };
        if let Ok(style) = style {
            bar.set_style(style);
        }
        Progress {
            bar,
            started: Instant::now(),
            shown: false,
        }
    }

    fn advance(&mut self, bytes: u64, scanned: usize) {
        if !self.shown && self.started.elapsed() > PROGRESS_AFTER {
            // `stderr()` draws nothing when stderr is not a terminal.
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown = true;
        }
        self.bar.inc(bytes);
        self.bar.set_message(format!("{scanned} sessions"));
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// What [`read_line`] read.
pub(crate) enum LineRead {
    /// The end of the input.
    End,
    /// A line of this many bytes (its `\n` included).
    Line(usize),
    /// A line longer than [`MAX_LINE`]; what was read of it is dropped.
    TooLong,
}

/// Reads one line into `line` (cleared first), reading no more than
/// [`MAX_LINE`] bytes of it, so a file without newlines cannot fill memory.
pub(crate) fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<LineRead> {
    line.clear();
    Ok(
        match reader.take(MAX_LINE as u64 + 1).read_until(b'\n', line)? {
            0 => LineRead::End,
            n if n > MAX_LINE => {
                line.clear();
                LineRead::TooLong
            }
            n => LineRead::Line(n),
        },
    )
}

/// The message for line `line_no` being longer than [`MAX_LINE`].
fn too_long(line_no: usize) -> String {
    format!("line {line_no}: longer than {} MiB", MAX_LINE >> 20)
}

/// Loads JSON-lines sessions from `path` (`-`: stdin); each needs a
/// `$SessionId` no other line has, and no line is longer than [`MAX_LINE`].
/// Returns their ids.
pub(crate) fn load_store(store: &SessionStore, path: &str) -> Result<Vec<String>, Failure> {
    let reader: Box<dyn Read> = if path == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(path).map_err(|e| {
            Failure::Io(io::Error::new(e.kind(), format!("cannot open {path}: {e}")))
        })?)
    };
    let mut reader = BufReader::new(reader);
    let mut ids = Vec::new();
    let mut line = Vec::new();
    let mut line_no = 0usize;
    loop {
        let read = read_line(&mut reader, &mut line)?;
        line_no += 1;
        match read {
            LineRead::End => return Ok(ids),
            LineRead::TooLong => {
                return Err(Failure::Invalid(format!("{path}: {}", too_long(line_no))))
            }
            LineRead::Line(_) => {}
        }
        let invalid =
            |message: String| Failure::Invalid(format!("{path}: line {line_no}: {message}"));
        let Some(session) = session_from_line(&line).map_err(invalid)? else {
            continue;
        };
        let id = session.id().map(|id| id.to_string());
        store
            .insert_session(session)
            .map_err(|e| invalid(e.to_string()))?;
        ids.extend(id);
    }
}
