//! `rvsadm`: ipvsadm 1.31 for rvsd. The logic lives in the library; this only wires the
//! process (arguments, standard streams, exit status) to it.

#![forbid(unsafe_code)]

use rvsadm::app::{take_socket_option, App, SocketBackend};
use rvsadm::names::SystemNames;

fn main() {
    let mut args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let socket = match take_socket_option(&mut args) {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let mut backend = SocketBackend::new(socket);
    let names = SystemNames::new();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let code = App::new(&mut backend, &names, &mut out, &mut err).run(&args, &mut input);
    std::process::exit(code);
}
