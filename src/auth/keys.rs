//! Creating, listing and revoking a tenant's API keys. The key itself exists only in the create
//! response; the database and the key cache hold its hash.
use super::key_cache::{generate, CachedKey, KeyCache};
use super::store;
use super::Caller;
use super::{Action, Role};
use crate::clock::Clock;
use crate::db::Db;
use crate::error::ApiError;
use crate::events::{self, Kind, NewEvent};
use crate::pagination::{Page, PageRequest};
use crate::tenancy::members::{role_of, UserId};
use crate::tenancy::TenantCtx;
use crate::tenancy::TenantId;
use crate::time::to_micros;
use crate::time::Micros;
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

#[derive(Clone, Debug)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub user_id: Option<String>,
    pub prefix: String,
    pub created_at: Micros,
    pub expires_at: Option<Micros>,
    pub revoked_at: Option<Micros>,
}

pub struct NewKey {
    pub name: String,
    pub role: Role,
    pub user_id: Option<UserId>,
    pub expires_at: Option<Micros>,
}

impl NewKey {
    pub fn parse(
        name: &str,
        role: &str,
        user_id: Option<&str>,
        expires_at: Option<&str>,
    ) -> Result<NewKey, ApiError> {
        let bad = ApiError::InvalidRequest;
        let role = Role::parse_key_role(role).map_err(bad)?;
        let user_id = user_id.map(UserId::parse).transpose()?;
        if role == Role::Service && user_id.is_some() {
            return Err(ApiError::InvalidRequest(
                "a service key belongs to the application, not to a user: omit user_id".into(),
            ));
        }
        Ok(NewKey {
            name: crate::tenancy::parse_name(name, "name").map_err(bad)?,
            role,
            user_id,
            expires_at: expires_at
                .map(crate::time::parse_rfc3339)
                .transpose()
                .map_err(ApiError::InvalidRequest)?,
        })
    }
}

/// A created key: the record and, this once, the key.
pub struct CreatedKey {
    pub key: ApiKey,
    pub secret: String,
}

/// The API keys area: creates, lists and revokes a tenant's keys, and owns the in-memory key
/// cache that authenticates every `tk_` token.
#[derive(Clone)]
pub struct Keys {
    pub(super) db: Db,
    clock: Arc<dyn Clock>,
    pub(super) cache: Arc<KeyCache>,
}

impl Keys {
    pub fn new(db: Db, clock: Arc<dyn Clock>, cache: KeyCache) -> Keys {
        Keys {
            db,
            clock,
            cache: Arc::new(cache),
        }
    }

    pub(super) fn now(&self) -> Micros {
        to_micros(self.clock.now())
    }

    /// The caller behind a `tk_` key, from memory.
    pub fn authenticate(&self, token: &str, now: Micros) -> Result<Caller, ApiError> {
        self.cache.authenticate(token, now)
    }

    /// A member's role changed (or the member left): keys bound to them follow at once.
    pub fn member_changed(&self, tenant: TenantId, user: &str, role: Option<Role>) {
        self.cache.member_changed(tenant, user, role);
    }

    /// A deleted tenant's keys stop working.
    pub fn forget_tenant(&self, tenant: TenantId) {
        self.cache.remove_tenant(tenant);
    }

    pub async fn create(&self, ctx: &TenantCtx, new: NewKey) -> Result<CreatedKey, ApiError> {
        ctx.require(Action::Manage)?;
        if new.expires_at.is_some_and(|e| e <= self.now()) {
            return Err(ApiError::InvalidRequest(
                "expires_at must be in the future".into(),
            ));
        }
        if let Some(pg) = self.db.pg() {
            return self.create_pg(pg, ctx, new).await;
        }
        let (ctx, cache, now) = (ctx.clone(), self.cache.clone(), self.now());
        self.db
            .write(move |c| {
                let member = match &new.user_id {
                    None => None,
                    Some(u) => role_of(c, &ctx, u.as_str())?,
                };
                let member_role = key_member_role(&new, member)?;
                let (key, secret, hash) = new_key(new, now);
                let tx = c.transaction()?;
                store::insert_key(&tx, ctx.id(), &key, &hash)?;
                events::record(&tx, key.created_at, created_event(&ctx, &key))?;
                tx.commit()?;
                cache.insert(hash, cached(&ctx, &key, member_role));
                Ok(CreatedKey { key, secret })
            })
            .await
    }

    pub async fn list(
        &self,
        ctx: &TenantCtx,
        page: PageRequest<(Micros, String)>,
    ) -> Result<Page<ApiKey>, ApiError> {
        ctx.require(Action::Manage)?;
        if let Some(pg) = self.db.pg() {
            return self.list_pg(pg, ctx, page).await;
        }
        let ctx = ctx.clone();
        self.db
            .run(move |c| {
                let (after_t, after_id) = page.after.clone().unwrap_or((i64::MIN, String::new()));
                let rows = store::list_keys(c, ctx.id(), &(after_t, after_id), page.fetch())?;
                Ok(Page::from_rows(rows, page.limit, |k| {
                    (k.created_at, k.id.to_string())
                }))
            })
            .await
    }

    /// Revokes a key of this tenant; revoking a revoked key again is a no-op.
    pub async fn revoke(&self, ctx: &TenantCtx, key_id: &str) -> Result<(), ApiError> {
        ctx.require(Action::Manage)?;
        let not_found = || ApiError::NotFound("no such key".into());
        let id = Uuid::parse_str(key_id).map_err(|_| not_found())?;
        if let Some(pg) = self.db.pg() {
            return self.revoke_pg(pg, ctx, id).await;
        }
        let (ctx, cache, now) = (ctx.clone(), self.cache.clone(), self.now());
        self.db
            .write(move |c| {
                let tx = c.transaction()?;
                let (hash, prefix) =
                    store::key_hash_and_prefix(&tx, ctx.id(), id)?.ok_or_else(not_found)?;
                let revoked = store::revoke_key(&tx, ctx.id(), id, now)?;
                if revoked == 1 {
                    events::record(&tx, now, revoked_event(&ctx, id, &prefix))?;
                }
                tx.commit()?;
                cache.remove(&hash);
                Ok(())
            })
            .await
    }
}

/// The member role a new key of `member`'s user is capped by: 400 when the user is no member,
/// 403 when the key would outrank them; `None` for a key without a user.
pub(super) fn key_member_role(
    new: &NewKey,
    member: Option<Role>,
) -> Result<Option<Role>, ApiError> {
    let Some(u) = &new.user_id else {
        return Ok(None);
    };
    let m = member
        .ok_or_else(|| ApiError::InvalidRequest("user_id is not a member of this tenant".into()))?;
    if new.role.min(m) != new.role {
        return Err(ApiError::Forbidden(format!(
            "a key may not outrank its member ({} is {})",
            crate::error::clip(u.as_str()),
            m.as_str()
        )));
    }
    Ok(Some(m))
}

/// A fresh key for `new`: the record, the secret (shown once) and the hash stored.
pub(super) fn new_key(new: NewKey, now: Micros) -> (ApiKey, String, [u8; 32]) {
    let (secret, hash, prefix) = generate();
    let key = ApiKey {
        id: Uuid::new_v4(),
        name: new.name,
        role: new.role,
        user_id: new.user_id.map(|u| u.as_str().to_string()),
        prefix,
        created_at: now,
        expires_at: new.expires_at,
        revoked_at: None,
    };
    (key, secret, hash)
}

pub(super) fn cached(ctx: &TenantCtx, key: &ApiKey, member_role: Option<Role>) -> CachedKey {
    CachedKey {
        id: key.id,
        tenant_id: ctx.id(),
        role: key.role,
        user_id: key.user_id.clone(),
        expires_at: key.expires_at,
        member_role,
    }
}

pub(super) fn created_event(ctx: &TenantCtx, key: &ApiKey) -> NewEvent {
    let actor = ctx.caller().describe();
    let data = json!({"key_id": key.id, "name": key.name, "role": key.role.as_str(),
                  "user_id": key.user_id, "prefix": key.prefix, "actor": actor});
    let msg = format!(
        "{} key {} created by {actor}",
        key.role.as_str(),
        key.prefix
    );
    NewEvent::of(Kind::KeyCreated, ctx.id(), msg, data)
}

pub(super) fn revoked_event(ctx: &TenantCtx, id: Uuid, prefix: &str) -> NewEvent {
    let actor = ctx.caller().describe();
    let data = json!({"key_id": id, "prefix": prefix, "actor": actor});
    let msg = format!("key {prefix} revoked by {actor}");
    NewEvent::of(Kind::KeyRevoked, ctx.id(), msg, data)
}
