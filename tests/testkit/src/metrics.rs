//! Reading a Prometheus text exposition (`GET /metrics`).

/// The value of an unlabelled sample, if the text has it.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}
