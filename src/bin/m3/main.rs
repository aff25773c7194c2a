//! `m3`: BGE-M3 on the command line (`cli.rs`). Native only: a wasm32 build of the crate's tests
//! (`wasm-pack test`) compiles this binary too, and gets an empty one.

#[cfg(not(target_family = "wasm"))]
mod cli;
#[cfg(not(target_family = "wasm"))]
mod portable;

fn main() {
    #[cfg(not(target_family = "wasm"))]
    cli::main();
}
