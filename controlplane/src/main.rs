fn main() {
    std::process::exit(controlplane::cli::main());
}
