include!(concat!(env!("OUT_DIR"), "/stamp.rs"));

const SOURCE_DIR: &str = include_str!(concat!(env!("OUT_DIR"), "/source_dir.txt"));

fn main() {
    println!("unrepro built at {BUILT_AT} seed {SEED} order {ORDER} from {SOURCE_DIR}");
}
