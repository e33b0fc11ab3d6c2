//! Sessions as compact maps of interned properties.
//!
//! A [`Session`] keeps the fixed properties in a 16-slot array indexed by
//! their place in [`FIXED_PROPERTIES`], so `$Country is 'DE'` reads one `u32`
//! at a known offset. Other keys (user keys, and unknown `$` keys such as
//! `$Version`) sit in a small vector sorted by key id. `$Roles` is held as a
//! set of role ids, not as a string.

use std::fmt;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::error::Error;
use crate::intern::{self, CapacityError, Interned, Sym};
use crate::util::properties::{validate_user_key, FIXED_PROPERTIES, ROLES};
use crate::util::roles::{roles_to_string, string_to_roles};

/// Number of fixed property slots.
pub(crate) const FIXED_SLOTS: usize = FIXED_PROPERTIES.len();

/// The slot of `$Roles` in the fixed array (it holds a presence marker).
pub(crate) const ROLES_SLOT: usize = fixed_slot_const(ROLES);

/// The slot of `$SessionId` in the fixed array.
pub(crate) const SESSION_ID_SLOT: usize = fixed_slot_const(crate::util::properties::SESSION_ID);

const fn fixed_slot_const(key: &str) -> usize {
    let mut i = 0;
    while i < FIXED_SLOTS {
        if str_eq(FIXED_PROPERTIES[i], key) {
            return i;
        }
        i += 1;
    }
    usize::MAX
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The fixed slot of `key`, if it is a known fixed property.
pub(crate) fn fixed_slot(key: &str) -> Option<usize> {
    if !key.starts_with('$') {
        return None;
    }
    FIXED_PROPERTIES.iter().position(|&k| k == key)
}

/// One session's properties, interned.
///
/// Build one from `(key, value)` pairs with [`Session::new`]. Keys starting
/// with `$` are accepted as they are (the server's own fixed properties, known
/// or not); other keys must pass [`validate_user_key`]. A `$Roles` value is
/// read as a roles string.
///
/// ```
/// use session_filter::Session;
///
/// let s = Session::new([
///     ("$SessionId", "s1"),
///     ("$Country", "UK"),
///     ("$Roles", r#""trader","operator""#),
///     ("Department", "Accounts"),
/// ])?;
/// assert_eq!(s.get("$Country").as_deref(), Some("UK"));
/// assert_eq!(s.get("$Roles").as_deref(), Some(r#""trader","operator""#));
/// assert!(s.has_role("trader"));
/// assert!(Session::new([("bad key", "x")]).is_err());
/// # Ok::<(), session_filter::Error>(())
/// ```
pub struct Session {
    pub(crate) fixed: [Sym; FIXED_SLOTS],
    /// Other properties, sorted by key id, keys distinct.
    pub(crate) others: SmallVec<[(Sym, Sym); 4]>,
    /// Roles, distinct, in first-seen order.
    pub(crate) roles: SmallVec<[Sym; 4]>,
}

impl Session {
    /// A session with no properties.
    pub fn empty() -> Session {
        Session {
            fixed: [Sym::NONE; FIXED_SLOTS],
            others: SmallVec::new(),
            roles: SmallVec::new(),
        }
    }

    /// Builds a session from `(key, value)` pairs.
    ///
    /// Fails on an invalid user key, an invalid `$Roles` string, or a key
    /// given twice.
    pub fn new<I, K, V>(props: I) -> Result<Session, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        // On an error the partly built session drops and gives back its
        // strings. Other keys are gathered unsorted and sorted once at the
        // end, so a session of many keys costs n log n, not n².
        let mut session = Session::empty();
        for (key, value) in props {
            let (key, value) = (key.as_ref(), value.as_ref());
            if let Some(slot) = fixed_slot(key) {
                if session.fixed[slot] != Sym::NONE {
                    return Err(Error::DuplicateKey(key.to_owned()));
                }
                session.set(key, value)?;
                continue;
            }
            if !key.starts_with('$') {
                validate_user_key(key)?;
            }
            let k = intern::intern(key)?;
            session.others.push((k, Sym::NONE));
            let v = intern::intern(value)?;
            if let Some(last) = session.others.last_mut() {
                last.1 = v;
            }
        }
        session.others.sort_unstable_by_key(|&(k, _)| k);
        if let Some(pair) = session.others.windows(2).find(|w| w[0].0 == w[1].0) {
            let key = intern::resolve(pair[0].0).map(|k| k.to_string());
            return Err(Error::DuplicateKey(key.unwrap_or_default()));
        }
        Ok(session)
    }

    /// True when the session has property `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        match fixed_slot(key) {
            Some(slot) => self.fixed[slot] != Sym::NONE,
            None => intern::lookup(key).is_some_and(|k| self.other(k).is_some()),
        }
    }

    /// Sets property `key` to `value`, replacing any earlier value. A
    /// `$Roles` value is read as a roles string.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        if key == ROLES {
            let roles = string_to_roles(value)?;
            return self.set_roles(roles);
        }
        if !key.starts_with('$') {
            validate_user_key(key)?;
        }
        let value = intern::intern(value)?;
        if let Some(slot) = fixed_slot(key) {
            intern::release(std::mem::replace(&mut self.fixed[slot], value));
            return Ok(());
        }
        let key = match intern::intern(key) {
            Ok(k) => k,
            Err(e) => {
                intern::release(value);
                return Err(e.into());
            }
        };
        match self.others.binary_search_by_key(&key, |&(k, _)| k) {
            Ok(i) => {
                intern::release(key);
                intern::release(std::mem::replace(&mut self.others[i].1, value));
            }
            Err(i) => self.others.insert(i, (key, value)),
        }
        Ok(())
    }

    /// Sets `$Roles` to these roles (duplicates collapse, first-seen order).
    pub fn set_roles<I, S>(&mut self, roles: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut syms: SmallVec<[Sym; 4]> = SmallVec::new();
        // Beyond a few roles, a set keeps the duplicate check linear.
        let mut seen: ahash::AHashSet<Sym> = ahash::AHashSet::new();
        for role in roles {
            let sym = match intern::intern(role.as_ref()) {
                Ok(sym) => sym,
                Err(e) => {
                    syms.into_iter().for_each(intern::release);
                    return Err(e.into());
                }
            };
            let fresh = if syms.len() < 16 {
                !syms.contains(&sym)
            } else {
                if seen.is_empty() {
                    seen.extend(syms.iter().copied());
                }
                seen.insert(sym)
            };
            if fresh {
                syms.push(sym);
            } else {
                intern::release(sym);
            }
        }
        let old = std::mem::replace(&mut self.roles, syms);
        old.into_iter().for_each(intern::release);
        self.fixed[ROLES_SLOT] = Sym::PRESENT;
        Ok(())
    }

    /// Removes property `key`; true if it was there.
    pub fn remove(&mut self, key: &str) -> bool {
        if let Some(slot) = fixed_slot(key) {
            let old = std::mem::replace(&mut self.fixed[slot], Sym::NONE);
            if slot == ROLES_SLOT {
                std::mem::take(&mut self.roles)
                    .into_iter()
                    .for_each(intern::release);
            }
            intern::release(old);
            return old != Sym::NONE;
        }
        let Some(k) = intern::lookup(key) else {
            return false;
        };
        match self.others.binary_search_by_key(&k, |&(k, _)| k) {
            Ok(i) => {
                let (k, v) = self.others.remove(i);
                intern::release(k);
                intern::release(v);
                true
            }
            Err(_) => false,
        }
    }

    /// The value of `key`, if present. `$Roles` comes back as a canonical
    /// roles string.
    pub fn get(&self, key: &str) -> Option<Arc<str>> {
        if key == ROLES {
            return (self.fixed[ROLES_SLOT] != Sym::NONE).then(|| Arc::from(self.roles_string()));
        }
        intern::resolve(self.get_sym(key)?)
    }

    /// The interned value of `key`, if present (`None` for `$Roles`, which is
    /// a set: see [`Session::role_syms`]).
    pub fn get_sym(&self, key: &str) -> Option<Sym> {
        match fixed_slot(key) {
            Some(ROLES_SLOT) => None,
            Some(slot) => Some(self.fixed[slot]).filter(|&v| v != Sym::NONE),
            None => self.other(intern::lookup(key)?),
        }
    }

    /// The value of the key `key` resolves to, by id: the fast access that
    /// hand-written matchers use.
    pub fn value(&self, key: &PropertyKey) -> Option<Sym> {
        match key {
            PropertyKey::Fixed(slot) => {
                Some(self.fixed[*slot as usize]).filter(|&v| !v.is_marker())
            }
            PropertyKey::Other(k) => self.other(k.sym()),
        }
    }

    #[inline]
    pub(crate) fn other(&self, key: Sym) -> Option<Sym> {
        let others = &self.others[..];
        if others.len() <= 8 {
            others.iter().find(|&&(k, _)| k == key).map(|&(_, v)| v)
        } else {
            others
                .binary_search_by_key(&key, |&(k, _)| k)
                .ok()
                .map(|i| others[i].1)
        }
    }

    /// The session's roles, by id, distinct (empty when `$Roles` is absent).
    pub fn role_syms(&self) -> &[Sym] {
        &self.roles
    }

    /// True when the session has role `role`.
    pub fn has_role(&self, role: &str) -> bool {
        intern::lookup(role).is_some_and(|r| self.roles.contains(&r))
    }

    /// The session's roles, in first-seen order.
    pub fn roles(&self) -> Vec<Arc<str>> {
        self.roles
            .iter()
            .filter_map(|&r| intern::resolve(r))
            .collect()
    }

    fn roles_string(&self) -> String {
        roles_to_string(self.roles())
    }

    /// The `$SessionId`, if present.
    pub fn id(&self) -> Option<Arc<str>> {
        self.get(crate::util::properties::SESSION_ID)
    }

    /// Every property as `(key, value)` strings: the fixed ones in the order
    /// of [`FIXED_PROPERTIES`] (`$Roles` as a canonical roles string), then
    /// the others sorted by key.
    pub fn properties(&self) -> Vec<(String, String)> {
        let mut out = Vec::with_capacity(FIXED_SLOTS + self.others.len());
        for (slot, &v) in self.fixed.iter().enumerate() {
            if v == Sym::NONE {
                continue;
            }
            let value = if slot == ROLES_SLOT {
                self.roles_string()
            } else {
                intern::resolve(v)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            };
            out.push((FIXED_PROPERTIES[slot].to_owned(), value));
        }
        let mut others: Vec<(String, String)> = self
            .others
            .iter()
            .map(|&(k, v)| {
                let text = |s| {
                    intern::resolve(s)
                        .map(|s| s.to_string())
                        .unwrap_or_default()
                };
                (text(k), text(v))
            })
            .collect();
        others.sort();
        out.extend(others);
        out
    }

    /// Every interned id the session holds a reference to.
    fn held(&self) -> impl Iterator<Item = Sym> + '_ {
        self.fixed
            .iter()
            .copied()
            .chain(self.others.iter().flat_map(|&(k, v)| [k, v]))
            .chain(self.roles.iter().copied())
    }
}

impl Clone for Session {
    fn clone(&self) -> Session {
        self.held().for_each(intern::retain);
        Session {
            fixed: self.fixed,
            others: self.others.clone(),
            roles: self.roles.clone(),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.held().for_each(intern::release);
    }
}

/// Equal when they hold the same properties (roles compared as sets).
impl PartialEq for Session {
    fn eq(&self, other: &Session) -> bool {
        self.fixed == other.fixed
            && self.others == other.others
            && self.roles.len() == other.roles.len()
            && self.roles.iter().all(|r| other.roles.contains(r))
    }
}
impl Eq for Session {}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.properties()).finish()
    }
}

/// A property key resolved once for fast lookups with [`Session::value`].
#[derive(Clone, Debug)]
pub enum PropertyKey {
    /// A known fixed property, by its index in [`FIXED_PROPERTIES`].
    Fixed(u8),
    /// Any other key, interned.
    Other(Interned),
}

impl PropertyKey {
    /// Resolves `key`.
    pub fn new(key: &str) -> Result<PropertyKey, CapacityError> {
        match fixed_slot(key) {
            Some(slot) => Ok(PropertyKey::Fixed(slot as u8)),
            None => Interned::new(key).map(PropertyKey::Other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::properties::{COUNTRY, SESSION_ID};

    #[test]
    fn roles_slot_is_found_at_compile_time() {
        assert_eq!(FIXED_PROPERTIES[ROLES_SLOT], ROLES);
        assert_eq!(
            fixed_slot(COUNTRY).map(|s| FIXED_PROPERTIES[s]),
            Some(COUNTRY)
        );
        assert_eq!(fixed_slot("$Version"), None);
        assert_eq!(fixed_slot("Country"), None);
    }

    #[test]
    fn builds_gets_and_lists_properties() {
        let s = Session::new([
            (SESSION_ID, "s1"),
            ("$Version", "7"),
            ("Tier", "gold"),
            ("$Roles", "'b', \"a\", 'b'"),
            ("Empty", ""),
        ])
        .unwrap();
        assert_eq!(s.id().as_deref(), Some("s1"));
        assert_eq!(s.get("$Version").as_deref(), Some("7"));
        assert_eq!(s.get("Empty").as_deref(), Some(""));
        assert_eq!(s.get("Missing"), None);
        assert_eq!(s.get("$Roles").as_deref(), Some("\"b\",\"a\""));
        assert!(s.contains_key("$Roles") && s.contains_key("Tier") && !s.contains_key("$Country"));
        let props = s.properties();
        assert_eq!(props[0], ("$Roles".into(), "\"b\",\"a\"".into()));
        assert_eq!(props[1], ("$SessionId".into(), "s1".into()));
        assert_eq!(props.len(), 5);
        assert_eq!(s.clone(), s);
    }

    #[test]
    fn rejects_bad_input_and_gives_back_what_it_took() {
        assert!(matches!(
            Session::new([("a", "1"), ("a", "2")]),
            Err(Error::DuplicateKey(k)) if k == "a"
        ));
        assert!(matches!(
            Session::new([("a b", "1")]),
            Err(Error::InvalidKey(_))
        ));
        assert!(matches!(
            Session::new([("$Roles", "\"unterminated")]),
            Err(Error::InvalidRoles(_))
        ));
        let unique = "session-test-value-only-here-δ";
        assert!(Session::new([("k", unique), ("bad key", "x")]).is_err());
        assert_eq!(intern::lookup(unique), None);
    }

    #[test]
    fn roles_present_only_when_supplied() {
        let mut s = Session::new([("$SessionId", "x")]).unwrap();
        assert_eq!(s.get("$Roles"), None);
        s.set_roles(Vec::<String>::new()).unwrap();
        assert_eq!(s.get("$Roles").as_deref(), Some(""));
        assert!(s.remove("$Roles"));
        assert!(!s.remove("$Roles"));
        assert_eq!(s.get("$Roles"), None);
    }

    #[test]
    fn duplicates_are_found_among_many_keys_and_roles() {
        let mut props: Vec<(String, String)> = (0..3000)
            .rev()
            .map(|i| (format!("k{i}"), "v".into()))
            .collect();
        assert_eq!(Session::new(props.clone()).unwrap().others.len(), 3000);
        props.push(("k1500".into(), "w".into()));
        assert_eq!(
            Session::new(props).unwrap_err(),
            Error::DuplicateKey("k1500".into())
        );
        let mut s = Session::empty();
        let roles: Vec<String> = (0..100).chain(0..100).map(|i| format!("r{i}")).collect();
        s.set_roles(&roles).unwrap();
        assert_eq!(s.role_syms().len(), 100);
        assert_eq!(s.roles()[99].as_ref(), "r99");
    }

    #[test]
    fn many_user_keys_use_binary_search() {
        let props: Vec<(String, String)> = (0..40)
            .map(|i| (format!("k{i}"), format!("v{i}")))
            .collect();
        let s = Session::new(props.clone()).unwrap();
        for (k, v) in &props {
            assert_eq!(s.get(k).as_deref(), Some(v.as_str()));
        }
        let mut s2 = s.clone();
        s2.set("k3", "changed").unwrap();
        assert_eq!(s2.get("k3").as_deref(), Some("changed"));
        assert_eq!(s.get("k3").as_deref(), Some("v3"));
    }
}
