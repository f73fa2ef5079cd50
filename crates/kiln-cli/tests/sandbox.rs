//! The build runs with the network cut off: a build script that connects to a listener on
//! the host's loopback fails under `kiln build`, while the same connection succeeds when
//! the sandbox is explicitly switched off (and that opt-out is recorded).

use std::io::Read;
use std::net::TcpListener;

use crate::support::*;

const NETPROBE_TOML: &str = r#"[project]
source_date_epoch = 1700000000

[[image]]
name = "netprobe"
package = "netprobe"
binaries = ["netprobe"]
"#;

#[test]
fn build_script_cannot_reach_the_host_network() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let p = Project::from_testdata("netprobe", NETPROBE_TOML);
    std::fs::write(p.path().join("port.txt"), port.to_string()).unwrap();

    let err = run_err(p.kiln().arg("build"));
    assert!(err.contains("netprobe: cannot reach 127.0.0.1"), "{err}");
    assert!(
        p.out_entries().is_empty(),
        "a failed build left {:?}",
        p.out_entries()
    );

    // Same project, same connection, sandbox switched off: it gets through.
    listener.set_nonblocking(false).unwrap();
    let accept = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut msg = String::new();
        s.read_to_string(&mut msg).unwrap();
        msg
    });
    let out = run_ok(p.kiln().args(["build", "--json", "--sandbox=none"]));
    assert_eq!(accept.join().unwrap(), "reached from build.rs\n");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["sandbox"], "none", "the opt-out must be recorded");
}
