//! Registration, tokens and roles.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use shopstream_domain::values::{CustomerId, Email, FieldError, Name, Role};
use uuid::Uuid;

use super::committed;
use super::extract::{Caller, CommandRequest, JsonBody, Validator};
use super::limits::RateLimits;
use super::problem::ApiError;
use super::read;
use crate::app::App;
use crate::app::auth::PASSWORD_CHARS;
use crate::app::commands::customers::{
    ChangeRole, RegisterCustomer, RequestVerification, SetCustomerEnabled,
};
use crate::app::queries::customers as queries;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/customers", web::post().to(register))
        .route("/customers/me", web::get().to(me))
        .route("/customers/verify-email", web::post().to(verify_email))
        .route(
            "/customers/me/verification",
            web::post().to(request_verification),
        )
        .route("/auth/token", web::post().to(token))
        .route("/auth/refresh", web::post().to(refresh))
        .route("/auth/logout", web::post().to(logout))
        .route("/admin/customers/{id}/role", web::put().to(change_role))
        .route("/admin/customers/{id}/disable", web::post().to(disable))
        .route("/admin/customers/{id}/enable", web::post().to(enable));
}

async fn me(
    app: web::Data<App>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let me = caller
        .signed_in()?
        .customer_id()
        .ok_or_else(ApiError::forbidden)?;
    let consistency = read::consistent(&app, &req, &[queries::PROJECTION]).await?;
    let answer = queries::profile(&app.queries, me.as_uuid()).await?;
    Ok(read::reply(&req, &answer, consistency))
}

#[derive(Deserialize)]
struct Registration {
    email: String,
    password: String,
    name: String,
}

fn password(raw: &str) -> Result<&str, FieldError> {
    let chars = raw.chars().count();
    if PASSWORD_CHARS.contains(&chars) {
        Ok(raw)
    } else {
        Err(FieldError::new(
            "password",
            format!(
                "must be {} to {} characters",
                PASSWORD_CHARS.start(),
                PASSWORD_CHARS.end()
            ),
        ))
    }
}

async fn register(
    app: web::Data<App>,
    request: CommandRequest,
    body: JsonBody<Registration>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request.context(&body.raw)?;
    let mut v = Validator::default();
    let email = v.check("email", Email::parse(&body.email));
    let name = v.check("name", Name::parse(&body.name));
    let password = v.check("password", password(&body.password));
    let (Some(email), Some(name), Some(password)) = (email, name, password) else {
        return Err(v.error());
    };
    let command = RegisterCustomer {
        customer_id: CustomerId(Uuid::now_v7()),
        email,
        name,
        role: Role::Customer,
        password_hash: app.auth.hash(password).await?,
    };
    let done = app.commands.execute(&ctx, &command).await?;
    Ok(committed(StatusCode::CREATED, &done))
}

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

async fn token(
    app: web::Data<App>,
    limits: web::Data<RateLimits>,
    req: HttpRequest,
    body: JsonBody<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let client = super::client::address(&req);
    // An account under attack from many addresses is limited too, before
    // any password is hashed.
    if let Some(verdict) = limits.check_account(&body.email)
        && verdict.retry_after.is_some()
    {
        super::audit::login(&body.email, client, Err("rate limited"));
        return Err(verdict.refusal());
    }
    let token = match app
        .auth
        .login(&app.commands, &body.email, &body.password)
        .await
    {
        Ok(token) => token,
        Err(e) => {
            super::audit::login(&body.email, client, Err(&e.to_string()));
            return Err(e.into());
        }
    };
    super::audit::login(&body.email, client, Ok(&token.customer_id.to_string()));
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(token))
}

#[derive(Deserialize)]
struct VerificationBody {
    token: String,
}

/// Verifies the address a verification link was sent to.
async fn verify_email(
    app: web::Data<App>,
    body: JsonBody<VerificationBody>,
) -> Result<HttpResponse, ApiError> {
    let position = app.auth.verify_email(&app.commands, &body.token).await?;
    Ok(HttpResponse::NoContent()
        .insert_header((
            super::CONSISTENCY_TOKEN,
            super::consistency::token(position),
        ))
        .finish())
}

/// Asks for the verification mail again (the mailer sends it shortly).
async fn request_verification(
    app: web::Data<App>,
    request: CommandRequest,
) -> Result<HttpResponse, ApiError> {
    let me = request
        .signed_in()?
        .customer_id()
        .ok_or_else(ApiError::forbidden)?;
    let ctx = request.context(b"")?;
    let done = app
        .commands
        .execute(
            &ctx,
            &RequestVerification {
                customer_id: me,
                request_id: Uuid::now_v7(),
            },
        )
        .await?;
    Ok(committed(StatusCode::ACCEPTED, &done))
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

/// Exchanges a refresh token for a new pair (the old one is spent).
async fn refresh(
    app: web::Data<App>,
    body: JsonBody<RefreshBody>,
) -> Result<HttpResponse, ApiError> {
    let token = app.auth.refresh(&app.commands, &body.refresh_token).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(token))
}

/// Ends the session a refresh token belongs to: it and every access token
/// of the session stop working.
async fn logout(
    app: web::Data<App>,
    body: JsonBody<RefreshBody>,
) -> Result<HttpResponse, ApiError> {
    app.auth.logout(&app.commands, &body.refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn set_enabled(
    app: &App,
    request: CommandRequest,
    id: Uuid,
    enabled: bool,
) -> Result<HttpResponse, ApiError> {
    request.with_role(&[Role::Admin])?;
    let ctx = request.context(b"")?;
    let customer_id = CustomerId(id);
    let done = app
        .commands
        .execute(
            &ctx,
            &SetCustomerEnabled {
                customer_id,
                enabled,
            },
        )
        .await?;
    app.auth.forget_customer(customer_id).await;
    Ok(committed(StatusCode::OK, &done))
}

async fn disable(
    app: web::Data<App>,
    request: CommandRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    set_enabled(&app, request, id.into_inner(), false).await
}

async fn enable(
    app: web::Data<App>,
    request: CommandRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    set_enabled(&app, request, id.into_inner(), true).await
}

#[derive(Deserialize)]
struct RoleBody {
    role: Role,
}

async fn change_role(
    app: web::Data<App>,
    request: CommandRequest,
    id: web::Path<Uuid>,
    body: JsonBody<RoleBody>,
) -> Result<HttpResponse, ApiError> {
    request.with_role(&[Role::Admin])?;
    let ctx = request.context(&body.raw)?;
    let command = ChangeRole {
        customer_id: CustomerId(id.into_inner()),
        role: body.role,
    };
    let done = app.commands.execute(&ctx, &command).await?;
    app.auth.forget_customer(command.customer_id).await;
    Ok(committed(StatusCode::OK, &done))
}
