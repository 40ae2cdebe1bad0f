//! Build script of the `skiff` binary: links it as a position-dependent executable on Linux.
//!
//! Why: every pod runs two long-lived `skiff` processes (its sandbox holder and a shim per
//! container). In a position-independent executable the dynamic loader rewrites ~2.4 MB of
//! pointers (`.data.rel.ro`, ~110,000 relocations) at each start, which costs ~2 ms of CPU and
//! leaves those pages private to every process; linked at a fixed address they stay clean pages
//! of the file, shared by all. Heap, stack and shared libraries stay randomised. Go's default
//! build of the upstream kubelet, containerd and its shims is position-dependent as well.
//! What does not live here: anything that changes code generation (the crates are compiled as
//! usual; only the final link differs).

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
