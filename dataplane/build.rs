//! With the `af_xdp` feature, compile the XDP programs in `bpf/` with clang into
//! OUT_DIR; `port::af_xdp` embeds the objects, so there is no hand step.

use std::path::{Path, PathBuf};
use std::process::Command;

const PROGRAMS: &[&str] = &["xdp_redirect", "decap"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_AF_XDP").is_none() {
        return;
    }
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let src_dir = manifest.join("../bpf");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    println!("cargo:rerun-if-env-changed=CLANG");

    if Command::new(&clang).arg("--version").output().is_err() {
        panic!(
            "the `af_xdp` feature compiles bpf/*.bpf.c with clang, and `{clang}` was not found: \
             install it (Debian/Ubuntu: apt-get install clang libbpf-dev) or set CLANG=/path/to/clang"
        );
    }
    if !Path::new("/usr/include/bpf/bpf_helpers.h").exists() {
        panic!(
            "the `af_xdp` feature needs the libbpf headers (/usr/include/bpf/bpf_helpers.h): \
             install them (Debian/Ubuntu: apt-get install libbpf-dev)"
        );
    }
    // The kernel UAPI headers (asm/types.h) live under the multiarch directory.
    let arch = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => "x86_64",
        Ok("aarch64") => "aarch64",
        Ok("riscv64") => "riscv64",
        Ok(other) => panic!("af_xdp: no multiarch include directory known for target arch {other}"),
        Err(_) => panic!("cargo sets CARGO_CFG_TARGET_ARCH"),
    };
    let arch_include = format!("/usr/include/{arch}-linux-gnu");

    for name in PROGRAMS {
        let src = src_dir.join(format!("{name}.bpf.c"));
        let obj = out_dir.join(format!("{name}.bpf.o"));
        println!("cargo:rerun-if-changed={}", src.display());
        let out = Command::new(&clang)
            .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
            .arg(format!("-I{arch_include}"))
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .output()
            .unwrap_or_else(|e| panic!("running {clang}: {e}"));
        if !out.status.success() {
            panic!("clang failed on {}:\n{}", src.display(), String::from_utf8_lossy(&out.stderr));
        }
    }
}
