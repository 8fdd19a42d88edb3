//! A tenant's own provider keys (BYO): sealed with the instance's master key, bound to tenant and
//! provider, shown only masked; and `credentials`, which hands the application the key to use
//! for a call: the tenant's own in `byo_key` mode, the instance's in `hosted` mode.
use super::service::TenantSettings;
use super::store;
use super::store_pg;
use super::ExecutionMode;
use crate::auth::Action;
use crate::crypto::{self, SecretString};
use crate::error::ApiError;
use crate::events::{self, Kind, NewEvent};
use crate::tenancy::TenantCtx;
use crate::time::Micros;
use serde_json::json;
use sha2::{Digest, Sha256};

/// A provider name: 1 to 32 of `a-z 0-9 _ -`, e.g. `openai`, `azure-openai`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provider(String);

impl Provider {
    pub fn parse(s: &str) -> Result<Provider, ApiError> {
        let ok = (1..=32).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if ok {
            Ok(Provider(s.to_string()))
        } else {
            Err(ApiError::InvalidRequest(
                "provider must be 1 to 32 of a-z, 0-9, _ and -".into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The environment variable holding the instance's key: `TENANTRY_PROVIDER_KEY_OPENAI`.
    pub fn env_var(&self) -> String {
        format!(
            "TENANTRY_PROVIDER_KEY_{}",
            self.0.to_ascii_uppercase().replace('-', "_")
        )
    }
}

/// A provider key as sent: 8 to 4096 visible characters.
pub fn parse_api_key(s: String) -> Result<SecretString, ApiError> {
    let t = s.trim();
    let n = t.chars().count();
    if !(8..=4096).contains(&n) || t.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ApiError::InvalidRequest(
            "api_key must be 8 to 4096 characters without spaces or control characters".into(),
        ));
    }
    Ok(SecretString::new(t.to_string()))
}

#[derive(Clone, Debug)]
pub struct MaskedKey {
    pub provider: String,
    pub masked: String,
    pub updated_at: Micros,
}

/// Where a credential came from.
pub struct Credential {
    pub api_key: SecretString,
    pub source: ExecutionMode,
}

impl TenantSettings {
    pub async fn masked_provider_keys(&self, ctx: &TenantCtx) -> Result<Vec<MaskedKey>, ApiError> {
        ctx.require(Action::Read)?;
        self.stored_keys(ctx).await
    }

    /// The tenant's stored keys, masked, on either store.
    async fn stored_keys(&self, ctx: &TenantCtx) -> Result<Vec<MaskedKey>, ApiError> {
        if let Some(pg) = self.db.pg() {
            let c = pg.conn().await?;
            return store_pg::masked_provider_keys(&**c, ctx.id()).await;
        }
        let tenant = ctx.db_id();
        self.db
            .run(move |c| Ok(store::masked_provider_keys(c, &tenant)?))
            .await
    }

    pub async fn set_provider_key(
        &self,
        ctx: &TenantCtx,
        provider: Provider,
        key: SecretString,
    ) -> Result<(), ApiError> {
        ctx.require(Action::Manage)?;
        let sealed = crypto::seal(
            &self.master_key,
            key.expose(),
            ctx.id().as_uuid(),
            provider.as_str(),
        )
        .map_err(ApiError::internal)?;
        let masked = crypto::mask(key.expose());
        drop(key);
        let (tenant, actor) = (ctx.id(), ctx.caller().describe());
        let now = self.now();
        let data = json!({"provider": provider.as_str(), "masked": masked, "actor": actor});
        let msg = format!("{} key set by {actor}", provider.as_str());
        let event = NewEvent::of(Kind::ProviderKeySet, tenant, msg, data);
        if let Some(pg) = self.db.pg() {
            // Nothing caches provider keys: every read goes to the store, so no notification.
            let mut c = pg.conn().await?;
            let tx = c.transaction().await?;
            let p = provider.as_str();
            store_pg::put_provider_key(&*tx, tenant, p, &sealed, &masked, now).await?;
            events::pg::record_many(&*tx, &[(now, event)]).await?;
            tx.commit().await?;
            return Ok(());
        }
        self.db
            .write(move |c| {
                let tx = c.transaction()?;
                store::put_provider_key(&tx, tenant, provider.as_str(), &sealed, &masked, now)?;
                events::record(&tx, now, event)?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    pub async fn remove_provider_key(
        &self,
        ctx: &TenantCtx,
        provider: Provider,
    ) -> Result<(), ApiError> {
        ctx.require(Action::Manage)?;
        let (tenant, actor) = (ctx.id(), ctx.caller().describe());
        let now = self.now();
        let missing = ApiError::NotFound(format!(
            "no {} key is set for this tenant",
            provider.as_str()
        ));
        let data = json!({"provider": provider.as_str(), "actor": actor});
        let msg = format!("{} key removed by {actor}", provider.as_str());
        let event = NewEvent::of(Kind::ProviderKeyRemoved, tenant, msg, data);
        if let Some(pg) = self.db.pg() {
            let mut c = pg.conn().await?;
            let tx = c.transaction().await?;
            if !store_pg::delete_provider_key(&*tx, tenant, provider.as_str()).await? {
                return Err(missing);
            }
            events::pg::record_many(&*tx, &[(now, event)]).await?;
            tx.commit().await?;
            return Ok(());
        }
        self.db
            .write(move |c| {
                let tx = c.transaction()?;
                if !store::delete_provider_key(&tx, tenant, provider.as_str())? {
                    return Err(missing);
                }
                events::record(&tx, now, event)?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    /// The key the application should use for `provider` on this tenant's behalf.
    pub async fn credential(
        &self,
        ctx: &TenantCtx,
        provider: Provider,
    ) -> Result<Credential, ApiError> {
        ctx.require(Action::ReadCredentials)?;
        self.key_for(ctx, provider).await
    }

    /// The key the gateway calls `provider` with for this tenant. The caller may make calls
    /// (member or service); the key itself never leaves tenantry.
    pub async fn key_for_call(
        &self,
        ctx: &TenantCtx,
        provider: Provider,
    ) -> Result<SecretString, ApiError> {
        ctx.require(Action::Ingest)?;
        Ok(self.key_for(ctx, provider).await?.api_key)
    }

    /// Which of `providers` the gateway has a key for on this tenant's behalf: its own stored
    /// keys in `byo_key` mode, the instance's in `hosted` mode.
    pub async fn providers_with_keys(
        &self,
        ctx: &TenantCtx,
        providers: &[&str],
    ) -> Result<Vec<String>, ApiError> {
        ctx.require(Action::Ingest)?;
        let wanted: Vec<String> = providers.iter().map(|p| p.to_string()).collect();
        match self.current(ctx.id()).settings.execution_mode {
            ExecutionMode::Hosted => Ok(wanted
                .into_iter()
                .filter(|p| {
                    Provider::parse(p)
                        .is_ok_and(|p| self.config.provider_key(&p.env_var()).is_some())
                })
                .collect()),
            ExecutionMode::ByoKey => {
                let stored = self.stored_keys(ctx).await?;
                Ok(wanted
                    .into_iter()
                    .filter(|p| stored.iter().any(|k| &k.provider == p))
                    .collect())
            }
        }
    }

    async fn key_for(&self, ctx: &TenantCtx, provider: Provider) -> Result<Credential, ApiError> {
        match self.current(ctx.id()).settings.execution_mode {
            ExecutionMode::Hosted => {
                let key = self
                    .config
                    .provider_key(&provider.env_var())
                    .ok_or_else(|| {
                        ApiError::HostedKeyMissing(format!(
                            "this instance has no {} key: set {}",
                            provider.as_str(),
                            provider.env_var()
                        ))
                    })?;
                Ok(Credential {
                    api_key: SecretString::new(key.expose().to_string()),
                    source: ExecutionMode::Hosted,
                })
            }
            ExecutionMode::ByoKey => {
                let (tenant, p) = (ctx.id(), provider.clone());
                let sealed = match self.db.pg() {
                    Some(pg) => {
                        let c = pg.conn().await?;
                        store_pg::sealed_provider_key(&**c, tenant, p.as_str()).await?
                    }
                    None => {
                        self.db
                            .run(move |c| Ok(store::sealed_provider_key(c, tenant, p.as_str())?))
                            .await?
                    }
                };
                let sealed = sealed.ok_or_else(|| {
                    ApiError::ByoKeyMissing(format!(
                        "the tenant is in byo_key mode and has no {} key",
                        provider.as_str()
                    ))
                })?;
                let api_key = match crypto::open(
                    &self.master_key,
                    &sealed,
                    tenant.as_uuid(),
                    provider.as_str(),
                ) {
                    Ok(k) => k,
                    Err(e) => return Err(self.unreadable(ctx, &provider, &sealed, e).await),
                };
                Ok(Credential {
                    api_key,
                    source: ExecutionMode::ByoKey,
                })
            }
        }
    }
}

impl TenantSettings {
    /// Records that a stored key did not open (a critical security event, once per stored
    /// value, so an application retrying does not flood the list) and gives the 409 to answer.
    async fn unreadable(
        &self,
        ctx: &TenantCtx,
        provider: &Provider,
        sealed: &[u8],
        cause: crypto::CryptoError,
    ) -> ApiError {
        let tenant = ctx.id();
        let p = provider.as_str().to_string();
        let fingerprint: String = Sha256::digest(sealed)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let reason = cause.to_string();
        let msg = format!("the stored {p} key cannot be decrypted: {reason}");
        let data = json!({"provider": p, "reason": reason});
        let e = NewEvent::of(Kind::ProviderKeyUnreadable, tenant, msg, data)
            .once(format!("provider_key.unreadable:{p}:{fingerprint}"));
        let recorded = events::record_alone(&self.db, self.now(), e).await;
        if let Err(e) = recorded {
            tracing::error!(error = ?e, "recording provider_key.unreadable");
        }
        tracing::warn!(tenant_id = %tenant, provider = provider.as_str(), %cause, "stored provider key does not open");
        ApiError::ProviderKeyUnreadable(format!(
            "the stored {} key cannot be decrypted ({cause}); set it again with PUT /api/settings/provider-keys/{}",
            provider.as_str(),
            provider.as_str()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_and_env_vars() {
        assert_eq!(
            Provider::parse("azure-openai").unwrap().env_var(),
            "TENANTRY_PROVIDER_KEY_AZURE_OPENAI"
        );
        for bad in ["", "OpenAI", "open ai", "x/y", &"a".repeat(33)] {
            assert!(Provider::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn api_keys_are_bounded_and_visible() {
        assert!(parse_api_key("sk-abcdefgh1234".into()).is_ok());
        assert!(parse_api_key("short".into()).is_err());
        assert!(parse_api_key("sk-abc def1234".into()).is_err());
        assert!(parse_api_key("sk-abc\u{0}def1234".into()).is_err());
    }
}
