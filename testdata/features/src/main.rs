//! Prints a few numbers formatted by its dependencies.

fn main() {
    let mut buf = itoa::Buffer::new();
    let mut line = format!("features: {}", buf.format(42u64));
    #[cfg(feature = "fast")]
    {
        let mut f = ryu::Buffer::new();
        line.push_str(&format!(" {}", f.format(1.5f64)));
    }
    #[cfg(unix)]
    {
        let mut m: fnv::FnvHashMap<&str, u32> = fnv::FnvHashMap::default();
        m.insert("unix", 1);
        line.push_str(&format!(" unix={}", m["unix"]));
    }
    println!("{line}");
}

#[cfg(test)]
mod tests {
    cfg_if::cfg_if! {
        if #[cfg(unix)] {
            #[test]
            fn runs() {}
        }
    }
}
