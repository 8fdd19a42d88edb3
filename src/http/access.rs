//! Access, enforced in one place: each resource is wrapped with the access its operations
//! declare (`Op::access`), checked before any extractor or handler runs. A handler cannot
//! forget a check, and the table test in tests/api/access.rs walks every declared route.
use super::extract::{caller, tenant_ctx};
use crate::auth::{Access, Caller};
use crate::error::ApiError;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{Error, HttpRequest, ResponseError};

/// Whether the request's caller may call an operation declared with `access`.
pub fn check(access: Access, req: &HttpRequest) -> Result<(), ApiError> {
    match access {
        Access::Public => Ok(()),
        Access::AnyToken => caller(req).map(drop),
        Access::Gateway => super::gateway::check(req),
        Access::Admin => match caller(req)? {
            Caller::Admin(_) => Ok(()),
            Caller::Key(_) => Err(ApiError::Forbidden("this needs the admin token".into())),
        },
        tenant => {
            let action = tenant
                .action()
                .expect("every other access is tenant-scoped");
            tenant_ctx(req)?.require(action)
        }
    }
}

/// The middleware of one resource: `table` holds the access of each of its methods. A method
/// it does not hold passes through, to be answered 405 by the resource. A `gateway` resource
/// answers in the provider's error format.
pub async fn enforce(
    table: std::rc::Rc<Vec<(Method, Access)>>,
    gateway: bool,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let access = table
        .iter()
        .find(|(m, _)| m == req.method())
        .map(|(_, a)| *a);
    if let Some(access) = access {
        let refreshed = match access {
            Access::Public => Ok(()),
            _ => match super::extract::refresh_if_stale(req.request()).await {
                // Keys and tenants the caches miss are read from the store for this request.
                Ok(()) => {
                    super::extract::read_through(req.request()).await;
                    Ok(())
                }
                Err(e) => Err(e),
            },
        };
        let checked = match refreshed.and_then(|()| check(access, req.request())) {
            Ok(()) => super::extract::charge_shared_rate(req.request()).await,
            Err(e) => Err(e),
        };
        if let Err(e) = checked {
            let res = match gateway {
                true => super::gateway::error_response(req.path(), &e),
                false => e.error_response(),
            };
            return Ok(req.into_response(res));
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}
