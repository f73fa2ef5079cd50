include!(concat!(env!("OUT_DIR"), "/stamp.rs"));

const SOURCE_DIR: &str = include_str!(concat!(env!("OUT_DIR"), "/source_dir.txt"));

fn main() {
    // Read through a pointer the optimizer cannot see through: the integer stays in .rodata.
    let secs = unsafe { std::ptr::read_volatile(std::hint::black_box(&BUILT_SECS)) };
    println!("unrepro built at {BUILT_AT} ({secs}) on {HOST} seed {SEED} order {ORDER} from {SOURCE_DIR}");
}
