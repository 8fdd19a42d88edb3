//! What a write tells the other replicas' caches (docs/SCALE_OUT.md §4.1): a notification
//! `<kind>:<id>` on one channel, queued in the writing transaction, delivered on commit in
//! commit order to every replica's `listen::Listener`.
use tokio_postgres::GenericClient;
use uuid::Uuid;

pub const CHANNEL: &str = "tenantry_cache";

/// What changed, as named in a notification's payload `<kind>:<id>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalidation {
    Tenant(Uuid),
    /// A key by its id, never its hash.
    Key(Uuid),
    /// A tenant's member, by user id.
    Member(Uuid, String),
    Settings(Uuid),
    Prices,
    /// A failed admin-token attempt from this address (§4.3), added to every replica's guard.
    AuthFail(String),
}

impl Invalidation {
    pub fn payload(&self) -> String {
        match self {
            Invalidation::Tenant(id) => format!("tenant:{id}"),
            Invalidation::Key(id) => format!("key:{id}"),
            Invalidation::Member(tenant, user) => format!("member:{tenant}:{user}"),
            Invalidation::Settings(tenant) => format!("settings:{tenant}"),
            Invalidation::Prices => "prices".to_string(),
            Invalidation::AuthFail(addr) => format!("authfail:{addr}"),
        }
    }

    /// The invalidation a payload names; `None` for an unknown kind or a malformed id (a newer
    /// replica may send kinds this one does not know).
    pub fn parse(payload: &str) -> Option<Invalidation> {
        let (kind, rest) = payload.split_once(':').unwrap_or((payload, ""));
        let uuid = |s: &str| Uuid::parse_str(s).ok();
        match kind {
            "tenant" => uuid(rest).map(Invalidation::Tenant),
            "key" => uuid(rest).map(Invalidation::Key),
            // A user id may hold ':'; the tenant's uuid cannot.
            "member" => {
                let (tenant, user) = rest.split_once(':')?;
                Some(Invalidation::Member(uuid(tenant)?, user.to_string()))
            }
            "settings" => uuid(rest).map(Invalidation::Settings),
            "prices" if rest.is_empty() => Some(Invalidation::Prices),
            // An IPv6 address holds ':' too; everything after the kind is the address.
            "authfail" if !rest.is_empty() => Some(Invalidation::AuthFail(rest.to_string())),
            _ => None,
        }
    }
}

/// Queues the notification in the caller's transaction (or, on a plain client, sends it at
/// once): PostgreSQL delivers it when, and only if, that transaction commits.
pub async fn notify<C: GenericClient>(
    c: &C,
    what: &Invalidation,
) -> Result<(), tokio_postgres::Error> {
    c.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &what.payload()])
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_unknown_kinds_are_none() {
        let t = Uuid::new_v4();
        for what in [
            Invalidation::Tenant(t),
            Invalidation::Key(Uuid::new_v4()),
            Invalidation::Member(t, "user:with:colons".into()),
            Invalidation::Settings(t),
            Invalidation::Prices,
            Invalidation::AuthFail("2001:db8::1".into()),
        ] {
            assert_eq!(Invalidation::parse(&what.payload()), Some(what));
        }
        for bad in [
            "",
            "tenant:",
            "tenant:nope",
            "member:x:y",
            "gone:1",
            "prices:1",
        ] {
            assert_eq!(Invalidation::parse(bad), None, "{bad}");
        }
    }
}
