//! The `shopstream` binary: see `shopstream --help`.

/// mimalloc: the projection runner and the query path allocate many small,
/// short-lived values; glibc's allocator spent a third of a rebuild in
/// malloc and free.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    shopstream::cli::main()
}
