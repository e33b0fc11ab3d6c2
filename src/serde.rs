//! `Serialize`/`Deserialize` for the library's value types (feature `serde`).
//!
//! - A [`Filter`] and a [`Program`] travel as the filter's canonical text;
//!   deserializing parses it (with the default [`Limits`](crate::Limits)),
//!   so a bad filter is a deserialization error carrying the positioned
//!   message.
//! - A [`Session`] travels as a map of its properties (`$Roles` as a roles
//!   string); deserializing validates it as [`Session::new`] does.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::session::Session;
use crate::syntax::Filter;
use crate::vm::Program;

impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Filter, D::Error> {
        let text = String::deserialize(deserializer)?;
        Filter::parse(&text).map_err(de::Error::custom)
    }
}

impl Serialize for Program {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Program {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Program, D::Error> {
        let text = String::deserialize(deserializer)?;
        Program::compile(&text).map_err(de::Error::custom)
    }
}

impl Serialize for Session {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let props = self.properties();
        let mut map = serializer.serialize_map(Some(props.len()))?;
        for (k, v) in &props {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Session {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Session, D::Error> {
        struct Props;
        impl<'de> Visitor<'de> for Props {
            type Value = Vec<(String, String)>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of property keys to string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some(entry) = map.next_entry::<String, String>()? {
                    out.push(entry);
                }
                Ok(out)
            }
        }
        let props = deserializer.deserialize_map(Props)?;
        Session::new(props).map_err(de::Error::custom)
    }
}
