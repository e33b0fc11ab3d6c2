//! A session read as the terms the reverse index is keyed by, and the keys
//! that differ between two sessions.
//!
//! This is the only code of the standing filters that knows how a
//! [`Session`] lays out its properties (a fixed array, sorted other pairs, a
//! role list), so a new layout changes this file alone.

use smallvec::SmallVec;

use crate::intern::Sym;
use crate::session::{Session, ROLES_SLOT};
use crate::vm::analysis::{Key, Term};

/// Calls `f` with every term the session has: each key's value and
/// presence, each role and the number of roles. With `only`, just the terms
/// of those keys.
#[inline]
pub(super) fn for_each_term(s: &Session, only: Option<&[Key]>, mut f: impl FnMut(Term)) {
    let wanted = |key: Key| only.is_none_or(|keys| keys.contains(&key));
    for (slot, &value) in s.fixed.iter().enumerate() {
        if value == Sym::NONE {
            continue;
        }
        let key = Key::fixed(slot);
        if !wanted(key) {
            continue;
        }
        f(Term::Present(key));
        if slot != ROLES_SLOT {
            f(Term::Value(key, value));
        }
    }
    // A session without `$Roles` has the empty set of roles: its count is 0.
    if wanted(Key::roles()) {
        for &role in &s.roles {
            f(Term::Role(role));
        }
        f(Term::RoleCount(s.roles.len() as u32));
    }
    for &(key, value) in &s.others {
        let key = Key::other(key);
        if wanted(key) {
            f(Term::Present(key));
            f(Term::Value(key, value));
        }
    }
}

/// The keys whose value differs between two sessions: present in one only,
/// or with different values (roles compared as sets, with `$Roles`'
/// presence).
pub(crate) fn changed_keys(before: &Session, after: &Session) -> SmallVec<[Key; 4]> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn session(props: &[(&str, &str)]) -> Session {
        Session::new(props.iter().copied()).unwrap()
    }

    #[test]
    fn terms_cover_values_presence_roles_and_count() {
        let s = session(&[
            ("$Country", "UK"),
            ("Tier", "gold"),
            ("$Roles", r#""a","b""#),
        ]);
        let mut terms = Vec::new();
        for_each_term(&s, None, |t| terms.push(t));
        // $Country: present and value; $Roles: present, two roles, count;
        // Tier: present and value.
        assert_eq!(terms.len(), 2 + 4 + 2, "{terms:?}");
        assert!(terms.contains(&Term::RoleCount(2)));
        let mut none = Vec::new();
        for_each_term(&Session::empty(), None, |t| none.push(t));
        assert_eq!(none, [Term::RoleCount(0)]);
    }

    #[test]
    fn changed_keys_compare_values_presence_and_role_sets() {
        let a = session(&[
            ("$Country", "UK"),
            ("Tier", "gold"),
            ("$Roles", r#""a","b""#),
        ]);
        let b = session(&[
            ("$Country", "UK"),
            ("Tier", "gold"),
            ("$Roles", r#""b","a""#),
        ]);
        assert!(changed_keys(&a, &b).is_empty());
        let c = session(&[("$Country", "DE"), ("Dept", "x"), ("$Roles", r#""a""#)]);
        let keys = changed_keys(&a, &c);
        assert_eq!(keys.len(), 4, "{keys:?}");
        assert!(keys.contains(&Key::roles()));
        // `$Roles` absent and `$Roles` empty differ by presence.
        let d = session(&[("$Roles", "")]);
        assert_eq!(&changed_keys(&Session::empty(), &d)[..], [Key::roles()]);
    }
}
