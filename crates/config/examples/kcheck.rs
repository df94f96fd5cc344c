//! `cargo run -p rvs-config --example kcheck -- FILE [ID]`: what `rvsd -t -f FILE` will print.
fn main() {
    let mut args = std::env::args().skip(1);
    let Some(file) = args.next() else {
        eprintln!("usage: kcheck FILE [CONFIG_ID]");
        std::process::exit(1);
    };
    let opts = rvs_config::CheckOptions {
        config_id: args.next(),
        // Like `keepalived -t`: interfaces must exist in this namespace.
        check_interfaces: std::env::var_os("KCHECK_NO_IF").is_none(),
    };
    let r = rvs_config::check(&file, &opts);
    eprint!("{}", r.render());
    std::process::exit(r.exit_status());
}
