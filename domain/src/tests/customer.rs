use super::{customer_id, t};
use crate::aggregate::{DomainError, stream_name};
use crate::customer::{
    Customer, CustomerCommand, CustomerEvent, CustomerRegistered, EmailVerified, PasswordSet,
    RoleChanged, SECRET_FIELDS,
};
use crate::event::EventSet;
use crate::testing::given;
use crate::values::{Email, Name, PasswordHash, Role};

fn email() -> Email {
    Email::parse("Ada@Example.com").unwrap()
}

fn hash(raw: &str) -> PasswordHash {
    PasswordHash(format!("$argon2id$v=19$m=19456,t=2,p=1${raw}"))
}

fn register(role: Role) -> CustomerCommand {
    CustomerCommand::Register {
        customer_id: customer_id(1),
        email: email(),
        name: Name::parse("Ada Lovelace").unwrap(),
        role,
        password_hash: hash("first"),
        at: t(0),
    }
}

fn registered_events(role: Role) -> Vec<CustomerEvent> {
    vec![
        CustomerRegistered {
            customer_id: customer_id(1),
            email: email(),
            name: Name::parse("Ada Lovelace").unwrap(),
            role,
            registered_at: t(0),
        }
        .into(),
        PasswordSet {
            password_hash: hash("first"),
            at: t(0),
        }
        .into(),
    ]
}

fn registered() -> Vec<CustomerEvent> {
    registered_events(Role::Customer)
}

#[test]
fn registering_records_the_customer_and_its_password() {
    let state = given::<Customer>([])
        .when(register(Role::Customer))
        .then(registered());
    let reg = state.registered.expect("registered");
    assert_eq!(reg.customer_id, customer_id(1));
    assert_eq!(reg.email.as_str(), "ada@example.com");
    assert_eq!(reg.role, Role::Customer);
    assert_eq!(reg.password_hash, Some(hash("first")));
    assert!(!reg.email_verified);
    assert_eq!(reg.registered_at, t(0));
}

#[test]
fn an_admin_registers_with_its_role() {
    given::<Customer>([])
        .when(register(Role::Admin))
        .then(registered_events(Role::Admin));
}

#[test]
fn registering_twice_is_refused() {
    given::<Customer>(registered())
        .when(register(Role::Customer))
        .then_error(DomainError::AlreadyExists("customer"));
}

#[test]
fn commands_before_registration_find_no_customer() {
    for command in [
        CustomerCommand::SetPassword {
            password_hash: hash("x"),
            at: t(1),
        },
        CustomerCommand::VerifyEmail { at: t(1) },
        CustomerCommand::ChangeRole {
            role: Role::Admin,
            at: t(1),
        },
    ] {
        given::<Customer>([])
            .when(command)
            .then_error(DomainError::NotFound("customer"));
    }
}

#[test]
fn setting_a_new_password_records_it() {
    let state = given::<Customer>(registered())
        .when(CustomerCommand::SetPassword {
            password_hash: hash("second"),
            at: t(5),
        })
        .then([PasswordSet {
            password_hash: hash("second"),
            at: t(5),
        }
        .into()]);
    assert_eq!(
        state.registered.unwrap().password_hash,
        Some(hash("second"))
    );
}

#[test]
fn setting_the_same_password_again_changes_nothing() {
    given::<Customer>(registered())
        .when(CustomerCommand::SetPassword {
            password_hash: hash("first"),
            at: t(5),
        })
        .then([]);
}

#[test]
fn verifying_the_email_records_the_verified_address() {
    let state = given::<Customer>(registered())
        .when(CustomerCommand::VerifyEmail { at: t(5) })
        .then([EmailVerified {
            email: email(),
            at: t(5),
        }
        .into()]);
    assert!(state.registered.unwrap().email_verified);
}

#[test]
fn verifying_twice_changes_nothing() {
    let mut events = registered();
    events.push(
        EmailVerified {
            email: email(),
            at: t(5),
        }
        .into(),
    );
    given::<Customer>(events)
        .when(CustomerCommand::VerifyEmail { at: t(6) })
        .then([]);
}

#[test]
fn changing_the_role_records_the_previous_one() {
    let state = given::<Customer>(registered())
        .when(CustomerCommand::ChangeRole {
            role: Role::Analyst,
            at: t(5),
        })
        .then([RoleChanged {
            role: Role::Analyst,
            previous: Role::Customer,
            at: t(5),
        }
        .into()]);
    assert_eq!(state.registered.unwrap().role, Role::Analyst);
}

#[test]
fn changing_to_the_current_role_changes_nothing() {
    given::<Customer>(registered_events(Role::Admin))
        .when(CustomerCommand::ChangeRole {
            role: Role::Admin,
            at: t(5),
        })
        .then([]);
}

#[test]
fn events_before_registration_are_ignored_by_the_fold() {
    use crate::aggregate::Aggregate;
    let stray: Vec<CustomerEvent> = vec![
        PasswordSet {
            password_hash: hash("x"),
            at: t(0),
        }
        .into(),
        EmailVerified {
            email: email(),
            at: t(0),
        }
        .into(),
        RoleChanged {
            role: Role::Admin,
            previous: Role::Customer,
            at: t(0),
        }
        .into(),
    ];
    assert_eq!(Customer::fold(&stray), Customer::default());
}

#[test]
fn customer_streams_are_named_by_id() {
    assert_eq!(
        stream_name::<Customer>(customer_id(1)),
        format!("customer-{}", customer_id(1))
    );
}

#[test]
fn the_password_hash_is_the_declared_secret_field() {
    let event: CustomerEvent = PasswordSet {
        password_hash: hash("secret"),
        at: t(0),
    }
    .into();
    let data: serde_json::Value = serde_json::from_slice(&event.encode()).unwrap();
    let (_, field) = SECRET_FIELDS
        .iter()
        .find(|(event_type, _)| *event_type == event.event_type())
        .expect("PasswordSet is declared secret");
    assert!(data.get(field).is_some(), "{field} is in the event data");
    assert!(
        !format!("{event:?}").contains("secret"),
        "Debug output must not show the hash"
    );
}

#[test]
fn a_verification_mail_is_recorded_once_per_request() {
    use crate::customer::VerificationMailSent;
    let request = uuid::Uuid::from_u128(9);
    let record = CustomerCommand::RecordVerificationMail {
        request_id: request,
        at: t(1),
    };
    let sent: CustomerEvent = VerificationMailSent {
        request_id: request,
        to: email(),
        at: t(1),
    }
    .into();
    given::<Customer>(registered())
        .when(record.clone())
        .then(vec![sent.clone()]);
    let mut history = registered();
    history.push(sent);
    given::<Customer>(history).when(record).then(vec![]);
}

#[test]
fn a_verified_address_asks_for_no_more_mail() {
    let mut history = registered();
    history.push(
        EmailVerified {
            email: email(),
            at: t(2),
        }
        .into(),
    );
    given::<Customer>(history)
        .when(CustomerCommand::RequestVerification {
            request_id: uuid::Uuid::from_u128(3),
            at: t(3),
        })
        .then_error(DomainError::InvalidState {
            entity: "email address",
            state: "verified",
            action: "verify again",
        });
}

#[test]
fn an_admin_turns_access_off_and_on() {
    use crate::customer::{CustomerDisabled, CustomerEnabled};
    let off = |enabled| CustomerCommand::SetEnabled { enabled, at: t(4) };
    given::<Customer>(registered())
        .when(off(false))
        .then(vec![CustomerDisabled { at: t(4) }.into()]);
    given::<Customer>(registered()).when(off(true)).then(vec![]);
    let mut history = registered();
    history.push(CustomerDisabled { at: t(4) }.into());
    given::<Customer>(history)
        .when(off(true))
        .then(vec![CustomerEnabled { at: t(4) }.into()]);
}
