//! Value types that validate on construction.
//!
//! Every value that enters the domain from outside goes through one of these
//! constructors, so an aggregate never sees an empty name, a negative price or
//! an email without a domain. Deserialisation goes through the same checks
//! (`#[serde(try_from = ...)]`), so an event or request that carries an
//! invalid value fails to decode instead of smuggling it in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a value was refused: which field, and a message a client can show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error reported under another field name (a request's field
    /// path rather than the value type's generic name).
    pub fn at(mut self, field: impl Into<String>) -> Self {
        self.field = field.into();
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// A registered customer (also admins and analysts: they are customers with a role).
    CustomerId
);
id_type!(
    /// A catalogue product.
    ProductId
);
id_type!(
    /// A shopping cart.
    CartId
);
id_type!(
    /// An order, created by a checkout.
    OrderId
);
id_type!(
    /// One login of a customer (its refresh tokens and access tokens).
    SessionId
);

/// Trimmed text of bounded length with no control characters.
fn bounded_text(field: &str, raw: &str, min: usize, max: usize) -> Result<String, FieldError> {
    let text = raw.trim();
    let len = text.chars().count();
    if len < min {
        return Err(FieldError::new(
            field,
            if min == 1 {
                "must not be empty".to_string()
            } else {
                format!("must be at least {min} characters")
            },
        ));
    }
    if len > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text.to_string())
}

macro_rules! text_type {
    ($(#[$meta:meta])* $name:ident, $field:literal, $min:expr, $max:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            pub fn parse(raw: &str) -> Result<Self, FieldError> {
                bounded_text($field, raw, $min, $max).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = FieldError;
            fn try_from(raw: String) -> Result<Self, FieldError> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_type!(
    /// A person's or a product's name: 1 to 200 characters.
    Name,
    "name",
    1,
    200
);
text_type!(
    /// A product description: up to 5,000 characters, may be empty.
    Description,
    "description",
    0,
    5000
);
text_type!(
    /// A catalogue category: 1 to 100 characters, matched exactly.
    Category,
    "category",
    1,
    100
);
text_type!(
    /// A carrier's name for a shipment.
    Carrier,
    "carrier",
    1,
    100
);
text_type!(
    /// A carrier's tracking code.
    Tracking,
    "tracking",
    1,
    200
);
text_type!(
    /// A payment provider's reference; one payment per reference per order.
    PaymentReference,
    "reference",
    1,
    200
);

/// An email address, trimmed and lower-cased so that uniqueness is
/// case-insensitive. Validation is deliberately pragmatic: one `@`, a local
/// part, a dotted domain, no spaces or characters that need quoting.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let invalid = |why: &str| FieldError::new("email", why);
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if email.len() > 254 {
            return Err(invalid("must be at most 254 characters"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(invalid("must contain @"));
        };
        if local.is_empty() || local.len() > 64 {
            return Err(invalid("must have 1 to 64 characters before @"));
        }
        let allowed = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
        if !local.chars().all(allowed) || local.starts_with('.') || local.ends_with('.') {
            return Err(invalid("has characters that are not allowed before @"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        if labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err(invalid("must have a domain such as example.com"));
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, FieldError> {
        Self::parse(&raw)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> String {
        value.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stock-keeping unit: 1 to 64 of `A-Z 0-9 . _ -`, upper-cased, so that it
/// is safe in a URL path and a stream name and unique regardless of case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(String);

impl Sku {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let sku = raw.trim().to_ascii_uppercase();
        if sku.is_empty() || sku.len() > 64 {
            return Err(FieldError::new("sku", "must be 1 to 64 characters"));
        }
        if !sku
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(FieldError::new(
                "sku",
                "may contain only letters, digits, '.', '_' and '-'",
            ));
        }
        Ok(Self(sku))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Sku {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, FieldError> {
        Self::parse(&raw)
    }
}

impl From<Sku> for String {
    fn from(value: Sku) -> String {
        value.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Product tags: at most 20, each 1 to 50 characters, lower-cased, without
/// duplicates, in the order given.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Tags(Vec<String>);

impl Tags {
    pub const MAX: usize = 20;

    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, FieldError> {
        if raw.len() > Self::MAX {
            return Err(FieldError::new(
                "tags",
                format!("at most {} tags", Self::MAX),
            ));
        }
        let mut tags: Vec<String> = Vec::with_capacity(raw.len());
        for tag in raw {
            let tag = bounded_text("tags", tag.as_ref(), 1, 50)?.to_lowercase();
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        Ok(Self(tags))
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

impl TryFrom<Vec<String>> for Tags {
    type Error = FieldError;
    fn try_from(raw: Vec<String>) -> Result<Self, FieldError> {
        Self::parse(&raw)
    }
}

impl From<Tags> for Vec<String> {
    fn from(value: Tags) -> Vec<String> {
        value.0
    }
}

/// Active ISO 4217 currency codes.
const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
    "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
    "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
    "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR",
    "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB",
    "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS",
    "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// An ISO 4217 currency code such as `EUR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// The euro: the default shop currency, and the currency of carts
    /// created before carts recorded theirs.
    pub const EUR: Currency = Currency(*b"EUR");

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw.len() == 3 && ISO_4217.binary_search(&raw).is_ok() {
            let b = raw.as_bytes();
            Ok(Self([b[0], b[1], b[2]]))
        } else {
            Err(FieldError::new(
                "currency",
                "must be an ISO 4217 code such as EUR",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ever built from an entry of ISO_4217, which is ASCII.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl TryFrom<String> for Currency {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, FieldError> {
        Self::parse(&raw)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> String {
        value.as_str().to_string()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount of money in integer minor units of one currency. Never negative:
/// the domain has no negative prices, totals or payments. A single amount
/// from outside (a price, a payment) is at most [`Money::MAX_AMOUNT`]; sums
/// such as an order's total may be larger and are computed with checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawMoney")]
pub struct Money {
    pub amount: i64,
    pub currency: Currency,
}

#[derive(Deserialize)]
struct RawMoney {
    amount: i64,
    currency: Currency,
}

impl TryFrom<RawMoney> for Money {
    type Error = FieldError;
    /// Stored amounts may be sums beyond [`Money::MAX_AMOUNT`] (an order's
    /// total); only a negative amount is never valid.
    fn try_from(raw: RawMoney) -> Result<Self, FieldError> {
        if raw.amount < 0 {
            return Err(FieldError::new("amount", "must not be negative"));
        }
        Ok(Money {
            amount: raw.amount,
            currency: raw.currency,
        })
    }
}

impl Money {
    /// The largest amount accepted from outside: a trillion minor units, far
    /// from overflow even when multiplied by a quantity and summed.
    pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

    pub fn new(amount: i64, currency: Currency) -> Result<Self, FieldError> {
        if !(0..=Self::MAX_AMOUNT).contains(&amount) {
            return Err(FieldError::new(
                "amount",
                format!("must be between 0 and {} minor units", Self::MAX_AMOUNT),
            ));
        }
        Ok(Self { amount, currency })
    }

    pub fn zero(currency: Currency) -> Self {
        Self {
            amount: 0,
            currency,
        }
    }

    /// `self × quantity`, or `None` on overflow.
    pub fn times(self, quantity: Quantity) -> Option<Money> {
        self.amount
            .checked_mul(i64::from(quantity.get()))
            .map(|amount| Money { amount, ..self })
    }

    /// `self + other` in the same currency, or `None` on overflow or mismatch.
    pub fn plus(self, other: Money) -> Option<Money> {
        if self.currency != other.currency {
            return None;
        }
        self.amount
            .checked_add(other.amount)
            .map(|amount| Money { amount, ..self })
    }
}

/// A positive count of units, at most a million in one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Quantity(u32);

impl Quantity {
    pub const MAX: u32 = 1_000_000;

    pub fn new(value: u32) -> Result<Self, FieldError> {
        if value == 0 || value > Self::MAX {
            Err(FieldError::new(
                "quantity",
                format!("must be between 1 and {}", Self::MAX),
            ))
        } else {
            Ok(Self(value))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Quantity {
    type Error = FieldError;
    fn try_from(value: u32) -> Result<Self, FieldError> {
        Self::new(value)
    }
}

impl From<Quantity> for u32 {
    fn from(value: Quantity) -> u32 {
        value.0
    }
}

/// What a customer may do. Admins run the catalogue, inventory, shipping and
/// operations; analysts read reports and export events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Customer,
    Admin,
    Analyst,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
            Role::Analyst => "analyst",
        }
    }
}

impl FromStr for Role {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        match s {
            "customer" => Ok(Role::Customer),
            "admin" => Ok(Role::Admin),
            "analyst" => Ok(Role::Analyst),
            _ => Err(FieldError::new(
                "role",
                "must be customer, admin or analyst",
            )),
        }
    }
}

/// A password hash in PHC string format. The domain only stores it; hashing
/// and verification are infrastructure.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(pub String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

/// Where an order goes. Either free text (one to five hundred characters) or
/// structured with at least a first line, city, postal code and an ISO 3166
/// alpha-2 country code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ShippingAddress {
    Structured(PostalAddress),
    Text(AddressText),
}

/// Text or object, decided by the JSON's own shape (an untagged enum would
/// buffer every address and try each form in turn).
impl<'de> Deserialize<'de> for ShippingAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ShippingAddress;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address as text or as an object of postal fields")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ShippingAddress, E> {
                AddressText::parse(text)
                    .map(ShippingAddress::Text)
                    .map_err(E::custom)
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ShippingAddress, A::Error> {
                let raw = RawPostalAddress::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                PostalAddress::try_from(raw)
                    .map(ShippingAddress::Structured)
                    .map_err(serde::de::Error::custom)
            }
        }

        d.deserialize_any(Visitor)
    }
}

text_type!(
    /// A free-text shipping address.
    AddressText,
    "shipping_address",
    1,
    500
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawPostalAddress")]
pub struct PostalAddress {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub line1: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub postal_code: String,
    pub country: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPostalAddress {
    name: Option<String>,
    line1: String,
    line2: Option<String>,
    city: String,
    region: Option<String>,
    postal_code: String,
    country: String,
}

impl TryFrom<RawPostalAddress> for PostalAddress {
    type Error = FieldError;
    fn try_from(raw: RawPostalAddress) -> Result<Self, FieldError> {
        let field = |name: &str| format!("shipping_address.{name}");
        let optional = |name: &str, value: Option<String>| -> Result<Option<String>, FieldError> {
            match value {
                Some(v) if !v.trim().is_empty() => bounded_text(&field(name), &v, 1, 200).map(Some),
                _ => Ok(None),
            }
        };
        let country = raw.country.trim().to_ascii_uppercase();
        if country.len() != 2 || !country.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(FieldError::new(
                field("country"),
                "must be an ISO 3166 alpha-2 code such as DE",
            ));
        }
        Ok(Self {
            name: optional("name", raw.name)?,
            line1: bounded_text(&field("line1"), &raw.line1, 1, 200)?,
            line2: optional("line2", raw.line2)?,
            city: bounded_text(&field("city"), &raw.city, 1, 100)?,
            region: optional("region", raw.region)?,
            postal_code: bounded_text(&field("postal_code"), &raw.postal_code, 1, 20)?,
            country,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_normalised_and_validated() {
        assert_eq!(
            Email::parse("  Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a b@example.com",
            "alice@exa mple.com",
            "alice@-example.com",
            ".alice@example.com",
            "alice@example..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn sku_is_upper_cased_and_restricted() {
        assert_eq!(Sku::parse("ab-12.x_y").unwrap().as_str(), "AB-12.X_Y");
        assert!(Sku::parse("").is_err());
        assert!(Sku::parse("a/b").is_err());
        assert!(Sku::parse("a b").is_err());
        assert!(Sku::parse(&"A".repeat(65)).is_err());
    }

    #[test]
    fn money_refuses_negative_and_huge_amounts_and_unknown_currencies() {
        let eur = Currency::parse("EUR").unwrap();
        assert!(Money::new(-1, eur).is_err());
        assert!(Money::new(Money::MAX_AMOUNT + 1, eur).is_err());
        assert!(Currency::parse("eur").is_err());
        assert!(Currency::parse("XYZ").is_err());
        let m: Result<Money, _> = serde_json::from_str(r#"{"amount":-5,"currency":"EUR"}"#);
        assert!(m.is_err(), "deserialisation must validate too");
        let total: Money = serde_json::from_str(r#"{"amount":5000000000000,"currency":"EUR"}"#)
            .expect("a stored total may exceed the single-amount bound");
        assert_eq!(total.amount, 5_000_000_000_000);
        let m: Money = serde_json::from_str(r#"{"amount":1999,"currency":"EUR"}"#).unwrap();
        assert_eq!(m, Money::new(1999, eur).unwrap());
    }

    #[test]
    fn currency_table_is_sorted_for_binary_search() {
        assert!(ISO_4217.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn money_arithmetic_is_checked() {
        let eur = Currency::parse("EUR").unwrap();
        let usd = Currency::parse("USD").unwrap();
        let price = Money::new(250, eur).unwrap();
        assert_eq!(price.times(Quantity::new(4).unwrap()).unwrap().amount, 1000);
        assert!(price.plus(Money::zero(usd)).is_none());
        let huge = Money {
            amount: i64::MAX,
            currency: eur,
        };
        assert!(huge.plus(price).is_none());
        assert!(huge.times(Quantity::new(2).unwrap()).is_none());
    }

    #[test]
    fn quantity_is_positive_and_bounded() {
        assert!(Quantity::new(0).is_err());
        assert!(Quantity::new(Quantity::MAX + 1).is_err());
        assert_eq!(Quantity::new(3).unwrap().get(), 3);
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse("  Ada ").unwrap().as_str(), "Ada");
        assert!(Name::parse("   ").is_err());
        assert!(Name::parse(&"x".repeat(201)).is_err());
        assert!(Name::parse("a\u{0}b").is_err());
        assert!(Description::parse("").is_ok());
    }

    #[test]
    fn tags_are_lower_cased_and_deduplicated() {
        let tags = Tags::parse(&["Red", "red", "Blue"]).unwrap();
        assert_eq!(tags.as_slice(), ["red", "blue"]);
        assert!(Tags::parse(&vec!["x"; 21]).is_err());
        assert!(Tags::parse(&[""]).is_err());
    }

    #[test]
    fn shipping_address_accepts_text_or_structure() {
        let text: ShippingAddress = serde_json::from_str(r#""1 Main St, Springfield""#).unwrap();
        assert!(matches!(text, ShippingAddress::Text(_)));
        let structured: ShippingAddress = serde_json::from_str(
            r#"{"line1":"1 Main St","city":"Berlin","postal_code":"10115","country":"de"}"#,
        )
        .unwrap();
        match structured {
            ShippingAddress::Structured(a) => assert_eq!(a.country, "DE"),
            other => panic!("expected structured, got {other:?}"),
        }
        assert!(serde_json::from_str::<ShippingAddress>(r#""""#).is_err());
        assert!(
            serde_json::from_str::<ShippingAddress>(
                r#"{"line1":"x","city":"y","postal_code":"1","country":"Germany"}"#
            )
            .is_err()
        );
    }
}
