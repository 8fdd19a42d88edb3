//! Who is calling: the admin token or a tenant API key, with the role that decides what the
//! caller may do. `Caller::may` is the one table of permissions.
pub mod admin;
pub mod guard;
pub mod key_cache;
pub mod keys;
pub mod keys_pg;
pub mod store;

pub use admin::AdminToken;
pub use key_cache::KeyCache;

use crate::tenancy::TenantId;
use serde::Serialize;
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Member,
    Viewer,
    /// An application backend: ingests usage and reads credentials, nothing else.
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Member => "member",
            Role::Viewer => "viewer",
            Role::Service => "service",
        }
    }

    /// Any key role.
    pub fn parse_key_role(s: &str) -> Result<Role, String> {
        match s {
            "owner" => Ok(Role::Owner),
            "member" => Ok(Role::Member),
            "viewer" => Ok(Role::Viewer),
            "service" => Ok(Role::Service),
            _ => Err(format!(
                "role must be owner, member, viewer or service, not `{}`",
                crate::error::clip(s)
            )),
        }
    }

    /// A member's role: `service` belongs to keys, not to people.
    pub fn parse_member_role(s: &str) -> Result<Role, String> {
        match Role::parse_key_role(s) {
            Ok(Role::Service) | Err(_) => Err(format!(
                "role must be owner, member or viewer, not `{}`",
                crate::error::clip(s)
            )),
            Ok(r) => Ok(r),
        }
    }

    /// Position in the owner > member > viewer ladder; `service` stands outside it.
    pub fn rank(self) -> Option<u8> {
        match self {
            Role::Owner => Some(3),
            Role::Member => Some(2),
            Role::Viewer => Some(1),
            Role::Service => None,
        }
    }

    /// The lower of two ladder roles.
    pub fn min(self, other: Role) -> Role {
        match (self.rank(), other.rank()) {
            (Some(a), Some(b)) if b < a => other,
            _ => self,
        }
    }
}

/// What a request wants to do, as far as roles are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Read usage, stats, limits, settings (keys masked), members, events.
    Read,
    /// Record usage events and the application's own operational events.
    Ingest,
    /// Store agent preferences.
    SetPreferences,
    /// Manage members, keys, settings and provider keys.
    Manage,
    /// Read a decrypted provider credential.
    ReadCredentials,
    /// Lease, heartbeat, complete and fail queue jobs (a worker).
    Work,
}

/// Who may call an operation, declared once per route (`http/routes.rs`), enforced before its
/// handler runs, and read by the OpenAPI document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No token: health, readiness, the OpenAPI document, the admin page.
    Public,
    /// Any valid token, not tenant-scoped.
    AnyToken,
    /// The admin token only.
    Admin,
    /// Tenant-scoped, viewer and up: reads.
    Viewer,
    /// Tenant-scoped, member and up.
    Member,
    /// Tenant-scoped: member and up, or a service key (ingest).
    MemberOrService,
    /// Tenant-scoped: a service key (or the admin): credentials.
    Service,
    /// Tenant-scoped, owner: manage members, keys, settings, provider keys.
    Owner,
    /// A queue worker: a service key (its tenant's jobs) or the admin token (every tenant's).
    Worker,
    /// The gateway: member and up, or a service key; never the admin token (a call belongs
    /// to one tenant, its key's).
    Gateway,
}

impl Access {
    /// The tenant-scoped action this access stands for; `None` for the rest.
    pub fn action(self) -> Option<Action> {
        match self {
            Access::Public | Access::AnyToken | Access::Admin => None,
            Access::Viewer => Some(Action::Read),
            Access::Member => Some(Action::SetPreferences),
            Access::MemberOrService | Access::Gateway => Some(Action::Ingest),
            Access::Service => Some(Action::ReadCredentials),
            Access::Worker => Some(Action::Work),
            Access::Owner => Some(Action::Manage),
        }
    }

    /// The contract's words for it.
    pub fn describe(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::AnyToken => "any valid token",
            Access::Admin => "admin",
            Access::Viewer => "viewer",
            Access::Member => "member",
            Access::MemberOrService => "member or service",
            Access::Gateway => "member or service (a tenant key; the admin token is refused)",
            Access::Service => "service key or admin",
            Access::Worker => "service key (its tenant's jobs) or admin (every tenant's)",
            Access::Owner => "owner",
        }
    }
}

#[derive(Clone, Debug)]
pub struct KeyCaller {
    pub key_id: Uuid,
    pub tenant_id: TenantId,
    /// The effective role: the key's, capped by its member's current role.
    pub role: Role,
    pub user_id: Option<String>,
}

/// Proof that a request carried the admin token. Only `AdminToken::verify` makes one, so a
/// domain operation that takes it (creating tenants, setting prices) cannot be reached with a
/// tenant key, whatever the route says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminProof(());

impl AdminProof {
    fn new() -> AdminProof {
        AdminProof(())
    }

    #[cfg(test)]
    pub(crate) fn for_tests() -> AdminProof {
        AdminProof(())
    }
}

#[derive(Clone, Debug)]
pub enum Caller {
    Admin(AdminProof),
    Key(KeyCaller),
}

impl Caller {
    pub fn may(&self, action: Action) -> bool {
        use Action::*;
        let role = match self {
            Caller::Admin(_) => return true,
            Caller::Key(k) => k.role,
        };
        match role {
            Role::Owner => matches!(action, Read | Ingest | SetPreferences | Manage),
            Role::Member => matches!(action, Read | Ingest | SetPreferences),
            Role::Viewer => action == Read,
            Role::Service => matches!(action, Ingest | ReadCredentials | Work),
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Caller::Admin(_))
    }

    /// For audit fields: `admin`, or the key id (and its user).
    pub fn describe(&self) -> String {
        match self {
            Caller::Admin(_) => "admin".into(),
            Caller::Key(k) => match &k.user_id {
                Some(u) => format!("key:{} user:{u}", k.key_id),
                None => format!("key:{}", k.key_id),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(role: Role) -> Caller {
        Caller::Key(KeyCaller {
            key_id: Uuid::nil(),
            tenant_id: crate::tenancy::DEFAULT_TENANT_ID,
            role,
            user_id: None,
        })
    }

    #[test]
    fn roles_include_the_ones_below() {
        for a in [Action::Read, Action::Ingest, Action::SetPreferences] {
            assert!(key(Role::Owner).may(a) && key(Role::Member).may(a));
        }
        assert!(key(Role::Owner).may(Action::Manage));
        assert!(!key(Role::Member).may(Action::Manage));
        assert!(key(Role::Viewer).may(Action::Read));
        assert!(!key(Role::Viewer).may(Action::Ingest));
    }

    #[test]
    fn service_ingests_and_reads_credentials_only() {
        let s = key(Role::Service);
        assert!(s.may(Action::Ingest) && s.may(Action::ReadCredentials));
        assert!(!s.may(Action::Read) && !s.may(Action::Manage));
        assert!(!key(Role::Owner).may(Action::ReadCredentials));
        assert!(Caller::Admin(AdminProof::for_tests()).may(Action::ReadCredentials));
    }

    #[test]
    fn min_caps_on_the_ladder() {
        assert_eq!(Role::Owner.min(Role::Viewer), Role::Viewer);
        assert_eq!(Role::Viewer.min(Role::Owner), Role::Viewer);
        assert_eq!(Role::Member.min(Role::Member), Role::Member);
    }

    #[test]
    fn service_is_not_a_member_role() {
        assert!(Role::parse_member_role("service").is_err());
        assert!(Role::parse_key_role("service").is_ok());
        assert!(Role::parse_key_role("root").is_err());
    }
}
