use super::{customer_id, product_id, sku, t};
use crate::aggregate::{DomainError, stream_name};
use crate::claim::{
    ClaimEmail, ClaimSku, EmailClaim, EmailClaimEvent, EmailClaimed, SkuClaim, SkuClaimEvent,
    SkuClaimed,
};
use crate::testing::given;
use crate::values::Email;

fn email() -> Email {
    Email::parse("Ada@Example.com").unwrap()
}

fn claim_email(customer: u128) -> ClaimEmail {
    ClaimEmail {
        email: email(),
        customer_id: customer_id(customer),
        at: t(0),
    }
}

fn email_claimed(customer: u128) -> EmailClaimEvent {
    EmailClaimed {
        email: email(),
        customer_id: customer_id(customer),
        at: t(0),
    }
    .into()
}

fn claim_sku(product: u128) -> ClaimSku {
    ClaimSku {
        sku: sku("MUG-1"),
        product_id: product_id(product),
        at: t(0),
    }
}

fn sku_claimed(product: u128) -> SkuClaimEvent {
    SkuClaimed {
        sku: sku("MUG-1"),
        product_id: product_id(product),
        at: t(0),
    }
    .into()
}

#[test]
fn an_unclaimed_email_is_claimed_by_its_customer() {
    let claim = given::<EmailClaim>([])
        .when(claim_email(1))
        .then([email_claimed(1)]);
    assert_eq!(claim.holder, Some(customer_id(1)));
}

#[test]
fn claiming_an_email_again_for_its_holder_changes_nothing() {
    given::<EmailClaim>([email_claimed(1)])
        .when(claim_email(1))
        .then([]);
}

#[test]
fn an_email_held_by_another_customer_is_taken() {
    given::<EmailClaim>([email_claimed(1)])
        .when(claim_email(2))
        .then_error(DomainError::EmailTaken);
}

#[test]
fn email_claims_are_named_by_the_normalised_address() {
    assert_eq!(
        stream_name::<EmailClaim>(Email::parse(" ADA@example.COM ").unwrap()),
        "email-ada@example.com"
    );
    assert_eq!(
        stream_name::<EmailClaim>(email()),
        stream_name::<EmailClaim>(Email::parse("ada@example.com").unwrap())
    );
}

#[test]
fn an_unclaimed_sku_is_claimed_by_its_product() {
    let claim = given::<SkuClaim>([])
        .when(claim_sku(1))
        .then([sku_claimed(1)]);
    assert_eq!(claim.holder, Some(product_id(1)));
}

#[test]
fn claiming_a_sku_again_for_its_holder_changes_nothing() {
    given::<SkuClaim>([sku_claimed(1)])
        .when(claim_sku(1))
        .then([]);
}

#[test]
fn a_sku_held_by_another_product_is_taken() {
    given::<SkuClaim>([sku_claimed(1)])
        .when(claim_sku(2))
        .then_error(DomainError::SkuTaken);
}

#[test]
fn sku_claims_are_named_by_the_upper_cased_sku() {
    assert_eq!(stream_name::<SkuClaim>(sku("mug-1")), "sku-MUG-1");
}
