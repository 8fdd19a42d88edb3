//! The JSON shapes of responses, built from domain types at the edge.
use crate::auth::keys::ApiKey;
use crate::tenancy::members::Member;
use crate::tenancy::Tenant;
use crate::time::rfc3339;
use serde::Serialize;

#[derive(Serialize)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub plan: &'static str,
    pub status: &'static str,
    pub created_at: String,
    pub updated_at: String,
    pub deactivated_at: Option<String>,
}

impl From<&Tenant> for TenantView {
    fn from(t: &Tenant) -> Self {
        TenantView {
            id: t.id.to_string(),
            name: t.name.clone(),
            slug: t.slug.to_string(),
            plan: t.plan.as_str(),
            status: t.status.as_str(),
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
            deactivated_at: t.deactivated_at.map(rfc3339),
        }
    }
}

#[derive(Serialize)]
pub struct MemberView {
    pub user_id: String,
    pub role: &'static str,
    pub created_at: String,
}

impl From<Member> for MemberView {
    fn from(m: Member) -> Self {
        MemberView {
            user_id: m.user_id,
            role: m.role.as_str(),
            created_at: rfc3339(m.created_at),
        }
    }
}

#[derive(Serialize)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub role: &'static str,
    pub user_id: Option<String>,
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    /// Present only in the create response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl From<ApiKey> for KeyView {
    fn from(k: ApiKey) -> Self {
        KeyView {
            id: k.id.to_string(),
            name: k.name,
            role: k.role.as_str(),
            user_id: k.user_id,
            prefix: k.prefix,
            created_at: rfc3339(k.created_at),
            expires_at: k.expires_at.map(rfc3339),
            revoked_at: k.revoked_at.map(rfc3339),
            key: None,
        }
    }
}
