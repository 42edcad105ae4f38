//! Embeds the build id (see build_id.rs) as PGSTACK_BUILD_ID.

#[path = "build_id.rs"]
mod build_id;

fn main() {
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!("cargo:rerun-if-changed=build_id.rs");
    println!(
        "cargo:rustc-env=PGSTACK_BUILD_ID={}",
        build_id::of_tree(&root)
    );
}
