//! The audit log: who did what to whom, on its own tracing target
//! (`audit`, so it can be routed apart: `SHOPSTREAM_LOG__FILTER=audit=info`),
//! for every login attempt, every administrative request and every role
//! change, with the caller, the client address, the outcome and the
//! correlation id.

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;

use super::correlation::CorrelationId;

/// Whether a request changes something only an admin may change (or
/// tries to): those are audited whatever their outcome. Logins are
/// audited by their handler, which knows the account.
pub fn audited(method: &Method, path: &str) -> bool {
    if *method == Method::GET || *method == Method::HEAD || *method == Method::OPTIONS {
        return false;
    }
    path.starts_with("/v1/admin/")
        || path.starts_with("/v1/products")
        || path.starts_with("/v1/inventory/")
        || (path.starts_with("/v1/orders/") && path.ends_with("/ship"))
}

/// Audits administrative requests after they are answered.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if !audited(req.method(), req.path()) {
        return next.call(req).await;
    }
    let method = req.method().to_string();
    let path = req.path().to_string();
    let client = super::client::address(req.request()).map(|ip| ip.to_string());
    let actor = super::extract::signed_customer(req.request())
        .map_or_else(|| "anonymous".to_string(), |id| format!("customer:{id}"));
    let correlation_id = req
        .extensions()
        .get::<CorrelationId>()
        .map(|c| c.0.clone())
        .unwrap_or_default();
    let response = next.call(req).await?;
    tracing::info!(
        target: "audit",
        action = "request",
        actor,
        client,
        method,
        path,
        status = response.status().as_u16(),
        correlation_id,
        "administrative request"
    );
    Ok(response)
}

/// A login attempt and how it ended.
pub fn login(email: &str, client: Option<std::net::IpAddr>, outcome: Result<&str, &str>) {
    let client = client.map(|ip| ip.to_string());
    let correlation_id = super::correlation::current().unwrap_or_default();
    match outcome {
        Ok(customer) => tracing::info!(
            target: "audit",
            action = "login",
            email,
            customer,
            client,
            correlation_id,
            "login succeeded"
        ),
        Err(why) => tracing::warn!(
            target: "audit",
            action = "login",
            email,
            client,
            why,
            correlation_id,
            "login failed"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn administrative_changes_are_audited_reads_are_not() {
        for (method, path) in [
            (Method::POST, "/v1/products"),
            (Method::PUT, "/v1/products/1/price"),
            (Method::POST, "/v1/inventory/LAMP/receipts"),
            (Method::POST, "/v1/orders/1/ship"),
            (Method::PUT, "/v1/admin/customers/1/role"),
            (Method::POST, "/v1/admin/projections/orders/rebuild"),
        ] {
            assert!(audited(&method, path), "{method} {path}");
        }
        for (method, path) in [
            (Method::GET, "/v1/admin/projections"),
            (Method::GET, "/v1/products"),
            (Method::POST, "/v1/carts"),
            (Method::POST, "/v1/orders/1/payments"),
        ] {
            assert!(!audited(&method, path), "{method} {path}");
        }
    }
}
