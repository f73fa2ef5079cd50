//! Connects to 127.0.0.1:<port in port.txt>, which the test harness listens on *outside*
//! the build. Under kiln's network namespace the connection must fail, failing the build.

use std::io::Write;
use std::net::TcpStream;

fn main() {
    println!("cargo:rerun-if-changed=port.txt");
    let port: u16 = std::fs::read_to_string("port.txt").expect("port.txt").trim().parse().expect("port number");
    match TcpStream::connect(("127.0.0.1", port)) {
        Ok(mut s) => {
            let _ = s.write_all(b"reached from build.rs\n");
        }
        Err(e) => panic!("netprobe: cannot reach 127.0.0.1:{port}: {e}"),
    }
}
