//! `shopstream-bench hello`: the trivial actix-web handler the query path
//! is compared with: same build, same worker count, same machine, same run.

use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct HelloArgs {
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub addr: String,
    /// Worker threads; 0 means one per CPU core, like `serve`.
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
}

pub async fn run(args: HelloArgs) -> anyhow::Result<()> {
    let mut server = actix_web::HttpServer::new(|| {
        actix_web::App::new().route(
            "/hello",
            actix_web::web::get().to(|| async {
                actix_web::HttpResponse::Ok()
                    .content_type("application/json")
                    .body(r#"{"hello":"world"}"#)
            }),
        )
    });
    if args.workers > 0 {
        server = server.workers(args.workers);
    }
    println!("serving GET http://{}/hello", args.addr);
    server.bind(&args.addr)?.run().await?;
    Ok(())
}
