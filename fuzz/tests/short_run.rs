//! Every fuzz target survives a short run (a few seconds each) of random and mutated
//! inputs: 0 crashes. `cargo xtask fuzz` runs them longer.

use std::time::Duration;

fn short_run(name: &str) {
    let t = kiln_fuzz::target(name).expect("a target of that name");
    let o = kiln_fuzz::driver::run(
        t,
        Duration::from_secs(4),
        0,
        &kiln_fuzz::fixtures::repo(),
        None,
    );
    assert!(o.cases > 0, "{name}: no case ran");
    if let Some(c) = o.crash {
        panic!(
            "{name} crashed on {} bytes {:?}: {}",
            c.input.len(),
            String::from_utf8_lossy(&c.input),
            c.message
        );
    }
}

macro_rules! targets {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                short_run(stringify!($name));
            }
        )*

        /// Each target in `TARGETS` has a test here.
        #[test]
        fn every_target_is_run() {
            let tested = [$(stringify!($name)),*];
            for t in kiln_fuzz::TARGETS {
                assert!(tested.contains(&t.name), "no short run for {}", t.name);
            }
        }
    };
}

targets!(
    kiln_toml,
    statements,
    sarif,
    osv,
    policy,
    base_index,
    base_manifest,
    tar_layer,
    dsse,
    keys,
);
