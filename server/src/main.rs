//! The `dropfix-server` binary: everything lives in the library (see `cli`).

/// mimalloc instead of the system allocator: an identify call's buffers are allocated on a
/// connection thread and freed on the store thread, which glibc's malloc serves through locked
/// arenas (measured in BENCHMARKS.md, section 4).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    dropfix_server::cli::main()
}
