//! Paying, cancelling and shipping orders.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use shopstream_domain::values::{Carrier, OrderId, PaymentReference, Role, Tracking};
use uuid::Uuid;

use super::committed;
use super::extract::{CommandRequest, JsonBody, MoneyBody, Validator};
use super::problem::ApiError;
use crate::app::App;
use crate::app::commands::orders::{CancelOrder, PayOrder, ShipOrder};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/orders/{id}/payments", web::post().to(pay))
        .route("/orders/{id}/cancel", web::post().to(cancel))
        .route("/orders/{id}/ship", web::post().to(ship));
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
