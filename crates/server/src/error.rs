//! Errors of the protocol, mapped to their wire codes in one place (SPEC
//! section 11.1).

use std::fmt;

use serde_json::{json, Value};
use session_filter::{Error as StoreError, FilterError};

use crate::security::{GlobalPermission, PathPermission};

/// Why a request failed; [`RpcError::code`] gives its JSON-RPC error code.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum RpcError {
    /// -32700: the text is not JSON.
    Parse(String),
    /// -32600: JSON, but not a request (a batch, a missing method, …).
    InvalidRequest(String),
    /// -32601: no such method.
    MethodNotFound(String),
    /// -32602: a missing or mistyped field, or a value out of range.
    InvalidParams(String),
    /// 101: the session closed before the request could be answered.
    SessionClosed,
    /// 102: no answer before the timeout.
    TimedOut,
    /// 103: a permission is missing (or, for `open`, the credentials are
    /// refused).
    AccessDenied {
        /// The first missing permission, if one is to blame.
        permission: Option<String>,
        /// The path where a path permission applies.
        path: Option<String>,
        /// What happened, for people.
        message: String,
    },
    /// 106: a bad filter (positioned), roles string, key, or a limit passed.
    InvalidData {
        /// What is wrong.
        message: String,
        /// The filter error's position, when it is one.
        data: Option<Value>,
    },
    /// 107: no session has this id.
    NoSuchSession(String),
    /// 109: the target has no handler for the path.
    Unhandled(String),
    /// 111: a method that the session's state does not allow (before
    /// `open`, `open` twice).
    IncompatibleState(String),
    /// 112: the member that holds the session did not answer.
    ClusterRouting(String),
    /// 120: a pending request was cancelled.
    Cancelled(String),
    /// 9003: a message recipient answered with an error.
    Rejected(String),
    /// An error another cluster member answered, passed on as it came.
    Remote {
        /// Its code.
        code: i64,
        /// Its message.
        message: String,
        /// Its data, if any.
        data: Option<Value>,
    },
}

impl RpcError {
    /// The JSON-RPC error code.
    pub fn code(&self) -> i64 {
        match self {
            RpcError::Parse(_) => -32700,
            RpcError::InvalidRequest(_) => -32600,
            RpcError::MethodNotFound(_) => -32601,
            RpcError::InvalidParams(_) => -32602,
            RpcError::SessionClosed => 101,
            RpcError::TimedOut => 102,
            RpcError::AccessDenied { .. } => 103,
            RpcError::InvalidData { .. } => 106,
            RpcError::NoSuchSession(_) => 107,
            RpcError::Unhandled(_) => 109,
            RpcError::IncompatibleState(_) => 111,
            RpcError::ClusterRouting(_) => 112,
            RpcError::Cancelled(_) => 120,
            RpcError::Rejected(_) => 9003,
            RpcError::Remote { code, .. } => *code,
        }
    }

    /// A global permission that the session lacks.
    pub fn missing(permission: GlobalPermission) -> RpcError {
        RpcError::AccessDenied {
            permission: Some(permission.name().to_owned()),
            path: None,
            message: format!("the session lacks the permission {}", permission.name()),
        }
    }

    /// A path permission that the session lacks on `path`.
    pub fn missing_on_path(permission: PathPermission, path: &str) -> RpcError {
        RpcError::AccessDenied {
            permission: Some(permission.name().to_owned()),
            path: Some(path.to_owned()),
            message: format!(
                "the session lacks the permission {} on the path {path:?}",
                permission.name()
            ),
        }
    }

    /// Invalid params, with a message.
    pub fn params(message: impl Into<String>) -> RpcError {
        RpcError::InvalidParams(message.into())
    }

    /// Invalid data (106) without a position.
    pub fn data(message: impl Into<String>) -> RpcError {
        RpcError::InvalidData {
            message: message.into(),
            data: None,
        }
    }

    /// The `error` object of a response.
    pub fn to_json(&self) -> Value {
        if let RpcError::Remote {
            code,
            message,
            data,
        } = self
        {
            let mut error = json!({"code": code, "message": message});
            if let Some(data) = data {
                error["data"] = data.clone();
            }
            return error;
        }
        let mut error = json!({"code": self.code(), "message": self.to_string()});
        let data = match self {
            RpcError::AccessDenied {
                permission, path, ..
            } => {
                let mut data = serde_json::Map::new();
                if let Some(p) = permission {
                    data.insert("permission".into(), p.clone().into());
                }
                if let Some(p) = path {
                    data.insert("path".into(), p.clone().into());
                }
                (!data.is_empty()).then_some(Value::Object(data))
            }
            RpcError::InvalidData { data, .. } => data.clone(),
            RpcError::NoSuchSession(id) => Some(json!({ "session_id": id })),
            RpcError::Rejected(text) => Some(Value::String(text.clone())),
            _ => None,
        };
        if let Some(data) = data {
            error["data"] = data;
        }
        error
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcError::Parse(m) => write!(f, "parse error: {m}"),
            RpcError::InvalidRequest(m) => write!(f, "invalid request: {m}"),
            RpcError::MethodNotFound(m) => write!(f, "unknown method {m:?}"),
            RpcError::InvalidParams(m) => write!(f, "invalid params: {m}"),
            RpcError::SessionClosed => write!(f, "the session closed"),
            RpcError::TimedOut => write!(f, "the request timed out"),
            RpcError::AccessDenied { message, .. } => write!(f, "access denied: {message}"),
            RpcError::InvalidData { message, .. } => write!(f, "invalid data: {message}"),
            RpcError::NoSuchSession(id) => write!(f, "no session has the id {id:?}"),
            RpcError::Unhandled(p) => write!(f, "the session has no handler for the path {p:?}"),
            RpcError::IncompatibleState(m) => write!(f, "incompatible state: {m}"),
            RpcError::ClusterRouting(m) => write!(f, "cluster routing: {m}"),
            RpcError::Cancelled(m) => write!(f, "cancelled: {m}"),
            RpcError::Rejected(m) => write!(f, "the recipient rejected the request: {m}"),
            RpcError::Remote { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for RpcError {}

impl From<StoreError> for RpcError {
    fn from(e: StoreError) -> RpcError {
        match e {
            StoreError::Filter(f) => filter_error(&f),
            StoreError::UnknownSession(id) => RpcError::NoSuchSession(id),
            other => RpcError::data(other.to_string()),
        }
    }
}

/// 106 with the position of SPEC section 5 in `data`.
pub fn filter_error(e: &FilterError) -> RpcError {
    RpcError::InvalidData {
        message: format!("invalid filter: {e}"),
        data: Some(json!({
            "line": e.line(),
            "column": e.column(),
            "offset": e.offset(),
            "message": e.message(),
        })),
    }
}
