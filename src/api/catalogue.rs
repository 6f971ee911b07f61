//! Products and inventory.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use shopstream_domain::product::NewProduct;
use shopstream_domain::values::{
    Category, Description, Name, ProductId, Quantity, Role, Sku, Tags,
};
use uuid::Uuid;

use super::committed;
use super::extract::{CommandRequest, JsonBody, MoneyBody, Validator};
use super::problem::ApiError;
use super::read;
use crate::app::App;
use crate::app::commands::catalogue::{ChangePrice, CreateProduct, Discontinue};
use crate::app::commands::inventory::ReceiveStock;
use crate::app::queries::catalogue as queries;

pub fn routes(cfg: &mut web::ServiceConfig) {
    // `search` before `{id}`, which would otherwise match it.
    cfg.route("/products/search", web::get().to(search))
        .route("/products", web::get().to(list))
        .route("/products", web::post().to(create_product))
        .route("/products/{id}", web::get().to(product))
        .route("/products/{id}/price", web::put().to(change_price))
        .route("/products/{id}/discontinue", web::post().to(discontinue))
        .route("/inventory/{sku}", web::get().to(inventory))
        .route("/inventory/{sku}/receipts", web::post().to(receive_stock));
}

async fn product(
    app: web::Data<App>,
    req: HttpRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let consistency = read::consistent(&app, &req, &[queries::PROJECTION]).await?;
    let answer = queries::product(&app.queries, id.into_inner()).await?;
    Ok(read::reply(&req, &answer, consistency))
}

#[derive(Deserialize)]
struct ListQuery {
    category: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

async fn list(
    app: web::Data<App>,
    req: HttpRequest,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = crate::app::queries::limit(query.limit)?;
    let consistency = read::consistent(&app, &req, &[queries::PROJECTION]).await?;
    let category = query.category.as_deref().filter(|c| !c.trim().is_empty());
    let answer = queries::products(&app.queries, category, query.cursor.as_deref(), limit).await?;
    Ok(read::reply(&req, &answer, consistency))
}

#[derive(Deserialize)]
struct SearchQuery {
    q: String,
    cursor: Option<String>,
    limit: Option<usize>,
}

async fn search(
    app: web::Data<App>,
    req: HttpRequest,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = crate::app::queries::limit(query.limit)?;
    let consistency = read::consistent(&app, &req, &[queries::PROJECTION]).await?;
    let answer = queries::search(&app.queries, &query.q, query.cursor.as_deref(), limit).await?;
    Ok(read::reply(&req, &answer, consistency))
}

async fn inventory(
    app: web::Data<App>,
    req: HttpRequest,
    sku: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let sku = Sku::parse(&sku).map_err(|_| ApiError::not_found("no product has this SKU"))?;
    let consistency = read::consistent(&app, &req, &[queries::PROJECTION]).await?;
    let answer = queries::inventory(&app.queries, sku.as_str()).await?;
    Ok(read::reply(&req, &answer, consistency))
}

#[derive(Deserialize)]
struct NewProductBody {
    sku: String,
    name: String,
    #[serde(default)]
    description: String,
    price: MoneyBody,
    category: String,
    #[serde(default)]
    tags: Vec<String>,
}

async fn create_product(
    app: web::Data<App>,
    request: CommandRequest,
    body: JsonBody<NewProductBody>,
) -> Result<HttpResponse, ApiError> {
    request.with_role(&[Role::Admin])?;
    let ctx = request.context(&body.raw)?;
    let mut v = Validator::default();
    let sku = v.check("sku", Sku::parse(&body.sku));
    let name = v.check("name", Name::parse(&body.name));
    let description = v.check("description", Description::parse(&body.description));
    let price = v.check("price", body.price.parse());
    let category = v.check("category", Category::parse(&body.category));
    let tags = v.check("tags", Tags::parse(&body.tags));
    let (Some(sku), Some(name), Some(description), Some(price), Some(category), Some(tags)) =
        (sku, name, description, price, category, tags)
    else {
        return Err(v.error());
    };
    let product_id = ProductId(Uuid::now_v7());
    let command = CreateProduct(NewProduct {
        product_id,
        sku,
        name,
        description,
        price,
        category,
        tags,
        at: ctx.now,
    });
    let done = app.commands.execute(&ctx, &command).await?;
    let mut response = committed(StatusCode::CREATED, &done);
    if let Ok(location) = format!("/v1/products/{}", done.output.product_id).parse() {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[derive(Deserialize)]
struct PriceBody {
    price: MoneyBody,
}

async fn change_price(
    app: web::Data<App>,
    request: CommandRequest,
    id: web::Path<Uuid>,
    body: JsonBody<PriceBody>,
) -> Result<HttpResponse, ApiError> {
    request.with_role(&[Role::Admin])?;
    let ctx = request.context(&body.raw)?;
    let mut v = Validator::default();
    let Some(price) = v.check("price", body.price.parse()) else {
        return Err(v.error());
    };
    let command = ChangePrice {
        product_id: ProductId(id.into_inner()),
        price,
    };
    let done = app.commands.execute(&ctx, &command).await?;
    Ok(committed(StatusCode::OK, &done))
}

async fn discontinue(
    app: web::Data<App>,
    request: CommandRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    request.with_role(&[Role::Admin])?;
    let ctx = request.context(b"")?;
    let command = Discontinue {
        product_id: ProductId(id.into_inner()),
    };
    let done = app.commands.execute(&ctx, &command).await?;
    Ok(committed(StatusCode::OK, &done))
}

#[derive(Deserialize)]
struct ReceiptBody {
    quantity: u32,
}

async fn receive_stock(
    app: web::Data<App>,
    request: CommandRequest,
    sku: web::Path<String>,
    body: JsonBody<ReceiptBody>,
) -> Result<HttpResponse, ApiError> {
    request.with_role(&[Role::Admin])?;
    let ctx = request.context(&body.raw)?;
    let sku = Sku::parse(&sku).map_err(|_| ApiError::not_found("no product has this SKU"))?;
    let mut v = Validator::default();
    let Some(quantity) = v.check("quantity", Quantity::new(body.quantity)) else {
        return Err(v.error());
    };
    let done = app
        .commands
        .execute(&ctx, &ReceiveStock { sku, quantity })
        .await?;
    Ok(committed(StatusCode::OK, &done))
}
