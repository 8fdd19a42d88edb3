//! A tenant's members on PostgreSQL (issue 19). Each write first takes the tenant row lock
//! (docs/SCALE_OUT.md §4.2): the owner count it checks cannot change under it, so two replicas
//! removing the last two owners at once leave one, whichever commits second is refused.
use super::members::{last_owner, member_changed, Member, UserId, LAST_OWNER};
use super::store_pg as store;
use super::tenants::Tenancy;
use super::tenants_pg::tell;
use super::TenantCtx;
use crate::auth::Role;
use crate::db::pg::notify::Invalidation;
use crate::db::pg::Pg;
use crate::error::ApiError;
use crate::pagination::{Page, PageRequest};
use crate::time::Micros;
use tokio_postgres::GenericClient;

/// The tenant row lock of an admin write of `ctx`'s tenant; a tenant deleted meanwhile is
/// unavailable, as it would be to the next request.
pub(crate) async fn lock(c: &impl GenericClient, ctx: &TenantCtx) -> Result<(), ApiError> {
    match store::lock_tenant(c, ctx.id()).await? {
        true => Ok(()),
        false => Err(ApiError::TenantUnavailable),
    }
}

/// The tenant's owners, counted only when the member is one (only then can the count matter).
async fn owners(
    c: &impl GenericClient,
    ctx: &TenantCtx,
    current: Option<Role>,
) -> Result<i64, ApiError> {
    match current {
        Some(Role::Owner) => Ok(store::owner_count(c, ctx.id()).await?),
        _ => Ok(0),
    }
}

/// Records `member.changed` and tells the other replicas, in the caller's transaction.
async fn changed(
    c: &impl GenericClient,
    ctx: &TenantCtx,
    at: Micros,
    user: &str,
    previous: Option<Role>,
    role: Option<Role>,
) -> Result<(), ApiError> {
    let event = member_changed(ctx, user, previous, role);
    crate::events::pg::record_many(c, &[(at, event)]).await?;
    tell(
        c,
        Invalidation::Member(ctx.id().as_uuid(), user.to_string()),
    )
    .await
}

impl Tenancy {
    pub(super) async fn members_pg(
        &self,
        pg: &Pg,
        ctx: &TenantCtx,
        page: PageRequest<String>,
    ) -> Result<Page<Member>, ApiError> {
        let c = pg.conn().await?;
        let rows = store::list_members(&**c, ctx.id(), page.after.as_deref(), page.fetch()).await?;
        Ok(Page::from_rows(rows, page.limit, |m| m.user_id.clone()))
    }

    pub(super) async fn put_member_pg(
        &self,
        pg: &Pg,
        ctx: &TenantCtx,
        user: UserId,
        role: Role,
    ) -> Result<Member, ApiError> {
        let _w = self.db.pg_write_lock().await;
        let mut c = pg.conn().await?;
        let tx = c.transaction().await?;
        lock(&*tx, ctx).await?;
        let current = store::member_role(&*tx, ctx.id(), user.as_str()).await?;
        if last_owner(current, Some(role), owners(&*tx, ctx, current).await?) {
            return Err(ApiError::Conflict(LAST_OWNER.into()));
        }
        let now = self.now();
        let created_at = store::upsert_member(&*tx, ctx.id(), user.as_str(), role, now).await?;
        changed(&*tx, ctx, now, user.as_str(), current, Some(role)).await?;
        tx.commit().await?;
        self.keys
            .member_changed(ctx.id(), user.as_str(), Some(role));
        Ok(Member {
            user_id: user.as_str().to_string(),
            role,
            created_at,
        })
    }

    pub(super) async fn remove_member_pg(
        &self,
        pg: &Pg,
        ctx: &TenantCtx,
        user: UserId,
    ) -> Result<(), ApiError> {
        let _w = self.db.pg_write_lock().await;
        let mut c = pg.conn().await?;
        let tx = c.transaction().await?;
        lock(&*tx, ctx).await?;
        let current = store::member_role(&*tx, ctx.id(), user.as_str())
            .await?
            .ok_or_else(|| ApiError::NotFound("no such member".into()))?;
        if last_owner(Some(current), None, owners(&*tx, ctx, Some(current)).await?) {
            return Err(ApiError::Conflict(LAST_OWNER.into()));
        }
        store::delete_member(&*tx, ctx.id(), user.as_str()).await?;
        changed(&*tx, ctx, self.now(), user.as_str(), Some(current), None).await?;
        tx.commit().await?;
        self.keys.member_changed(ctx.id(), user.as_str(), None);
        Ok(())
    }
}
