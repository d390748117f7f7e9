//! etcd's rules for each change to users, roles and permissions (auth/store.go in etcd 3.4/3.5),
//! on the record as it is at that point of the log.

use super::{AuthError, ROOT_ROLE, ROOT_USER};
use cairn_proto::authpb::{Permission, Role, User, UserAddOptions};
use cairn_proto::cairnpb::{AuthChange, AuthState, auth_change::Change};

fn find_user<'s>(s: &'s mut AuthState, name: &str) -> Result<&'s mut User, AuthError> {
    s.users
        .iter_mut()
        .find(|u| u.name == name.as_bytes())
        .ok_or(AuthError::UserNotFound)
}

fn find_role<'s>(s: &'s mut AuthState, name: &str) -> Result<&'s mut Role, AuthError> {
    s.roles
        .iter_mut()
        .find(|r| r.name == name.as_bytes())
        .ok_or(AuthError::RoleNotFound)
}

/// Applies `change` to `s`; says whether the auth revision moves (etcd moves it on every change
/// but enabling auth, and not for what changes nothing).
pub(super) fn change_state(s: &mut AuthState, change: &AuthChange) -> Result<bool, AuthError> {
    let Some(change) = &change.change else {
        return Ok(false);
    };
    match change {
        Change::Enable(_) => {
            if s.enabled {
                return Ok(false);
            }
            let root = s
                .users
                .iter()
                .find(|u| u.name == ROOT_USER.as_bytes())
                .ok_or(AuthError::RootUserNotExist)?;
            if !root.roles.iter().any(|r| r == ROOT_ROLE) {
                return Err(AuthError::RootRoleNotExist);
            }
            s.enabled = true;
            return Ok(false);
        }
        Change::Disable(_) => {
            if !s.enabled {
                return Ok(false);
            }
            s.enabled = false;
        }
        Change::UserAdd(r) => {
            if r.name.is_empty() {
                return Err(AuthError::UserEmpty);
            }
            if s.users.iter().any(|u| u.name == r.name.as_bytes()) {
                return Err(AuthError::UserAlreadyExists);
            }
            let no_password = r.options.as_ref().is_some_and(|o| o.no_password);
            s.users.push(User {
                name: r.name.clone().into_bytes().into(),
                password: if no_password {
                    Default::default()
                } else {
                    r.hashed_password.clone().into_bytes().into()
                },
                roles: Vec::new(),
                options: Some(UserAddOptions { no_password }),
            });
        }
        Change::UserDelete(r) => {
            if s.enabled && r.name == ROOT_USER {
                return Err(AuthError::InvalidAuthManagement);
            }
            let before = s.users.len();
            s.users.retain(|u| u.name != r.name.as_bytes());
            if s.users.len() == before {
                return Err(AuthError::UserNotFound);
            }
        }
        Change::UserChangePassword(r) => {
            let user = find_user(s, &r.name)?;
            user.password = r.hashed_password.clone().into_bytes().into();
        }
        Change::UserGrantRole(r) => {
            if r.role != ROOT_ROLE && !s.roles.iter().any(|x| x.name == r.role.as_bytes()) {
                return Err(AuthError::RoleNotFound);
            }
            let user = find_user(s, &r.user)?;
            // Granting a role the user has is not an error in etcd: nothing changes.
            match user.roles.binary_search(&r.role) {
                Ok(_) => return Ok(false),
                Err(at) => user.roles.insert(at, r.role.clone()),
            }
        }
        Change::UserRevokeRole(r) => {
            if s.enabled && r.name == ROOT_USER && r.role == ROOT_ROLE {
                return Err(AuthError::InvalidAuthManagement);
            }
            let user = find_user(s, &r.name)?;
            let at = user
                .roles
                .iter()
                .position(|x| *x == r.role)
                .ok_or(AuthError::RoleNotGranted)?;
            user.roles.remove(at);
        }
        Change::RoleAdd(r) => {
            if r.name.is_empty() {
                return Err(AuthError::RoleEmpty);
            }
            if s.roles.iter().any(|x| x.name == r.name.as_bytes()) {
                return Err(AuthError::RoleAlreadyExists);
            }
            s.roles.push(Role {
                name: r.name.clone().into_bytes().into(),
                key_permission: Vec::new(),
            });
        }
        Change::RoleDelete(r) => {
            if s.enabled && r.role == ROOT_ROLE {
                return Err(AuthError::InvalidAuthManagement);
            }
            let before = s.roles.len();
            s.roles.retain(|x| x.name != r.role.as_bytes());
            if s.roles.len() == before {
                return Err(AuthError::RoleNotFound);
            }
            for u in &mut s.users {
                u.roles.retain(|x| *x != r.role);
            }
        }
        Change::RoleGrantPermission(r) => {
            let role = find_role(s, &r.name)?;
            let Some(perm) = &r.perm else {
                return Ok(false);
            };
            // etcd's rule, quirks included: only the first permission on the same key is looked
            // at; if it has the same range end, granting again changes its type, otherwise the
            // new one goes after every permission on keys up to its own (kept in key order,
            // grants on one key in the order they came).
            let perms = &mut role.key_permission;
            let first = perms.partition_point(|p| p.key < perm.key);
            match perms.get_mut(first) {
                Some(p) if p.key == perm.key && p.range_end == perm.range_end => {
                    p.perm_type = perm.perm_type
                }
                _ => {
                    let at = perms.partition_point(|p| p.key <= perm.key);
                    perms.insert(at, perm.clone());
                }
            }
        }
        Change::RoleRevokePermission(r) => {
            let role = find_role(s, &r.role)?;
            let before = role.key_permission.len();
            role.key_permission
                .retain(|p: &Permission| !(p.key == r.key && p.range_end == r.range_end));
            if role.key_permission.len() == before {
                return Err(AuthError::PermissionNotGranted);
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::etcdserverpb::*;

    fn ch(c: Change) -> AuthChange {
        AuthChange { change: Some(c) }
    }

    #[test]
    fn etcds_rules_for_users_roles_and_permissions() {
        let mut s = AuthState::default();
        let add = |name: &str| {
            ch(Change::UserAdd(AuthUserAddRequest {
                name: name.into(),
                hashed_password: "h".into(),
                ..Default::default()
            }))
        };
        assert_eq!(change_state(&mut s, &add("")), Err(AuthError::UserEmpty));
        change_state(&mut s, &add("alice")).unwrap();
        assert_eq!(
            change_state(&mut s, &add("alice")),
            Err(AuthError::UserAlreadyExists)
        );
        let grant = |user: &str, role: &str| {
            ch(Change::UserGrantRole(AuthUserGrantRoleRequest {
                user: user.into(),
                role: role.into(),
            }))
        };
        assert_eq!(
            change_state(&mut s, &grant("alice", "r")),
            Err(AuthError::RoleNotFound)
        );
        change_state(&mut s, &grant("alice", "root")).unwrap();
        let role_add = |n: &str| ch(Change::RoleAdd(AuthRoleAddRequest { name: n.into() }));
        change_state(&mut s, &role_add("r")).unwrap();
        assert_eq!(
            change_state(&mut s, &role_add("r")),
            Err(AuthError::RoleAlreadyExists)
        );
        change_state(&mut s, &grant("alice", "r")).unwrap();
        change_state(&mut s, &grant("alice", "r")).unwrap();
        assert_eq!(s.users[0].roles, vec!["r".to_string(), "root".to_string()]);
        let perm = |key: &str, end: &str, t: i32| {
            ch(Change::RoleGrantPermission(
                AuthRoleGrantPermissionRequest {
                    name: "r".into(),
                    perm: Some(Permission {
                        perm_type: t,
                        key: key.as_bytes().to_vec().into(),
                        range_end: end.as_bytes().to_vec().into(),
                    }),
                },
            ))
        };
        change_state(&mut s, &perm("b", "", 0)).unwrap();
        change_state(&mut s, &perm("a", "c", 1)).unwrap();
        change_state(&mut s, &perm("b", "", 2)).unwrap();
        let keys: Vec<_> = s.roles[0]
            .key_permission
            .iter()
            .map(|p| (p.key.to_vec(), p.perm_type))
            .collect();
        assert_eq!(keys, vec![(b"a".to_vec(), 1), (b"b".to_vec(), 2)]);
        let revoke = |key: &str| {
            ch(Change::RoleRevokePermission(
                AuthRoleRevokePermissionRequest {
                    role: "r".into(),
                    key: key.as_bytes().to_vec().into(),
                    range_end: Default::default(),
                },
            ))
        };
        change_state(&mut s, &revoke("b")).unwrap();
        assert_eq!(
            change_state(&mut s, &revoke("b")),
            Err(AuthError::PermissionNotGranted)
        );
        change_state(
            &mut s,
            &ch(Change::RoleDelete(AuthRoleDeleteRequest {
                role: "r".into(),
            })),
        )
        .unwrap();
        assert_eq!(
            s.users[0].roles,
            vec!["root".to_string()],
            "deleting a role revokes it"
        );
        let revoke_role = ch(Change::UserRevokeRole(AuthUserRevokeRoleRequest {
            name: "alice".into(),
            role: "r".into(),
        }));
        assert_eq!(
            change_state(&mut s, &revoke_role),
            Err(AuthError::RoleNotGranted)
        );
        let del = |n: &str| ch(Change::UserDelete(AuthUserDeleteRequest { name: n.into() }));
        assert_eq!(
            change_state(&mut s, &del("bob")),
            Err(AuthError::UserNotFound)
        );
        change_state(&mut s, &del("alice")).unwrap();
        assert!(s.users.is_empty());
    }
}
