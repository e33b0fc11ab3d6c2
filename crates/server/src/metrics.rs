//! Session metric collectors and the server's own figures (SPEC 11.9).
//!
//! Not built yet: every `metrics.*` method answers -32601 until it is.

use serde_json::{Map, Value};

use crate::error::RpcError;
use crate::methods::{Call, Need};

/// The server's collectors.
#[derive(Default)]
pub(crate) struct Collectors {}

/// A parsed `metrics.*` request.
pub(crate) enum Request {}

impl Request {
    pub(crate) fn parse(method: &str, _p: Map<String, Value>) -> Result<Request, RpcError> {
        Err(RpcError::MethodNotFound(method.to_owned()))
    }

    pub(crate) fn needs(&self) -> Vec<Need> {
        match *self {}
    }

    pub(crate) async fn apply(self, _call: &mut Call<'_>) -> Result<Value, RpcError> {
        match self {}
    }
}
