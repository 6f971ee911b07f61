//! Carts and checkout.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use shopstream_domain::values::{
    AddressText, CartId, FieldError, OrderId, PostalAddress, ProductId, ShippingAddress,
};
use uuid::Uuid;

use super::committed;
use super::extract::{Caller, CommandRequest, JsonBody, Validator};
use super::problem::ApiError;
use super::read;
use crate::app::App;
use crate::app::commands::carts::{Checkout, CreateCart, SetCartItem};
use crate::app::queries::carts as queries;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/carts", web::post().to(create_cart))
        .route("/carts/{id}", web::get().to(cart))
        .route("/carts/{id}/items/{product_id}", web::put().to(set_item))
        .route("/carts/{id}/checkout", web::post().to(checkout));
}

async fn cart(
    app: web::Data<App>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.signed_in()?;
    let consistency = read::consistent(&app, &req, &[queries::PROJECTION]).await?;
    let answer = queries::cart(&app.queries, id.into_inner()).await?;
    read::owner_only(actor, &answer, false)?;
    Ok(read::reply(&req, &answer, consistency))
}

async fn create_cart(
    app: web::Data<App>,
    request: CommandRequest,
) -> Result<HttpResponse, ApiError> {
    request.signed_in()?;
    let ctx = request.context(b"")?;
    let command = CreateCart {
        cart_id: CartId(Uuid::now_v7()),
        currency: app.currency,
    };
    let done = app.commands.execute(&ctx, &command).await?;
    let mut response = committed(StatusCode::CREATED, &done);
    if let Ok(location) = format!("/v1/carts/{}", done.output.cart_id).parse() {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[derive(Deserialize)]
struct ItemBody {
    quantity: u32,
}

async fn set_item(
    app: web::Data<App>,
    request: CommandRequest,
    path: web::Path<(Uuid, Uuid)>,
    body: JsonBody<ItemBody>,
) -> Result<HttpResponse, ApiError> {
    request.signed_in()?;
    let ctx = request.context(&body.raw)?;
    let (cart_id, product_id) = path.into_inner();
    let command = SetCartItem {
        cart_id: CartId(cart_id),
        product_id: ProductId(product_id),
        quantity: body.quantity,
    };
    let done = app.commands.execute(&ctx, &command).await?;
    Ok(committed(StatusCode::OK, &done))
}

#[derive(Deserialize)]
struct CheckoutBody {
    shipping_address: serde_json::Value,
}

/// A shipping address is free text or an object of postal fields.
fn shipping_address(value: &serde_json::Value) -> Result<ShippingAddress, FieldError> {
    let field = "shipping_address";
    match value {
        serde_json::Value::String(text) => AddressText::parse(text).map(ShippingAddress::Text),
        serde_json::Value::Object(_) => serde_json::from_value::<PostalAddress>(value.clone())
            .map(ShippingAddress::Structured)
            .map_err(|e| FieldError::new(field, e.to_string())),
        _ => Err(FieldError::new(field, "must be text or an address object")),
    }
}

async fn checkout(
    app: web::Data<App>,
    request: CommandRequest,
    id: web::Path<Uuid>,
    body: JsonBody<CheckoutBody>,
) -> Result<HttpResponse, ApiError> {
    let buyer = request.signed_in()?;
    if app.checkout_requires_verified_email
        && let Some(customer) = buyer.customer_id()
        && !app.auth.email_verified(customer).await?
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "email_not_verified",
            "verify your email address before checking out",
        ));
    }
    let ctx = request.context(&body.raw)?;
    let mut v = Validator::default();
    let Some(address) = v.check("shipping_address", shipping_address(&body.shipping_address))
    else {
        return Err(v.error());
    };
    let command = Checkout {
        cart_id: CartId(id.into_inner()),
        order_id: OrderId(Uuid::now_v7()),
        shipping_address: address,
    };
    let done = app.commands.execute(&ctx, &command).await?;
    let mut response = committed(StatusCode::CREATED, &done);
    if let Ok(location) = format!("/v1/orders/{}", done.output.order_id).parse() {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}
