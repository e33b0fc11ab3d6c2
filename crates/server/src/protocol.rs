//! JSON-RPC 2.0 framing (SPEC 11.1): reading one inbound message, writing
//! responses and notifications.

use serde_json::{json, Map, Value};

use crate::error::RpcError;

/// One inbound message, checked as far as the framing goes.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A request: answer it under `id`.
    Request {
        id: Value,
        method: String,
        params: Map<String, Value>,
    },
    /// A notification from the client (no id): nothing is answered.
    Notification,
    /// Not a request: answer this error (under `id`, `null` when unknown).
    Invalid { id: Value, error: RpcError },
}

/// Reads one text message.
pub(crate) fn parse(text: &str) -> Inbound {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Inbound::Invalid {
                id: Value::Null,
                error: RpcError::Parse(e.to_string()),
            }
        }
    };
    let mut object = match value {
        Value::Object(o) => o,
        Value::Array(_) => {
            return Inbound::Invalid {
                id: Value::Null,
                error: RpcError::InvalidRequest("batches are not supported".into()),
            }
        }
        _ => {
            return Inbound::Invalid {
                id: Value::Null,
                error: RpcError::InvalidRequest("a request is a JSON object".into()),
            }
        }
    };
    let id = object.remove("id");
    let invalid = |id: &Option<Value>, message: &str| Inbound::Invalid {
        id: match id {
            Some(v @ (Value::String(_) | Value::Number(_))) => v.clone(),
            _ => Value::Null,
        },
        error: RpcError::InvalidRequest(message.into()),
    };
    if object.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return invalid(&id, "\"jsonrpc\" must be \"2.0\"");
    }
    let method = match object.remove("method") {
        Some(Value::String(m)) => m,
        _ => return invalid(&id, "\"method\" must be a string"),
    };
    let id = match id {
        None => return Inbound::Notification,
        Some(v @ (Value::String(_) | Value::Number(_) | Value::Null)) => v,
        Some(_) => return invalid(&None, "\"id\" must be a string, a number or null"),
    };
    let params = match object.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => {
            return Inbound::Invalid {
                id,
                error: RpcError::params("params must be an object"),
            }
        }
    };
    Inbound::Request { id, method, params }
}

/// A response holding `result`.
pub(crate) fn response(id: &Value, result: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()
}

/// A response holding `error`.
pub(crate) fn error_response(id: &Value, error: &RpcError) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": error.to_json()}).to_string()
}

/// A notification.
pub(crate) fn notification(method: &str, params: Value) -> String {
    json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_errors() {
        let code = |t: &str| match parse(t) {
            Inbound::Invalid { error, id } => (error.code(), id),
            other => panic!("{t}: {other:?}"),
        };
        assert_eq!(code("{"), (-32700, Value::Null));
        assert_eq!(code("[]"), (-32600, Value::Null));
        assert_eq!(code("3"), (-32600, Value::Null));
        assert_eq!(code(r#"{"id":1,"method":"x"}"#), (-32600, json!(1)));
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":2,"method":7}"#),
            (-32600, json!(2))
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":3,"method":"m","params":[1]}"#),
            (-32602, json!(3))
        );
        assert!(matches!(
            parse(r#"{"jsonrpc":"2.0","method":"m"}"#),
            Inbound::Notification
        ));
        assert!(matches!(
            parse(r#"{"jsonrpc":"2.0","id":"a","method":"m","params":null}"#),
            Inbound::Request { .. }
        ));
    }
}
