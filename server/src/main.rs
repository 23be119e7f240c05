//! The `dropfix-server` binary: everything lives in the library (see `cli`).
fn main() -> std::process::ExitCode {
    dropfix_server::cli::main()
}
