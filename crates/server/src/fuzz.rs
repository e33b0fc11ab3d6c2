//! The message decoder and dispatcher without I/O, for the fuzz target
//! `fuzz/fuzz_targets/server_messages.rs`: one inbound text goes through the
//! JSON-RPC framing, `open`'s params or the method table's typed params, and
//! the permission check, exactly as a connection takes it.

use std::sync::OnceLock;

use crate::config::Config;
use crate::methods::{self, Request};
use crate::protocol::{self, Inbound};
use crate::security::Roles;

/// Roles with every kind of grant: global, by path (nearest assignment,
/// an empty one), by default, and through includes (with a cycle).
const ROLES: &str = r#"
[roles.OPS]
global = ["VIEW_SESSION", "MODIFY_SESSION", "REGISTER_HANDLER"]
paths = { "locks" = ["ACQUIRE_LOCK"], "locks/forbidden" = [], "alerts" = ["SEND_TO_SESSION"] }
includes = ["CLIENT"]

[roles.CLIENT]
default_path = ["ACQUIRE_LOCK"]
paths = { "a/b" = ["SEND_TO_SESSION"] }
includes = ["OPS"]

[roles.VIEWER]
global = ["VIEW_SESSION", "VIEW_SERVER"]
"#;

/// The role sets the fuzz target checks each request against.
const SESSIONS: [&[&str]; 4] = [&[], &["CLIENT"], &["VIEWER"], &["VIEWER", "UNDEFINED"]];

fn roles() -> &'static Roles {
    static ROLE_TABLE: OnceLock<Roles> = OnceLock::new();
    ROLE_TABLE.get_or_init(|| match Config::parse(ROLES) {
        Ok(config) => Roles::from_config(&config),
        Err(e) => panic!("the fuzz roles do not parse: {e}"),
    })
}

/// What one inbound text came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A notification from the client: nothing is answered.
    Notification,
    /// Answered with an error of this code before reaching a method.
    Rejected(i64),
    /// A request of `method`: the code of its answer up to the permission
    /// check for each role set (0 when it would be applied).
    Request {
        /// The method named.
        method: String,
        /// Per role set: 0, or the error code.
        codes: Vec<i64>,
    },
}

/// Decodes and dispatches `text` up to the permission check, with no
/// session and no I/O; never panics on any input.
#[doc(hidden)]
pub fn fuzz_decode(text: &str) -> Decoded {
    let (id, method, params) = match protocol::parse(text) {
        Inbound::Notification => return Decoded::Notification,
        Inbound::Invalid { id, error } => {
            // The answer must be writable, with a null or scalar id.
            let _ = protocol::error_response(&id, &error);
            return Decoded::Rejected(error.code());
        }
        Inbound::Request { id, method, params } => (id, method, params),
    };
    let codes = if method == "open" {
        let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        let code = match crate::connection::open_params(params, peer) {
            Ok(_) => 0,
            Err(e) => e.code(),
        };
        vec![code; SESSIONS.len()]
    } else {
        match Request::parse(&method, params) {
            Err(e) => vec![e.code(); SESSIONS.len()],
            Ok(request) => {
                let needs = request.needs();
                SESSIONS
                    .iter()
                    .map(|session| {
                        let session: Vec<String> = session.iter().map(|r| r.to_string()).collect();
                        match methods::check_roles(roles(), &session, &needs) {
                            Ok(()) => 0,
                            Err(e) => {
                                let _ = protocol::error_response(&id, &e);
                                e.code()
                            }
                        }
                    })
                    .collect()
            }
        }
    };
    Decoded::Request { method, codes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_a_connection() {
        assert_eq!(fuzz_decode("{"), Decoded::Rejected(-32700));
        assert_eq!(fuzz_decode("[]"), Decoded::Rejected(-32600));
        assert_eq!(
            fuzz_decode(r#"{"jsonrpc":"2.0","method":"close"}"#),
            Decoded::Notification
        );
        let codes = |t: &str| match fuzz_decode(t) {
            Decoded::Request { codes, .. } => codes,
            other => panic!("{t}: {other:?}"),
        };
        // [], [CLIENT] (includes OPS), [VIEWER], [VIEWER, UNDEFINED]
        assert_eq!(
            codes(r#"{"jsonrpc":"2.0","id":1,"method":"clients.count","params":{"filter":"all"}}"#),
            [103, 0, 0, 0]
        );
        assert_eq!(
            codes(
                r#"{"jsonrpc":"2.0","id":1,"method":"locks.acquire","params":{"name":"locks/forbidden/x"}}"#
            ),
            [103, 103, 103, 103]
        );
        assert_eq!(
            codes(r#"{"jsonrpc":"2.0","id":1,"method":"locks.acquire","params":{"name":"z"}}"#),
            [103, 0, 103, 103]
        );
        assert_eq!(
            codes(r#"{"jsonrpc":"2.0","id":1,"method":"locks.list"}"#),
            [103, 103, 0, 0]
        );
        assert_eq!(
            codes(r#"{"jsonrpc":"2.0","id":1,"method":"clients.close","params":{}}"#),
            [-32602; 4]
        );
        assert_eq!(
            codes(r#"{"jsonrpc":"2.0","id":1,"method":"open","params":{"client_type":"FAX"}}"#),
            [-32602; 4]
        );
        assert_eq!(
            codes(r#"{"jsonrpc":"2.0","id":1,"method":"nope"}"#),
            [-32601; 4]
        );
    }
}
