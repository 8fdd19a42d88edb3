//! `/api/pricing`: the price list (any valid token) and the admin's overrides.
use super::extract::{AdminCaller, AnyCaller};
use super::routes::{Mount, Op};
use super::usage_views::{PriceListView, PriceView};
use crate::auth::Access;
use crate::error::ApiError;
use crate::state::AppState;
use crate::usage::model::ModelName;
use crate::usage::money::Nanousd;
use crate::usage::pricing::{Price, MAX_PRICE_PER_MILLION};
use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::Number;

pub fn ops() -> Vec<Op> {
    vec![
        Op::new(Method::GET, "/pricing", Mount::Api, || {
            web::route().to(list)
        })
        .doc(
            "Model prices: built-in list prices and the operator's overrides",
            Access::AnyToken,
        )
        .ok(200, Some("PriceList")),
        Op::new(Method::PUT, "/pricing/{model}", Mount::Api, || {
            web::route().to(put)
        })
        .doc(
            "Set a model's price for events ingested from now on",
            Access::Admin,
        )
        .body("PricePut")
        .ok(200, Some("Price")),
    ]
}

async fn list(_: AnyCaller, st: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(PriceListView::from(st.usage.price_list()))
}

#[derive(Deserialize)]
struct ModelPath {
    model: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceBody {
    input_usd_per_million: Number,
    output_usd_per_million: Number,
    /// Absent or `null`: cache reads and writes cost the input price.
    #[serde(default)]
    cache_read_usd_per_million: Option<Number>,
    #[serde(default)]
    cache_write_usd_per_million: Option<Number>,
}

async fn put(
    AdminCaller(admin): AdminCaller,
    st: web::Data<AppState>,
    p: web::Path<ModelPath>,
    body: web::Json<PriceBody>,
) -> Result<HttpResponse, ApiError> {
    let model = ModelName::parse_priced(p.into_inner().model).map_err(ApiError::InvalidRequest)?;
    let money = |v: &Number, field: &str| {
        Nanousd::from_json_number_up_to(v, Nanousd::from_nanos(MAX_PRICE_PER_MILLION)).map_err(
            |e| {
                ApiError::InvalidRequest(format!(
                    "{field} {e} (at most 1000000 USD per million tokens)"
                ))
            },
        )
    };
    let optional =
        |v: &Option<Number>, field: &str| v.as_ref().map(|v| money(v, field)).transpose();
    let price = Price {
        input_per_million: money(&body.input_usd_per_million, "input_usd_per_million")?,
        output_per_million: money(&body.output_usd_per_million, "output_usd_per_million")?,
        cache_read_per_million: optional(
            &body.cache_read_usd_per_million,
            "cache_read_usd_per_million",
        )?,
        cache_write_per_million: optional(
            &body.cache_write_usd_per_million,
            "cache_write_usd_per_million",
        )?,
    };
    let set = st.usage.set_price(&admin, model, price).await?;
    Ok(HttpResponse::Ok().json(PriceView::from(set)))
}
