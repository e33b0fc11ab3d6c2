//! Property changes by id and by filter (SPEC section 6.1), and closing
//! sessions with what they held.
//!
//! A [`PropertyChange`] is checked and interned once, before any session is
//! touched; then each session it applies to is changed in place under its
//! shard's write lock, by steps that cannot fail, with the index updated
//! around it (`Shard::change`). A session the change would leave as it is
//! is not touched at all.

use std::collections::BTreeMap;

use smallvec::SmallVec;

use super::limits::{DataLimit, DataLimits};
use super::shard::Shard;
use super::{Execution, SessionStore};
use crate::error::Error;
use crate::intern::{self, Interned, Sym};
use crate::session::{PropertyKey, Session};
use crate::util::properties::{validate_user_key, COUNTRY, LANGUAGE, LATITUDE, LONGITUDE};
use crate::vm::Program;

/// A change to a session's properties: keys to set to a value and keys to
/// remove (SPEC section 6.1).
///
/// It is a map from key to new value or removal, so a key given twice keeps
/// the last thing said of it: `.set("k", "1").remove("k")` removes `k`, and
/// `.set("k", "1").set("k", "2")` sets it to `"2"`. Keys are checked when the
/// change is applied ([`SessionStore::change_session_properties`],
/// [`SessionStore::change_properties`]): user keys must be valid, and of the
/// fixed properties only `$Country`, `$Language`, `$Latitude` and
/// `$Longitude` may be set (normalised as they are stored) and none removed.
///
/// ```
/// use session_filter::PropertyChange;
///
/// let change = PropertyChange::new().set("Tier", "gold").remove("Trial").set("$Country", "uk");
/// assert_eq!(change.len(), 3);
///
/// // From pairs, `None` meaning removal.
/// let same: PropertyChange =
///     [("Tier", Some("gold")), ("Trial", None), ("$Country", Some("uk"))].into_iter().collect();
/// assert_eq!(change, same);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PropertyChange {
    entries: BTreeMap<String, Option<String>>,
}

impl PropertyChange {
    /// A change that changes nothing.
    pub fn new() -> PropertyChange {
        PropertyChange::default()
    }

    /// Also sets `key` to `value` (replacing what was said of `key` before).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> PropertyChange {
        self.entries.insert(key.into(), Some(value.into()));
        self
    }

    /// Also removes `key` (replacing what was said of `key` before); a
    /// session without `key` is left as it is.
    pub fn remove(mut self, key: impl Into<String>) -> PropertyChange {
        self.entries.insert(key.into(), None);
        self
    }

    /// True when the change says something of `key`.
    pub(crate) fn names(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The number of keys the change names.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the change names no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Each key with its new value, or `None` for removal, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }
}

/// Pairs of key and new value, `None` meaning removal; a later pair for the
/// same key replaces an earlier one.
impl<K, V> FromIterator<(K, Option<V>)> for PropertyChange
where
    K: Into<String>,
    V: Into<String>,
{
    fn from_iter<I: IntoIterator<Item = (K, Option<V>)>>(pairs: I) -> PropertyChange {
        PropertyChange {
            entries: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.map(Into::into)))
                .collect(),
        }
    }
}

/// A session removed by [`SessionStore::close_sessions`], with the
/// properties it had when it was removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClosedSession {
    /// Its `$SessionId`.
    pub id: String,
    /// Every property it had (`$SessionId` included, `$Roles` as a canonical
    /// roles string), as [`SessionStore::get`] gives them.
    pub properties: BTreeMap<String, String>,
}

impl ClosedSession {
    fn of(session: &Session) -> ClosedSession {
        ClosedSession {
            id: session.id().map(|id| id.to_string()).unwrap_or_default(),
            properties: session.properties().into_iter().collect(),
        }
    }
}

/// True when `s` is a decimal number as SPEC section 6.1 has it:
/// `[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?`, the whole string.
fn is_decimal(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let int_end = digits(i);
    let mut mantissa = int_end - i;
    i = int_end;
    if b.get(i) == Some(&b'.') {
        let frac_end = digits(i + 1);
        mantissa += frac_end - (i + 1);
        i = frac_end;
    }
    if mantissa == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_end = digits(i);
        if exp_end == i {
            return false;
        }
        i = exp_end;
    }
    i == b.len()
}

/// The value a settable fixed property is stored with, or `None` when `key`
/// is a fixed property that cannot be set.
fn normalise_fixed(key: &str, value: &str) -> Option<String> {
    match key {
        COUNTRY => Some(value.to_ascii_uppercase()),
        LANGUAGE => Some(value.to_ascii_lowercase()),
        LATITUDE | LONGITUDE if is_decimal(value) => Some(value.to_owned()),
        LATITUDE | LONGITUDE => Some("NaN".to_owned()),
        _ => None,
    }
}

/// One key of a checked change: the key resolved, the value interned
/// (`None` to remove).
struct Step {
    name: String,
    key: PropertyKey,
    value: Option<Interned>,
}

/// A change checked against SPEC section 6.1 and interned, ready to apply to
/// any number of sessions.
struct Checked {
    steps: Vec<Step>,
}

/// The steps of a change that would alter one session: the step's index and
/// the value the session has now.
type Effects = SmallVec<[(usize, Option<Sym>); 4]>;

impl Checked {
    fn new(change: &PropertyChange, limits: &DataLimits) -> Result<Checked, Error> {
        limits.check(DataLimit::PropertiesPerChange, change.len())?;
        for (key, value) in &change.entries {
            limits.check_pair(key, value.as_deref().unwrap_or(""))?;
        }
        let mut steps = Vec::with_capacity(change.len());
        for (key, value) in &change.entries {
            let value = match value {
                Some(value) if key.starts_with('$') => Some(
                    normalise_fixed(key, value).ok_or_else(|| Error::NotSettable(key.clone()))?,
                ),
                None if key.starts_with('$') => return Err(Error::NotRemovable(key.clone())),
                value => {
                    validate_user_key(key)?;
                    value.clone()
                }
            };
            steps.push(Step {
                name: key.clone(),
                key: PropertyKey::new(key)?,
                value: value.as_deref().map(Interned::new).transpose()?,
            });
        }
        Ok(Checked { steps })
    }

    /// What the change would alter in `session`.
    fn effects(&self, session: &Session) -> Effects {
        self.steps
            .iter()
            .enumerate()
            .filter_map(|(i, step)| {
                let now = session.value_sym(&step.key);
                let changes = match &step.value {
                    Some(v) => now != Some(v.sym()),
                    None => now.is_some(),
                };
                changes.then_some((i, now))
            })
            .collect()
    }

    /// True when the change can give a session a key it lacks.
    fn grows(&self) -> bool {
        self.steps.iter().any(|step| step.value.is_some())
    }

    /// The number of properties `session` has after the steps `effects`
    /// names.
    fn count_after(&self, session: &Session, effects: &Effects) -> usize {
        let mut n = session.property_count();
        for &(i, now) in effects {
            match (&self.steps[i].value, now) {
                (Some(_), None) => n += 1,
                (None, Some(_)) => n -= 1,
                _ => {}
            }
        }
        n
    }

    /// Applies the steps `effects` names to the session in `slot`, and
    /// re-indexes only their keys; nothing here can fail.
    fn apply(&self, shard: &mut Shard, slot: u32, effects: &Effects) {
        if effects.is_empty() {
            return;
        }
        let keys: SmallVec<[&PropertyKey; 4]> =
            effects.iter().map(|&(i, _)| &self.steps[i].key).collect();
        shard.change_keys(slot, &keys, |session| {
            for &(i, _) in effects {
                let step = &self.steps[i];
                session.put(&step.key, step.value.as_ref());
            }
        });
    }
}

impl SessionStore {
    /// Applies a property change to the session with this id, atomically,
    /// and returns what changed: each key whose value changed, with its
    /// previous value (`None` where the key is new). Setting a key to the
    /// value it has, or removing a key the session lacks, is no change.
    ///
    /// Fails, changing nothing, when the change is invalid (see
    /// [`PropertyChange`]), passes one of the store's [`DataLimits`], or no
    /// session has this id.
    ///
    /// ```
    /// use session_filter::{Error, PropertyChange, SessionStore};
    ///
    /// let store = SessionStore::new();
    /// store.insert([("$SessionId", "s1"), ("Tier", "gold"), ("Trial", "yes")])?;
    ///
    /// let change = PropertyChange::new()
    ///     .set("Tier", "gold") // as it is: no change
    ///     .set("$Country", "uk") // stored as "UK"
    ///     .set("$Latitude", "north") // not a number: stored as "NaN"
    ///     .remove("Trial");
    /// let changed = store.change_session_properties("s1", &change)?;
    /// assert_eq!(changed.len(), 3);
    /// assert_eq!(changed["$Country"], None);
    /// assert_eq!(changed["Trial"].as_deref(), Some("yes"));
    /// let s1 = store.get("s1").unwrap();
    /// assert_eq!((s1["$Country"].as_str(), s1["$Latitude"].as_str()), ("UK", "NaN"));
    ///
    /// let bad = PropertyChange::new().set("Tier", "silver").set("$Principal", "eve");
    /// assert_eq!(store.change_session_properties("s1", &bad), Err(Error::NotSettable("$Principal".into())));
    /// assert_eq!(store.get("s1").unwrap()["Tier"], "gold");
    /// # Ok::<(), Error>(())
    /// ```
    pub fn change_session_properties(
        &self,
        id: &str,
        change: &PropertyChange,
    ) -> Result<BTreeMap<String, Option<String>>, Error> {
        let checked = Checked::new(change, &self.options.data_limits)?;
        let mut shard = Self::write(self.shard_of(id));
        let slot = shard
            .slot(id)
            .ok_or_else(|| Error::UnknownSession(id.to_owned()))?;
        let session = shard.session(slot);
        let effects = checked.effects(session);
        self.options.data_limits.check(
            DataLimit::PropertiesPerSession,
            checked.count_after(session, &effects),
        )?;
        let changed = effects
            .iter()
            .map(|&(i, before)| {
                let before = before.and_then(intern::resolve).map(|v| v.to_string());
                (checked.steps[i].name.clone(), before)
            })
            .collect();
        checked.apply(&mut shard, slot, &effects);
        Ok(changed)
    }

    /// Applies a property change to every session that matches `filter`,
    /// each atomically, and returns the number of matching sessions, changed
    /// or not. A bad filter, an invalid change (see [`PropertyChange`]) or
    /// one that would take a matching session past the store's
    /// [`DataLimits`] is an error, and changes nothing.
    ///
    /// ```
    /// use session_filter::{PropertyChange, SessionStore};
    ///
    /// let store = SessionStore::new();
    /// store.insert([("$SessionId", "s1"), ("Department", "Accounts")])?;
    /// store.insert([("$SessionId", "s2"), ("Department", "Payroll")])?;
    ///
    /// let change = PropertyChange::new().set("Tier", "gold").set("$Language", "EN");
    /// assert_eq!(store.change_properties("Department is 'Accounts'", &change)?, 1);
    /// assert_eq!(store.select("Tier is 'gold' and $Language is 'en'")?, ["s1"]);
    /// # Ok::<(), session_filter::Error>(())
    /// ```
    pub fn change_properties(&self, filter: &str, change: &PropertyChange) -> Result<usize, Error> {
        let program = self.compile(filter)?;
        self.change_properties_compiled(&program, change)
    }

    /// [`SessionStore::change_properties`] with a compiled filter.
    pub fn change_properties_compiled(
        &self,
        program: &Program,
        change: &PropertyChange,
    ) -> Result<usize, Error> {
        let checked = Checked::new(change, &self.options.data_limits)?;
        let limits = &self.options.data_limits;
        self.change_matching(
            program,
            Execution::Auto,
            checked.grows(),
            |s| {
                let effects = checked.effects(s);
                limits.check(
                    DataLimit::PropertiesPerSession,
                    checked.count_after(s, &effects),
                )
            },
            |shard, slot| {
                let effects = checked.effects(shard.session(slot));
                checked.apply(shard, slot, &effects);
            },
        )
    }

    /// [`SessionStore::change_properties`] under the name SPEC section 6.1
    /// gives it.
    pub fn set_properties_where(
        &self,
        filter: &str,
        change: &PropertyChange,
    ) -> Result<usize, Error> {
        self.change_properties(filter, change)
    }

    /// Removes every session that matches `filter` and returns them, each
    /// with the properties it had as it was removed (taken under the same
    /// lock as the removal), ordered by `$SessionId`. A bad filter is an
    /// error, and closes nothing.
    ///
    /// ```
    /// use session_filter::SessionStore;
    ///
    /// let store = SessionStore::new();
    /// store.insert([("$SessionId", "s2"), ("$Principal", "bob")])?;
    /// store.insert([("$SessionId", "s1"), ("$Principal", "bob")])?;
    /// store.insert([("$SessionId", "s3"), ("$Principal", "eve")])?;
    ///
    /// let closed = store.close_sessions("$Principal is 'bob'")?;
    /// assert_eq!(closed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["s1", "s2"]);
    /// assert_eq!(closed[0].properties["$Principal"], "bob");
    /// assert_eq!(store.len(), 1);
    /// # Ok::<(), session_filter::Error>(())
    /// ```
    pub fn close_sessions(&self, filter: &str) -> Result<Vec<ClosedSession>, Error> {
        Ok(self.close_sessions_compiled(&self.compile(filter)?))
    }

    /// [`SessionStore::close_sessions`] with a compiled filter.
    pub fn close_sessions_compiled(&self, program: &Program) -> Vec<ClosedSession> {
        let mut closed: Vec<ClosedSession> = self
            .map_shards(Execution::Auto, |shard| {
                let mut shard = Self::write(shard);
                let matches = shard.matching(program, true);
                let mut out = Vec::with_capacity(matches.len());
                for &slot in &matches {
                    out.push(ClosedSession::of(shard.session(slot)));
                    shard.remove(slot);
                }
                out
            })
            .into_iter()
            .flatten()
            .collect();
        closed.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_recognised_as_the_spec_writes_them() {
        for yes in [
            "0", "12", "-1", "+1", "1.", "1.5", ".5", "-.5", "1e3", "1E+3", "1.5e-07", ".5e1",
            "+0.0", "007",
        ] {
            assert!(is_decimal(yes), "{yes:?}");
        }
        for no in [
            "", "+", "-", ".", "+.", "e3", ".e3", "1e", "1e+", "1.5.2", " 1", "1 ", "1,5", "NaN",
            "inf", "0x1", "1e3.5", "١", "1_000", "--1",
        ] {
            assert!(!is_decimal(no), "{no:?}");
        }
    }

    #[test]
    fn settable_fixed_properties_are_normalised() {
        assert_eq!(normalise_fixed(COUNTRY, "gb-é").as_deref(), Some("GB-é"));
        assert_eq!(normalise_fixed(LANGUAGE, "EN-Us").as_deref(), Some("en-us"));
        assert_eq!(normalise_fixed(LATITUDE, "-51.5").as_deref(), Some("-51.5"));
        assert_eq!(normalise_fixed(LONGITUDE, "west").as_deref(), Some("NaN"));
        assert_eq!(normalise_fixed("$Principal", "x"), None);
        assert_eq!(normalise_fixed("$Version", "x"), None);
    }

    #[test]
    fn last_word_on_a_key_wins() {
        let change = PropertyChange::new()
            .set("k", "1")
            .remove("k")
            .set("m", "1")
            .set("m", "2");
        assert_eq!(
            change.iter().collect::<Vec<_>>(),
            [("k", None), ("m", Some("2"))]
        );
        let pairs: PropertyChange = [("k".to_string(), Some("1")), ("k".to_string(), None)]
            .into_iter()
            .collect();
        assert_eq!(pairs.iter().collect::<Vec<_>>(), [("k", None)]);
    }

    #[test]
    fn invalid_changes_name_the_key() {
        let check = |c: PropertyChange| Checked::new(&c, &DataLimits::new()).err();
        assert_eq!(
            check(PropertyChange::new().set("$SessionId", "x")),
            Some(Error::NotSettable("$SessionId".into()))
        );
        assert_eq!(
            check(PropertyChange::new().set("$Roles", "'a'")),
            Some(Error::NotSettable("$Roles".into()))
        );
        assert_eq!(
            check(PropertyChange::new().remove("$Country")),
            Some(Error::NotRemovable("$Country".into()))
        );
        assert!(matches!(
            check(PropertyChange::new().set("a b", "x")),
            Some(Error::InvalidKey(_))
        ));
        assert!(matches!(
            check(PropertyChange::new().remove("")),
            Some(Error::InvalidKey(_))
        ));
        assert_eq!(
            check(PropertyChange::new().set("$Country", "x").remove("k")),
            None
        );
    }
}
