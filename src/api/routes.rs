//! The routes the OpenAPI document describes, as a table: a request for a
//! path that exists with another method gets 405 and `Allow`, not 404. The
//! document is the one list of routes; a test keeps it and the server in
//! step.

use std::sync::LazyLock;

use super::operations::OPENAPI;

/// A path template (`/v1/orders/{id}`) and the methods it serves.
struct Route {
    segments: Vec<Segment>,
    methods: Vec<String>,
}

enum Segment {
    Literal(String),
    Parameter,
}

static ROUTES: LazyLock<Vec<Route>> = LazyLock::new(|| {
    let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap_or_default();
    let Some(paths) = doc["paths"].as_object() else {
        return Vec::new();
    };
    paths
        .iter()
        .map(|(path, item)| Route {
            segments: path
                .trim_start_matches('/')
                .split('/')
                .map(|s| {
                    if s.starts_with('{') && s.ends_with('}') {
                        Segment::Parameter
                    } else {
                        Segment::Literal(s.to_string())
                    }
                })
                .collect(),
            methods: item
                .as_object()
                .map(|ops| {
                    ops.keys()
                        .filter(|m| ["get", "post", "put", "delete", "patch"].contains(&m.as_str()))
                        .map(|m| m.to_ascii_uppercase())
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
});

/// The methods the document lists for `path` (empty: no such path).
pub fn allowed(path: &str) -> Vec<String> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut methods: Vec<String> = ROUTES
        .iter()
        .filter(|r| {
            r.segments.len() == parts.len()
                && r.segments.iter().zip(&parts).all(|(s, p)| match s {
                    Segment::Literal(l) => l == p,
                    Segment::Parameter => !p.is_empty(),
                })
        })
        .flat_map(|r| r.methods.iter().cloned())
        .collect();
    methods.sort();
    methods.dedup();
    methods
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn paths_are_matched_with_their_parameters() {
        assert_eq!(allowed("/v1/products"), ["GET", "POST"]);
        assert_eq!(allowed("/v1/orders/0190-abc"), ["GET"]);
        assert_eq!(
            allowed("/v1/products/search"),
            ["GET"],
            "and /v1/products/{{id}}"
        );
        assert!(allowed("/v1/nothing").is_empty());
        assert!(
            allowed("/v1/orders/").is_empty(),
            "a parameter is never empty"
        );
    }
}
