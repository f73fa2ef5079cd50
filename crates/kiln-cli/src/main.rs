//! `kiln`: the installable CLI (`cargo install --path crates/kiln-cli`).
fn main() -> std::process::ExitCode {
    kiln_cli::main()
}
