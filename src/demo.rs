//! A deterministic demo population of realistic sessions.
//!
//! The CLI runs on it when no input is given, and the benchmarks measure on
//! it. Session `i` is the same in every run and on every machine.

use crate::error::Error;
use crate::session::Session;

/// Role names the demo sessions draw from.
pub const ROLES: [&str; 12] = [
    "admin",
    "client",
    "operator",
    "trader",
    "auditor",
    "viewer",
    "support",
    "manager",
    "developer",
    "analyst",
    "guest",
    "trading desk",
];

/// Country codes the demo sessions draw from.
pub const COUNTRIES: [&str; 30] = [
    "UK", "DE", "FR", "US", "JP", "NZ", "IT", "ES", "NL", "BE", "CH", "AT", "SE", "NO", "DK", "FI",
    "IE", "PT", "PL", "CZ", "CA", "AU", "BR", "MX", "IN", "CN", "KR", "SG", "ZA", "",
];

const LANGUAGES: [&str; 10] = ["en", "de", "fr", "ja", "es", "it", "nl", "sv", "pt", ""];
const CLIENT_TYPES: [&str; 9] = [
    "JAVA",
    "PYTHON",
    "JAVASCRIPT_BROWSER",
    "DOTNET",
    "IOS",
    "ANDROID",
    "C",
    "MQTT",
    "OTHER",
];
const TRANSPORTS: [&str; 4] = ["WEBSOCKET", "TCP", "HTTP_LONG_POLL", "wss"];
const DEPARTMENTS: [&str; 7] = [
    "Accounts",
    "Payroll",
    "Trading",
    "Sales",
    "IT",
    "Legal",
    "Operations",
];
const STATUSES: [&str; 3] = ["Open", "Closed", "Pending"];
const TIERS: [&str; 3] = ["gold", "silver", "bronze"];

/// Number of distinct `$Principal` names (`name0` … `name999`).
pub const PRINCIPALS: u64 = 1000;

/// SplitMix64: tiny, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The properties of demo session `i`, as `(key, value)` pairs: 12 or 13
/// properties, `$Roles` as a roles string of 0 to 5 roles.
///
/// ```
/// let s = session_filter::demo::properties(42);
/// assert_eq!(s[0], ("$SessionId".to_string(), "s000042".to_string()));
/// assert_eq!(s, session_filter::demo::properties(42));
/// ```
pub fn properties(i: u64) -> Vec<(String, String)> {
    let mut rng = Rng(i.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5EED);
    let mut props: Vec<(String, String)> = Vec::with_capacity(13);
    let mut add = |k: &str, v: String| props.push((k.to_owned(), v));
    add("$SessionId", format!("s{i:06}"));
    add("$Principal", format!("name{}", rng.below(PRINCIPALS)));
    add("$Country", rng.pick(&COUNTRIES).to_owned());
    add("$Language", rng.pick(&LANGUAGES).to_owned());
    add("$ClientType", rng.pick(&CLIENT_TYPES).to_owned());
    add("$Transport", rng.pick(&TRANSPORTS).to_owned());
    add("$ServerName", format!("server-{}", rng.below(4) + 1));
    add(
        "$StartTime",
        (1_700_000_000_000 + rng.below(86_400_000)).to_string(),
    );
    add(
        "$ClientIP",
        format!(
            "10.{}.{}.{}",
            rng.below(256),
            rng.below(256),
            rng.below(256)
        ),
    );
    // A fifth of the sessions have no department.
    if rng.below(5) != 0 {
        add("Department", rng.pick(&DEPARTMENTS).to_owned());
    }
    add("Status", rng.pick(&STATUSES).to_owned());
    add("Tier", rng.pick(&TIERS).to_owned());
    let count = rng.below(6) as usize;
    let mut roles: Vec<&str> = Vec::with_capacity(count);
    while roles.len() < count {
        let r = rng.pick(&ROLES);
        if !roles.contains(&r) {
            roles.push(r);
        }
    }
    add("$Roles", crate::util::roles::roles_to_string(roles));
    props
}

/// Demo sessions `0..n`.
pub fn sessions(n: usize) -> Result<Vec<Session>, Error> {
    (0..n as u64).map(|i| Session::new(properties(i))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn population_is_deterministic_and_varied() {
        let a: Vec<_> = (0..1000).map(properties).collect();
        assert_eq!(a, (0..1000).map(properties).collect::<Vec<_>>());
        let without_department = a
            .iter()
            .filter(|p| !p.iter().any(|(k, _)| k == "Department"))
            .count();
        assert!(
            (120..280).contains(&without_department),
            "{without_department}"
        );
        let countries: std::collections::HashSet<&str> = a
            .iter()
            .flat_map(|p| {
                p.iter()
                    .filter(|(k, _)| k == "$Country")
                    .map(|(_, v)| v.as_str())
            })
            .collect();
        assert_eq!(countries.len(), COUNTRIES.len());
        assert!(sessions(100).is_ok());
    }
}
