//! One shutdown signal for the whole process, as mini-redis has: a
//! [`CancellationToken`] cancelled on SIGTERM or Ctrl-C. The HTTP server,
//! the projection runners, the relay, the workers and the invalidation
//! listener all stop on it; nothing else stops them.

use tokio_util::sync::CancellationToken;

/// A token cancelled when the process is asked to stop (SIGTERM, Ctrl-C).
pub fn on_signal() -> CancellationToken {
    let stop = CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C still stops");
                    std::future::pending::<()>().await
                }
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate => {}
        }
        tracing::info!("stopping");
        trigger.cancel();
    });
    stop
}
