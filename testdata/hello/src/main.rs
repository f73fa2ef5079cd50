//! kiln's sample program: prints a greeting, read from the image when present.

fn main() {
    let greeting = std::fs::read_to_string("/etc/hello/greeting.txt")
        .unwrap_or_else(|_| "Hello from kiln!".to_string());
    let mut buf = itoa::Buffer::new();
    let words = buf.format(greeting.split_whitespace().count());
    println!("{} ({} words)", greeting.trim_end(), words);
}
