fn main() -> std::process::ExitCode {
    shopstream::cli::main()
}
