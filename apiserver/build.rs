//! Release builds embed the web panel (`web/dist`, see `src/http/panel.rs`): rebuild them when
//! the panel's build changes, also when it appears after a first build without it. Debug builds
//! read the files at run time and need no rebuild.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        println!("cargo:rerun-if-changed=../web/dist");
    }
}
