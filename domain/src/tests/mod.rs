//! Given/when/then tests for every aggregate rule, and property tests.
