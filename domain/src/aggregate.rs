//! The shape every aggregate has: pure decisions and pure state changes.

use std::fmt;

use serde::Serialize;

use crate::event::EventSet;
use crate::values::{FieldError, OrderId, ProductId, Sku};

/// An aggregate: state folded from its own stream's events.
///
/// `decide` holds every business rule and is the only place that refuses;
/// `evolve` holds none and never fails, so a stream that was accepted once
/// always folds again.
pub trait Aggregate: Default + Clone + fmt::Debug + Send + Sync + 'static {
    type Event: EventSet;
    type Command;

    /// Streams of this aggregate are named `<CATEGORY>-<id>`.
    const CATEGORY: &'static str;

    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, DomainError>;

    fn evolve(&mut self, event: &Self::Event);

    /// Folds events onto the default state.
    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self {
        let mut state = Self::default();
        for event in events {
            state.evolve(event);
        }
        state
    }
}

/// The stream name of the aggregate `A` with this id.
pub fn stream_name<A: Aggregate>(id: impl fmt::Display) -> String {
    format!("{}-{}", A::CATEGORY, id)
}

/// What a lifecycle state is called, for error messages and views.
pub trait StatusName {
    fn status_name(&self) -> &'static str;
}

/// Why the domain refused a command. Each variant maps to one HTTP status
/// and problem code at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
pub enum DomainError {
    /// A field is well formed but not acceptable.
    #[error("validation failed: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Validation(Vec<FieldError>),
    /// The aggregate the command addresses has not been created.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The aggregate exists already (a create with an id in use).
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    #[error("this email address is already registered")]
    EmailTaken,
    #[error("a product with this SKU exists already")]
    SkuTaken,
    /// Not enough available stock for these SKUs.
    #[error("insufficient stock for {}", .skus.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))]
    InsufficientStock { skus: Vec<Sku> },
    /// The command is not allowed in the aggregate's current state.
    #[error("cannot {action} this {entity}: it is {state}")]
    InvalidState {
        entity: &'static str,
        state: &'static str,
        action: &'static str,
    },
    /// Products that can no longer be sold.
    #[error("products no longer sold: {}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "))]
    ProductsUnavailable(Vec<ProductId>),
    /// Amounts in different currencies were combined.
    #[error("currency mismatch: {0}")]
    CurrencyMismatch(String),
    /// The order's stock reservations are not what the command needs.
    #[error("order {0} holds no reservation for this SKU")]
    NoReservation(OrderId),
}

impl DomainError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        DomainError::Validation(vec![FieldError::new(field, message)])
    }
}

impl From<FieldError> for DomainError {
    fn from(e: FieldError) -> Self {
        DomainError::Validation(vec![e])
    }
}
