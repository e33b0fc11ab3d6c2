//! Sessions as compact maps of interned properties.
//!
//! A [`Session`] keeps the fixed properties in a 16-slot array indexed by
//! their place in [`FIXED_PROPERTIES`], so `$Country is 'DE'` reads one `u32`
//! at a known offset. Other keys (user keys, and unknown `$` keys such as
//! `$Version`) sit in a small vector sorted by key id. `$Roles` is held as a
//! set of role ids, not as a string. The record is 128 bytes (two cache
//! lines): three other pairs and six roles fit in it, more spill to the heap.

use std::fmt;
use std::marker::PhantomData;
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

/// A property key as the indexes (the store's and the standing filters')
/// name it: a fixed property by slot, or another key by id.
///
/// Fixed slots take ids from the top of the range, which `Sym`s never reach
/// (it is reserved for their markers), so the two kinds never collide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key(u32);

impl Key {
    /// The fixed property in `slot` (`$Roles` is [`Key::roles`]).
    pub(crate) fn fixed(slot: usize) -> Key {
        Key(u32::MAX - 2 - slot as u32)
    }

    /// Another key (a user key or an unknown `$` key), by its id.
    pub(crate) fn other(key: Sym) -> Key {
        Key(key.as_u32())
    }

    /// `$Roles`: its presence and its set of roles.
    pub(crate) fn roles() -> Key {
        Key::fixed(ROLES_SLOT)
    }

    /// The fixed slot this key names, if it is a fixed property.
    pub(crate) fn fixed_slot(self) -> Option<usize> {
        let slot = (u32::MAX - 2).checked_sub(self.0)? as usize;
        (slot < FIXED_SLOTS).then_some(slot)
    }

    /// The id of another key's name, if it is not a fixed property.
    pub(crate) fn other_sym(self) -> Option<Sym> {
        self.fixed_slot().is_none().then(|| Sym::from_u32(self.0))
    }
}

/// A fact about one session, as the indexes key it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Term {
    /// The key has this value (every key but `$Roles`, which is a set).
    Value(Key, Sym),
    /// The key is present.
    Present(Key),
    /// The session has this role.
    Role(Sym),
    /// The session has this many roles (none when `$Roles` is absent).
    RoleCount(u32),
}

/// The name of a key, while something holds it (fixed keys always).
pub(crate) fn key_name(key: Key) -> Option<Arc<str>> {
    match key.fixed_slot() {
        Some(slot) => Some(Arc::from(FIXED_PROPERTIES[slot])),
        None => intern::resolve(key.other_sym()?),
    }
}

/// A role change, interned once for all the sessions it applies to.
pub(crate) struct RoleChange {
    remove: Vec<Interned>,
    add: Vec<Interned>,
}

impl RoleChange {
    /// The number of roles `session` would have after the change.
    pub(crate) fn roles_after(&self, session: &Session) -> usize {
        let kept = session
            .roles
            .iter()
            .filter(|r| !self.remove.iter().any(|h| h.sym() == **r))
            .count();
        let added = self
            .add
            .iter()
            .filter(|h| {
                !session.roles.contains(&h.sym()) || self.remove.iter().any(|x| x.sym() == h.sym())
            })
            .count();
        kept + added
    }

    /// True when the change can give a session more roles than it had.
    pub(crate) fn adds(&self) -> bool {
        !self.add.is_empty()
    }

    /// Interns the roles; duplicates collapse.
    pub(crate) fn new(remove: &[&str], add: &[&str]) -> Result<RoleChange, Error> {
        let intern_all = |roles: &[&str]| -> Result<Vec<Interned>, Error> {
            let mut out: Vec<Interned> = Vec::with_capacity(roles.len());
            for r in roles {
                let held = Interned::new(r)?;
                if !out.iter().any(|h| h.sym() == held.sym()) {
                    out.push(held);
                }
            }
            Ok(out)
        };
        Ok(RoleChange {
            remove: intern_all(remove)?,
            add: intern_all(add)?,
        })
    }
}

/// A session's roles: six inline, which makes the record 128 bytes, two
/// cache lines, so a block scan reads every record's fixed slots at the same
/// place in a line pair (a 120-byte record, four roles inline, measured
/// 10-15% slower on `eval/vm/eq`).
type RoleList = SmallVec<[Sym; 6]>;

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
    fixed: [Sym; FIXED_SLOTS],
    /// Other properties, sorted by key id, keys distinct.
    others: SmallVec<[(Sym, Sym); 3]>,
    /// Roles, distinct, in first-seen order.
    roles: RoleList,
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
        let mut syms: RoleList = SmallVec::new();
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

    /// Removes the change's roles to remove, then adds its roles to add (a
    /// role in both ends up present), and writes `$Roles`.
    pub(crate) fn change_roles(&mut self, change: &RoleChange) {
        let mut roles: RoleList = SmallVec::with_capacity(self.roles.len() + change.add.len());
        let mut dropped: SmallVec<[Sym; 4]> = SmallVec::new();
        for &r in &self.roles {
            if change.remove.iter().any(|h| h.sym() == r) {
                dropped.push(r);
            } else {
                roles.push(r);
            }
        }
        for h in &change.add {
            if !roles.contains(&h.sym()) {
                intern::retain(h.sym());
                roles.push(h.sym());
            }
        }
        self.roles = roles;
        self.fixed[ROLES_SLOT] = Sym::PRESENT;
        // Given back only after the new references are taken.
        dropped.into_iter().for_each(intern::release);
    }

    /// Calls `f` with every term the session has: each key's presence and
    /// value (`$Roles` has presence only), each role and the number of roles
    /// (0 without `$Roles`). With `only`, just the terms of those keys. The
    /// one walk of a session's terms, for the store's index and the
    /// standing filters.
    #[inline]
    pub(crate) fn for_each_term(&self, only: Option<&[Key]>, mut f: impl FnMut(Term)) {
        if let Some(keys) = only {
            // Straight to each key, whatever the session's size.
            for &key in keys {
                self.for_each_term_of(key, &mut f);
            }
            return;
        }
        for (slot, &value) in self.fixed.iter().enumerate() {
            if value == Sym::NONE || slot == ROLES_SLOT {
                continue;
            }
            let key = Key::fixed(slot);
            f(Term::Present(key));
            f(Term::Value(key, value));
        }
        self.for_each_term_of(Key::roles(), &mut f);
        for &(key, value) in &self.others {
            let key = Key::other(key);
            f(Term::Present(key));
            f(Term::Value(key, value));
        }
    }

    /// The terms of one key: for `$Roles` its presence, each role and the
    /// number of roles; for another key its presence and value, if it has
    /// one.
    #[inline]
    fn for_each_term_of(&self, key: Key, f: &mut impl FnMut(Term)) {
        let value = match key.fixed_slot() {
            Some(ROLES_SLOT) => {
                if self.fixed[ROLES_SLOT] != Sym::NONE {
                    f(Term::Present(key));
                }
                for &role in &self.roles {
                    f(Term::Role(role));
                }
                f(Term::RoleCount(self.roles.len() as u32));
                return;
            }
            Some(slot) => Some(self.fixed[slot]).filter(|&v| v != Sym::NONE),
            None => key.other_sym().and_then(|k| self.other(k)),
        };
        if let Some(value) = value {
            f(Term::Present(key));
            f(Term::Value(key, value));
        }
    }

    /// The keys whose value differs between `self` and `after`: present in
    /// one only, or with different values (roles compared as sets, with
    /// `$Roles`' presence).
    pub(crate) fn changed_keys(&self, after: &Session) -> SmallVec<[Key; 4]> {
        let before = self;
        let mut keys = SmallVec::new();
        for (slot, (a, b)) in before.fixed.iter().zip(&after.fixed).enumerate() {
            if a != b {
                keys.push(Key::fixed(slot));
            }
        }
        let same_roles = before.roles.len() == after.roles.len()
            && before.roles.iter().all(|r| after.roles.contains(r));
        if !same_roles && !keys.contains(&Key::roles()) {
            keys.push(Key::roles());
        }
        // Both lists are sorted by key: merge them.
        let (mut x, mut y) = (
            before.others.iter().peekable(),
            after.others.iter().peekable(),
        );
        loop {
            match (x.peek(), y.peek()) {
                (None, None) => break,
                (Some(&&(k, _)), None) => {
                    keys.push(Key::other(k));
                    x.next();
                }
                (None, Some(&&(k, _))) => {
                    keys.push(Key::other(k));
                    y.next();
                }
                (Some(&&(k, v)), Some(&&(l, w))) => {
                    if k < l {
                        keys.push(Key::other(k));
                        x.next();
                    } else if l < k {
                        keys.push(Key::other(l));
                        y.next();
                    } else {
                        if v != w {
                            keys.push(Key::other(k));
                        }
                        x.next();
                        y.next();
                    }
                }
            }
        }
        keys
    }

    /// The value in fixed slot `slot` (`Sym::NONE` when absent), for the VM.
    #[inline]
    pub(crate) fn fixed_sym(&self, slot: usize) -> Sym {
        self.fixed[slot]
    }

    /// The roles, for the VM.
    #[inline]
    pub(crate) fn role_syms(&self) -> &[Sym] {
        &self.roles
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
    /// a set).
    pub(crate) fn get_sym(&self, key: &str) -> Option<Sym> {
        match fixed_slot(key) {
            Some(ROLES_SLOT) => None,
            Some(slot) => Some(self.fixed[slot]).filter(|&v| v != Sym::NONE),
            None => self.other(intern::lookup(key)?),
        }
    }

    /// The value of a resolved key, as a handle that compares with
    /// [`Interned`] strings by id: the fast access hand-written matchers use.
    /// `None` when the key is absent, and always for `$Roles` (a set: see
    /// [`Session::has_interned_role`]).
    ///
    /// The handle borrows the session, so it cannot outlive the string it
    /// names:
    ///
    /// ```compile_fail
    /// use session_filter::{PropertyKey, Session};
    /// let key = PropertyKey::new("$Country")?;
    /// let value = {
    ///     let s = Session::new([("$Country", "UK")])?;
    ///     s.value(&key)
    /// }; // error: `s` does not live long enough
    /// # Ok::<(), session_filter::Error>(())
    /// ```
    #[inline]
    pub fn value(&self, key: &PropertyKey) -> Option<PropertyValue<'_>> {
        let sym = match &key.0 {
            KeyRepr::Fixed(slot) => self.fixed[slot.index()],
            KeyRepr::Other(k) => self.other(k.sym())?,
        };
        (!sym.is_marker()).then_some(PropertyValue {
            sym,
            _session: PhantomData,
        })
    }

    /// The id of the value of a resolved key (`None` when absent, and for
    /// `$Roles`).
    pub(crate) fn value_sym(&self, key: &PropertyKey) -> Option<Sym> {
        self.value(key).map(|v| v.sym)
    }

    /// Sets (`Some`) or removes (`None`) the value of a resolved key; the
    /// session takes its own references. `$Roles`, a set, is left alone:
    /// it changes through [`Session::change_roles`] and [`Session::set_roles`].
    pub(crate) fn put(&mut self, key: &PropertyKey, value: Option<&Interned>) {
        let value = value.map(Interned::sym);
        match &key.0 {
            KeyRepr::Fixed(slot) if slot.index() == ROLES_SLOT => {}
            KeyRepr::Fixed(slot) => {
                let new = value.unwrap_or(Sym::NONE);
                intern::retain(new);
                intern::release(std::mem::replace(&mut self.fixed[slot.index()], new));
            }
            KeyRepr::Other(key) => {
                let key = key.sym();
                let at = self.others.binary_search_by_key(&key, |&(k, _)| k);
                match (at, value) {
                    (Ok(at), Some(v)) => {
                        intern::retain(v);
                        intern::release(std::mem::replace(&mut self.others[at].1, v));
                    }
                    (Err(at), Some(v)) => {
                        intern::retain(key);
                        intern::retain(v);
                        self.others.insert(at, (key, v));
                    }
                    (Ok(at), None) => {
                        let (k, v) = self.others.remove(at);
                        intern::release(k);
                        intern::release(v);
                    }
                    (Err(_), None) => {}
                }
            }
        }
    }

    /// True when the session has the role `role`, compared by id.
    #[inline]
    pub fn has_interned_role(&self, role: &Interned) -> bool {
        self.roles.contains(&role.sym())
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

    /// The value of `key` as text (`$Roles` as a canonical roles string),
    /// if present.
    pub(crate) fn value_text(&self, key: Key) -> Option<String> {
        match key.fixed_slot() {
            Some(ROLES_SLOT) => (self.fixed[ROLES_SLOT] != Sym::NONE).then(|| self.roles_string()),
            Some(slot) => Some(self.fixed[slot])
                .filter(|&v| v != Sym::NONE)
                .and_then(intern::resolve)
                .map(|v| v.to_string()),
            None => self
                .other(key.other_sym()?)
                .and_then(intern::resolve)
                .map(|v| v.to_string()),
        }
    }

    /// The number of properties (`$Roles` counts as one).
    pub(crate) fn property_count(&self) -> usize {
        self.fixed.iter().filter(|&&v| v != Sym::NONE).count() + self.others.len()
    }

    /// The number of roles.
    pub(crate) fn role_count(&self) -> usize {
        self.roles.len()
    }

    /// The interned id of the `$SessionId` (`Sym::NONE` without one).
    pub(crate) fn id_sym(&self) -> Sym {
        self.fixed[SESSION_ID_SLOT]
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

    /// Bytes the session holds outside its record, and in how many heap
    /// blocks.
    pub(crate) fn heap_bytes(&self) -> (usize, usize) {
        let mut bytes = 0;
        let mut blocks = 0;
        if self.others.spilled() {
            bytes += self.others.capacity() * 8;
            blocks += 1;
        }
        if self.roles.spilled() {
            bytes += self.roles.capacity() * 4;
            blocks += 1;
        }
        (bytes, blocks)
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
///
/// ```
/// use session_filter::{Interned, PropertyKey, Session};
///
/// let country = PropertyKey::new("$Country")?;
/// let tier = PropertyKey::new("Tier")?;
/// let uk = Interned::new("UK")?;
/// let s = Session::new([("$SessionId", "s1"), ("$Country", "UK")])?;
/// assert!(s.value(&country).is_some_and(|v| v == uk));
/// assert!(s.value(&tier).is_none());
/// assert_eq!(&*country.name(), "$Country");
/// # Ok::<(), session_filter::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropertyKey(KeyRepr);

#[derive(Clone, Debug, PartialEq, Eq)]
enum KeyRepr {
    /// A known fixed property, by its slot (always in range: only
    /// [`PropertyKey::new`] builds one).
    Fixed(FixedSlot),
    /// Any other key, held.
    Other(Interned),
}

/// A slot of the fixed array, checked when made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FixedSlot(u8);

impl FixedSlot {
    fn index(self) -> usize {
        // Only made from `fixed_slot`, which returns indices of the table.
        (self.0 as usize).min(FIXED_SLOTS - 1)
    }
}

impl PropertyKey {
    /// Resolves `key` (any key: fixed, unknown `$` keys and user keys).
    pub fn new(key: &str) -> Result<PropertyKey, CapacityError> {
        match fixed_slot(key) {
            Some(slot) => Ok(PropertyKey(KeyRepr::Fixed(FixedSlot(slot as u8)))),
            None => Interned::new(key).map(|k| PropertyKey(KeyRepr::Other(k))),
        }
    }

    /// The key as indexes name it.
    pub(crate) fn key(&self) -> Key {
        match &self.0 {
            KeyRepr::Fixed(slot) => Key::fixed(slot.index()),
            KeyRepr::Other(k) => Key::other(k.sym()),
        }
    }

    /// The key's text.
    pub fn name(&self) -> Arc<str> {
        match &self.0 {
            KeyRepr::Fixed(slot) => Arc::from(FIXED_PROPERTIES[slot.index()]),
            KeyRepr::Other(k) => k.as_arc_str(),
        }
    }
}

/// A session's value of one property, borrowed from the session: it compares
/// with an [`Interned`] string (or another value) by id, in one instruction.
///
/// It cannot outlive the session it came from, so the id it holds always
/// names the string the session holds.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PropertyValue<'a> {
    sym: Sym,
    _session: PhantomData<&'a Session>,
}

impl PropertyValue<'_> {
    /// The value's text.
    pub fn as_arc_str(&self) -> Arc<str> {
        intern::resolve(self.sym).unwrap_or_else(|| Arc::from(""))
    }

    /// Calls `f` with the value's text, without allocating (the text is
    /// copied out of the interner to the stack, or for long text to a buffer
    /// the thread keeps).
    ///
    /// ```
    /// use session_filter::{PropertyKey, Session};
    /// let s = Session::new([("Tier", "gold")])?;
    /// let tier = s.value(&PropertyKey::new("Tier")?).unwrap();
    /// assert!(tier.with_str(|t| t.starts_with("go")));
    /// # Ok::<(), session_filter::Error>(())
    /// ```
    #[inline]
    pub fn with_str<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        intern::with_text(self.sym, f)
    }
}

impl PartialEq<Interned> for PropertyValue<'_> {
    #[inline]
    fn eq(&self, other: &Interned) -> bool {
        self.sym == other.sym()
    }
}

impl PartialEq<PropertyValue<'_>> for Interned {
    #[inline]
    fn eq(&self, other: &PropertyValue<'_>) -> bool {
        self.sym() == other.sym
    }
}

impl fmt::Debug for PropertyValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.as_arc_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::properties::{COUNTRY, SESSION_ID};

    #[test]
    fn session_record_stays_small() {
        // 16 fixed slots, three other pairs and six roles inline.
        assert_eq!(std::mem::size_of::<Session>(), 128);
    }

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
        assert_eq!(s.roles().len(), 100);
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

    #[test]
    fn terms_cover_values_presence_roles_and_count() {
        let s = Session::new([
            ("$Country", "UK"),
            ("Tier", "gold"),
            ("$Roles", r#""a","b""#),
        ])
        .unwrap();
        let mut terms = Vec::new();
        s.for_each_term(None, |t| terms.push(t));
        // $Country: present and value; $Roles: present, two roles, count;
        // Tier: present and value.
        assert_eq!(terms.len(), 2 + 4 + 2, "{terms:?}");
        assert!(terms.contains(&Term::RoleCount(2)));
        let mut none = Vec::new();
        Session::empty().for_each_term(None, |t| none.push(t));
        assert_eq!(none, [Term::RoleCount(0)]);
    }

    #[test]
    fn changed_keys_compare_values_presence_and_role_sets() {
        let a = Session::new([
            ("$Country", "UK"),
            ("Tier", "gold"),
            ("$Roles", r#""a","b""#),
        ])
        .unwrap();
        let b = Session::new([
            ("$Country", "UK"),
            ("Tier", "gold"),
            ("$Roles", r#""b","a""#),
        ])
        .unwrap();
        assert!(a.changed_keys(&b).is_empty());
        let c = Session::new([("$Country", "DE"), ("Dept", "x"), ("$Roles", r#""a""#)]).unwrap();
        let keys = a.changed_keys(&c);
        assert_eq!(keys.len(), 4, "{keys:?}");
        assert!(keys.contains(&Key::roles()));
        // `$Roles` absent and `$Roles` empty differ by presence.
        let d = Session::new([("$Roles", "")]).unwrap();
        assert_eq!(&Session::empty().changed_keys(&d)[..], [Key::roles()]);
    }
}
