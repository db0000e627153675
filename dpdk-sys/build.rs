//! Builds the DPDK bindings: finds DPDK through pkg-config (`libdpdk`), compiles the
//! C shim (`csrc/shim.c`) with DPDK's own cflags, links DPDK's shared libraries and
//! runs bindgen over `csrc/shim.h` (which includes the DPDK headers we use).

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// DPDK's cflags as pkg-config prints them (include dirs, `-include rte_config.h`, `-march=...`).
fn dpdk_cflags() -> Vec<String> {
    let out = Command::new(env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into()))
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("dpdk-sys: running pkg-config (install pkg-config and libdpdk-dev)");
    assert!(out.status.success(), "dpdk-sys: `pkg-config --cflags libdpdk` failed: is libdpdk-dev installed?");
    String::from_utf8(out.stdout).expect("pkg-config output is UTF-8").split_whitespace().map(str::to_owned).collect()
}

fn main() {
    println!("cargo:rerun-if-changed=csrc/shim.c");
    println!("cargo:rerun-if-changed=csrc/shim.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    // Link metadata (search paths and every -lrte_* library). DPDK's poll-mode drivers
    // are not linked here: the shared EAL loads them as plugins from its driver
    // directory (RTE_EAL_PMD_PATH, `pkg-config --variable=pmdsdir`… see docs/DPDK.md).
    let lib = pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
        .expect("dpdk-sys: DPDK >= 22.11 not found through pkg-config (apt-get install libdpdk-dev)");
    println!("cargo:version={}", lib.version);

    let cflags = dpdk_cflags();

    let mut build = cc::Build::new();
    build.file("csrc/shim.c").include("csrc").warnings(true).opt_level(3);
    for flag in &cflags {
        build.flag(flag);
    }
    build.compile("l4lb_dpdk_shim");

    let bindings = bindgen::Builder::default()
        .header("csrc/shim.h")
        .clang_args(&cflags)
        .clang_arg("-Icsrc")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("l4lb_.*")
        .allowlist_function("rte_eal_.*")
        .allowlist_function("rte_eth_dev_.*")
        .allowlist_function("rte_eth_(rx|tx)_queue_setup")
        .allowlist_function("rte_eth_stats_(get|reset)")
        .allowlist_function("rte_eth_macaddr_get")
        .allowlist_function("rte_eth_promiscuous_(enable|disable|get)")
        .allowlist_function("rte_eth_link_get_nowait")
        .allowlist_function("rte_pktmbuf_.*")
        .allowlist_function("rte_mempool_(free|lookup|avail_count|in_use_count)")
        .allowlist_function("rte_lcore_.*")
        .allowlist_function("rte_socket_id")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_thread_(register|unregister)")
        .allowlist_type("rte_mbuf")
        .allowlist_type("rte_mempool")
        .allowlist_type("rte_eth_conf")
        .allowlist_type("rte_eth_dev_info")
        .allowlist_type("rte_eth_stats")
        .allowlist_type("rte_eth_rxconf")
        .allowlist_type("rte_eth_txconf")
        .allowlist_var("RTE_PKTMBUF_HEADROOM")
        .allowlist_var("RTE_MBUF_DEFAULT_.*")
        .allowlist_var("RTE_MAX_LCORE")
        .allowlist_var("RTE_MAX_ETHPORTS")
        .allowlist_var("RTE_ETHDEV_QUEUE_STAT_CNTRS")
        .allowlist_var("RTE_MEMPOOL_CACHE_MAX_SIZE")
        .allowlist_var("RTE_ETH_NAME_MAX_LEN")
        .allowlist_var("SOCKET_ID_ANY")
        .allowlist_var("LCORE_ID_ANY")
        .allowlist_var("RTE_ETH_MQ_.*")
        .allowlist_var("RTE_MBUF_F_INDIRECT")
        .allowlist_type("rte_ether_addr")
        .rustified_enum("rte_eth_rx_mq_mode")
        .rustified_enum("rte_eth_tx_mq_mode")
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(true)
        .generate_comments(false)
        .generate()
        .expect("dpdk-sys: bindgen failed on the DPDK headers");

    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    bindings.write_to_file(out.join("bindings.rs")).expect("dpdk-sys: writing bindings.rs");
}
