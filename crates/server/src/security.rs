//! Permissions, roles that include roles, and authenticators (SPEC 11.2,
//! 11.4).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use regex::Regex;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::config::Config;

/// A permission held across the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GlobalPermission {
    /// Count, fetch and read the properties of sessions.
    ViewSession,
    /// Close sessions and change their roles and properties.
    ModifySession,
    /// Register listeners (and handlers).
    RegisterHandler,
    /// Read the server's figures and lock table.
    ViewServer,
    /// Change the server's collectors.
    ControlServer,
}

impl GlobalPermission {
    /// Every global permission, in the order of SPEC 11.4.
    pub const ALL: [GlobalPermission; 5] = [
        GlobalPermission::ViewSession,
        GlobalPermission::ModifySession,
        GlobalPermission::RegisterHandler,
        GlobalPermission::ViewServer,
        GlobalPermission::ControlServer,
    ];

    /// Its name on the wire and in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            GlobalPermission::ViewSession => "VIEW_SESSION",
            GlobalPermission::ModifySession => "MODIFY_SESSION",
            GlobalPermission::RegisterHandler => "REGISTER_HANDLER",
            GlobalPermission::ViewServer => "VIEW_SERVER",
            GlobalPermission::ControlServer => "CONTROL_SERVER",
        }
    }
}

/// A permission held on a path (a lock name, a message path).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PathPermission {
    /// Take the lock of that name.
    AcquireLock,
    /// Send requests to sessions on that path.
    SendToSession,
}

impl PathPermission {
    /// Its name on the wire and in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            PathPermission::AcquireLock => "ACQUIRE_LOCK",
            PathPermission::SendToSession => "SEND_TO_SESSION",
        }
    }
}

impl fmt::Display for GlobalPermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for PathPermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug, Default)]
struct Role {
    global: BTreeSet<GlobalPermission>,
    default_path: BTreeSet<PathPermission>,
    paths: BTreeMap<String, BTreeSet<PathPermission>>,
    includes: Vec<String>,
}

/// The role table: what each role grants, with included roles resolved
/// transitively (cycles allowed).
#[derive(Clone, Debug, Default)]
pub struct Roles {
    roles: HashMap<String, Role>,
}

/// What a set of roles grants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Permissions {
    /// Global permissions.
    pub global: BTreeSet<GlobalPermission>,
    /// Path permissions on the path asked about.
    pub path: BTreeSet<PathPermission>,
}

impl Roles {
    /// The role table of a configuration.
    pub fn from_config(config: &Config) -> Roles {
        let roles = config
            .roles
            .iter()
            .map(|(name, r)| {
                let role = Role {
                    global: r.global.iter().copied().collect(),
                    default_path: r.default_path.iter().copied().collect(),
                    paths: r
                        .paths
                        .iter()
                        .map(|(p, perms)| (normalise_path(p), perms.iter().copied().collect()))
                        .collect(),
                    includes: r.includes.iter().map(|i| i.get_ref().clone()).collect(),
                };
                (name.clone(), role)
            })
            .collect();
        Roles { roles }
    }

    /// The roles `roles` stands for, with every included role (each once).
    fn closure<'a>(&'a self, roles: impl IntoIterator<Item = &'a str>) -> Vec<&'a Role> {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut stack: Vec<&str> = roles.into_iter().collect();
        let mut out = Vec::new();
        while let Some(name) = stack.pop() {
            if !seen.insert(name) {
                continue;
            }
            if let Some((key, role)) = self.roles.get_key_value(name) {
                seen.insert(key.as_str());
                out.push(role);
                stack.extend(role.includes.iter().map(String::as_str));
            }
        }
        out
    }

    /// True when any of `roles` (or a role they include) has `permission`.
    pub fn has_global<S: AsRef<str>>(&self, roles: &[S], permission: GlobalPermission) -> bool {
        self.closure(roles.iter().map(AsRef::as_ref))
            .iter()
            .any(|r| r.global.contains(&permission))
    }

    /// The path permissions `roles` hold on `path`: the nearest of the path
    /// and its ancestors that has an assignment for any of the roles decides
    /// (as the union of those assignments); when none has one, the union of
    /// the roles' `default_path`.
    pub fn path_permissions<S: AsRef<str>>(
        &self,
        roles: &[S],
        path: &str,
    ) -> BTreeSet<PathPermission> {
        let closure = self.closure(roles.iter().map(AsRef::as_ref));
        let path = normalise_path(path);
        let mut candidate: &str = &path;
        loop {
            let assigned: Vec<&BTreeSet<PathPermission>> = closure
                .iter()
                .filter_map(|r| r.paths.get(candidate))
                .collect();
            if !assigned.is_empty() {
                return assigned.into_iter().flatten().copied().collect();
            }
            match candidate.rfind('/') {
                Some(i) => candidate = &candidate[..i],
                None => break,
            }
        }
        closure
            .iter()
            .flat_map(|r| r.default_path.iter().copied())
            .collect()
    }

    /// What `roles` grant, with path permissions on `path` (or the union of
    /// the roles' `default_path` without one).
    pub fn permissions<S: AsRef<str>>(&self, roles: &[S], path: Option<&str>) -> Permissions {
        let closure = self.closure(roles.iter().map(AsRef::as_ref));
        let global = closure
            .iter()
            .flat_map(|r| r.global.iter().copied())
            .collect();
        let path = match path {
            Some(p) => self.path_permissions(roles, p),
            None => closure
                .iter()
                .flat_map(|r| r.default_path.iter().copied())
                .collect(),
        };
        Permissions { global, path }
    }
}

/// A path as its segments joined by `/`, without empty segments.
fn normalise_path(path: &str) -> String {
    path.split('/')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

/// A regular expression that must match a whole value.
pub(crate) fn whole_match_regex(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(pattern)?; // it must compile on its own
    Regex::new(&format!("^(?:{pattern})$"))
}

/// What a client asked for when it opened a session.
#[derive(Clone, Debug, Default)]
pub struct OpenRequest {
    /// The principal (empty: anonymous).
    pub principal: String,
    /// The credentials (a password for the built-in authenticator).
    pub credentials: Option<String>,
    /// The user properties the client proposed.
    pub properties: BTreeMap<String, String>,
    /// The peer's IP address.
    pub client_ip: String,
    /// The client type it declared.
    pub client_type: String,
}

/// What an authenticator grants a session it allows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// `$Principal` (default: the principal asked for).
    pub principal: Option<String>,
    /// `$Roles`.
    pub roles: Vec<String>,
    /// User properties, and any of `$Country`, `$Language`, `$Latitude`,
    /// `$Longitude`.
    pub properties: BTreeMap<String, String>,
}

/// An authenticator's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Open the session with this grant.
    Allow(Grant),
    /// Refuse the session.
    Deny,
    /// Let the next authenticator decide.
    Abstain,
}

/// Decides who may open a session (SPEC 11.2). A server asks its chain in
/// order; the first answer that is not [`Decision::Abstain`] decides, and if
/// all abstain the session is denied. Called off the async workers, so it
/// may block (hash a password, ask a directory).
pub trait Authenticator: Send + Sync + 'static {
    /// Decides on one `open`.
    fn authenticate(&self, request: &OpenRequest) -> Decision;
}

/// The built-in authenticator: the configuration's principals (argon2id
/// password hashes), anonymous sessions, and trusted proposed properties.
pub struct ConfigAuthenticator {
    anonymous: Option<Vec<String>>,
    principals: HashMap<String, (String, Vec<String>)>,
    trusted: Vec<(String, Trust)>,
}

enum Trust {
    Values(Vec<String>),
    Regex(Regex),
}

impl ConfigAuthenticator {
    /// The authenticator a configuration describes (already validated by
    /// [`Config::parse`]).
    pub fn new(config: &Config) -> ConfigAuthenticator {
        let trusted = config
            .trusted_properties
            .iter()
            .filter_map(|t| {
                let trust = match (&t.values, &t.regex) {
                    (_, Some(r)) => Trust::Regex(whole_match_regex(r.get_ref()).ok()?),
                    (Some(v), None) => Trust::Values(v.clone()),
                    (None, None) => return None,
                };
                Some((t.key.get_ref().clone(), trust))
            })
            .collect();
        ConfigAuthenticator {
            anonymous: config
                .anonymous
                .as_ref()
                .filter(|a| a.allow)
                .map(|a| a.roles.clone()),
            principals: config
                .principals
                .iter()
                .map(|(n, p)| {
                    (
                        n.clone(),
                        (p.password_hash.get_ref().clone(), p.roles.clone()),
                    )
                })
                .collect(),
            trusted,
        }
    }

    fn trusted_properties(&self, proposed: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        proposed
            .iter()
            .filter(|(k, v)| {
                self.trusted.iter().any(|(key, trust)| {
                    key == *k
                        && match trust {
                            Trust::Values(values) => values.contains(v),
                            Trust::Regex(r) => r.is_match(v),
                        }
                })
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl Authenticator for ConfigAuthenticator {
    fn authenticate(&self, request: &OpenRequest) -> Decision {
        let properties = self.trusted_properties(&request.properties);
        if request.principal.is_empty() {
            return match &self.anonymous {
                Some(roles) => Decision::Allow(Grant {
                    principal: Some(String::new()),
                    roles: roles.clone(),
                    properties,
                }),
                None => Decision::Deny,
            };
        }
        let Some((hash, roles)) = self.principals.get(&request.principal) else {
            return Decision::Deny;
        };
        let Some(password) = &request.credentials else {
            return Decision::Deny;
        };
        if verify_password(password, hash) {
            Decision::Allow(Grant {
                principal: Some(request.principal.clone()),
                roles: roles.clone(),
                properties,
            })
        } else {
            Decision::Deny
        }
    }
}

/// Checks a password against an argon2 PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    match PasswordHash::new(phc) {
        Ok(hash) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

/// An argon2id PHC string for a password, with a fresh random salt and the
/// parameters of the example in SPEC 11.4 (m=19456, t=2, p=1).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no random salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// A random password of 144 bits, as 36 hex digits (the embedded default's
/// `admin` password).
pub fn random_password() -> Result<String, String> {
    let mut bytes = [0u8; 18];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random password: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A new reconnect token: 192 random bits, hex.
pub(crate) fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares two tokens in constant time.
pub(crate) fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A random 64-bit number.
pub(crate) fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // Falls back to the clock only where the OS has no random source.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        return nanos ^ u64::from(std::process::id()).rotate_left(32);
    }
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles() -> Roles {
        let config = Config::parse(
            r#"
[roles.A]
global = ["VIEW_SESSION"]
paths = { "a/b" = ["ACQUIRE_LOCK"], "a/b/c" = [] }
default_path = ["SEND_TO_SESSION"]
includes = ["B"]
[roles.B]
global = ["VIEW_SERVER"]
includes = ["A"]
paths = { "a" = ["SEND_TO_SESSION"] }
[roles.C]
default_path = ["ACQUIRE_LOCK"]
"#,
        )
        .unwrap();
        Roles::from_config(&config)
    }

    #[test]
    fn includes_are_transitive_with_cycles() {
        let r = roles();
        assert!(r.has_global(&["A"], GlobalPermission::ViewServer));
        assert!(r.has_global(&["B"], GlobalPermission::ViewSession));
        assert!(!r.has_global(&["C"], GlobalPermission::ViewSession));
        assert!(!r.has_global(&["unknown"], GlobalPermission::ViewSession));
    }

    #[test]
    fn nearest_assignment_decides() {
        let r = roles();
        use PathPermission::*;
        assert_eq!(r.path_permissions(&["A"], "a/b/x"), [AcquireLock].into());
        // an empty assignment grants nothing
        assert!(r.path_permissions(&["A"], "a/b/c/d").is_empty());
        assert_eq!(r.path_permissions(&["A"], "a/z"), [SendToSession].into());
        // no assignment anywhere: the default
        assert_eq!(r.path_permissions(&["A"], "z"), [SendToSession].into());
        assert_eq!(r.path_permissions(&["C"], "a/b"), [AcquireLock].into());
    }

    #[test]
    fn passwords_round_trip() {
        let phc = hash_password("s3cret").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &phc));
        assert!(!verify_password("s3cret ", &phc));
        assert!(!verify_password("s3cret", "garbage"));
    }

    #[test]
    fn tokens_are_long_and_compared_exactly() {
        let t = new_token().unwrap();
        assert_eq!(t.len(), 48);
        assert!(same_token(&t, &t.clone()));
        assert!(!same_token(&t, &t[1..]));
        assert_ne!(t, new_token().unwrap());
    }
}
