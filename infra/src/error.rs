//! What the ports' errors share: the cause of a failure is kept as the
//! error's source, never flattened into a string, and [`Report`] prints
//! the whole chain where an error ends up (a log line, a CLI message).

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// The cause of a port's error: the engine's own error, shared so the
/// port's error stays `Clone` (a group commit answers many callers with
/// the failure of one transaction).
pub type Cause = Arc<dyn Error + Send + Sync>;

/// Wraps an engine's error (or a message where there is no error value)
/// as a [`Cause`].
pub fn cause(e: impl Into<Box<dyn Error + Send + Sync>>) -> Cause {
    Arc::from(e.into())
}

/// An error with every cause behind it: `outer: inner: innermost`.
pub struct Report<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Cause);

    #[test]
    fn a_report_names_every_cause() {
        let inner = std::io::Error::other("disk full");
        let e = Outer(cause(inner));
        assert_eq!(Report(&e).to_string(), "outer: disk full");
        assert_eq!(e.to_string(), "outer");
    }
}
