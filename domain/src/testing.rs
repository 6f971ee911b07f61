//! Given/when/then for aggregates: given these events, when this command,
//! then these events or this error.

use crate::aggregate::{Aggregate, DomainError};
use crate::event::EventSet;

pub struct Given<A: Aggregate> {
    state: A,
}

pub fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let events: Vec<A::Event> = events.into_iter().collect();
    Given {
        state: A::fold(&events),
    }
}

impl<A: Aggregate> Given<A> {
    pub fn when(self, command: A::Command) -> Then<A> {
        let result = self.state.decide(&command);
        Then {
            state: self.state,
            result,
        }
    }
}

pub struct Then<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, DomainError>,
}

impl<A: Aggregate> Then<A>
where
    A::Event: PartialEq,
{
    /// The command was accepted with exactly these events, and they survive
    /// the trip through their stored form.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) -> A {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "unexpected events");
                let mut state = self.state;
                for e in &events {
                    let decoded = A::Event::decode(e.event_type(), e.schema_version(), &e.encode())
                        .expect("event decodes");
                    assert_eq!(&decoded, e, "event changed through encode/decode");
                    state.evolve(e);
                }
                state
            }
            Err(e) => panic!("expected events {expected:?}, got error {e:?}"),
        }
    }

    /// The command was refused with this error.
    #[track_caller]
    pub fn then_error(self, expected: DomainError) {
        match self.result {
            Ok(events) => panic!("expected error {expected:?}, got events {events:?}"),
            Err(e) => assert_eq!(e, expected),
        }
    }
}
