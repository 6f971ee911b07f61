//! Paying, cancelling and shipping orders.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use shopstream_domain::values::{Carrier, OrderId, PaymentReference, Role, Tracking};
use uuid::Uuid;

use super::committed;
use super::extract::{Caller, CommandRequest, JsonBody, MoneyBody, Validator};
use super::problem::ApiError;
use super::read;
use crate::app::App;
use crate::app::commands::orders::{CancelOrder, PayOrder, ShipOrder};
use crate::app::queries::orders as queries;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/orders/{id}", web::get().to(order))
        .route("/customers/me/orders", web::get().to(my_orders))
        .route("/orders/{id}/payments", web::post().to(pay))
        .route("/orders/{id}/cancel", web::post().to(cancel))
        .route("/orders/{id}/ship", web::post().to(ship));
}

#[derive(Deserialize)]
struct OrderQuery {
    as_of: Option<String>,
}

async fn order(
    app: web::Data<App>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<Uuid>,
    query: web::Query<OrderQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.signed_in()?;
    let id = id.into_inner();
    if let Some(as_of) = &query.as_of {
        let instant = chrono::DateTime::parse_from_rfc3339(as_of)
            .map_err(|_| ApiError::malformed("as_of must be an RFC 3339 time"))?
            .with_timezone(&chrono::Utc);
        let answer = app.history.order_as_of(id, instant).await?;
        read::owner_only(actor, &answer, true)?;
        return Ok(read::reply(&req, &answer, None));
    }
    let consistency = read::consistent(&app, &req, &[queries::PROJECTION]).await?;
    let answer = queries::order(&app.queries, id).await?;
    read::owner_only(actor, &answer, true)?;
    Ok(read::reply(&req, &answer, consistency))
}

#[derive(Deserialize)]
struct PageQuery {
    cursor: Option<String>,
    limit: Option<usize>,
}

async fn my_orders(
    app: web::Data<App>,
    req: HttpRequest,
    caller: Caller,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let me = caller
        .signed_in()?
        .customer_id()
        .ok_or_else(ApiError::forbidden)?;
    let limit = crate::app::queries::limit(page.limit)?;
    let consistency = read::consistent(&app, &req, &[queries::PROJECTION]).await?;
    let answer =
        queries::of_customer(&app.queries, me.as_uuid(), page.cursor.as_deref(), limit).await?;
    Ok(read::reply(&req, &answer, consistency))
}

#[derive(Deserialize)]
struct PaymentBody {
    amount: MoneyBody,
    reference: String,
}

async fn pay(
    app: web::Data<App>,
    request: CommandRequest,
    id: web::Path<Uuid>,
    body: JsonBody<PaymentBody>,
) -> Result<HttpResponse, ApiError> {
    request.signed_in()?;
    let ctx = request.context(&body.raw)?;
    let mut v = Validator::default();
    let amount = v.check("amount", body.amount.parse());
    let reference = v.check("reference", PaymentReference::parse(&body.reference));
    let (Some(amount), Some(reference)) = (amount, reference) else {
        return Err(v.error());
    };
    let command = PayOrder {
        order_id: OrderId(id.into_inner()),
        amount,
        reference,
    };
    let done = app.commands.execute(&ctx, &command).await?;
    Ok(committed(StatusCode::OK, &done))
}

async fn cancel(
    app: web::Data<App>,
    request: CommandRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    request.signed_in()?;
    let ctx = request.context(b"")?;
    let command = CancelOrder {
        order_id: OrderId(id.into_inner()),
    };
    let done = app.commands.execute(&ctx, &command).await?;
    Ok(committed(StatusCode::OK, &done))
}

#[derive(Deserialize)]
struct ShipmentBody {
    carrier: String,
    tracking: String,
}

async fn ship(
    app: web::Data<App>,
    request: CommandRequest,
    id: web::Path<Uuid>,
    body: JsonBody<ShipmentBody>,
) -> Result<HttpResponse, ApiError> {
    request.with_role(&[Role::Admin])?;
    let ctx = request.context(&body.raw)?;
    let mut v = Validator::default();
    let carrier = v.check("carrier", Carrier::parse(&body.carrier));
    let tracking = v.check("tracking", Tracking::parse(&body.tracking));
    let (Some(carrier), Some(tracking)) = (carrier, tracking) else {
        return Err(v.error());
    };
    let command = ShipOrder {
        order_id: OrderId(id.into_inner()),
        carrier,
        tracking,
    };
    let done = app.commands.execute(&ctx, &command).await?;
    Ok(committed(StatusCode::OK, &done))
}
