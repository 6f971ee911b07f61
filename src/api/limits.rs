//! Rate limits per route class, as GCRA buckets (`governor`):
//!
//! | class | routes | key | default |
//! |---|---|---|---|
//! | `auth` | logging in, registering, verifying an address, asking for the mail again | client address (and the account, for logins) | 5/min |
//! | `search` | `GET /v1/products/search` | customer, or address when anonymous | 50/min |
//! | `api` | the rest of `/v1` | customer, or address when anonymous | 100/min |
//!
//! Health, metrics and the OpenAPI document are never limited. A limited
//! request is answered 429 `rate_limited` with `Retry-After` before its
//! handler runs, so it costs no password hashing and no store work; every
//! limited route's answer says where its caller stands in the IETF draft's
//! `RateLimit`, and a refusal also says the policy (`RateLimit-Policy`) and
//! `RateLimit-Limit`, `-Remaining` and `-Reset`. Buckets live in each API
//! node's memory: with N nodes behind a balancer a client gets up to N
//! times the limit (a sticky balancer, or one node per client address,
//! keeps it at one).
//! `SHOPSTREAM_RATE_LIMITS=off` switches every limit off (load tests and
//! benchmarks).

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use bytes::BytesMut;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::{StateInformationMiddleware, StateSnapshot};
use governor::state::keyed::DashMapStateStore;
use governor::{NotUntil, Quota, RateLimiter};
use prometheus::IntCounterVec;
use uuid::Uuid;

use super::problem::ApiError;
use crate::config::LimitSettings;

/// Buckets in a `DashMap` keyed with foldhash: keys are client-chosen, so
/// the hash is seeded per process, but it costs a fraction of SipHash.
type Limiter<K> = RateLimiter<
    K,
    DashMapStateStore<K, foldhash::fast::RandomState>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// Who a bucket belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Customer(Uuid),
    Address(IpAddr),
    /// No socket address (requests made in-process).
    Unknown,
}

/// A route class and its bucket per key.
struct Class<K: Hash + Eq + Clone> {
    name: &'static str,
    limiter: Limiter<K>,
    limit: u32,
    window: Duration,
}

impl<K: Hash + Eq + Clone> Class<K> {
    fn new(name: &'static str, limit: u32, window: Duration) -> Self {
        let n = NonZeroU32::new(limit.max(1)).unwrap_or(NonZeroU32::MIN);
        let per = window / n.get();
        let quota = Quota::with_period(per)
            .unwrap_or_else(|| Quota::per_second(n))
            .allow_burst(n);
        Self {
            name,
            limiter: RateLimiter::dashmap_with_hasher(quota, Default::default())
                .with_middleware::<StateInformationMiddleware>(),
            limit: n.get(),
            window,
        }
    }

    /// Drops the buckets of keys gone quiet.
    fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    fn check(&self, key: &K) -> Verdict {
        match self.limiter.check_key(key) {
            Ok(state) => Verdict::allowed(self, &state),
            Err(not_until) => Verdict::limited(self, &not_until, self.limiter.clock().now()),
        }
    }
}

/// Where a caller stands in a class: what the headers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub class: &'static str,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset: u64,
    pub window: u64,
    /// Seconds to wait, when refused.
    pub retry_after: Option<u64>,
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Verdict {
    fn allowed<K: Hash + Eq + Clone>(class: &Class<K>, state: &StateSnapshot) -> Self {
        let remaining = state.remaining_burst_capacity().min(class.limit);
        let per = class.window / class.limit;
        Self {
            class: class.name,
            limit: class.limit,
            remaining,
            reset: ceil_secs(per * (class.limit - remaining)),
            window: class.window.as_secs(),
            retry_after: None,
        }
    }

    fn limited<K: Hash + Eq + Clone>(
        class: &Class<K>,
        not_until: &NotUntil<<DefaultClock as Clock>::Instant>,
        now: <DefaultClock as Clock>::Instant,
    ) -> Self {
        let wait = not_until.wait_time_from(now);
        Self {
            class: class.name,
            limit: class.limit,
            remaining: 0,
            reset: ceil_secs(class.window),
            window: class.window.as_secs(),
            retry_after: Some(ceil_secs(wait).max(1)),
        }
    }

    /// The `RateLimit*` headers of an answer. Every answer of a limited
    /// route says where its caller stands in the IETF draft's `RateLimit`
    /// (the policy's name, what remains, seconds until the bucket is full);
    /// a refusal also says the policy (`RateLimit-Policy`) and, as API.md
    /// asks, `RateLimit-Limit`, `-Remaining` and `-Reset`. The policies
    /// are fixed and documented, so the answers that go through (nearly
    /// all) carry only the one short field that changes.
    pub fn write(&self, headers: &mut HeaderMap) {
        const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
        const POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
        const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
        const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
        const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
        let mut put = |name: HeaderName, (q, first): (&str, u64), (w, second): (&str, u64)| {
            // Every answer carries one: written without the formatting
            // machinery (`"api";r=37;t=38`).
            let (mut a, mut b) = (itoa::Buffer::new(), itoa::Buffer::new());
            let (first, second) = (a.format(first), b.format(second));
            let mut value =
                BytesMut::with_capacity(self.class.len() + first.len() + second.len() + 9);
            for part in ["\"", self.class, "\";", q, "=", first, ";", w, "=", second] {
                value.extend_from_slice(part.as_bytes());
            }
            if let Ok(value) = HeaderValue::from_maybe_shared(value.freeze()) {
                headers.insert(name, value);
            }
        };
        put(
            RATELIMIT,
            ("r", u64::from(self.remaining)),
            ("t", self.reset),
        );
        if self.retry_after.is_some() {
            put(POLICY, ("q", u64::from(self.limit)), ("w", self.window));
            headers.insert(LIMIT, HeaderValue::from(self.limit));
            headers.insert(REMAINING, HeaderValue::from(self.remaining));
            headers.insert(RESET, HeaderValue::from(self.reset));
        }
    }

    /// The 429 answer.
    pub fn refusal(&self) -> ApiError {
        ApiError::rate_limited(self.retry_after.unwrap_or(1), self.class)
    }
}

/// Every limit of an API node.
pub struct RateLimits {
    enabled: bool,
    auth_addresses: Class<Key>,
    auth_accounts: Class<String>,
    search: Class<Key>,
    api: Class<Key>,
    limited: IntCounterVec,
}

/// Which class a request falls in (`None`: not limited).
fn class_of(method: &Method, path: &str) -> Option<&'static str> {
    // Preflights are the browser's, not the caller's.
    if !path.starts_with("/v1/") || path == "/v1/openapi.json" || *method == Method::OPTIONS {
        return None;
    }
    let auth = (*method == Method::POST)
        && matches!(
            path,
            "/v1/auth/token"
                | "/v1/customers"
                | "/v1/customers/verify-email"
                | "/v1/customers/me/verification"
        );
    Some(if auth {
        "auth"
    } else if path == "/v1/products/search" {
        "search"
    } else {
        "api"
    })
}

impl RateLimits {
    pub fn new(enabled: bool, settings: &LimitSettings, limited: IntCounterVec) -> Self {
        let minute = Duration::from_secs(60);
        Self {
            enabled,
            auth_addresses: Class::new("auth", settings.auth_per_minute, minute),
            auth_accounts: Class::new("auth", settings.auth_per_minute, minute),
            search: Class::new("search", settings.search_per_minute, minute),
            api: Class::new("api", settings.api_per_minute, minute),
            limited,
        }
    }

    /// Whether any request is limited at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Drops the buckets of keys gone quiet (a full bucket is no state).
    /// The server calls it every minute.
    pub fn sweep(&self) {
        self.auth_addresses.sweep();
        self.auth_accounts.sweep();
        self.search.sweep();
        self.api.sweep();
    }

    fn count(&self, verdict: &Verdict) {
        if verdict.retry_after.is_some() {
            self.limited.with_label_values(&[verdict.class]).inc();
        }
    }

    /// Checks a request of a class against its caller's bucket.
    pub fn check(&self, class: &str, key: &Key) -> Option<Verdict> {
        if !self.enabled {
            return None;
        }
        let verdict = match class {
            "auth" => self.auth_addresses.check(key),
            "search" => self.search.check(key),
            _ => self.api.check(key),
        };
        self.count(&verdict);
        Some(verdict)
    }

    /// Checks a login against the account's own bucket (whoever sends it).
    pub fn check_account(&self, email: &str) -> Option<Verdict> {
        if !self.enabled {
            return None;
        }
        let verdict = self.auth_accounts.check(&email.trim().to_lowercase());
        self.count(&verdict);
        Some(verdict)
    }
}

/// Limits every request of a limited class before it is handled, and
/// says on the answer where its caller stands.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // Checked on the borrowed limits: no reference count touched per request.
    let verdict = class_of(req.method(), req.path()).and_then(|class| {
        let limits = req.app_data::<web::Data<RateLimits>>()?;
        if !limits.enabled() {
            return None;
        }
        let key = match super::extract::signed_customer(req.request()) {
            Some(id) => Key::Customer(id.as_uuid()),
            None => super::client::address(req.request()).map_or(Key::Unknown, Key::Address),
        };
        limits.check(class, &key)
    });
    let Some(verdict) = verdict else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    if verdict.retry_after.is_some() {
        let mut refused = verdict.refusal().error_response();
        verdict.write(refused.headers_mut());
        return Ok(req.into_response(refused));
    }
    let mut response = next.call(req).await?.map_into_boxed_body();
    // A handler's own (stricter) verdict stands.
    if !response.headers().contains_key(header::RETRY_AFTER) {
        verdict.write(response.headers_mut());
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_minute: u32) -> RateLimits {
        let counter =
            IntCounterVec::new(prometheus::Opts::new("limited", "limited"), &["class"]).unwrap();
        RateLimits::new(
            true,
            &LimitSettings {
                auth_per_minute: per_minute,
                search_per_minute: per_minute,
                api_per_minute: per_minute,
                uploads_per_hour: 10,
            },
            counter,
        )
    }

    #[test]
    fn the_sixth_attempt_in_a_minute_is_refused_with_a_wait() {
        let l = limits(5);
        let key = Key::Address("203.0.113.9".parse().unwrap());
        for left in (0..5).rev() {
            let v = l.check("auth", &key).unwrap();
            assert_eq!((v.remaining, v.retry_after), (left, None));
        }
        let refused = l.check("auth", &key).unwrap();
        let wait = refused.retry_after.expect("refused");
        assert!(
            (1..=12).contains(&wait),
            "one token comes back every 12 s: {wait}"
        );
        assert_eq!(l.limited.with_label_values(&["auth"]).get(), 1);
        let other = Key::Address("203.0.113.10".parse().unwrap());
        assert_eq!(
            l.check("auth", &other).unwrap().retry_after,
            None,
            "keys are apart"
        );
    }

    #[test]
    fn an_account_is_limited_whatever_the_address() {
        let l = limits(2);
        assert!(
            l.check_account("Ada@Example.com")
                .unwrap()
                .retry_after
                .is_none()
        );
        assert!(
            l.check_account("ada@example.com ")
                .unwrap()
                .retry_after
                .is_none()
        );
        assert!(
            l.check_account("ADA@example.com")
                .unwrap()
                .retry_after
                .is_some()
        );
    }

    #[test]
    fn switched_off_nothing_is_limited() {
        let counter =
            IntCounterVec::new(prometheus::Opts::new("limited", "limited"), &["class"]).unwrap();
        let off = RateLimits::new(false, &LimitSettings::default(), counter);
        assert_eq!(off.check("auth", &Key::Unknown), None);
        assert_eq!(off.check_account("a@b.co"), None);
    }

    #[test]
    fn routes_fall_in_their_class() {
        assert_eq!(class_of(&Method::POST, "/v1/auth/token"), Some("auth"));
        assert_eq!(class_of(&Method::POST, "/v1/customers"), Some("auth"));
        assert_eq!(class_of(&Method::GET, "/v1/customers/me"), Some("api"));
        assert_eq!(
            class_of(&Method::GET, "/v1/products/search"),
            Some("search")
        );
        assert_eq!(class_of(&Method::GET, "/v1/orders/1"), Some("api"));
        assert_eq!(class_of(&Method::GET, "/health/ready"), None);
        assert_eq!(class_of(&Method::GET, "/metrics"), None);
        assert_eq!(class_of(&Method::GET, "/v1/openapi.json"), None);
        assert_eq!(class_of(&Method::OPTIONS, "/v1/products"), None);
    }

    #[test]
    fn headers_say_the_policy_and_where_the_caller_stands() {
        let allowed = Verdict {
            class: "api",
            limit: 100,
            remaining: 37,
            reset: 38,
            window: 60,
            retry_after: None,
        };
        let written = |v: &Verdict| {
            let mut headers = HeaderMap::new();
            v.write(&mut headers);
            move |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_string())
        };
        let get = written(&allowed);
        assert_eq!(get("ratelimit").unwrap(), "\"api\";r=37;t=38");
        assert_eq!(
            get("ratelimit-policy"),
            None,
            "only a refusal says the policy"
        );
        assert_eq!(
            get("ratelimit-remaining"),
            None,
            "only a refusal says it twice"
        );
        let refused = Verdict {
            remaining: 0,
            retry_after: Some(1),
            ..allowed
        };
        let get = written(&refused);
        assert_eq!(get("ratelimit-limit").unwrap(), "100");
        assert_eq!(get("ratelimit-remaining").unwrap(), "0");
        assert_eq!(get("ratelimit-reset").unwrap(), "38");
        assert_eq!(get("ratelimit").unwrap(), "\"api\";r=0;t=38");
        assert_eq!(get("ratelimit-policy").unwrap(), "\"api\";q=100;w=60");
    }
}
