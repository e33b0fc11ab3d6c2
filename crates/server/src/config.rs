//! The TOML configuration (SPEC section 11.4) and the embedded default.
//!
//! Every table refuses unknown keys, every permission name is checked, and
//! a semantic error (a role included but never defined, a malformed password
//! hash, a bad regular expression, a bad collector) names the line it is on.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::security::{GlobalPermission, PathPermission};

/// A configuration that cannot be used, with the line it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line of the problem, when one is to blame.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "configuration line {line}: {}", self.message),
            None => write!(f, "configuration: {}", self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The `[server]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// `$ServerName` of its sessions.
    pub name: String,
    /// `$Connector` of its sessions.
    pub connector: String,
    /// The address to listen on; port 0 picks a free one.
    pub listen: String,
    /// How long a disconnected session waits for its client.
    pub reconnect_timeout_ms: u64,
    /// How often the server pings each connection.
    pub ping_interval_ms: u64,
    /// The most messages one session's outbound queue holds.
    pub max_queued_messages: usize,
    /// The largest inbound message, all its frames together.
    pub max_message_bytes: usize,
    /// Origins (`scheme://host[:port]`) whose pages may open sessions, beside
    /// the server's own origin. A request without `Origin` (not a browser)
    /// is always allowed.
    pub allowed_origins: Vec<String>,
    /// Host names (without port) that the console and session endpoint
    /// answer to, beside the listening address, `localhost` and `127.0.0.1`.
    pub allowed_hosts: Vec<String>,
}

impl Default for ServerSection {
    fn default() -> ServerSection {
        ServerSection {
            name: "server-1".into(),
            connector: "default".into(),
            listen: "127.0.0.1:8080".into(),
            reconnect_timeout_ms: 60_000,
            ping_interval_ms: 20_000,
            max_queued_messages: 10_000,
            max_message_bytes: 1 << 20,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// The `[anonymous]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnonymousSection {
    /// Whether sessions without a principal are allowed.
    pub allow: bool,
    /// The roles they get.
    pub roles: Vec<String>,
}

/// One `[principals.NAME]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSection {
    /// The argon2id PHC string of its password.
    pub password_hash: Spanned<String>,
    /// Its roles.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// One `[roles.NAME]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleSection {
    /// Global permissions.
    pub global: Vec<GlobalPermission>,
    /// Path permissions where no path assignment applies.
    pub default_path: Vec<PathPermission>,
    /// Path permissions by path.
    pub paths: BTreeMap<String, Vec<PathPermission>>,
    /// Roles whose permissions this one includes.
    pub includes: Vec<Spanned<String>>,
}

/// One `[[trusted_properties]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedProperty {
    /// The user property key.
    pub key: Spanned<String>,
    /// The values allowed.
    #[serde(default)]
    pub values: Option<Vec<String>>,
    /// A regular expression the whole value must match.
    #[serde(default)]
    pub regex: Option<Spanned<String>>,
}

/// One `[[metrics.collectors]]` entry (SPEC 11.9).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorSection {
    /// The collector's name.
    pub name: Spanned<String>,
    /// Its filter.
    pub filter: Spanned<String>,
    /// Group-by keys.
    #[serde(default)]
    pub group_by: Vec<Spanned<String>>,
    /// Most groups kept (1 to 10 000; default 250).
    #[serde(default)]
    pub max_groups: Option<Spanned<u64>>,
    /// Drop groups that fall to zero.
    #[serde(default)]
    pub remove_empty: bool,
    /// Put on `/metrics`.
    #[serde(default = "yes")]
    pub export: bool,
}

fn yes() -> bool {
    true
}

impl CollectorSection {
    /// The collector it declares, defaults filled in.
    pub(crate) fn spec(&self) -> crate::metrics::Spec {
        crate::metrics::Spec {
            name: self.name.get_ref().clone(),
            filter: self.filter.get_ref().clone(),
            group_by: self.group_by.iter().map(|k| k.get_ref().clone()).collect(),
            max_groups: self
                .max_groups
                .as_ref()
                .map(|m| *m.get_ref())
                .unwrap_or(crate::metrics::DEFAULT_MAX_GROUPS),
            remove_empty: self.remove_empty,
            export: self.export,
        }
    }
}

/// The `[metrics]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// A separate address for `/metrics`, served there to any peer.
    pub listen: Option<String>,
    /// Collectors declared at start.
    pub collectors: Vec<CollectorSection>,
}

/// The `[cluster]` table (SPEC 12).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// The NATS server to join a cluster over (`--nats` wins).
    pub nats: Option<String>,
    /// The cluster's name (`--cluster` wins).
    pub name: Option<String>,
    /// How long an operation waits for a member.
    pub request_timeout_ms: u64,
}

impl Default for ClusterSection {
    fn default() -> ClusterSection {
        ClusterSection {
            nats: None,
            name: None,
            request_timeout_ms: 2_000,
        }
    }
}

/// The whole configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`.
    pub server: ServerSection,
    /// `[anonymous]`; without it anonymous sessions are refused.
    pub anonymous: Option<AnonymousSection>,
    /// `[principals.NAME]`.
    pub principals: BTreeMap<String, PrincipalSection>,
    /// `[roles.NAME]`.
    pub roles: BTreeMap<String, RoleSection>,
    /// `[[trusted_properties]]`.
    pub trusted_properties: Vec<TrustedProperty>,
    /// `[metrics]`.
    pub metrics: MetricsSection,
    /// `[cluster]`.
    pub cluster: ClusterSection,
    /// The text it was read from, for line numbers.
    #[serde(skip)]
    source: String,
}

impl Config {
    /// Reads a configuration; the error names the line.
    ///
    /// ```
    /// let config = session_filter_server::Config::parse(r#"
    /// [server]
    /// name = "edge-1"
    /// [anonymous]
    /// allow = true
    /// roles = ["CLIENT"]
    /// "#)?;
    /// assert_eq!(config.server.name, "edge-1");
    /// let bad = session_filter_server::Config::parse("[roles.A]\nglobal = [\"FLY\"]\n");
    /// assert_eq!(bad.unwrap_err().line, Some(2));
    /// # Ok::<(), session_filter_server::ConfigError>(())
    /// ```
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError {
            line: e.span().map(|s| line_of(text, s.start)),
            message: e.message().trim().to_owned(),
        })?;
        config.source = text.to_owned();
        config.validate()?;
        Ok(config)
    }

    /// The embedded default of SPEC 11.4, with `admin`'s password hash.
    pub fn embedded_default(admin_password_hash: &str) -> Config {
        let text = format!(
            r#"
[server]
name = "server-1"
listen = "127.0.0.1:8080"

[anonymous]
allow = true
roles = ["CLIENT"]

[principals.admin]
password_hash = "{admin_password_hash}"
roles = ["ADMINISTRATOR"]

[roles.ADMINISTRATOR]
global = ["VIEW_SESSION", "MODIFY_SESSION", "REGISTER_HANDLER", "VIEW_SERVER", "CONTROL_SERVER"]
default_path = ["ACQUIRE_LOCK", "SEND_TO_SESSION"]

[roles.OPERATOR]
global = ["VIEW_SESSION", "MODIFY_SESSION", "REGISTER_HANDLER"]
"#
        );
        Config::parse(&text).expect("the embedded default configuration is valid")
    }

    /// The line (1-based) of a byte offset in the text this was read from.
    pub fn line(&self, span: Range<usize>) -> usize {
        line_of(&self.source, span.start)
    }

    fn error<T>(&self, span: Range<usize>, message: impl Into<String>) -> Result<T, ConfigError> {
        Err(ConfigError {
            line: Some(self.line(span)),
            message: message.into(),
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.server.listen.parse::<SocketAddr>().is_err() {
            return Err(ConfigError {
                line: self.find_line("listen"),
                message: format!(
                    "listen {:?} is not an address such as 127.0.0.1:8080",
                    self.server.listen
                ),
            });
        }
        if let Some(listen) = &self.metrics.listen {
            if listen.parse::<SocketAddr>().is_err() {
                return Err(ConfigError {
                    line: self
                        .source
                        .find("[metrics]")
                        .map(|at| line_of(&self.source, at) + 1),
                    message: format!(
                        "[metrics] listen {listen:?} is not an address such as 127.0.0.1:9100"
                    ),
                });
            }
        }
        for (key, value) in [
            (
                "max_queued_messages",
                self.server.max_queued_messages as u64,
            ),
            ("max_message_bytes", self.server.max_message_bytes as u64),
            ("ping_interval_ms", self.server.ping_interval_ms),
        ] {
            if value == 0 {
                return Err(ConfigError {
                    line: self.find_line(key),
                    message: format!("{key} must be at least 1"),
                });
            }
        }
        for role in self.roles.values() {
            for included in &role.includes {
                if !self.roles.contains_key(included.get_ref()) {
                    return self.error(
                        included.span(),
                        format!(
                            "the role {:?} is included but never defined",
                            included.get_ref()
                        ),
                    );
                }
            }
        }
        for (name, principal) in &self.principals {
            let hash = &principal.password_hash;
            if let Err(e) = argon2::PasswordHash::new(hash.get_ref()) {
                return self.error(
                    hash.span(),
                    format!("the password hash of {name:?} is not a PHC string: {e}"),
                );
            }
        }
        for trusted in &self.trusted_properties {
            if let Err(e) = session_filter::validate_user_key(trusted.key.get_ref()) {
                return self.error(trusted.key.span(), e.to_string());
            }
            if let Some(regex) = &trusted.regex {
                if let Err(e) = crate::security::whole_match_regex(regex.get_ref()) {
                    return self.error(regex.span(), format!("bad regular expression: {e}"));
                }
            }
            if trusted.values.is_none() && trusted.regex.is_none() {
                return self.error(
                    trusted.key.span(),
                    "a trusted property needs `values` or `regex`",
                );
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for collector in &self.metrics.collectors {
            let spec = collector.spec();
            let name = &collector.name;
            if let Err(e) = spec.check_params() {
                let span = match &collector.max_groups {
                    Some(m) if !name.get_ref().is_empty() => m.span(),
                    _ => name.span(),
                };
                return self.error(span, format!("collector: {e}"));
            }
            if !names.insert(name.get_ref().as_str()) {
                return self.error(
                    name.span(),
                    format!("two collectors are named {:?}", name.get_ref()),
                );
            }
            if let Err(e) = session_filter::Filter::parse(collector.filter.get_ref()) {
                return self.error(
                    collector.filter.span(),
                    format!("collector {:?}: invalid filter: {e}", name.get_ref()),
                );
            }
            if let Err(e) = crate::metrics::label_names(&spec.group_by) {
                let span = collector
                    .group_by
                    .first()
                    .map(|k| k.span())
                    .unwrap_or(name.span());
                return self.error(span, format!("collector {:?}: {e}", name.get_ref()));
            }
        }
        Ok(())
    }

    /// The first line that sets `key`, for errors about values that have
    /// no span of their own.
    fn find_line(&self, key: &str) -> Option<usize> {
        self.source
            .lines()
            .position(|l| {
                l.trim_start()
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
            .map(|i| i + 1)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("[server]\nnam = 'x'\n", 2),
            ("[roles.A]\nincludes = ['B']\n", 2),
            ("\n[principals.p]\npassword_hash = 'nope'\n", 3),
            ("[[trusted_properties]]\nkey = 'T'\nregex = '('\n", 3),
            ("[roles.A]\nglobal = ['VIEW_SESSION', 'FLY']\n", 2),
            ("[server]\nlisten = 'nowhere'\n", 2),
            (
                "[[metrics.collectors]]\nname = 'c'\nfilter = 'Desk is'\n",
                3,
            ),
            (
                "[[metrics.collectors]]\nname = 'c'\nfilter = 'all'\nmax_groups = 0\n",
                4,
            ),
            (
                "[[metrics.collectors]]\nname = 'c'\nfilter = 'all'\ngroup_by = ['a-b', 'a.b']\n",
                4,
            ),
            (
                "[[metrics.collectors]]\nname = 'c'\nfilter = 'all'\n\
                 [[metrics.collectors]]\nname = 'c'\nfilter = 'all'\n",
                5,
            ),
            (
                "[[metrics.collectors]]\nname = 'c'\nfilter = 'all'\nexport = 3\n",
                4,
            ),
        ];
        for (text, line) in cases {
            let e = Config::parse(text).unwrap_err();
            assert_eq!(e.line, Some(line), "{text:?}: {e}");
        }
    }

    #[test]
    fn defaults_are_the_spec_s() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.server.reconnect_timeout_ms, 60_000);
        assert_eq!(c.server.ping_interval_ms, 20_000);
        assert_eq!(c.server.max_queued_messages, 10_000);
        assert_eq!(c.server.max_message_bytes, 1 << 20);
        assert!(c.anonymous.is_none());
    }
}
