//! `shopstream-bench hello`: the handlers the query path is compared with,
//! same build, same worker count, same machine, same run:
//!
//! - `GET /hello`: a constant body, the least an actix-web handler does;
//! - `GET /v1/products/{id}`: with `--body-file`, precomputed bytes looked
//!   up in a `HashMap` by the path's id, no middleware, which is the least
//!   a cache-hit query could do (`--products` entries, the file's body
//!   under `--id` and copies of it under made-up ids).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::{HttpResponse, web};
use anyhow::Context;
use bytes::Bytes;
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct HelloArgs {
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub addr: String,
    /// Worker threads; 0 means one per CPU core, like `serve`.
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// A product's answer to serve from the map (with `--id`).
    #[arg(long, requires = "id")]
    pub body_file: Option<PathBuf>,
    /// The id the body is served under.
    #[arg(long)]
    pub id: Option<String>,
    /// Entries in the map, the real one among them.
    #[arg(long, default_value_t = 100_000)]
    pub products: usize,
}

type Answers = Arc<HashMap<String, Bytes>>;

async fn product(answers: web::Data<Answers>, id: web::Path<String>) -> HttpResponse {
    match answers.get(id.as_str()) {
        Some(body) => HttpResponse::Ok()
            .content_type("application/json")
            .body(body.clone()),
        None => HttpResponse::NotFound().finish(),
    }
}

pub async fn run(args: HelloArgs) -> anyhow::Result<()> {
    let mut answers = HashMap::new();
    if let (Some(file), Some(id)) = (&args.body_file, &args.id) {
        let body = Bytes::from(
            std::fs::read(file).with_context(|| format!("reading {}", file.display()))?,
        );
        for n in 1..args.products {
            answers.insert(format!("{n:08}-0000-7000-8000-000000000000"), body.clone());
        }
        answers.insert(id.clone(), body);
    }
    let answers: Answers = Arc::new(answers);
    let mut server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(web::Data::new(answers.clone()))
            .route(
                "/hello",
                web::get().to(|| async {
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(r#"{"hello":"world"}"#)
                }),
            )
            .route("/v1/products/{id}", web::get().to(product))
    });
    if args.workers > 0 {
        server = server.workers(args.workers);
    }
    println!("serving GET http://{}/hello", args.addr);
    server.bind(&args.addr)?.run().await?;
    Ok(())
}
