//! Release builds embed the web panel (`web/dist`, see `src/http/panel.rs`): rebuild them when
//! the panel's build changes. Debug builds read the files at run time and need no rebuild.
//! (rust-embed embeds when `debug_assertions` is off; a release build made before the panel
//! existed is rebuilt by `touch apiserver/build.rs` — `./scripts/up` builds the panel first.)

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let embeds = std::env::var_os("CARGO_CFG_DEBUG_ASSERTIONS").is_none();
    if embeds && std::path::Path::new("../web/dist").exists() {
        println!("cargo:rerun-if-changed=../web/dist");
    }
}
