fn main() {
    println!("netprobe built");
}
