//! `session-filter`: the command-line face of the library (SPEC section 7).
//!
//! Exit codes: 0 on success, 2 on invalid input of any kind (filter, JSON,
//! roles string, usage), 1 on an I/O failure (NATS unreachable included),
//! 3 for a partial cluster result.

mod churn;
mod client;
mod cluster;
mod fetch;
mod select;
mod server;
mod watch;

use std::io::{self, Read, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use session_filter::properties::SESSION_ID;
use session_filter::syntax::Span;
use session_filter::{
    escape, roles_to_string, string_to_roles, Filter, FilterError, FilterErrorKind, Limits,
    Program, SessionStore,
};

/// Parse, check and evaluate session filters.
#[derive(Parser, Debug)]
#[command(name = "session-filter", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check a filter and print its canonical form.
    Check {
        /// The filter, or `-` to read it from stdin. A filter that starts
        /// with `-` follows `--`.
        filter: String,
    },
    /// Print the ids (or chosen properties) of the sessions that match a
    /// filter.
    ///
    /// Sessions are read as JSON lines (one object a line, string values,
    /// `$Roles` as a roles string or an array of strings) from FILE, or from
    /// stdin when FILE is `-`; without FILE, from a built-in demo population
    /// of 5000 sessions. Ids are printed in input order (the line number for
    /// a session without `$SessionId`); a summary goes to stderr.
    ///
    /// With --properties or --all-properties each match is printed as a JSON
    /// object of its `$SessionId` and those properties (`$Roles` as a roles
    /// string, absent keys left out); a session without `$SessionId` gets
    /// its line number there, as a JSON number.
    ///
    /// Without --sort matches keep input order, and reading stops as soon as
    /// the page (--offset, --limit) is printed. With --sort KEY they are
    /// ordered by KEY's value as a byte string, ascending (descending with
    /// --desc); sessions without KEY come after those with it either way;
    /// ties go by `$SessionId` ascending (a session without one after those
    /// with one), then by line. Sorted, the page is printed once the whole
    /// input is read (so a malformed line leaves stdout empty), and only
    /// `offset + limit` matches are kept in memory meanwhile.
    Select {
        /// The filter, or `-` to read it from stdin. A filter that starts
        /// with `-` follows `--`.
        filter: String,
        /// JSON-lines sessions, or `-` for stdin.
        file: Option<String>,
        /// Print only the number of matching sessions (all of them: paging
        /// and properties are ignored).
        #[arg(long)]
        count: bool,
        /// No summary line on stderr.
        #[arg(long, short)]
        quiet: bool,
        /// Print each match as a JSON object of `$SessionId` and these keys
        /// (comma-separated).
        #[arg(
            long,
            value_name = "K1,K2",
            value_delimiter = ',',
            conflicts_with = "all_properties"
        )]
        properties: Option<Vec<String>>,
        /// Print each match as a JSON object of all its properties.
        #[arg(long)]
        all_properties: bool,
        /// Order the matches by this property (`$SessionId` included).
        #[arg(long, value_name = "KEY")]
        sort: Option<String>,
        /// With --sort, descending.
        #[arg(long)]
        desc: bool,
        /// Skip this many matches (after sorting).
        #[arg(long, value_name = "N", default_value_t = 0)]
        offset: usize,
        /// Print at most this many matches.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Print the compiled program of a filter, one instruction a line, then
    /// the plan an indexed store would use (measured on the demo population).
    Explain {
        /// The filter, or `-` to read it from stdin. A filter that starts
        /// with `-` follows `--`.
        filter: String,
    },
    /// Replay a log of session events against standing filters and print
    /// how each line changed which sessions they match.
    ///
    /// FILTERS holds one `{"id": ID, "filter": TEXT}` a line (ids are
    /// strings or integers, unique, in set order). EVENTS (stdin when absent
    /// or `-`) holds one event a line:
    /// `{"op":"open","properties":{…}}` (a session, as `select` reads it),
    /// `{"op":"set","id"|"where":…,"properties":{KEY: VALUE|null}}` (null
    /// removes), `{"op":"roles","id"|"where":…,"remove":[…],"add":[…]}` and
    /// `{"op":"close","id"|"where":…}`; "id" names one open session and
    /// "where" is a filter. Blank lines are skipped in both.
    ///
    /// Prints, for each event line N, every membership change it caused,
    /// by session id and then set order:
    /// `{"line":N,"session":ID,"filter":FID,"event":"entered"|"left"}`.
    Watch {
        /// The standing filters, JSON lines (or `-` for stdin).
        filters: String,
        /// The session events, JSON lines, or `-` for stdin (the default).
        events: Option<String>,
        /// Print `{"line":N,"session":ID,"first":FID|null}` whenever a
        /// session's first matching filter (in set order) changes.
        #[arg(long, conflicts_with = "counts")]
        first_match: bool,
        /// Print only, at the end, an object mapping each filter id to the
        /// number of open sessions it matches.
        #[arg(long)]
        counts: bool,
    },
    /// Print a string escaped for use inside a quoted value.
    Escape {
        /// The string to escape.
        string: String,
    },
    /// Convert between roles strings and JSON arrays.
    Roles {
        #[command(subcommand)]
        command: RolesCommand,
    },
    /// Serve sessions to a cluster over NATS until SIGTERM or Ctrl-C (then
    /// deregister): those of FILE (JSON lines, as `select` reads them), or
    /// part I of N of the demo population.
    Member(cluster::MemberArgs),
    /// Run one bulk operation on every member of a cluster over NATS. Prints
    /// the total (for `select`, the ids as JSON lines) on stdout and who
    /// answered on stderr; exits 3 when the result is partial.
    Cluster(cluster::ClusterArgs),
    /// Run the session server: clients open sessions over WebSocket at
    /// ws://HOST:PORT/session (SPEC section 11). SIGTERM closes every
    /// session and stops.
    Server(server::Args),
    /// Read a password on stdin and print its argon2id PHC string, for
    /// `password_hash` in the server's configuration.
    HashPassword,
    /// A client of the session server: open a session and count, fetch,
    /// close, change, listen, lock, send or handle; prints JSON lines.
    Client(client::Args),
}

#[derive(Subcommand, Debug)]
enum RolesCommand {
    /// Parse a roles string and print its roles as a JSON array.
    Parse {
        /// The roles string, such as `"admin","client"`.
        string: String,
    },
    /// Format a JSON array of roles as a canonical roles string.
    Format {
        /// The roles, as a JSON array of strings such as `["admin","client"]`.
        json_array: String,
    },
}

/// Why the command failed, and so its exit code.
pub(crate) enum Failure {
    /// Invalid input: exit 2, after printing the message.
    Invalid(String),
    /// An I/O failure: exit 1.
    Io(io::Error),
    /// A partial cluster result, already printed and explained: exit 3.
    Partial,
    /// A command run for the user (`client lock`) exited with this status.
    Status(i32),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Io(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Invalid(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        // A reader that went away (`| head`) is not worth a message.
        Err(Failure::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::from(1),
        Err(Failure::Io(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
        Err(Failure::Partial) => ExitCode::from(3),
        Err(Failure::Status(code)) => ExitCode::from(code.clamp(1, 255) as u8),
    }
}

fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Check { filter } => {
            let text = filter_text(filter)?;
            let parsed = parse_filter(&text)?;
            print_line(&parsed.to_string())
        }
        Command::Select {
            filter,
            file,
            count,
            quiet,
            properties,
            all_properties,
            sort,
            desc,
            offset,
            limit,
        } => {
            if filter == "-" && file.as_deref() == Some("-") {
                return Err(Failure::Invalid(
                    "the filter and the sessions cannot both come from stdin".into(),
                ));
            }
            let projection = match properties {
                _ if all_properties => fetch::Projection::All,
                None => fetch::Projection::Id,
                Some(keys) => fetch::Projection::Keys(property_keys(keys)?),
            };
            let order = match sort {
                Some(key) => {
                    fetch::check_key(&key).map_err(|e| Failure::Invalid(format!("--sort: {e}")))?;
                    fetch::Order::By { key, desc }
                }
                None if desc => {
                    return Err(Failure::Invalid(
                        "--desc needs --sort KEY: without --sort, matches keep input order \
                         (for descending ids, use --sort '$SessionId' --desc)"
                            .into(),
                    ))
                }
                None => fetch::Order::Input,
            };
            let program = compile(&filter_text(filter)?)?;
            let options = select::Options {
                count_only: count,
                quiet,
                request: fetch::Request {
                    projection,
                    order,
                    offset,
                    limit,
                },
            };
            select::run(&program, file.as_deref(), &options)
        }
        Command::Explain { filter } => {
            let text = filter_text(filter)?;
            let program = compile(&text)?;
            // The plan an indexed store would use, shown on the demo population.
            let store = SessionStore::new();
            for i in 0..select::DEMO_SESSIONS as u64 {
                store
                    .insert(session_filter::demo::properties(i))
                    .map_err(|e| Failure::Invalid(format!("demo population: {e}")))?;
            }
            let explained = store
                .explain(&text)
                .map_err(|e| Failure::Invalid(e.to_string()))?;
            print_line(&format!("filter: {program}"))?;
            print_line(&format!(
                "{}\n(plan measured on the demo population of {} sessions)",
                explained.trim_end(),
                select::DEMO_SESSIONS
            ))
        }
        Command::Watch {
            filters,
            events,
            first_match,
            counts,
        } => {
            let mode = match (first_match, counts) {
                (true, _) => watch::Mode::FirstMatch,
                (_, true) => watch::Mode::Counts,
                _ => watch::Mode::Changes,
            };
            watch::run(&filters, events.as_deref(), mode)
        }
        Command::Escape { string } => print_line(&escape(&string)),
        Command::Roles {
            command: RolesCommand::Parse { string },
        } => {
            let roles = string_to_roles(&string).map_err(|e| Failure::Invalid(e.to_string()))?;
            let json =
                serde_json::to_string(&roles).map_err(|e| Failure::Io(io::Error::other(e)))?;
            print_line(&json)
        }
        Command::Roles {
            command: RolesCommand::Format { json_array },
        } => {
            let roles: Vec<String> = serde_json::from_str(&json_array)
                .map_err(|e| Failure::Invalid(format!("expected a JSON array of strings, {e}")))?;
            print_line(&roles_to_string(&roles))
        }
        Command::Member(args) => cluster::member(args),
        Command::Cluster(args) => cluster::run(args),
        Command::Server(args) => server::run(args),
        Command::HashPassword => print_line(&server::hash(&mut io::stdin().lock())?),
        Command::Client(args) => client::run(args),
    }
}

/// The keys of `--properties`, checked, without duplicates or `$SessionId`
/// (which every object starts with).
fn property_keys(keys: Vec<String>) -> Result<Vec<String>, Failure> {
    let mut distinct: Vec<String> = Vec::with_capacity(keys.len());
    for key in keys {
        fetch::check_key(&key).map_err(|e| Failure::Invalid(format!("--properties: {e}")))?;
        if key != SESSION_ID && !distinct.contains(&key) {
            distinct.push(key);
        }
    }
    Ok(distinct)
}

/// The filter argument, or the filter read from stdin when it is `-`.
///
/// Stdin is read only up to the length limit; past it the rest is counted
/// and dropped, so a huge input costs no memory, and the error is the one
/// the library gives for an over-long filter.
fn filter_text(arg: String) -> Result<String, Failure> {
    if arg != "-" {
        return Ok(arg);
    }
    let max = Limits::default().max_len();
    let mut stdin = io::stdin().lock();
    let mut bytes = Vec::new();
    (&mut stdin).take(max as u64 + 1).read_to_end(&mut bytes)?;
    let too_long = bytes.len() > max;
    let total = if too_long {
        bytes.len() + io::copy(&mut stdin, &mut io::sink())? as usize
    } else {
        bytes.len()
    };
    bytes.truncate(max);
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        // A character cut in two by the length limit is not an encoding error.
        Err(e) if too_long && e.utf8_error().error_len().is_none() => {
            let valid = e.utf8_error().valid_up_to();
            let mut bytes = e.into_bytes();
            bytes.truncate(valid);
            String::from_utf8(bytes).unwrap_or_default()
        }
        Err(e) => {
            return Err(Failure::Invalid(format!(
                "expected UTF-8 filter text on stdin, found an invalid byte at offset {}",
                e.utf8_error().valid_up_to()
            )))
        }
    };
    if !too_long {
        return Ok(text);
    }
    // Report hostile nesting in the part that fits as the library would,
    // and otherwise the length.
    let err = match Filter::parse(&text) {
        Err(e) if matches!(e.kind(), FilterErrorKind::TooDeep { .. }) => e,
        _ => {
            let at = text.len() as u32;
            FilterError::new(
                FilterErrorKind::TooLong { len: total, max },
                Span::new(at, at),
                &text,
            )
        }
    };
    Err(filter_failure(&err))
}

/// Parses a filter, turning an error into the `LINE:COL: MESSAGE` report
/// with the caret rendering.
fn parse_filter(text: &str) -> Result<Filter, Failure> {
    Filter::parse(text).map_err(|e| filter_failure(&e))
}

/// Parses and compiles a filter.
fn compile(text: &str) -> Result<Program, Failure> {
    let filter = parse_filter(text)?;
    Program::new(&filter).map_err(|e| Failure::Invalid(format!("cannot compile the filter: {e}")))
}

fn filter_failure(e: &FilterError) -> Failure {
    Failure::Invalid(format!("{e}\n{}", e.render()))
}

fn print_line(line: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    out.write_all(line.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}
