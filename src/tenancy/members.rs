//! A tenant's members: the application's own user ids with a role. Writes keep at least one owner
//! once a tenant has one, and tell the key cache, since keys bound to a user follow its role.
use super::store;
use super::tenants::Tenancy;
use super::TenantCtx;
use crate::auth::{Action, Role};
use crate::error::ApiError;
use crate::events::{self, Kind, NewEvent};
use crate::pagination::{Page, PageRequest};
use crate::time::Micros;
use rusqlite::Connection;
use serde_json::json;

/// The application's own user identifier: 1 to 255 printable characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserId(String);

impl UserId {
    pub fn parse(s: &str) -> Result<UserId, ApiError> {
        let n = s.chars().count();
        if n == 0 || n > 255 {
            return Err(ApiError::InvalidRequest(
                "user_id must be 1 to 255 characters".into(),
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(ApiError::InvalidRequest(
                "user_id must be printable (no control characters)".into(),
            ));
        }
        Ok(UserId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Debug)]
pub struct Member {
    pub user_id: String,
    pub role: Role,
    pub created_at: Micros,
}

/// The member's role, when `user_id` is a member of the tenant.
pub fn role_of(c: &Connection, ctx: &TenantCtx, user_id: &str) -> Result<Option<Role>, ApiError> {
    Ok(store::member_role(c, ctx.id(), user_id)?)
}

fn owners(c: &Connection, ctx: &TenantCtx) -> Result<i64, ApiError> {
    Ok(store::owner_count(c, ctx.id())?)
}

/// `member.changed`: added, re-roled or removed (`role: null`).
pub(super) fn member_changed(
    ctx: &TenantCtx,
    user_id: &str,
    previous: Option<Role>,
    role: Option<Role>,
) -> NewEvent {
    let actor = ctx.caller().describe();
    let data = json!({"user_id": user_id, "previous_role": previous.map(Role::as_str),
                      "role": role.map(Role::as_str), "actor": actor});
    let what = match role {
        Some(r) => format!("is now {}", r.as_str()),
        None => "was removed".into(),
    };
    let msg = format!("member {} {what}", crate::error::clip(user_id));
    NewEvent::of(Kind::MemberChanged, ctx.id(), msg, data)
}

fn member_event(
    c: &Connection,
    ctx: &TenantCtx,
    at: Micros,
    user_id: &str,
    previous: Option<Role>,
    role: Option<Role>,
) -> Result<(), ApiError> {
    events::record(c, at, member_changed(ctx, user_id, previous, role))?;
    Ok(())
}

/// Whether changing `user_id`'s role from `current` to `role` (`None`: removing them) would
/// leave the tenant, which has `owners` owners, with none.
pub(super) fn last_owner(current: Option<Role>, role: Option<Role>, owners: i64) -> bool {
    current == Some(Role::Owner) && role != Some(Role::Owner) && owners <= 1
}

pub(super) const LAST_OWNER: &str =
    "this is the tenant's last owner; make another member owner first";

impl Tenancy {
    pub async fn members(
        &self,
        ctx: &TenantCtx,
        page: PageRequest<String>,
    ) -> Result<Page<Member>, ApiError> {
        ctx.require(Action::Read)?;
        if let Some(pg) = self.db.pg() {
            return self.members_pg(pg, ctx, page).await;
        }
        let ctx = ctx.clone();
        self.db
            .run(move |c| {
                let rows = store::list_members(c, ctx.id(), page.after.as_deref(), page.fetch())?;
                Ok(Page::from_rows(rows, page.limit, |m| m.user_id.clone()))
            })
            .await
    }

    /// Adds a member or changes its role.
    pub async fn put_member(
        &self,
        ctx: &TenantCtx,
        user: UserId,
        role: Role,
    ) -> Result<Member, ApiError> {
        ctx.require(Action::Manage)?;
        if let Some(pg) = self.db.pg() {
            return self.put_member_pg(pg, ctx, user, role).await;
        }
        let ctx = ctx.clone();
        let st = self.clone();
        self.db
            .write(move |c| {
                let tx = c.transaction()?;
                let current = role_of(&tx, &ctx, user.as_str())?;
                if current == Some(Role::Owner) && role != Role::Owner && owners(&tx, &ctx)? <= 1 {
                    return Err(ApiError::Conflict(LAST_OWNER.into()));
                }
                let now = st.now();
                let created_at = store::upsert_member(&tx, ctx.id(), user.as_str(), role, now)?;
                member_event(&tx, &ctx, now, user.as_str(), current, Some(role))?;
                tx.commit()?;
                st.keys.member_changed(ctx.id(), user.as_str(), Some(role));
                Ok(Member {
                    user_id: user.as_str().to_string(),
                    role,
                    created_at,
                })
            })
            .await
    }

    pub async fn remove_member(&self, ctx: &TenantCtx, user: UserId) -> Result<(), ApiError> {
        ctx.require(Action::Manage)?;
        if let Some(pg) = self.db.pg() {
            return self.remove_member_pg(pg, ctx, user).await;
        }
        let ctx = ctx.clone();
        let st = self.clone();
        self.db
            .write(move |c| {
                let tx = c.transaction()?;
                let current = match role_of(&tx, &ctx, user.as_str())? {
                    None => return Err(ApiError::NotFound("no such member".into())),
                    Some(Role::Owner) if owners(&tx, &ctx)? <= 1 => {
                        return Err(ApiError::Conflict(LAST_OWNER.into()))
                    }
                    Some(r) => r,
                };
                store::delete_member(&tx, ctx.id(), user.as_str())?;
                member_event(&tx, &ctx, st.now(), user.as_str(), Some(current), None)?;
                tx.commit()?;
                st.keys.member_changed(ctx.id(), user.as_str(), None);
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_printable_and_bounded() {
        assert!(UserId::parse("alice@example.com").is_ok());
        assert!(UserId::parse("user with spaces").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a\nb").is_err());
        assert!(UserId::parse(&"u".repeat(255)).is_ok());
        assert!(UserId::parse(&"u".repeat(256)).is_err());
    }
}
