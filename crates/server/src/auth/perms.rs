//! A user's key permissions, merged from all of its roles into sorted, non-overlapping key
//! intervals (one list for reading, one for writing), and etcd's rules for checking a key or a
//! range against them.
//!
//! etcd's rules (auth/range_perm_cache.go): a permission with an empty range end covers its one
//! key, `"\0"` as range end means "every key from this one on"; a single key is permitted when
//! some interval holds it, a range only when the union of the intervals covers all of it.

use cairn_proto::authpb::{Permission, Role, permission::Type};

/// An interval end: `None` is past every key.
type End = Option<Vec<u8>>;

fn end_lt(a: &End, b: &End) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a < b,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The smallest key after `key`: what a single-key permission covers up to.
fn next_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.extend_from_slice(key);
    k.push(0);
    k
}

/// Sorted, disjoint, non-adjacent `[begin, end)` intervals.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Intervals(Vec<(Vec<u8>, End)>);

impl Intervals {
    fn from_unsorted(mut raw: Vec<(Vec<u8>, End)>) -> Intervals {
        raw.sort_by(|a, b| a.0.cmp(&b.0));
        let mut merged: Vec<(Vec<u8>, End)> = Vec::with_capacity(raw.len());
        for (begin, end) in raw {
            if let Some(last) = merged.last_mut() {
                // Overlapping or touching: [a, b) ∪ [b, c) = [a, c).
                let touches = match &last.1 {
                    None => true,
                    Some(last_end) => begin <= *last_end,
                };
                if touches {
                    if end_lt(&last.1, &end) {
                        last.1 = end;
                    }
                    continue;
                }
            }
            merged.push((begin, end));
        }
        Intervals(merged)
    }

    /// The interval that could hold `key`: the last one beginning at or before it.
    fn holding(&self, key: &[u8]) -> Option<&(Vec<u8>, End)> {
        let at = self.0.partition_point(|(begin, _)| begin.as_slice() <= key);
        at.checked_sub(1).map(|i| &self.0[i])
    }

    fn contains_key(&self, key: &[u8]) -> bool {
        self.holding(key).is_some_and(|(_, end)| match end {
            None => true,
            Some(end) => key < end.as_slice(),
        })
    }

    /// Whether `[begin, end)` lies inside one merged interval (merged intervals never touch,
    /// so a range covered by the union is covered by one of them).
    fn covers(&self, begin: &[u8], end: &End) -> bool {
        if let Some(e) = end
            && e.as_slice() <= begin
        {
            // An empty or inverted range: etcd finds no interval for it and refuses.
            return false;
        }
        self.holding(begin)
            .is_some_and(|(_, have)| !end_lt(have, end))
    }
}

/// What one user may read and write.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UserPerms {
    read: Intervals,
    write: Intervals,
}

impl UserPerms {
    /// The root role's: every key.
    pub fn everything() -> UserPerms {
        let all = Intervals(vec![(Vec::new(), None)]);
        UserPerms {
            read: all.clone(),
            write: all,
        }
    }

    pub fn merge<'r>(roles: impl IntoIterator<Item = &'r Role>) -> UserPerms {
        let (mut read, mut write) = (Vec::new(), Vec::new());
        for role in roles {
            for perm in &role.key_permission {
                let interval = interval_of(perm);
                match Type::try_from(perm.perm_type) {
                    Ok(Type::Read) => read.push(interval),
                    Ok(Type::Write) => write.push(interval),
                    Ok(Type::Readwrite) => {
                        read.push(interval.clone());
                        write.push(interval);
                    }
                    Err(_) => {}
                }
            }
        }
        UserPerms {
            read: Intervals::from_unsorted(read),
            write: Intervals::from_unsorted(write),
        }
    }

    pub fn may_read(&self, key: &[u8], range_end: &[u8]) -> bool {
        check(&self.read, key, range_end)
    }

    pub fn may_write(&self, key: &[u8], range_end: &[u8]) -> bool {
        check(&self.write, key, range_end)
    }
}

fn interval_of(perm: &Permission) -> (Vec<u8>, End) {
    let key = perm.key.to_vec();
    let end = match perm.range_end.as_ref() {
        [] => Some(next_key(&key)),
        [0] => None,
        end => Some(end.to_vec()),
    };
    (key, end)
}

fn check(intervals: &Intervals, key: &[u8], range_end: &[u8]) -> bool {
    match range_end {
        [] => intervals.contains_key(key),
        [0] => intervals.covers(key, &None),
        end => intervals.covers(key, &Some(end.to_vec())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn role(perms: &[(&str, &str, Type)]) -> Role {
        Role {
            name: "r".into(),
            key_permission: perms
                .iter()
                .map(|(k, e, t)| Permission {
                    perm_type: *t as i32,
                    key: k.as_bytes().to_vec().into(),
                    range_end: e.as_bytes().to_vec().into(),
                })
                .collect(),
        }
    }

    #[test]
    fn keys_prefixes_ranges_and_from_key_as_etcd_checks_them() {
        let r = role(&[
            ("a", "", Type::Read),
            ("p/", "p0", Type::Readwrite),
            ("k", "m", Type::Write),
            ("m", "o", Type::Write),
            ("z", "\0", Type::Read),
        ]);
        let p = UserPerms::merge([&r]);
        assert!(p.may_read(b"a", b""));
        assert!(!p.may_write(b"a", b""));
        assert!(!p.may_read(b"a", b"b"), "a single key grants no range");
        assert!(!p.may_read(b"a\0", b""));
        assert!(p.may_read(b"p/x", b""));
        assert!(p.may_read(b"p/", b"p0"));
        assert!(p.may_read(b"p/a", b"p/b"));
        assert!(!p.may_read(b"p", b"p0"));
        assert!(!p.may_read(b"p/", b"\0"));
        // Touching write intervals [k,m) and [m,o) cover [k,o).
        assert!(p.may_write(b"k", b"o"));
        assert!(!p.may_write(b"k", b"o\0"));
        assert!(!p.may_read(b"k", b""));
        assert!(p.may_read(b"zz", b"\0"));
        assert!(p.may_read(b"z", b"\0"));
        assert!(p.may_read(b"\xff\xff", b""));
        assert!(!p.may_read(b"y", b"\0"));
        assert!(!p.may_read(b"p/b", b"p/a"), "an inverted range is refused");
    }

    /// The check done key by key: a gap in the permissions always begins at the start of the
    /// range or at the end of some permission, so checking those keys (and a few others) is
    /// exact.
    fn naive(perms: &[(Vec<u8>, Vec<u8>)], key: &[u8], end: &[u8]) -> bool {
        let holds = |k: &[u8]| {
            perms.iter().any(|(pk, pe)| match pe.as_slice() {
                [] => k == pk.as_slice(),
                [0] => k >= pk.as_slice(),
                pe => k >= pk.as_slice() && k < pe,
            })
        };
        if end.is_empty() {
            return holds(key);
        }
        if end != [0] && end <= key {
            return false;
        }
        let mut candidates = vec![key.to_vec(), vec![0xff; 4]];
        for (pk, pe) in perms {
            candidates.push(match pe.as_slice() {
                [] => next_key(pk),
                pe => pe.to_vec(),
            });
        }
        candidates
            .iter()
            .filter(|k| k.as_slice() >= key && (end == [0] || k.as_slice() < end))
            .all(|k| holds(k))
    }

    fn short_key() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(vec![b'a', b'b', b'c', b'd']), 1..=2)
    }

    proptest! {
        // The merged intervals agree with the permissions taken one at a time.
        #[test]
        fn merged_intervals_agree_with_the_permissions_one_by_one(
            perms in prop::collection::vec((short_key(), prop::option::of(short_key())), 0..6),
            key in short_key(),
            end in prop::sample::select(vec![vec![], vec![0], vec![b'a'], vec![b'b', b'c'], vec![b'c'], vec![b'e']]),
        ) {
            let perms: Vec<(Vec<u8>, Vec<u8>)> =
                perms.into_iter().map(|(k, e)| (k, e.unwrap_or_default())).collect();
            let role = Role {
                name: "r".into(),
                key_permission: perms.iter().map(|(k, e)| Permission {
                    perm_type: Type::Read as i32,
                    key: k.clone().into(),
                    range_end: e.clone().into(),
                }).collect(),
            };
            let merged = UserPerms::merge([&role]);
            prop_assert_eq!(merged.may_read(&key, &end), naive(&perms, &key, &end));
        }
    }
}
