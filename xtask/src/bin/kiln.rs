//! The same CLI as `cargo xtask`, installable with `cargo install --path xtask`.
fn main() -> std::process::ExitCode {
    xtask::main()
}
